"""Llama 3 style model, trainer and tokenizer."""
