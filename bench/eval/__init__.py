"""Evaluation: variants, the run stage, scoring, answer spans, baselines, costs, retrieval eval, sweeps."""
