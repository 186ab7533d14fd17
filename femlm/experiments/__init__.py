"""Experiments: grids of runs from a YAML file, and the demo built on them."""
