"""Question sets: the question-file loader, generated fact probes, the leakage guard."""
