"""Evaluation: variants, the reader prompt, the run stage, metrics, scores, statistics, sweeps."""
