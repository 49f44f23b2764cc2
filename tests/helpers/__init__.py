"""Helpers shared by the tests: imported as ``helpers.<module>``, never from a test module."""
