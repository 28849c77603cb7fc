"""PyTorch reference models of every architecture pgformer serves, and the tokenizer."""
