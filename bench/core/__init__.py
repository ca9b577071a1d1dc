"""Shared vocabulary, below every stage: metrics and Portuguese normalisation (numbers_pt), statistics, the
reader prompts, the scores schema and machine records."""
