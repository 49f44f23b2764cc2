"""Figures drawn from a study's tables."""
