"""Pictures for people: picks drawn over micrographs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fewpick.geometry import Geometry
from fewpick.io.images import Image, pair_names
from fewpick.ops.filters import gaussian_lowpass, normalize
from fewpick.ops.resample import bin_image, fourier_crop
from fewpick.outputs import atomic_path


def rows_for(table: pd.DataFrame | None, name: str) -> pd.DataFrame | None:
    """The rows of ``table`` that belong to micrograph ``name`` (paired by stem); None without a table."""
    if table is None or len(table) == 0:
        return None
    pair = pair_names([name], dict.fromkeys(table["micrograph"].astype(str)))
    if name not in pair:
        return table.iloc[:0]
    return table[table["micrograph"].astype(str) == pair[name]]


def display_png(data: np.ndarray, max_px: int, *, lowpass: float = 0.0, min_sigma: float = 0.5,
                workers: int | None = None) -> tuple[bytes, np.ndarray]:
    """An 8-bit grey PNG of a 2D image for a page: Fourier-binned to at most ``max_px`` a side, low-passed with σ
    = ``lowpass`` original px (at least ``min_sigma`` display px), ±3 spreads mapped to 0…255; and the scale
    (original px per display px, y and x)."""
    import io

    from PIL import Image as PILImage

    factor = max(1.0, max(data.shape) / max_px)
    shape = tuple(max(1, int(round(n / factor))) for n in data.shape)
    small = fourier_crop(data, shape, workers) if shape != data.shape else np.asarray(data, np.float32)
    shown = normalize(gaussian_lowpass(small, max(min_sigma, lowpass / factor)), clip=3.0)
    buf = io.BytesIO()
    PILImage.fromarray(np.round((shown + 3.0) / 6.0 * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue(), Geometry.scale(data.shape, small.shape)


def overlay_png(image: Image, path, picks: pd.DataFrame | None = None, truth: pd.DataFrame | None = None,
                diameter: float = 40.0, threshold: float | None = None, max_px: int = 1400) -> int:
    """Write a PNG of ``image`` (binned for display, low-passed) with picks as circles and truth as crosses.

    Returns the number of picks drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Circle

    factor = max(1, int(np.ceil(max(image.shape) / max_px)))
    shown = normalize(bin_image(image.data, factor), clip=4)
    h, w = image.shape
    fig, ax = plt.subplots(figsize=(8, 8 * h / w), dpi=max(100, min(200, max(shown.shape) // 8)))
    ax.imshow(shown, cmap="gray", extent=(-0.5, w - 0.5, h - 0.5, -0.5), vmin=-3, vmax=3, interpolation="lanczos")
    n = 0
    p = rows_for(picks, image.name)
    if p is not None and len(p):
        if threshold is not None and "score" in p.columns:
            p = p[p["score"].fillna(np.inf) >= threshold]
        circles = [Circle((x, y), diameter / 2) for x, y in zip(p["x"], p["y"])]
        ax.add_collection(PatchCollection(circles, facecolor="none", edgecolor="#00e5ff", linewidth=1.0))
        n = len(p)
    t = rows_for(truth, image.name)
    if t is not None and len(t):
        ax.plot(t["x"], t["y"], "+", color="#ff3d00", markersize=6, markeredgewidth=1.2)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_axis_off()
    ax.set_title(f"{image.name}: {n} picks (cyan)" + (", truth (red +)" if t is not None and len(t) else ""), fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="jpeg" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "png")
    plt.close(fig)
    return n
