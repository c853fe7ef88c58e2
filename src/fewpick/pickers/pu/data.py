"""The PU picker's training data: labels by micrograph, the binned and normalised micrographs with their label
disks, the class prior, and the edge band the labels ask for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from fewpick.errors import InputError
from fewpick.geometry import Geometry
from fewpick.io.images import Image, match_names
from fewpick.io.picks import check_inside
from fewpick.ops.filters import normalize
from fewpick.ops.peaks import ball
from fewpick.ops.resample import bin_image
from fewpick.pickers.pu.settings import EDGE_EXPECTED, PUSettings


def prepare(data: np.ndarray, factor: int, threads: int | None = None) -> np.ndarray:
    """The network's input: Fourier-binned by ``factor`` (FFTs on ``threads``) and robustly normalised (clipped
    at ±6)."""
    return normalize(bin_image(data, factor, threads), clip=6.0)


def label_edge_margin(labels: dict[str, pd.DataFrame], shapes: dict[str, tuple[int, int]], diameter: float) -> float:
    """The edge band (particle diameters) that ``labels`` (per micrograph, original px) ask for: the closest label's
    distance to its micrograph's edge, at most one diameter, less a radius, where no label in that band is
    significant (particles spread evenly would put at least ``EDGE_EXPECTED`` there); else 0."""
    dist, count = [], {}
    for name, rows in labels.items():
        h, w = shapes[name]
        y, x = rows["y"].to_numpy(float), rows["x"].to_numpy(float)
        dist.append(np.minimum.reduce([y, x, h - 1 - y, w - 1 - x]))
        count[name] = len(rows)
    if not dist:
        return 0.0
    band = min(float(np.concatenate(dist).min()), diameter)
    expected = sum(n * (1 - max(0.0, shapes[m][0] - 2 * band) * max(0.0, shapes[m][1] - 2 * band)
                        / (shapes[m][0] * shapes[m][1])) for m, n in count.items())
    if expected < EDGE_EXPECTED:
        return 0.0
    return max(0.0, band - diameter / 2) / diameter


@dataclass
class TrainingItem:
    name: str
    image: np.ndarray  # binned, normalised
    mask: np.ndarray  # bool positives
    centres: np.ndarray  # (n, 2) binned (row, col) of labels


def positive_mask(shape, centres_rc: np.ndarray, radius: float) -> np.ndarray:
    """Pixels of a ``shape`` grid within ``radius`` of any centre (row, col): the positives of the labels."""
    mask = np.zeros(shape, bool)
    disk = ball(radius, 2)
    r = disk.shape[0] // 2
    for cy, cx in np.round(centres_rc).astype(int):
        y0, y1, x0, x1 = cy - r, cy + r + 1, cx - r, cx + r + 1
        dy0, dx0 = max(0, -y0), max(0, -x0)
        dy1, dx1 = disk.shape[0] - max(0, y1 - shape[0]), disk.shape[1] - max(0, x1 - shape[1])
        if dy1 > dy0 and dx1 > dx0:
            mask[max(0, y0) : min(shape[0], y1), max(0, x0) : min(shape[1], x1)] |= disk[dy0:dy1, dx0:dx1]
    return mask


def labels_by_micrograph(images: Sequence[Image], labels: pd.DataFrame, source) -> dict[str, pd.DataFrame]:
    names = [im.name for im in images]
    wanted = list(dict.fromkeys(labels["micrograph"].astype(str)))
    pairs = match_names(wanted, names)
    missing = [w for w in wanted if w not in pairs]
    if missing:
        raise InputError(source, f"labels name micrograph {missing[0]!r}, which is not among the images given "
                                 f"({len(missing)} such name(s))")
    out = {}
    shapes = {im.name: im.shape for im in images}
    for w, name in pairs.items():
        rows = labels[labels["micrograph"].astype(str) == w].assign(micrograph=name)
        check_inside(rows, {name: shapes[name]}, source)
        out[name] = rows
    return out


def training_items(images: Sequence[Image], labels: dict[str, pd.DataFrame], settings: PUSettings) -> list[TrainingItem]:
    items = []
    geo = settings.geometry()
    for im in images:
        binned = prepare(im.data, geo.factor)
        rows = labels.get(im.name)
        centres = (geo.to_working(rows[["y", "x"]].to_numpy(float), Geometry.scale(im.shape, binned.shape))
                   if rows is not None and len(rows) else np.zeros((0, 2)))
        items.append(TrainingItem(im.name, binned, positive_mask(binned.shape, centres, settings.label_radius()), centres))
    return items


def class_prior(expected_particles: float, label_radius: float, binned_shapes: Sequence[tuple[int, int]]) -> float:
    """π = expected particles per micrograph × label disk area / binned micrograph area (mean over micrographs)."""
    disk = float(ball(label_radius, 2).sum())
    return float(np.mean([expected_particles * disk / (h * w) for h, w in binned_shapes]))
