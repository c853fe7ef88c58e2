"""EMAN box files (``.box``), one micrograph each: ``x_corner y_corner width height [score]``, the centre at the
corner + size/2. Writing needs a box size."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from fewpick.io.images import ImageInfo
from fewpick.io.picks.context import box_sizes, read_numbers, short_numbers
from fewpick.io.picks.spec import Destination
from fewpick.io.picks.table import empty_picks, finish, has_scores, make_picks, scores_of, stem_name


def read(path: Path, images: Mapping[str, ImageInfo] | None = None) -> pd.DataFrame:
    a = read_numbers(path, 4, 5, "box")
    if len(a) == 0:
        return finish(empty_picks(), path)
    df = make_picks(stem_name(path), a[:, 0] + a[:, 2] / 2, a[:, 1] + a[:, 3] / 2,
                    score=a[:, 4] if a.shape[1] > 4 else None)
    df["box"] = a[:, 2]
    return finish(df, path)


def write(df: pd.DataFrame, tmp: Path, to: Destination) -> None:
    sizes = box_sizes(df, to.box_size, to.path, "EMAN .box")
    cx = df["x"].to_numpy(dtype=float) - sizes / 2
    cy = df["y"].to_numpy(dtype=float) - sizes / 2
    cols = [short_numbers(cx), short_numbers(cy), short_numbers(sizes), short_numbers(sizes)]
    if has_scores(df):
        cols.append(short_numbers(scores_of(df), 6))
    tmp.write_text("".join("\t".join(r) + "\n" for r in zip(*cols)))
