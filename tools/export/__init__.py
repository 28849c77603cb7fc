"""Exporters to .pgf and converters from other formats (Hugging Face, ONNX)."""
