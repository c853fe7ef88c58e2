"""cryoSPARC particle and pick files (``.cs``, read and written with ``cryosparc-tools``):
``location/center_x_frac = x / nx``, ``center_y_frac = y / ny`` with ``location/micrograph_shape = (ny, nx)``;
``pick_stats/ncc_score`` carries the score. Writing needs each micrograph's size."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from fewpick.errors import InputError
from fewpick.io.images import ImageInfo
from fewpick.io.picks.context import display_path, image_for
from fewpick.io.picks.spec import Destination
from fewpick.io.picks.table import finish


def _uid(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def read(path: Path, images: Mapping[str, ImageInfo] | None = None) -> pd.DataFrame:
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
    return finish(df, path)


def write(picks: pd.DataFrame, tmp: Path, to: Destination) -> None:
    from cryosparc.dataset import Dataset

    path, images = to.path, to.images
    if "z" in picks.columns:
        raise InputError(path, "cryoSPARC .cs particle files hold 2D picks; these picks have z coordinates")
    n = len(picks)
    names = picks["micrograph"].astype(str).tolist()
    infos = {m: image_for(m, images, path, "a cryoSPARC .cs file") for m in dict.fromkeys(names)}
    shape = np.array([infos[m].shape[-2:] for m in names], dtype=np.uint32).reshape(n, 2)
    shown = {m: display_path(m, images, to.prefix) for m in infos}
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
