"""Micrographs resampled for the encoder and the windows it sees: the exemplars, random, shifted and blob-centred
unlabelled windows, with their augmentations."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from fewpick.errors import FewpickWarning, InputError
from fewpick.geometry import Geometry
from fewpick.io.images import Image, match_names
from fewpick.io.picks import check_inside
from fewpick.ops.filters import normalize
from fewpick.ops.peaks import nms
from fewpick.ops.resample import fourier_crop
from fewpick.pickers.fewshot.settings import (
    FewShotSettings,
)

if TYPE_CHECKING:
    from fewpick.pickers.fewshot.model import FewShotModel


def prepare(image: Image | np.ndarray, scale: float, source=None, threads: int | None = None) -> np.ndarray:
    """Resample a micrograph by ``scale`` (original px per output px; Fourier cropping) and normalise it robustly."""
    data = image.data if isinstance(image, Image) else image
    source = image.path if isinstance(image, Image) else source
    shape = tuple(max(1, int(round(n / scale))) for n in data.shape)
    try:
        return normalize(fourier_crop(np.asarray(data, np.float32), shape, threads) if scale != 1 else data,
                         clip=6.0)
    except InputError as exc:
        raise InputError(source, exc.problem) from None


def window_grid(shape: tuple[int, int], size: int, stride: int) -> tuple[int, int]:
    """Rows and columns of the grid of ``size``² windows at ``stride`` that fit in an image of ``shape``."""
    return (shape[0] - size) // stride + 1, (shape[1] - size) // stride + 1


def resampled(model: FewShotModel, image: Image | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The micrograph prepared for the encoder's windows (:func:`prepare`) and the original px per resampled px
    (y, x); a micrograph smaller than one window is refused."""
    s = model.settings
    data = image.data if isinstance(image, Image) else image
    img = prepare(image, s.scale, threads=s.threads)
    if min(img.shape) < s.size:
        raise InputError(getattr(image, "path", None), f"micrograph is smaller than one {s.window:.0f} px window")
    return img, Geometry.scale(data.shape, img.shape)


def window_at(img: np.ndarray, cy: float, cx: float, size: int) -> np.ndarray | None:
    y0, x0 = int(round(cy - (size - 1) / 2)), int(round(cx - (size - 1) / 2))
    if y0 < 0 or x0 < 0 or y0 + size > img.shape[0] or x0 + size > img.shape[1]:
        return None
    return img[y0 : y0 + size, x0 : x0 + size]


def dihedral(w: np.ndarray, k: int) -> np.ndarray:
    w = np.rot90(w, k % 4, axes=(-2, -1))
    return w[..., ::-1] if k >= 4 else w


def random_windows(images: Sequence[np.ndarray], count: int, size: int, rng: np.random.Generator,
                    weights: np.ndarray | None = None) -> np.ndarray:
    idx = rng.choice(len(images), size=count, p=weights)
    out = np.empty((count, size, size), np.float32)
    for i, j in enumerate(idx):
        img = images[j]
        y0 = rng.integers(0, img.shape[0] - size + 1)
        x0 = rng.integers(0, img.shape[1] - size + 1)
        out[i] = dihedral(img[y0 : y0 + size, x0 : x0 + size], int(rng.integers(8)))
    return out


def shifted_windows(img: np.ndarray, centres: np.ndarray, count: int, settings: FewShotSettings,
                     rng: np.random.Generator) -> np.ndarray:
    """Windows off-centre from random exemplars by ½–1½ particle diameters (in a random direction): the
    neighbourhood the picker must score lower than the centre, so that one particle gives one pick."""
    out = np.empty((count, settings.size, settings.size), np.float32)
    d = settings.geometry().working_diameter
    i = 0
    while i < count:
        cy, cx = centres[rng.integers(len(centres))]
        r, a = rng.uniform(0.5, 1.5) * d, rng.uniform(0, 2 * np.pi)
        w = window_at(img, cy + r * np.sin(a), cx + r * np.cos(a), settings.size)
        if w is None:
            w = random_windows([img], 1, settings.size, rng)[0]
        out[i] = dihedral(w, int(rng.integers(8)))
        i += 1
    return out


