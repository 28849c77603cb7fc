"""Training scripts of the demo models: python3 -m tools.train.NAME --help."""
