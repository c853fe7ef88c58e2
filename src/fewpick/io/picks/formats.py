"""Reading and writing picks in any format of :mod:`~fewpick.io.picks.catalog`: a file, or a folder of one file
per micrograph, chosen by suffix or by name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from fewpick.errors import InputError
from fewpick.io.images import ImageInfo, micrograph_key
from fewpick.io.picks import star
from fewpick.io.picks.catalog import detect_format, get_format, suffix_formats
from fewpick.io.picks.spec import Destination
from fewpick.outputs import atomic_path


def part_path(folder: str | os.PathLike, name: str, fmt: str) -> Path:
    """The file that holds one micrograph's picks in a folder of per-micrograph files."""
    return Path(folder) / f"{micrograph_key(name)}{get_format(fmt).part()}"


def per_micrograph(path: str | os.PathLike) -> bool:
    """A folder target: an existing folder, a path written with a trailing slash, or one without a suffix."""
    text = os.fspath(path)
    return Path(text).is_dir() or text.endswith(("/", os.sep)) or not Path(text).suffix


def read_picks(path: str | os.PathLike, fmt: str | None = None, *, require_rows: bool = False,
               images: Mapping[str, ImageInfo] | None = None) -> pd.DataFrame:
    """Read a picks/labels file, or a folder of per-micrograph files, into a picks table.

    Parameters
    ----------
    path
        A file, or a folder whose files of the chosen (or any known) format are read.
    fmt
        One of :func:`format_names`; ``None`` chooses by suffix.
    require_rows
        Raise if the result is empty (for training labels and ground truth).
    images
        The images the picks belong to, by name (:func:`~fewpick.io.images.image_info`): needed to read
        RELION 5's centred ångström coordinates.

    Raises
    ------
    InputError
        A missing or unreadable file, no coordinate columns, non-numeric values,
        or (with ``require_rows``) an empty table.
    """
    path = Path(path)
    if path.is_dir():
        by_suffix = suffix_formats()
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in by_suffix
                       and (fmt is None or detect_format(p) == detect_format(p, fmt)) and not star.is_index(p)
                       and not p.name.startswith("."))
        if not files:
            raise InputError(path, "folder holds no picks files (" + ", ".join(by_suffix) + ")")
        tables = [read_picks(f, fmt, images=images) for f in files]
        tables = [t for t in tables if len(t)] or tables[:1]
        df = pd.concat(tables, ignore_index=True)
    elif not path.is_file():
        raise InputError(path, "no such file")
    else:
        df = get_format(detect_format(path, fmt)).reader()(path, images)
    if require_rows and len(df) == 0:
        raise InputError(path, "holds no particle coordinates")
    return df


def _write_one(df: pd.DataFrame, fmt: str, to: Destination) -> None:
    with atomic_path(to.path) as tmp:
        get_format(fmt).writer()(df, tmp, to)


def write_picks(
    picks: pd.DataFrame,
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    box_size: float | None = None,
    micrographs: Iterable[str] | None = None,
    images: Mapping[str, ImageInfo] | None = None,
    micrograph_prefix: str | None = None,
) -> list[Path]:
    """Write a picks table; returns the files written.

    Parameters
    ----------
    picks
        The table (``micrograph, x, y[, z], score[, label]`` and extras).
    path
        A file, or a folder (existing, a path ending with ``/``, or a path without a
        suffix) for one file per micrograph named ``<micrograph stem><suffix>``.
    fmt
        Format name; by default from the suffix (``star`` inside a folder).
    box_size
        Box edge in pixels, needed for ``box``.
    micrographs
        With a folder: also write empty files for these micrographs if they have no picks.
    images
        The images by name (:func:`~fewpick.io.images.image_info`): RELION STAR files then name micrographs by
        their path as given, tomogram picks gain RELION 5's centred ångström coordinates, and cryoSPARC ``.cs``
        files (which need each micrograph's size) can be written.
    micrograph_prefix
        Name micrographs (RELION, cryoSPARC) as this prefix followed by the image's file name, e.g.
        ``MotionCorr/job002/Movies/``, to match a processing project's layout.

    Every file is written to a temporary name and renamed, so an error never leaves
    a partial file behind.
    """
    folder = per_micrograph(path)
    path = Path(path)
    missing = [c for c in ("micrograph", "x", "y") if c not in picks.columns]
    if missing:
        raise InputError(None, f"picks table lacks columns {missing}")
    if folder:
        fmt = detect_format("x.star", fmt) if fmt else "star"
        path.mkdir(parents=True, exist_ok=True)
        names = list(dict.fromkeys(list(picks["micrograph"].astype(str)) + list(micrographs or [])))
        written = []
        for name in names:
            part = picks[picks["micrograph"].astype(str) == name]
            target = part_path(path, name, fmt)
            _write_one(part, fmt, Destination(target, box_size, images, micrograph_prefix))
            written.append(target)
        return written
    fmt = detect_format(path, fmt)
    if get_format(fmt).one_per_image and picks["micrograph"].nunique() > 1:
        raise InputError(path, f"a .{fmt} file holds one micrograph but the picks cover "
                               f"{picks['micrograph'].nunique()}; give a folder (ending with /) to write one file each")
    _write_one(picks, fmt, Destination(path, box_size, images, micrograph_prefix))
    return [path]
