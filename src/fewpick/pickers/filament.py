"""Tubular post-processing of extracted points (as in MiLoPYP): points along filaments → resampled centre lines.

1. Points closer than ``link`` are joined; each connected component is a filament candidate.
2. Each component is fitted with second-order polynomials. MiLoPYP fits x(y) and z(y), which assumes
   filaments that run along y; here the parameter is the position along the component's principal axis,
   which is y for such filaments and also handles filaments along x (a departure from MiLoPYP, stated here).
3. Components with too few points, an RMS fit residual above ``max_residual`` or a maximum curvature above
   ``max_curvature`` (1/voxels) are dropped.
4. Each kept curve is resampled along its axis with ``step`` voxels (2 by default): the output points, with
   a filament id per curve (``rlnHelicalTubeID``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from fewpick.io import make_picks
from fewpick.ops.peaks import components


def label_segments(xyz: np.ndarray, link: float) -> np.ndarray:
    """The segments ``(m, 2, 3)`` that join points clicked along filaments into chains: each point is joined to
    its nearest neighbour, and to the nearest one on the other side of it (beyond a right angle from the first),
    both closer than ``link``. A chain follows its own filament and does not bridge to a parallel one farther
    away than the clicks' spacing."""
    n = len(xyz)
    if n < 2:
        return np.zeros((0, 2, 3))
    k = min(n, 12)
    dist, idx = cKDTree(xyz).query(xyz, k)
    edges = set()
    for i in range(n):
        near = [(d, j) for d, j in zip(dist[i, 1:], idx[i, 1:]) if d < link and j < n]
        if not near:
            continue
        j1 = near[0][1]
        edges.add((min(i, j1), max(i, j1)))
        first = xyz[j1] - xyz[i]
        for _, j in near[1:]:
            if np.dot(xyz[j] - xyz[i], first) < 0:
                edges.add((min(i, j), max(i, j)))
                break
    if not edges:
        return np.zeros((0, 2, 3))
    e = np.array(sorted(edges))
    return np.stack([xyz[e[:, 0]], xyz[e[:, 1]]], axis=1)


def rasterise(segments: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Integer grid points (rows in ``shape``'s axis order) on the segments, sampled every half voxel."""
    pts = [np.zeros((0, len(shape)))]
    for a, b in segments:
        n = int(np.ceil(2 * np.linalg.norm(b - a))) + 1
        pts.append(a + np.linspace(0, 1, n)[:, None] * (b - a))
    idx = np.round(np.concatenate(pts)).astype(int)
    idx = idx[((idx >= 0) & (idx < np.array(shape))).all(1)]
    return np.unique(idx, axis=0)


def fit_curve(xyz: np.ndarray) -> dict:
    """Quadratic fit of a point cloud along its principal axis: frame, coefficients, residual, curvature."""
    centre = xyz.mean(0)
    _, _, vt = np.linalg.svd(xyz - centre, full_matrices=False)
    axes = vt  # rows: principal axis, then the two across it
    local = (xyz - centre) @ axes.T
    t = local[:, 0]
    ca = np.polyfit(t, local[:, 1], 2)
    cb = np.polyfit(t, local[:, 2], 2)
    resid = np.sqrt(np.mean((np.polyval(ca, t) - local[:, 1]) ** 2 + (np.polyval(cb, t) - local[:, 2]) ** 2))
    ts = np.linspace(t.min(), t.max(), 50)
    d1 = np.stack([np.ones_like(ts), np.polyval(np.polyder(ca), ts), np.polyval(np.polyder(cb), ts)], 1)
    d2 = np.stack([np.zeros_like(ts), np.full_like(ts, 2 * ca[0]), np.full_like(ts, 2 * cb[0])], 1)
    curvature = np.linalg.norm(np.cross(d1, d2), axis=1) / np.linalg.norm(d1, axis=1) ** 3
    return {"centre": centre, "axes": axes, "a": ca, "b": cb, "t": (float(t.min()), float(t.max())),
            "residual": float(resid), "curvature": float(curvature.max())}


def resample(fit: dict, step: float = 2.0) -> np.ndarray:
    """Points every ``step`` voxels (measured along the principal axis) on a fitted curve, as ``(x, y, z)``."""
    t0, t1 = fit["t"]
    ts = np.arange(t0, t1 + 1e-9, step) if t1 > t0 else np.array([t0])
    local = np.stack([ts, np.polyval(fit["a"], ts), np.polyval(fit["b"], ts)], 1)
    return local @ fit["axes"] + fit["centre"]


def trace_filaments(picks: pd.DataFrame, link: float, *, min_points: int = 5, max_residual: float = 3.0,
                    max_curvature: float = 0.05, step: float = 2.0) -> pd.DataFrame:
    """Filament points from extracted points of one or more tomograms (columns micrograph, x, y, z).

    Returns the resampled points with ``rlnHelicalTubeID`` (1, 2, … per tomogram) and the component's
    mean score."""
    out = []
    for name, g in picks.groupby(picks["micrograph"].astype(str), sort=False):
        xyz = g[["x", "y", "z"]].to_numpy(float)
        score = g["score"].to_numpy(float) if "score" in g.columns else np.ones(len(g))
        labels = components(xyz, link)
        tube = 0
        order = np.argsort(-np.bincount(labels)) if len(labels) else []
        for c in order:
            m = labels == c
            if m.sum() < min_points:
                continue
            fit = fit_curve(xyz[m])
            if fit["residual"] > max_residual or fit["curvature"] > max_curvature:
                continue
            tube += 1
            pts = resample(fit, step)
            t = make_picks(name, pts[:, 0], pts[:, 1], pts[:, 2], score=np.full(len(pts), score[m].mean()))
            t["rlnHelicalTubeID"] = tube
            out.append(t)
    if not out:
        t = make_picks("", [], [], [], score=[])
        t["rlnHelicalTubeID"] = pd.Series(dtype=int)
        return t
    return pd.concat(out, ignore_index=True)
