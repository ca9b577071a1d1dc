"""Fine-tuning: training records from the corpus or questions, LoRA/QLoRA, the injection probe."""
