"""Plain coordinate files (``.coords``), one micrograph or tomogram each: ``x y [z]`` per line, no header."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from fewpick.io.images import ImageInfo
from fewpick.io.picks.context import read_numbers, short_numbers
from fewpick.io.picks.spec import Destination
from fewpick.io.picks.table import empty_picks, finish, has_z, make_picks, stem_name


def read(path: Path, images: Mapping[str, ImageInfo] | None = None) -> pd.DataFrame:
    a = read_numbers(path, 2, 3, "coords")
    if len(a) == 0:
        return finish(empty_picks(), path)
    return finish(make_picks(stem_name(path), a[:, 0], a[:, 1], z=a[:, 2] if a.shape[1] > 2 else None), path)


def write(df: pd.DataFrame, tmp: Path, to: Destination) -> None:
    cols = [short_numbers(df["x"].to_numpy()), short_numbers(df["y"].to_numpy())]
    if has_z(df):
        cols.append(short_numbers(df["z"].to_numpy()))
    tmp.write_text("".join(" ".join(r) + "\n" for r in zip(*cols)))
