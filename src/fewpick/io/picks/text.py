"""Tables of text: Topaz's tab-separated files (``image_name x_coord y_coord [z_coord] score``) and CSV files with
a header, whose common column spellings are recognised (``X-Coordinate``, ``x_coord``, ``rlnCoordinateX``,
``image_name`` …)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from fewpick.errors import InputError
from fewpick.io.images import ImageInfo
from fewpick.io.picks.spec import Destination
from fewpick.io.picks.table import CORE, empty_picks, finish, has_scores, has_z, rename_aliases, scores_of

TSV_NAMES = {"micrograph": "image_name", "x": "x_coord", "y": "y_coord", "z": "z_coord", "score": "score",
             "label": "label"}


def _read_table(path: Path, sep: str) -> pd.DataFrame:
    if path.stat().st_size == 0:
        return finish(empty_picks(), path)
    try:
        df = pd.read_csv(path, sep=sep, comment=None, skipinitialspace=True)
    except Exception as exc:
        raise InputError(path, f"not a readable {'TSV' if sep == chr(9) else 'CSV'} file ({exc})") from None
    if sep == "\t" and len(df.columns) == 1 and " " in str(df.columns[0]):
        df = pd.read_csv(path, sep=r"\s+")  # space-separated Topaz-like file
    return finish(rename_aliases(df), path)


def _write_table(df: pd.DataFrame, tmp: Path, tsv: bool) -> None:
    names = TSV_NAMES if tsv else {c: c for c in CORE}
    out = pd.DataFrame({names["micrograph"]: df["micrograph"].astype(str), names["x"]: df["x"], names["y"]: df["y"]})
    if has_z(df):
        out[names["z"]] = df["z"]
    if tsv or has_scores(df):
        out[names["score"]] = scores_of(df)
    if "label" in df.columns:
        out[names["label"]] = df["label"]
    if not tsv:
        for col in df.columns:
            if col not in CORE:
                out[col] = df[col]
    out.to_csv(tmp, sep="\t" if tsv else ",", index=False, float_format="%.6g")


def read_tsv(path: Path, images: Mapping[str, ImageInfo] | None = None) -> pd.DataFrame:
    return _read_table(path, "\t")


def write_tsv(df: pd.DataFrame, tmp: Path, to: Destination) -> None:
    _write_table(df, tmp, tsv=True)


def read_csv(path: Path, images: Mapping[str, ImageInfo] | None = None) -> pd.DataFrame:
    return _read_table(path, ",")


def write_csv(df: pd.DataFrame, tmp: Path, to: Destination) -> None:
    _write_table(df, tmp, tsv=False)

