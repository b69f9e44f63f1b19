"""Experiment configs and the registry of named experiments."""
