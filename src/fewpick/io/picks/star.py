"""RELION STAR files (read and written with ``starfile``).

Micrographs as ``data_particles`` with ``rlnMicrographName`` (the path as given), ``rlnCoordinateX/Y``,
``rlnAutopickFigureOfMerit``, ``rlnClassNumber``; tomograms with ``rlnTomoName``, ``rlnCoordinateX/Y/Z`` (voxels)
and, where the tomogram's size and pixel size are known, RELION 5's ``rlnCenteredCoordinateX/Y/ZAngst``
``= (x − n/2) · pixel size`` for a tomogram of n voxels along that axis (RELION 5's ``ParticleSet``: decentred
pixels are centred ångströms / tilt-series pixel size + tomogram size / 2, a float division). One file per
micrograph is RELION's ``<stem>_pick.star``. RELION's ``autopick.star`` / ``manualpick.star`` index of
coordinate files is read too.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from fewpick.errors import InputError, first_line
from fewpick.io.images import ImageInfo, micrograph_key
from fewpick.io.picks.context import display_path, image_for, image_of
from fewpick.io.picks.spec import Destination
from fewpick.io.picks.table import CORE, finish, has_scores, has_z, scores_of, stem_name

STAR_NAMES = {
    "micrograph": "rlnMicrographName",
    "x": "rlnCoordinateX",
    "y": "rlnCoordinateY",
    "z": "rlnCoordinateZ",
    "score": "rlnAutopickFigureOfMerit",
    "label": "rlnClassNumber",
}
CENTRED = ("rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst")


def star_blocks(path: Path, what: str = "STAR") -> dict:
    """The data blocks of a STAR file (``starfile``), or one clear error naming the file."""
    import starfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # the parser raises several types for a bad file
        raise InputError(path, f"not a readable {what} file ({first_line(exc)})") from None
    for name, block in blocks.items():
        if isinstance(block, pd.DataFrame) and block.columns.duplicated().any():
            twice = block.columns[block.columns.duplicated()][0]
            raise InputError(path, f"column _{twice} appears twice in data_{name}")
    return blocks


def is_index(path: Path) -> bool:
    """A RELION list of coordinate files (its picks are in the folder's other files)."""
    if path.suffix.lower() != ".star":
        return False
    with open(path, "rb") as f:
        head = f.read(4096)
    return b"_rlnMicrographCoordinates" in head and b"_rlnCoordinateX" not in head


# ---------------------------------------------------------------- RELION 5 centred coordinates


def centred_angstrom(picks: pd.DataFrame, images: Mapping[str, ImageInfo], path: Path) -> pd.DataFrame:
    """``rlnCenteredCoordinateX/Y/ZAngst`` columns for a 3D picks table."""
    out = np.zeros((len(picks), 3))
    for name, rows in picks.groupby("micrograph", sort=False).groups.items():
        info = image_for(str(name), images, path, "RELION 5 centred coordinates")
        if info.pixel_size is None:
            raise InputError(path, f"RELION 5 centred coordinates need the pixel size of {info.path}, whose header "
                                   "gives none; give it (--pixel-size)")
        nz, ny, nx = info.shape[-3:] if len(info.shape) == 3 else (1, *info.shape)
        idx = picks.index.get_indexer(rows)
        for j, (axis, n) in enumerate((("x", nx), ("y", ny), ("z", nz))):
            out[idx, j] = (picks.loc[rows, axis].to_numpy(dtype=float) - n / 2) * info.pixel_size
    return pd.DataFrame(out, columns=list(CENTRED), index=picks.index)


def from_centred_angstrom(df: pd.DataFrame, images: Mapping[str, ImageInfo] | None, path: Path) -> pd.DataFrame:
    """Voxel coordinates from RELION 5's centred ångströms (``micrograph`` names the tomogram)."""
    df = df.copy()
    for axis in ("x", "y", "z"):
        df[axis] = np.nan
    for name, rows in df.groupby("micrograph", sort=False).groups.items():
        info = image_for(str(name), images, path,
                         "reading RELION 5 centred coordinates (rlnCenteredCoordinate…Angst)")
        if info.pixel_size is None or len(info.shape) != 3:
            raise InputError(path, f"RELION 5 centred coordinates need a tomogram with a pixel size; {info.path} "
                                   f"has shape {info.shape} and pixel size {info.pixel_size}")
        nz, ny, nx = info.shape
        for col, axis, n in zip(CENTRED, ("x", "y", "z"), (nx, ny, nz)):
            df.loc[rows, axis] = pd.to_numeric(df.loc[rows, col]).to_numpy(dtype=float) / info.pixel_size + n / 2
    return df.drop(columns=list(CENTRED))


# ---------------------------------------------------------------- RELION coordinate-file index


def read_coordinate_index(path: Path, table: pd.DataFrame, read_one) -> pd.DataFrame:
    """Picks listed by a RELION ``coordinate_files`` table (``autopick.star``, ``manualpick.star``): each row pairs
    a micrograph with its coordinate file, both relative to the RELION project folder."""
    if "rlnMicrographCoordinates" not in table.columns:
        raise InputError(path, "coordinate_files table lacks rlnMicrographCoordinates")
    tables = []
    for mic, coords in zip(table["rlnMicrographName"].astype(str), table["rlnMicrographCoordinates"].astype(str)):
        found = _project_file(path, coords)
        if found is None:
            raise InputError(path, f"lists {coords}, which is not found relative to this file's folder or the "
                                   "folders above it (the RELION project folder)")
        one = read_one(found)
        tables.append(one.assign(micrograph=mic))
    if not tables:
        return pd.DataFrame(columns=["micrograph", "x", "y"])
    return pd.concat(tables, ignore_index=True)


def _project_file(index: Path, relative: str) -> Path | None:
    if os.path.isabs(relative):
        return Path(relative) if Path(relative).is_file() else None
    for folder in [Path.cwd(), *index.resolve().parents]:
        if (folder / relative).is_file():
            return folder / relative
    return None


# ---------------------------------------------------------------- reading and writing


def read(path: Path, images: Mapping[str, ImageInfo] | None = None) -> pd.DataFrame:
    blocks = star_blocks(path)
    tables = [b for b in blocks.values() if isinstance(b, pd.DataFrame)]
    for table in tables:
        centred = all(c in table.columns for c in CENTRED)
        if ("rlnCoordinateX" in table.columns and "rlnCoordinateY" in table.columns) or centred:
            df = table.rename(columns={v: k for k, v in STAR_NAMES.items()}).copy()
            if "rlnTomoName" in df.columns:  # tomograms are named by rlnTomoName, micrographs by their path
                df = df.drop(columns=["micrograph"], errors="ignore").rename(columns={"rlnTomoName": "micrograph"})
            if centred and (images or "x" not in df.columns):  # RELION 5: its centred ångströms come first
                if "micrograph" not in df.columns:
                    df.insert(0, "micrograph", stem_name(path))
                df = from_centred_angstrom(df.drop(columns=["x", "y", "z"], errors="ignore"), images, path)
            else:
                df = df.drop(columns=list(CENTRED), errors="ignore")
            return finish(df, path)
    for table in tables:
        if "rlnMicrographCoordinates" in table.columns and "rlnMicrographName" in table.columns:
            return finish(read_coordinate_index(path, table, lambda p: read(p, images)), path)
    raise InputError(path, "STAR file has no table with rlnCoordinateX and rlnCoordinateY columns")


def write(df: pd.DataFrame, tmp: Path, to: Destination) -> None:
    import starfile

    z = has_z(df)
    images = to.images
    names = df["micrograph"].astype(str)
    if z:  # tomograms: RELION names them (rlnTomoName) without path or suffix
        out = pd.DataFrame({"rlnTomoName": names.map(micrograph_key)})
    else:
        shown = {m: display_path(m, images, to.prefix) for m in names.unique()}
        out = pd.DataFrame({STAR_NAMES["micrograph"]: names.map(shown)})
    out[STAR_NAMES["x"]] = df["x"].astype(float).to_numpy()
    out[STAR_NAMES["y"]] = df["y"].astype(float).to_numpy()
    if z:
        out[STAR_NAMES["z"]] = df["z"].astype(float).to_numpy()
        known = [image_of(images, m) for m in names.unique()]
        if images and all(i is not None and i.pixel_size for i in known):
            centred = centred_angstrom(df.reset_index(drop=True), images, to.path)
            for col in CENTRED:
                out[col] = centred[col].to_numpy()
    if has_scores(df):
        out[STAR_NAMES["score"]] = scores_of(df)
    if "label" in df.columns:
        out[STAR_NAMES["label"]] = df["label"]
    for col in df.columns:
        if col not in CORE and col not in out.columns:
            out[col] = df[col].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        starfile.write({"particles": out}, tmp, overwrite=True)
