"""Picks in the layouts of other programs: cryoSPARC ``.cs``, crYOLO ``.cbox``, IMOD ``.mod``, RELION's
coordinate-file index (``autopick.star`` / ``manualpick.star``) and RELION 5's centred ångström coordinates.

Coordinates in a picks table are pixels of the original image with the origin at the first pixel's centre
(see :mod:`fewpick.io.picks`). The conversions:

========================  ============================================================================
cryoSPARC ``.cs``         ``location/center_x_frac = x / nx``, ``center_y_frac = y / ny`` with
                          ``location/micrograph_shape = (ny, nx)``; read and written with
                          ``cryosparc-tools``; ``pick_stats/ncc_score`` carries the score
crYOLO ``.cbox``          a STAR file (``data_global``, ``data_cryolo``); ``_CoordinateX/Y`` is the box's
                          corner (centre − width/2), ``_CoordinateZ`` the centre slice in 3D;
                          ``_Confidence`` the score
IMOD ``.mod``             model points at ``x + 0.5, y + 0.5, z`` (IMOD puts the first pixel's centre at
                          0.5 in x and y and the first section at 0); read and written with ``imodmodel``
RELION 5 tomography       ``rlnCenteredCoordinateX/Y/ZAngst = (x − n/2) · pixel size`` for a tomogram of
                          n voxels along that axis (RELION 5's ``ParticleSet``: decentred pixels are
                          centred ångströms / tilt-series pixel size + tomogram size / 2, a float
                          division); the centre needs the tomogram's size and pixel size
========================  ============================================================================
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from fewpick.errors import InputError
from fewpick.io.images import ImageInfo, micrograph_key

CENTRED = ("rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst")


def image_of(images: Mapping[str, ImageInfo] | None, name: str) -> ImageInfo | None:
    """The image a picks table's micrograph name stands for (by the name, or by the name without its folder and
    suffix), or ``None``."""
    images = images or {}
    return images.get(name) or images.get(micrograph_key(name))


def box_sizes(picks: pd.DataFrame, box_size: float | None, path: Path, what: str) -> np.ndarray:
    """The box edge of each pick for a box format: ``box_size``, else the table's own ``box`` column."""
    if box_size is not None:
        return np.full(len(picks), float(box_size))
    if "box" in picks.columns and len(picks):
        return picks["box"].to_numpy(dtype=float)
    raise InputError(path, f"writing {what} files needs a box size (--box-size)")


def display_path(name: str, images: Mapping[str, ImageInfo] | None, prefix: str | None) -> str:
    """How RELION and cryoSPARC name a micrograph: its path as given (extension kept), or, with ``prefix``,
    the prefix followed by the file name (``MotionCorr/job002/Movies/`` + ``mic_001.mrc``)."""
    info = image_of(images, name)
    path = info.path if info is not None else name
    if prefix is None:
        return path
    base = os.path.basename(path)
    return f"{prefix}{base}" if prefix.endswith("/") or not prefix else f"{prefix}/{base}"


def _info(name: str, images: Mapping[str, ImageInfo] | None, path: Path, what: str) -> ImageInfo:
    info = image_of(images, name)
    if info is None:
        raise InputError(path, f"{what} needs the size of image {name!r}; give the images the picks come from "
                               "(--images)")
    return info


# ---------------------------------------------------------------- RELION 5 centred coordinates


def centred_angstrom(picks: pd.DataFrame, images: Mapping[str, ImageInfo], path: Path) -> pd.DataFrame:
    """``rlnCenteredCoordinateX/Y/ZAngst`` columns for a 3D picks table."""
    out = np.zeros((len(picks), 3))
    for name, rows in picks.groupby("micrograph", sort=False).groups.items():
        info = _info(str(name), images, path, "RELION 5 centred coordinates")
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
        info = _info(str(name), images, path, "reading RELION 5 centred coordinates (rlnCenteredCoordinate…Angst)")
        if info.pixel_size is None or len(info.shape) != 3:
            raise InputError(path, f"RELION 5 centred coordinates need a tomogram with a pixel size; {info.path} "
                                   f"has shape {info.shape} and pixel size {info.pixel_size}")
        nz, ny, nx = info.shape
        for col, axis, n in zip(CENTRED, ("x", "y", "z"), (nx, ny, nz)):
            df.loc[rows, axis] = pd.to_numeric(df.loc[rows, col]).to_numpy(dtype=float) / info.pixel_size + n / 2
    return df.drop(columns=list(CENTRED))


