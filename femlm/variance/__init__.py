"""Gradient variance: the analyser, per-view gradients, estimators and their plots."""
