"""copick projects (the data layout of the CZ cryo-ET Data Portal and of recent cryo-ET challenges), through the
``copick`` library.

A copick project holds runs (one tilt series and its tomograms each), tomograms at voxel spacings (in Å) and of
types (``wbp``, ``denoised``, …) as OME-Zarr, and picks per object, user and session, with positions in Å.
fewpick's picks tables are in voxels, so a voxel spacing ties the two: voxel = Å / spacing (copick's own
conversion). Tomograms are exported as MRC files named by their run, so every fewpick verb works on them, and
picks go back into the project as a new user's session.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from fewpick.errors import InputError
from fewpick.io.images import write_mrc
from fewpick.io.picks import make_picks


def open_project(config: str | os.PathLike):
    """The copick root of a project's configuration file."""
    import copick

    path = Path(config)
    if not path.is_file():
        raise InputError(path, "no such copick configuration file")
    try:
        return copick.from_file(str(path))
    except Exception as exc:  # copick and pydantic raise several types for a bad file
        raise InputError(path, f"not a readable copick configuration ({exc})") from None


def _runs(root, config, runs):
    names = [r.name for r in root.runs]
    if runs:
        missing = [r for r in runs if r not in names]
        if missing:
            raise InputError(config, f"has no run {missing[0]!r} (runs: {', '.join(names) or 'none'})")
        names = list(runs)
    if not names:
        raise InputError(config, "the copick project holds no runs")
    return names


def export_tomograms(config: str | os.PathLike, out: str | os.PathLike, voxel_spacing: float, tomo_type: str = "wbp",
                     runs: list[str] | None = None) -> list[Path]:
    """Write each run's tomogram (``voxel_spacing`` Å, ``tomo_type``) as ``<out>/<run>.mrc``; the files written.
    Runs without such a tomogram are refused with the spacings and types they have."""
    root = open_project(config)
    written = []
    for name in _runs(root, config, runs):
        run = root.get_run(name)
        vs = run.get_voxel_spacing(voxel_spacing)
        tomos = vs.get_tomograms(tomo_type) if vs is not None else []
        if not tomos:
            have = [f"{v.voxel_size:g} Å: {', '.join(t.tomo_type for t in v.tomograms) or 'none'}"
                    for v in run.voxel_spacings]
            raise InputError(config, f"run {name!r} has no {tomo_type!r} tomogram at {voxel_spacing:g} Å "
                                     f"(it has {'; '.join(have) or 'no tomograms'})")
        written.append(write_mrc(Path(out) / f"{name}.mrc", np.asarray(tomos[0].numpy(), dtype=np.float32),
                                 voxel_spacing))
    return written


def read_copick_picks(config: str | os.PathLike, object_name: str, voxel_spacing: float, *, user_id: str | None = None,
                      session_id: str | None = None, runs: list[str] | None = None) -> pd.DataFrame:
    """The picks of one object (optionally of one user and session) as a picks table in voxels of
    ``voxel_spacing`` Å, ``micrograph`` = the run's name."""
    root = open_project(config)
    tables = []
    for name in _runs(root, config, runs):
        for p in root.get_run(name).get_picks(object_name=object_name, user_id=user_id, session_id=session_id):
            xyz = p.full_positions() / voxel_spacing
            if len(xyz) == 0:
                continue
            t = make_picks(name, xyz[:, 0], xyz[:, 1], z=xyz[:, 2], score=p.scores())
            tables.append(t.assign(user=p.user_id, session=p.session_id))
    if not tables:
        raise InputError(config, f"holds no picks of {object_name!r}" + (f" by user {user_id!r}" if user_id else "")
                                 + (f" in session {session_id!r}" if session_id else ""))
    return pd.concat(tables, ignore_index=True)


def write_copick_picks(picks: pd.DataFrame, config: str | os.PathLike, object_name: str, voxel_spacing: float, *,
                       user_id: str = "fewpick", session_id: str = "0", overwrite: bool = False) -> dict[str, int]:
    """Store a 3D picks table (voxels of ``voxel_spacing`` Å; ``micrograph`` names the run) as copick picks of
    ``object_name`` by ``user_id`` in ``session_id``; the number of points per run. Every run is checked before
    anything is written."""
    from fewpick.io.images import micrograph_key

    if "z" not in picks.columns:
        raise InputError(None, "copick picks are 3D: these picks have no z coordinate")
    root = open_project(config)
    objects = [o.name for o in root.config.pickable_objects]
    if object_name not in objects:
        raise InputError(config, f"has no pickable object {object_name!r} (objects: {', '.join(objects) or 'none'})")
    names = {r.name for r in root.runs}
    groups = {micrograph_key(m): g for m, g in picks.groupby("micrograph", sort=False)}
    missing = [m for m in groups if m not in names]
    if missing:
        raise InputError(config, f"has no run {missing[0]!r} for these picks (runs: {', '.join(sorted(names))})")
    existing = {m: root.get_run(m).get_picks(object_name=object_name, user_id=user_id, session_id=session_id)
                for m in groups}
    taken = [m for m, found in existing.items() if found]
    if taken and not overwrite:
        raise InputError(config, f"run {taken[0]!r} already holds {object_name!r} picks by {user_id!r} in session "
                                 f"{session_id!r}; choose another session or overwrite them")
    counts = {}
    for m, g in groups.items():
        found = existing[m]
        target = found[0] if found else root.get_run(m).new_picks(object_name, session_id=session_id, user_id=user_id)
        xyz = g[["x", "y", "z"]].to_numpy(dtype=float) * voxel_spacing
        score = g["score"].to_numpy(dtype=float) if "score" in g.columns else np.ones(len(g))
        target.from_numpy(xyz, scores=np.where(np.isfinite(score), score, 1.0))
        target.store()
        counts[m] = len(g)
    return counts
