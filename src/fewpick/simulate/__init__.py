"""Simulated micrographs (and later tomograms) with exact ground truth."""

from fewpick.simulate.simple import SimpleMicrographConfig, simulate_simple_micrograph, write_simulated_micrographs

__all__ = ["SimpleMicrographConfig", "simulate_simple_micrograph", "write_simulated_micrographs"]
