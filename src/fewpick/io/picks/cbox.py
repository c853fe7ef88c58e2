"""crYOLO ``.cbox`` files (2D and 3D), one micrograph or tomogram each: a STAR file (``data_global``,
``data_cryolo``) whose ``_CoordinateX/Y`` is the box's corner (centre − width/2), ``_CoordinateZ`` the centre
slice in 3D and ``_Confidence`` the score. Writing needs a box size."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from fewpick.errors import InputError
from fewpick.io.images import ImageInfo
from fewpick.io.picks.context import box_sizes
from fewpick.io.picks.spec import Destination
from fewpick.io.picks.star import star_blocks
from fewpick.io.picks.table import finish, stem_name


def read(path: Path, images: Mapping[str, ImageInfo] | None = None) -> pd.DataFrame:
    default_name = stem_name(path)
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

    def num(c: str) -> np.ndarray:
        if c not in table.columns:
            return np.full(len(table), np.nan)
        return pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=float)

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
    return finish(df, path, default_name)


def write(picks: pd.DataFrame, tmp: Path, to: Destination) -> None:
    import starfile

    n = len(picks)
    sizes = box_sizes(picks, to.box_size, to.path, "crYOLO .cbox")
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
