"""The findings: answers to the study's questions, computed from its tables."""
