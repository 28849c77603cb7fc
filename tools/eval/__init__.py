"""Evaluation scripts: python3 -m tools.eval.NAME --help."""