def blob_centres(img: np.ndarray, settings: FewShotSettings, min_score: float = 2.0) -> np.ndarray:
    """Centres (resampled px) of blobs of the particle's size whose whole window fits: DoG peaks at least
    ``min_score`` robust sd above the background. Most are particles of some kind, so windows there are the
    hard unlabeled examples (targets and look-alikes) rather than empty ice."""
    from fewpick.ops.filters import dog_score_map

    r = settings.geometry().radius()
    ij, _ = nms(dog_score_map(img, r), r, min_score)
    h = settings.size / 2 + 1
    inside = (ij[:, 0] >= h) & (ij[:, 1] >= h) & (ij[:, 0] < img.shape[0] - h) & (ij[:, 1] < img.shape[1] - h)
    return ij[inside].astype(float)


def jittered(padded: np.ndarray, cy: float, cx: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """The window at (cy, cx) of the unpadded image, moved by up to one pixel and turned by a random
    dihedral transform; ``padded`` has a one-pixel margin, so a window that fits the image always fits."""
    dy, dx = rng.integers(-1, 2, size=2)
    return dihedral(window_at(padded, cy + 1 + dy, cx + 1 + dx, size), int(rng.integers(8)))


def blob_windows(padded: np.ndarray, centres: np.ndarray, count: int, size: int,
                  rng: np.random.Generator) -> np.ndarray:
    out = np.empty((count, size, size), np.float32)
    for i in range(count):
        out[i] = jittered(padded, *centres[rng.integers(len(centres))], size, rng)
    return out


def exemplar_windows(reference: Image, prepared: np.ndarray, exemplars: pd.DataFrame, settings: FewShotSettings,
                     source=None, min_exemplars: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Windows around the exemplars (m, size, size) and their resampled centres (m, 2). Exemplars whose window
    does not fit (within half a window of the border) are left out with a :class:`FewpickWarning`.

    ``min_exemplars`` is 2 for users (the self-similarity of one exemplar says nothing); the
    exemplar-count benchmark lowers it to 1 to reproduce cryoMAE's published table."""
    check_inside(exemplars, {reference.name: reference.shape}, source)
    centres = settings.geometry().to_working(exemplars[["y", "x"]].to_numpy(float),
                                             Geometry.scale(reference.shape, prepared.shape))
    windows = [window_at(prepared, cy, cx, settings.size) for cy, cx in centres]
    fits = np.array([w is not None for w in windows], bool)
    half = settings.window / 2
    if not fits.all():
        warnings.warn(f"{int((~fits).sum())} of {len(fits)} exemplars on {reference.name} lie within {half:.0f} px "
                      f"of the border, where their {settings.window:.0f} px window does not fit: left out",
                      FewpickWarning, stacklevel=2)
    if fits.sum() < min_exemplars:
        edge = f" ({int((~fits).sum())} more too close to the border)" if not fits.all() else ""
        raise InputError(source, f"{int(fits.sum())} exemplar(s) on {reference.name}{edge}: the few-shot picker "
                                 f"needs at least {min_exemplars}")
    return np.stack([w for w in windows if w is not None]).astype(np.float32), centres[fits]


def exemplars_on(reference: Image, exemplars: pd.DataFrame, source) -> pd.DataFrame:
    """The exemplar rows that name the reference micrograph (all rows if none names any micrograph)."""
    names = exemplars["micrograph"].astype(str)
    if names.nunique() == 1 and (names.iloc[0] in ("", "nan") or Path(str(source or "")).stem == names.iloc[0]):
        return exemplars.assign(micrograph=reference.name)
    pairs = match_names(list(dict.fromkeys(names)), [reference.name])
    if not pairs:
        raise InputError(source, f"no exemplar names the reference micrograph {reference.name} "
                                 f"(it names {', '.join(sorted(set(names))[:3])}…)")
    rows = exemplars[names.isin(list(pairs))]
    return rows.assign(micrograph=reference.name)
