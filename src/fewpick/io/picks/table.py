"""The picks table: one :class:`pandas.DataFrame` everywhere, with columns ``micrograph, x, y[, z], score[, label]``
plus any extra columns a file brought along.

Coordinates are pixels of the original image, x = column, y = row, z = section, origin at the first pixel's
centre. ``score`` is ``NaN`` where a file has none.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from fewpick.errors import InputError
from fewpick.io.images import micrograph_key

CORE = ["micrograph", "x", "y", "z", "score", "label"]

# Spellings seen in the field's CSV/TSV files, compared lower-case without punctuation.
ALIASES = {
    "micrograph": {"micrograph", "micrographname", "imagename", "image", "rlnmicrographname", "rlntomoname",
                   "tomogram", "tomo", "tomoname", "name", "filename", "mic"},
    "x": {"x", "xcoord", "xcoordinate", "coordinatex", "rlncoordinatex", "xpos", "centerx", "cx"},
    "y": {"y", "ycoord", "ycoordinate", "coordinatey", "rlncoordinatey", "ypos", "centery", "cy"},
    "z": {"z", "zcoord", "zcoordinate", "coordinatez", "rlncoordinatez", "zpos", "centerz", "cz"},
    "score": {"score", "rlnautopickfigureofmerit", "figureofmerit", "fom", "confidence", "probability", "prob"},
    "label": {"label", "class", "classnumber", "rlnclassnumber", "cls"},
}
# Suffixes that picking programs append to per-micrograph file names.
PICK_FILE_SUFFIXES = re.compile(r"(_autopick|_manualpick|_manual|_pick|_picks|_coords|_particles)$", re.I)


def empty_picks(with_z: bool = False) -> pd.DataFrame:
    """An empty picks table with the core columns (``z`` if ``with_z``)."""
    cols = {"micrograph": pd.Series([], dtype=object), "x": pd.Series([], dtype=float),
            "y": pd.Series([], dtype=float)}
    if with_z:
        cols["z"] = pd.Series([], dtype=float)
    cols["score"] = pd.Series([], dtype=float)
    return pd.DataFrame(cols)


def make_picks(micrograph: str | Iterable[str], x, y, z=None, score=None, label=None) -> pd.DataFrame:
    """Build a picks table from arrays (``micrograph`` may be one name for all rows)."""
    x = np.asarray(x, dtype=float).ravel()
    n = len(x)
    mic = [micrograph] * n if isinstance(micrograph, str) else list(micrograph)
    cols: dict = {"micrograph": pd.Series(mic, dtype=object), "x": x, "y": np.asarray(y, dtype=float).ravel()}
    if z is not None:
        cols["z"] = np.asarray(z, dtype=float).ravel()
    cols["score"] = np.full(n, np.nan) if score is None else np.asarray(score, dtype=float).ravel()
    if label is not None:
        cols["label"] = np.asarray(label).ravel()
    return pd.DataFrame(cols)


def has_z(picks: pd.DataFrame) -> bool:
    return "z" in picks.columns


def scores_of(picks: pd.DataFrame) -> np.ndarray:
    """The ``score`` column as floats (NaN where the table has none)."""
    return picks["score"].to_numpy(dtype=float) if "score" in picks.columns else np.full(len(picks), np.nan)


def has_scores(picks: pd.DataFrame) -> bool:
    """Whether any pick has a score (a writer then stores the column)."""
    return len(picks) > 0 and not np.isnan(scores_of(picks)).all()


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def rename_aliases(df: pd.DataFrame) -> pd.DataFrame:
    """The table's columns renamed to the core names where they are spelled as one of :data:`ALIASES`."""
    mapping = {}
    taken = set()
    for col in df.columns:
        key = _norm(col)
        for core, spellings in ALIASES.items():
            if key in spellings and core not in taken:
                mapping[col] = core
                taken.add(core)
                break
    return df.rename(columns=mapping)


def stem_name(path: Path) -> str:
    """Micrograph name for a per-micrograph file: its stem without picker suffixes."""
    return PICK_FILE_SUFFIXES.sub("", micrograph_key(path.stem)) or path.stem


