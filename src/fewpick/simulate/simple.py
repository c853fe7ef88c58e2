"""A simple micrograph simulator: dark, lumpy particles on a structured, noisy background.

This is the fast stand-in used by the foundation's tests and demo. Each particle is the
projection of a sphere of uniform density plus a few denser lumps (so particles are not
all alike and have a template-matchable shape); the background has low-frequency ice
thickness variation; the image is blurred by a Gaussian envelope and carries white
Gaussian noise at a chosen per-particle SNR. Exact centres are returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.ndimage as ndi

from fewpick.io.images import write_mrc
from fewpick.io.picks import make_picks, write_picks


@dataclass
class SimpleMicrographConfig:
    """Settings of :func:`simulate_simple_micrograph` (lengths in pixels)."""

    size: tuple[int, int] = (1024, 1024)  # (rows, columns)
    diameter: float = 48.0
    n_particles: int = 80
    snr: float = 0.3  # particle signal variance / noise variance, inside the particle disk
    pixel_size: float = 2.0  # Å/px, written into the header
    background: float = 0.5  # amplitude of the slow ice-thickness variation, in particle-contrast units
    blur: float = 1.0  # Gaussian envelope sigma


def _positions(rng: np.random.Generator, shape: tuple[int, int], n: int, min_dist: float, margin: float) -> np.ndarray:
    """Up to ``n`` random centres at least ``min_dist`` apart, ``margin`` from the edges (dart throwing)."""
    pts: list[np.ndarray] = []
    tries = 0
    while len(pts) < n and tries < n * 200:
        tries += 1
        p = np.array([rng.uniform(margin, shape[1] - 1 - margin), rng.uniform(margin, shape[0] - 1 - margin)])
        if all(np.hypot(*(p - q)) >= min_dist for q in pts):
            pts.append(p)
    return np.array(pts).reshape(-1, 2)


def particle_image(rng: np.random.Generator, diameter: float, size: int) -> np.ndarray:
    """Projected density of one particle (positive), centred in a ``size``² box."""
    r = diameter / 2
    c = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size] - c
    rho2 = xx**2 + yy**2
    img = 2 * np.sqrt(np.clip(r**2 - rho2, 0, None)) / r  # sphere thickness, 2 at the centre
    for _ in range(4):
        a = rng.uniform(0, 2 * np.pi)
        d = rng.uniform(0.2, 0.55) * r
        s = rng.uniform(0.15, 0.3) * r
        img += 0.8 * np.exp(-((xx - d * np.cos(a)) ** 2 + (yy - d * np.sin(a)) ** 2) / (2 * s**2))
    return img.astype(np.float32)


def simulate_simple_micrograph(config: SimpleMicrographConfig, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate one micrograph.

    Returns
    -------
    image : ndarray (rows, cols) float32
    centres : ndarray (n, 2)
        Exact particle centres as (x, y) in pixels.
    clean : ndarray
        The noise-free image.
    """
    rng = np.random.default_rng(seed)
    h, w = config.size
    centres = _positions(rng, (h, w), config.n_particles, config.diameter * 1.05, config.diameter / 2)
    box = int(np.ceil(config.diameter * 1.2)) | 1
    half = box // 2
    density = np.zeros((h + 2 * box, w + 2 * box), np.float32)
    for x, y in centres:
        ix, iy = int(np.floor(x)), int(np.floor(y))
        p = particle_image(rng, config.diameter, box)
        p = ndi.shift(p, (y - iy, x - ix), order=1)  # sub-pixel position
        density[iy + box - half : iy + box + half + 1, ix + box - half : ix + box + half + 1] += p
    density = density[box:-box, box:-box]
    ice = ndi.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), min(h, w) / 16)
    ice *= config.background / (ice.std() + 1e-9)
    clean = ndi.gaussian_filter(-density + ice, config.blur)
    # noise level from the particle signal variance inside a disk, averaged over particles
    r = config.diameter / 2
    yy, xx = np.mgrid[:box, :box] - (box - 1) / 2
    disk = xx**2 + yy**2 <= r**2
    signal_var = np.var(ndi.gaussian_filter(particle_image(np.random.default_rng(seed + 1), config.diameter, box),
                                            config.blur)[disk])
    sigma = np.sqrt(signal_var / config.snr)
    image = clean + rng.standard_normal((h, w)).astype(np.float32) * sigma
    return image.astype(np.float32), centres, clean.astype(np.float32)


def write_simulated_micrographs(out: str | Path, count: int, config: SimpleMicrographConfig, seed: int = 0,
                                clean: bool = False) -> pd.DataFrame:
    """Write ``count`` micrographs as ``<out>/sim_XXX.mrc`` with ``<out>/sim_XXX_truth.star``.

    Returns the truth of all micrographs as one picks table.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = []
    for i in range(count):
        stem = f"sim_{i:03d}"
        image, centres, noise_free = simulate_simple_micrograph(config, seed=seed * 100003 + i)
        write_mrc(out / f"{stem}.mrc", image, config.pixel_size)
        if clean:
            write_mrc(out / f"{stem}_clean.mrc", noise_free, config.pixel_size)
        truth = make_picks(stem, centres[:, 0], centres[:, 1])
        truth = truth.drop(columns="score")
        truth["rlnDiameter"] = config.diameter
        write_picks(truth, out / f"{stem}_truth.star")
        tables.append(truth)
    return pd.concat(tables, ignore_index=True)
