from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fewpick.io import make_picks
from fewpick.simulate import SimpleMicrographConfig, simulate_simple_micrograph

# shared/ sits beside the repository (as in CI); FEWPICK_REAL_DATA overrides
REAL_DATA = Path(os.environ.get("FEWPICK_REAL_DATA",
                                Path(__file__).resolve().parents[2] / "shared" / "data" / "empiar10146_apoferritin"))


@pytest.fixture(scope="session")
def sim_micrograph():
    """A 512x640 simulated micrograph (non-square on purpose) with 30 particles 40 px across."""
    cfg = SimpleMicrographConfig(size=(512, 640), diameter=40.0, n_particles=30, snr=0.01)
    image, centres, clean = simulate_simple_micrograph(cfg, seed=7)
    return image, make_picks("sim", centres[:, 0], centres[:, 1]), clean, cfg


@pytest.fixture(scope="session")
def real_data():
    if not (REAL_DATA / "images").is_dir():
        pytest.skip(f"real data not found at {REAL_DATA}")
    return REAL_DATA


def rng(seed=0):
    return np.random.default_rng(seed)