def finish(df: pd.DataFrame, path: Path, default_name: str | None = None) -> pd.DataFrame:
    """Check and order a table read from ``path``: core columns first, types fixed; ``default_name`` (else the
    file's :func:`stem_name`) names the micrograph where the file does not."""
    for axis in ("x", "y"):
        if axis not in df.columns:
            raise InputError(path, f"no {axis} coordinate column found (columns: {', '.join(map(str, df.columns)) or 'none'})")
    if "micrograph" not in df.columns:
        df.insert(0, "micrograph", stem_name(path) if default_name is None else default_name)
    df["micrograph"] = df["micrograph"].astype(str).astype(object)
    for axis in ("x", "y", "z", "score"):
        if axis in df.columns:
            values = pd.to_numeric(df[axis], errors="coerce")
            bad = values.isna() & df[axis].notna() if axis == "score" else values.isna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(path, f"row {row + 1}: {axis} is not a number ({df[axis].iloc[row]!r})")
            if axis != "score" and not np.isfinite(values.to_numpy()).all():
                raise InputError(path, f"{axis} coordinates include infinite values")
            df[axis] = values.astype(float)
    if "score" not in df.columns:
        df["score"] = np.nan
    order = [c for c in CORE if c in df.columns] + [c for c in df.columns if c not in CORE]
    return df[order].reset_index(drop=True)


def transform_picks(picks: pd.DataFrame, scale: float = 1.0, flip_y_height: float | None = None) -> pd.DataFrame:
    """Scale coordinates, then optionally flip y.

    ``scale`` multiplies x, y (and z): use the binning factor to bring binned
    coordinates back to original pixels. ``flip_y_height`` is the image height in
    the output's pixels; with the origin at the first pixel's centre, row ``y``
    becomes ``height - 1 - y``.
    """
    if not (scale > 0 and np.isfinite(scale)):
        raise InputError(None, f"scale must be a positive number, got {scale}")
    out = picks.copy()
    for axis in ("x", "y", "z"):
        if axis in out.columns:
            out[axis] = out[axis].astype(float) * scale
    if "box" in out.columns:
        out["box"] = out["box"].astype(float) * scale
    if flip_y_height is not None:
        if flip_y_height <= 0:
            raise InputError(None, f"--flip-y needs the image height in pixels, got {flip_y_height}")
        outside = (out["y"] < -0.5) | (out["y"] > flip_y_height - 0.5)
        if outside.any():
            y = float(out.loc[outside, "y"].iloc[0])
            raise InputError(None, f"y={y:g} (row {int(np.flatnonzero(outside.to_numpy())[0]) + 1}) lies outside an "
                                   f"image of height {flip_y_height:g}; check --flip-y and --scale")
        out["y"] = (flip_y_height - 1) - out["y"]
    return out


def select_picks(picks: pd.DataFrame, where: Iterable[str] = (), sample: int | None = None,
                 seed: int = 0) -> pd.DataFrame:
    """Keep rows whose columns equal given values (``"species=ribosome"``), then draw ``sample`` rows at random.

    Values are compared as text, so ``label=2`` matches the number 2. Raises if a column does not exist or
    ``sample`` exceeds the rows left.
    """
    out = picks
    for cond in where:
        if "=" not in cond:
            raise InputError(None, f"--where needs COLUMN=VALUE, got {cond!r}")
        col, value = cond.split("=", 1)
        col = col.strip()
        if col not in out.columns:
            raise InputError(None, f"--where: no column {col!r} (columns: {', '.join(map(str, out.columns))})")
        column = out[col]
        as_text = column.astype(str)
        if pd.api.types.is_numeric_dtype(column):
            try:
                as_text = column.astype(float).astype(str)
                value = str(float(value))
            except ValueError:
                pass
        out = out[as_text == value.strip()]
    if sample is not None:
        if sample > len(out):
            raise InputError(None, f"--sample {sample}: only {len(out)} rows to draw from")
        out = out.sample(sample, random_state=seed).sort_index()
    return out.reset_index(drop=True)


def check_inside(picks: pd.DataFrame, shapes: dict[str, tuple[int, ...]], source: str | os.PathLike | None) -> None:
    """Raise if a pick lies outside its image or names an image that is not given.

    ``shapes`` maps micrograph names (as in the table) to array shapes ``(y, x)`` or
    ``(z, y, x)``. Coordinates may reach half a pixel beyond the outer pixel centres.
    """
    for name, group in picks.groupby("micrograph", sort=False):
        if name not in shapes:
            raise InputError(source, f"names micrograph {name!r}, which is not among the images given")
        shape = shapes[name]  # type: ignore[index]  # names are text (finish() makes them so)
        axes = ["x", "y"] + (["z"] if len(shape) == 3 else [])
        sizes = {"x": shape[-1], "y": shape[-2], "z": shape[0] if len(shape) == 3 else 1}
        for axis in axes:
            if axis not in group.columns:
                raise InputError(source, f"has no {axis} coordinates but {name!r} is a 3D volume")
            v = group[axis].to_numpy(dtype=float)
            bad = (v < -0.5) | (v > sizes[axis] - 0.5)
            if bad.any():
                row = group.index[np.flatnonzero(bad)[0]]
                raise InputError(source, f"{axis}={v[bad][0]:g} (row {row + 1}, micrograph {name!r}) lies outside "
                                         f"the image, whose {axis} range is 0..{sizes[axis] - 1}")
