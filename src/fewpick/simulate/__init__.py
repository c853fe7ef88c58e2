"""Simulated micrographs and tomograms with exact ground truth.

- :mod:`fewpick.simulate.micrograph`: realistic single-particle micrographs (presets easy/realistic/hard);
- :mod:`fewpick.simulate.tomogram`: tilt series and WBP tomograms of crowded slabs with filaments;
- :mod:`fewpick.simulate.simple`: a fast synthetic stand-in (blobs on noise) for quick tests and the demo.
"""

from fewpick.simulate.micrograph import PRESETS, MicrographPreset, particle_snr, simulate_micrograph
from fewpick.simulate.simple import SimpleMicrographConfig, simulate_simple_micrograph, write_simulated_micrographs
from fewpick.simulate.tomogram import TOMO_PRESETS, TomogramPreset, simulate_tomogram
from fewpick.simulate.write import write_micrographs, write_tomograms

__all__ = ["PRESETS", "MicrographPreset", "particle_snr", "simulate_micrograph", "SimpleMicrographConfig",
           "simulate_simple_micrograph", "write_simulated_micrographs", "TOMO_PRESETS", "TomogramPreset",
           "simulate_tomogram", "write_micrographs", "write_tomograms"]
