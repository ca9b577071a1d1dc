"""MLflow experiment tracking of finished runs, fine-tunings and sweep points (docs/tracking.md)."""
