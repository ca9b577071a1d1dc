"""``bench export``: question sets and run answers as Hugging Face datasets, question sets as
lm-evaluation-harness tasks scored with the bench's own EM/F1 (docs/export.md)."""
