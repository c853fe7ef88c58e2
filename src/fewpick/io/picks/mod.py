"""IMOD point models (``.mod``, read and written with ``imodmodel``), one micrograph or tomogram each: points at
``x + 0.5, y + 0.5, z`` (IMOD puts the first pixel's centre at 0.5 in x and y and the first section at 0)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from fewpick.errors import InputError
from fewpick.io.images import ImageInfo
from fewpick.io.picks.context import image_of
from fewpick.io.picks.spec import Destination
from fewpick.io.picks.table import finish, stem_name


def read(path: Path, images: Mapping[str, ImageInfo] | None = None) -> pd.DataFrame:
    from imodmodel.dataframe import model_to_dataframe
    from imodmodel.models import ImodModel

    default_name = stem_name(path)
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
    return finish(df, path, default_name)


def write(picks: pd.DataFrame, tmp: Path, to: Destination) -> None:
    from imodmodel.models import ContourType, ImodModel

    n = len(picks)
    points = pd.DataFrame({"x": picks["x"].to_numpy(dtype=float) + 0.5, "y": picks["y"].to_numpy(dtype=float) + 0.5,
                           "z": picks["z"].to_numpy(dtype=float) if "z" in picks.columns else np.zeros(n)})
    if "label" in picks.columns and n:
        codes, _ = pd.factorize(picks["label"], sort=True)
        points["object_id"] = codes
    model = ImodModel.from_dataframe(points, type=ContourType.SCATTERED)
    names: Any = picks["micrograph"].astype(str).unique() if n else []
    info = image_of(to.images, str(names[0])) if len(names) == 1 else None
    if info is not None:
        nz, ny, nx = info.shape if len(info.shape) == 3 else (1, *info.shape)
        model.header.xmax, model.header.ymax, model.header.zmax = int(nx), int(ny), int(nz)
    model.to_file(tmp)
