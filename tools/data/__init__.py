"""Datasets the demo models train and are tested on (all from Debian packages)."""