# ---------------------------------------------------------------- cryoSPARC


def _uid(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def read_cs(path: Path) -> pd.DataFrame:
    from cryosparc.dataset import Dataset

    try:
        ds = Dataset.load(path)
    except Exception as exc:  # cryosparc-tools raises several types for a bad file
        raise InputError(path, f"not a readable cryoSPARC .cs file ({exc})") from None
    fields = set(ds.fields())
    need = ["location/micrograph_path", "location/micrograph_shape", "location/center_x_frac", "location/center_y_frac"]
    missing = [f for f in need if f not in fields]
    if missing:
        raise InputError(path, f"cryoSPARC file lacks {', '.join(missing)} (it holds {', '.join(sorted(fields))})")
    shape = np.asarray(ds["location/micrograph_shape"], dtype=float).reshape(len(ds), 2)
    names = [p.decode() if isinstance(p, bytes) else str(p) for p in ds["location/micrograph_path"]]
    df = pd.DataFrame({"micrograph": pd.Series(names, dtype=object),
                       "x": np.asarray(ds["location/center_x_frac"], dtype=float) * shape[:, 1],
                       "y": np.asarray(ds["location/center_y_frac"], dtype=float) * shape[:, 0]})
    df["score"] = np.asarray(ds["pick_stats/ncc_score"], dtype=float) if "pick_stats/ncc_score" in fields else np.nan
    if "location/micrograph_psize_A" in fields:
        df["pixel_size"] = np.asarray(ds["location/micrograph_psize_A"], dtype=float)
    return df


def write_cs(picks: pd.DataFrame, tmp: Path, path: Path, images: Mapping[str, ImageInfo] | None,
             prefix: str | None) -> None:
    from cryosparc.dataset import Dataset

    if "z" in picks.columns:
        raise InputError(path, "cryoSPARC .cs particle files hold 2D picks; these picks have z coordinates")
    n = len(picks)
    names = picks["micrograph"].astype(str).tolist()
    infos = {m: _info(m, images, path, "a cryoSPARC .cs file") for m in dict.fromkeys(names)}
    shape = np.array([infos[m].shape[-2:] for m in names], dtype=np.uint32).reshape(n, 2)
    shown = {m: display_path(m, images, prefix) for m in infos}
    ds = Dataset.allocate(n, [("location/micrograph_uid", "<u8"), ("location/exp_group_id", "<u4"),
                              ("location/micrograph_path", "O"), ("location/micrograph_shape", "<u4", (2,)),
                              ("location/micrograph_psize_A", "<f4"), ("location/center_x_frac", "<f4"),
                              ("location/center_y_frac", "<f4"), ("pick_stats/ncc_score", "<f4")])
    if n:
        ds["location/micrograph_uid"] = np.array([_uid(shown[m]) for m in names], dtype=np.uint64)
        ds["location/micrograph_path"] = np.array([shown[m] for m in names], dtype=object)
        ds["location/micrograph_shape"] = shape
        ds["location/micrograph_psize_A"] = np.array([infos[m].pixel_size or 0.0 for m in names], dtype=np.float32)
        ds["location/center_x_frac"] = (picks["x"].to_numpy(dtype=float) / shape[:, 1]).astype(np.float32)
        ds["location/center_y_frac"] = (picks["y"].to_numpy(dtype=float) / shape[:, 0]).astype(np.float32)
        score = picks["score"].to_numpy(dtype=float) if "score" in picks.columns else np.full(n, np.nan)
        ds["pick_stats/ncc_score"] = np.nan_to_num(score, nan=0.0).astype(np.float32)
    with open(tmp, "wb") as f:
        ds.save(f)


# ---------------------------------------------------------------- crYOLO


def star_blocks(path: Path, what: str = "STAR") -> dict:
    """The data blocks of a STAR file (``starfile``), or one clear error naming the file."""
    import starfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return starfile.read(path, always_dict=True)
    except Exception as exc:  # the parser raises several types for a bad file
        raise InputError(path, f"not a readable {what} file ({exc})") from None


def read_cbox(path: Path, default_name: str) -> pd.DataFrame:
    blocks = star_blocks(path, "crYOLO .cbox")
    table = blocks.get("cryolo")
    if table is None:
        table = next((b for b in blocks.values() if isinstance(b, pd.DataFrame)
                      and {"_CoordinateX", "CoordinateX"} & set(b.columns)), None)
    if table is None:
        raise InputError(path, "crYOLO .cbox file has no data_cryolo table")
    table = table.rename(columns=lambda c: c.lstrip("_"))
    for col in ("CoordinateX", "CoordinateY"):
        if col not in table.columns:
            raise InputError(path, f"crYOLO .cbox table lacks _{col}")
    num = lambda c: pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=float) if c in table.columns \
        else np.full(len(table), np.nan)  # noqa: E731
    width, height = num("Width"), num("Height")
    df = pd.DataFrame({"micrograph": pd.Series([default_name] * len(table), dtype=object),
                       "x": num("CoordinateX") + np.nan_to_num(width) / 2,
                       "y": num("CoordinateY") + np.nan_to_num(height) / 2})
    z = num("CoordinateZ")
    if len(z) and np.isfinite(z).all():
        df["z"] = z
    df["score"] = num("Confidence")
    if np.isfinite(width).any():
        df["box"] = width
    return df


