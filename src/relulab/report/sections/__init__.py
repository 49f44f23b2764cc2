"""The findings' sections, one module per question: sentences built from the study's tables."""
