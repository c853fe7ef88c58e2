"""Writing simulated data sets: images/volumes as MRC, truth as STAR, settings as JSON."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from fewpick.io.images import write_mrc, write_tilt_angles
from fewpick.io.picks import write_picks
from fewpick.outputs import atomic_path


def _seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def _write_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=float) + "\n")


def write_micrographs(out: str | Path, count: int, size: int = 4096, preset: str = "realistic", seed: int = 0,
                      n_particles: int | None = None, clean: bool = False,
                      species: tuple[str, ...] | None = None, weights: tuple[float, ...] | None = None,
                      prefix: str = "mic") -> pd.DataFrame:
    """Simulate ``count`` micrographs into ``out``: ``<stem>.mrc``, ``<stem>_truth.star``
    (species, orientation, defocus per particle), ``<stem>_clean.mrc`` with ``clean``,
    and ``simulation.json`` with every micrograph's settings. ``species`` and ``weights``
    (relative abundances) override the preset's. Returns all truth."""
    from fewpick.simulate.micrograph import PRESETS, simulate_micrograph

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p = PRESETS[preset] if isinstance(preset, str) and preset in PRESETS else preset
    if species:
        p = replace(p, species=tuple(species), weights=None)
    if weights:
        if len(weights) != len(p.species):
            raise ValueError(f"{len(weights)} weights for {len(p.species)} species")
        p = replace(p, weights=tuple(weights))
    if n_particles is None:  # ~300 per 4096^2 micrograph
        n_particles = max(5, int(round(300 * size * size / 4096**2)))
    tables, settings = [], {}
    for i in range(count):
        stem = f"{prefix}_{i:03d}"
        sim = simulate_micrograph((size, size), n_particles, p, seed=_seed(seed, i), name=stem, keep_clean=clean)
        write_mrc(out / f"{stem}.mrc", sim.image, sim.pixel_size)
        if clean:
            write_mrc(out / f"{stem}_clean.mrc", sim.clean, sim.pixel_size)
        write_picks(sim.truth, out / f"{stem}_truth.star")
        settings[stem] = sim.params
        tables.append(sim.truth)
    _write_json(out / "simulation.json", {"kind": "micrographs", "seed": seed, "micrographs": settings})
    return pd.concat(tables, ignore_index=True)


def write_tomograms(out: str | Path, count: int, preset: str = "realistic", seed: int = 0,
                    size: int | None = None, depth: int | None = None) -> pd.DataFrame:
    """Simulate ``count`` tomograms into ``out``: ``<stem>.mrc`` (the WBP reconstruction),
    ``<stem>.st`` + ``<stem>.tlt`` (the tilt series sorted by angle, as IMOD expects),
    ``<stem>_truth.star`` (particles and filament centre-line points) and ``simulation.json``."""
    from fewpick.simulate.tomogram import TOMO_PRESETS, simulate_tomogram

    out = Path(out)
    p = TOMO_PRESETS[preset]
    if size or depth:
        nz, ny, nx = p.shape
        p = replace(p, shape=(depth or nz, size or ny, size or nx))
    tables, settings = [], {}
    for i in range(count):
        stem = f"tomo_{i:03d}"
        sim = simulate_tomogram(p, seed=_seed(seed, i), name=stem)
        out.mkdir(parents=True, exist_ok=True)  # after the first simulation: a preset refused writes nothing
        order = np.argsort(sim.angles)
        write_mrc(out / f"{stem}.mrc", sim.tomogram, sim.voxel_size)
        write_mrc(out / f"{stem}.st", sim.tilt_series[order], sim.voxel_size)
        write_tilt_angles(out / f"{stem}.tlt", sim.angles[order])
        write_picks(sim.truth, out / f"{stem}_truth.star")
        settings[stem] = {**sim.params, "acquisition_order_deg": sim.angles.tolist()}
        tables.append(sim.truth)
    _write_json(out / "simulation.json", {"kind": "tomograms", "seed": seed, "tomograms": settings})
    return pd.concat(tables, ignore_index=True)
