"""The simulator's atomic models (real PDB entries; see ``scripts/extract_structures.py``)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fewpick.errors import InputError
from fewpick.simulate.physics import GROUP_OF_Z, GROUPS

STRUCTURES = Path(__file__).resolve().parent / "structures"


@dataclass(frozen=True)
class Species:
    """One kind of particle.

    Attributes
    ----------
    key
        Short name used in truth files (``ribosome``, ``cct``, ...).
    pdb_id, name
        Where the model comes from.
    xyz
        Heavy-atom coordinates, Å, centred on the centre of mass, shape (n, 3) as (x, y, z).
    group
        Element group of each atom (index into :data:`fewpick.simulate.physics.GROUPS`).
    mass_kda
        Mass of the heavy atoms.
    radius
        Largest distance of an atom from the centre, Å.
    """

    key: str
    pdb_id: str
    name: str
    xyz: np.ndarray
    group: np.ndarray
    mass_kda: float
    radius: float

    @property
    def diameter(self) -> float:
        return 2 * self.radius

    def pseudo_atoms(self, spacing: float) -> tuple[np.ndarray, np.ndarray]:
        """Coarse model for tomograms: atoms pooled into cubes of ``spacing`` Å.

        Returns bead positions (centres of mass of the pooled atoms, Å) and the number
        of heavy atoms each bead stands for.
        """
        return _pseudo_atoms(self.key, float(spacing))


def available_species() -> dict[str, dict]:
    """The index of models: key → PDB ID, name, mass, radius."""
    return json.loads((STRUCTURES / "index.json").read_text())


@functools.cache
def load_species(key: str) -> Species:
    """Load one species (assemblies with symmetry operators are expanded)."""
    index = available_species()
    if key not in index:
        raise InputError(None, f"unknown species {key!r}; available: {', '.join(index)}")
    meta = index[key]
    with np.load(STRUCTURES / f"{key}.npz") as data:
        xyz = data["xyz"].astype(np.float32)
        z = data["z"]
        if "operators" in data:
            ops = data["operators"]
            xyz = np.concatenate([xyz @ o[:, :3].T.astype(np.float32) + o[:, 3].astype(np.float32) for o in ops])
            z = np.tile(z, len(ops))
    group = np.array([GROUP_OF_Z.get(int(a), len(GROUPS) - 1) for a in range(256)], np.uint8)[z]
    radius = float(np.sqrt((xyz.astype(np.float64) ** 2).sum(1)).max())
    return Species(key, meta["pdb_id"], meta["name"], xyz, group, meta["mass_kda"], radius)


@functools.cache
def _pseudo_atoms(key: str, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    sp = load_species(key)
    cells = np.floor(sp.xyz / spacing).astype(np.int64)
    _, inverse, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    beads = np.zeros((len(counts), 3))
    np.add.at(beads, inverse, sp.xyz.astype(np.float64))
    return (beads / counts[:, None]).astype(np.float32), counts.astype(np.float32)


def species_map(key: str, pixel_size: float, box: int | None = None, resolution: float | None = None) -> np.ndarray:
    """A 3D density map of a species, ``(z, y, x)`` at ``pixel_size`` Å per voxel, for template matching.

    Heavy atoms are spread into the voxels (trilinear weights) and low-passed with a Gaussian to
    ``resolution`` Å (default: 2 voxels); the box (default: the particle's diameter plus 20 %, even) is centred on
    the centre of mass. Protein is positive.
    """
    from scipy import ndimage

    if not pixel_size > 0:
        raise InputError(None, f"the pixel size must be positive, got {pixel_size}")
    sp = load_species(key)
    if box is None:
        box = int(np.ceil(2.4 * sp.radius / pixel_size / 2)) * 2
    pos = sp.xyz.astype(np.float64)[:, ::-1] / pixel_size + box / 2  # (z, y, x) voxels, centre at box / 2
    vol = np.zeros((box + 1,) * 3)
    base = np.floor(pos).astype(np.int64)
    frac = pos - base
    for corner in np.ndindex(2, 2, 2):
        idx = base + np.array(corner)
        w = np.prod(np.where(np.array(corner), frac, 1 - frac), axis=1)
        ok = np.all((idx >= 0) & (idx <= box), axis=1)
        np.add.at(vol, tuple(idx[ok].T), w[ok])
    sigma = (resolution if resolution else 2 * pixel_size) / pixel_size / 2.355  # the Gaussian's FWHM = resolution
    return ndimage.gaussian_filter(vol[:box, :box, :box], sigma).astype(np.float32)
