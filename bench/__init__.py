"""ptwiki-bench: RAG vs fine-tuning vs both, measured on Portuguese Wikipedia."""

__version__ = "0.1.0"
