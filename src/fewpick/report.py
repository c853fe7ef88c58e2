"""Pictures for people: picks drawn over micrographs and tomograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fewpick.errors import InputError
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


def save_figure(fig, path) -> None:
    """Write a matplotlib figure atomically, as JPEG where the name ends in .jpg or .jpeg, else as PNG, and close
    it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="jpeg" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "png")
    plt.close(fig)


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
    save_figure(fig, path)
    return n


def overlay_volume_png(volume: Image, path, picks: pd.DataFrame | None = None, truth: pd.DataFrame | None = None,
                       diameter: float = 20.0, threshold: float | None = None, z: float | None = None,
                       slab: float | None = None, max_px: int = 900) -> pd.DataFrame:
    """Write a picture of a tomogram (``volume``: z, y, x): on the left the average of the sections within
    ``slab`` voxels (default: one diameter) around section ``z`` (default: the picks' median, else the middle),
    with the picks whose centre lies in that slab circled and the truth there crossed; on the right the
    projection along z with every pick. Returns the picks drawn in the slab."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Circle

    nz, ny, nx = volume.shape
    p = rows_for(picks, volume.name)
    p = p if p is not None else pd.DataFrame(columns=["x", "y", "z"])
    if threshold is not None and "score" in p.columns:
        p = p[p["score"].fillna(np.inf) >= threshold]
    if len(p) and ("z" not in p.columns or p["z"].isna().all()):
        raise InputError(None, "these picks have no z: they are not tomogram picks")
    slab = float(slab or diameter)
    if z is None:
        z = float(np.median(p["z"])) if len(p) else (nz - 1) / 2
    z = float(np.clip(z, 0, nz - 1))
    lo, hi = max(0, int(np.floor(z - slab / 2))), min(nz, int(np.floor(z + slab / 2)) + 1)
    factor = max(1, int(np.ceil(max(ny, nx) / max_px)))
    section = normalize(bin_image(np.asarray(volume.data[lo:hi], np.float32).mean(axis=0), factor), clip=4)
    total = np.zeros((ny, nx), np.float64)
    for k in range(0, nz, 32):  # the projection, a few sections at a time (the volume may be memory-mapped)
        total += np.asarray(volume.data[k : k + 32], np.float32).sum(axis=0)
    projection = normalize(bin_image(total.astype(np.float32), factor), clip=4)
    inside = p[(p["z"].astype(float) - z).abs() <= slab / 2] if len(p) else p
    t = rows_for(truth, volume.name)
    t_in = t[(t["z"].astype(float) - z).abs() <= slab / 2] if t is not None and len(t) and "z" in t.columns else None
    fig, axes = plt.subplots(1, 2, figsize=(12, 6 * ny / nx + 0.6), dpi=110)
    extent = (-0.5, nx - 0.5, ny - 0.5, -0.5)
    for ax, shown, drawn, title in (
            (axes[0], section, inside, f"sections {lo}–{hi - 1} (z = {z:.0f}): {len(inside)} picks"),
            (axes[1], projection, p, f"projection along z: all {len(p)} picks")):
        ax.imshow(shown, cmap="gray", extent=extent, vmin=-3, vmax=3, interpolation="lanczos")
        if len(drawn):
            circles = [Circle((x, y), diameter / 2) for x, y in zip(drawn["x"], drawn["y"])]
            ax.add_collection(PatchCollection(circles, facecolor="none", edgecolor="#00e5ff", linewidth=1.0))
        ax.set_xlim(-0.5, nx - 0.5)
        ax.set_ylim(ny - 0.5, -0.5)
        ax.set_axis_off()
        ax.set_title(title, fontsize=10)
    if t_in is not None and len(t_in):
        axes[0].plot(t_in["x"], t_in["y"], "+", color="#ff3d00", markersize=6, markeredgewidth=1.2)
    fig.suptitle(f"{volume.name}: picks (cyan)" + (", truth in the slab (red +)" if t_in is not None else ""),
                 fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)
    return inside
