"""What some formats need beyond the table: the images the picks belong to (their paths, sizes and pixel sizes),
box sizes, and numbers written as short text."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from fewpick.errors import InputError
from fewpick.io.images import ImageInfo, micrograph_key


def image_of(images: Mapping[str, ImageInfo] | None, name: str) -> ImageInfo | None:
    """The image a picks table's micrograph name stands for (by the name, or by the name without its folder and
    suffix), or ``None``."""
    images = images or {}
    return images.get(name) or images.get(micrograph_key(name))


def image_for(name: str, images: Mapping[str, ImageInfo] | None, path: Path, what: str) -> ImageInfo:
    """:func:`image_of`, or one clear error: ``what`` (a format) needs the image's size."""
    info = image_of(images, name)
    if info is None:
        raise InputError(path, f"{what} needs the size of image {name!r}; give the images the picks come from "
                               "(--images)")
    return info


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


def short_numbers(values: np.ndarray, decimals: int = 3) -> list[str]:
    """Numbers as text rounded to ``decimals`` places, without trailing zeros."""
    return [np.format_float_positional(round(float(v), decimals), trim="-") for v in values]


def read_numbers(path: Path, min_cols: int, max_cols: int, what: str) -> np.ndarray:
    """Rows of whitespace- or comma-separated numbers (lines starting with # skipped), at most ``max_cols`` each
    and as many as the shortest row."""
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise InputError(path, f"line {i} is not a row of numbers: {line.strip()!r}") from None
        if not min_cols <= len(values):
            raise InputError(path, f"line {i} has {len(values)} columns; a {what} line needs at least {min_cols}")
        rows.append(values[:max_cols])
    if not rows:
        return np.zeros((0, min_cols))
    width = min(len(r) for r in rows)
    return np.array([r[:width] for r in rows], dtype=float)