def write_cbox(picks: pd.DataFrame, tmp: Path, path: Path, box_size: float | None) -> None:
    import starfile

    n = len(picks)
    sizes = box_sizes(picks, box_size, path, "crYOLO .cbox")
    three_d = "z" in picks.columns
    score = picks["score"].to_numpy(dtype=float) if "score" in picks.columns else np.full(n, np.nan)
    na = pd.array([pd.NA] * n, dtype="Float64")
    table = pd.DataFrame({
        "_CoordinateX": picks["x"].to_numpy(dtype=float) - sizes / 2,
        "_CoordinateY": picks["y"].to_numpy(dtype=float) - sizes / 2,
        "_CoordinateZ": picks["z"].to_numpy(dtype=float) if three_d else na,
        "_Width": sizes, "_Height": sizes, "_Depth": sizes if three_d else na,
        "_EstWidth": sizes, "_EstHeight": sizes,
        "_Confidence": pd.array(np.where(np.isfinite(score), score, np.nan), dtype="Float64"),
        "_NumBoxes": na, "_Angle": na,
    })
    table.columns = [c.lstrip("_") for c in table.columns]  # starfile adds the leading underscore
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        starfile.write({"global": {"version": "1.0"}, "cryolo": table}, tmp, na_rep="<NA>")


# ---------------------------------------------------------------- IMOD


def read_mod(path: Path, default_name: str) -> pd.DataFrame:
    from imodmodel.dataframe import model_to_dataframe
    from imodmodel.models import ImodModel

    try:
        model = ImodModel.from_file(path)
        points = model_to_dataframe(model)
    except Exception as exc:  # the parser raises several types for a bad file
        raise InputError(path, f"not a readable IMOD model ({exc})") from None
    df = pd.DataFrame({"micrograph": pd.Series([default_name] * len(points), dtype=object),
                       "x": points["x"].to_numpy(dtype=float) - 0.5,
                       "y": points["y"].to_numpy(dtype=float) - 0.5})
    z = points["z"].to_numpy(dtype=float)
    if model.header.zmax > 1 or (len(z) and np.any(z != 0)):  # a volume (a micrograph's model sits on section 0)
        df["z"] = z
    df["score"] = np.nan
    if len(points) and points["object_id"].nunique() > 1:
        df["label"] = points["object_id"].to_numpy() + 1
    return df


def write_mod(picks: pd.DataFrame, tmp: Path, path: Path, images: Mapping[str, ImageInfo] | None) -> None:
    from imodmodel.models import ContourType, ImodModel

    n = len(picks)
    points = pd.DataFrame({"x": picks["x"].to_numpy(dtype=float) + 0.5, "y": picks["y"].to_numpy(dtype=float) + 0.5,
                           "z": picks["z"].to_numpy(dtype=float) if "z" in picks.columns else np.zeros(n)})
    if "label" in picks.columns and n:
        codes, _ = pd.factorize(picks["label"], sort=True)
        points["object_id"] = codes
    model = ImodModel.from_dataframe(points, type=ContourType.SCATTERED)
    names = picks["micrograph"].astype(str).unique() if n else []
    info = image_of(images, str(names[0])) if len(names) == 1 else None
    if info is not None:
        nz, ny, nx = info.shape if len(info.shape) == 3 else (1, *info.shape)
        model.header.xmax, model.header.ymax, model.header.zmax = int(nx), int(ny), int(nz)
    model.to_file(tmp)


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
