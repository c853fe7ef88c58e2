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


@functools.lru_cache(maxsize=None)
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


@functools.lru_cache(maxsize=None)
def _pseudo_atoms(key: str, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    sp = load_species(key)
    cells = np.floor(sp.xyz / spacing).astype(np.int64)
    _, inverse, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    beads = np.zeros((len(counts), 3))
    np.add.at(beads, inverse, sp.xyz.astype(np.float64))
    return (beads / counts[:, None]).astype(np.float32), counts.astype(np.float32)
