"""Peaks of score maps: disk and ball footprints, non-maximum suppression, the pick spacing a crowded micrograph
allows, close peaks ranked last, groups of close points, the peaks nearest to given points, and sub-pixel refinement."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


def ball(radius: float, ndim: int) -> np.ndarray:
    """Boolean disk (2D) or ball (3D) footprint of the given radius in pixels."""
    r = int(np.floor(radius))
    grids = np.ogrid[tuple(slice(-r, r + 1) for _ in range(ndim))]
    return np.asarray(sum(g.astype(np.float64) ** 2 for g in grids) <= radius**2 + 1e-9)


def ball_maximum(values: np.ndarray, radius: float) -> np.ndarray:
    """The maximum over the disk (ball) of :func:`ball` around every pixel, outside the array counting as −∞.

    The same as ``scipy.ndimage.maximum_filter`` with that footprint, computed as the ball's rows: a running
    maximum along the last axis for each row's half-width, shifted along the other axes (one pass per row of the
    ball instead of one per pixel of it: about twice as fast for the disks of picking).
    """
    x = np.asarray(values, dtype=np.float32)
    r = int(np.floor(radius))
    lines: dict[int, np.ndarray] = {}
    out = np.full(x.shape, -np.inf, np.float32)
    lead = np.ogrid[tuple(slice(-r, r + 1) for _ in range(x.ndim - 1))]
    left = np.asarray(radius**2 + 1e-9 - sum(g.astype(np.float64) ** 2 for g in lead))
    for offset in zip(*np.nonzero(left >= 0)):
        shift = [int(o) - r for o in offset]
        w = int(np.floor(np.sqrt(left[offset])))
        if w not in lines:
            lines[w] = ndi.maximum_filter1d(x, 2 * w + 1, axis=-1, mode="constant", cval=-np.inf)
        src = tuple(slice(max(0, d), n + min(0, d)) for d, n in zip(shift, x.shape))
        dst = tuple(slice(max(0, -d), n - max(0, d)) for d, n in zip(shift, x.shape))
        np.maximum(out[dst], lines[w][src], out=out[dst])
    return out


def auto_min_distance(particles_per_micrograph: float, area_px: float, radius_px: float, floor: float = 0.5) -> float:
    """Closest two picks may lie, as a fraction of the particle radius, from how crowded the micrographs are.

    Particles scattered at random with the expected density lie on average ``0.5 / sqrt(density)`` from
    their nearest neighbour. Real crowded particles pack closer than the diameter a user gives (often a
    box size), and suppressing a whole radius around each pick then loses a quarter or more of them; on
    sparse micrographs a whole radius removes the duplicate peaks a particle's edges can make. The
    fraction is that spacing in radii less one, kept within [``floor``, 1]: the floor once the spacing falls
    below 1 + ``floor`` radii, the whole radius from 2 radii up. All three lengths in the same pixels.
    """
    if not (particles_per_micrograph > 0 and area_px > 0 and radius_px > 0):
        return 1.0
    spacing = 0.5 * np.sqrt(area_px / particles_per_micrograph)
    return float(np.clip(spacing / radius_px - 1.0, min(floor, 1.0), 1.0))


def nms(
    score: np.ndarray,
    radius: float,
    threshold: float = -np.inf,
    *,
    max_picks: int | None = None,
    border: float = 0.0,
    footprint: str = "ball",
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy non-maximum suppression on a 2D or 3D score map.

    Local maxima within a disk (ball) of ``radius`` are candidates; taking them in
    order of decreasing score, each kept peak suppresses every other candidate within
    ``radius``, until the scores fall below ``threshold``. This is the classic
    "take the best, suppress a disk, repeat" rule restricted to local maxima, so
    shoulders of a suppressed peak never become picks.

    Parameters
    ----------
    score
        Score map ``(y, x)`` or ``(z, y, x)``.
    radius
        Suppression radius in map pixels (usually the particle radius).
    threshold
        Peaks must score ``>= threshold``; ``-inf`` keeps every peak.
    max_picks
        Keep at most this many (the best).
    border
        Drop peaks closer than this to the map's edge.
    footprint
        Neighbourhood for the local maxima: ``"ball"`` of ``radius``, or ``"box"`` (the cube around the
        ball: separable, so much faster on large 3D maps; a peak then also beats the cube's corners).

    Returns
    -------
    coords : ndarray, shape (n, ndim)
        Peak positions in array index order (``y, x`` or ``z, y, x``), best first.
    scores : ndarray, shape (n,)
    """
    score = np.asarray(score, dtype=np.float32)
    if score.ndim not in (2, 3):
        raise ValueError(f"nms works on 2D or 3D maps, got shape {score.shape}")
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    finite = np.where(np.isfinite(score), score, -np.inf).astype(np.float32)
    if footprint == "box":
        side = 2 * int(np.floor(max(radius, 1.0))) + 1
        local = ndi.maximum_filter(finite, size=side, mode="constant", cval=-np.inf)
    elif footprint == "ball":
        local = ball_maximum(finite, max(radius, 1.0))
    else:
        raise ValueError(f"footprint must be 'ball' or 'box', got {footprint!r}")
    peaks = finite == local
    peaks &= finite >= threshold
    peaks &= np.isfinite(finite)
    if border > 0:
        b = int(np.ceil(border))
        inner = np.zeros_like(peaks)
        inner[tuple(slice(b, max(b, n - b)) for n in score.shape)] = True
        peaks &= inner
    coords = np.argwhere(peaks)
    values = finite[peaks]
    order = np.argsort(-values, kind="stable")
    coords, values = coords[order], values[order]
    if len(coords) == 0:
        return coords.astype(np.float64), values.astype(np.float64)
    keep = np.flatnonzero(greedy_keep(coords, radius))
    if max_picks is not None:
        keep = keep[:max_picks]
    return coords[keep].astype(np.float64), values[keep].astype(np.float64)


def best_within(scores: np.ndarray, coords: np.ndarray, reach: float) -> np.ndarray:
    """For each point (row, col; rounded to whole pixels), the pixel of ``scores`` with the highest value within
    ``reach`` pixels of it (inside the map), as integer (row, col)."""
    r = int(np.ceil(reach))
    oy, ox = np.mgrid[-r : r + 1, -r : r + 1]
    inside = np.hypot(oy, ox) <= reach
    oy, ox = oy[inside], ox[inside]
    ij = np.round(np.asarray(coords, float)).astype(int)
    iy = np.clip(ij[:, :1] + oy, 0, scores.shape[0] - 1)
    ix = np.clip(ij[:, 1:] + ox, 0, scores.shape[1] - 1)
    k = np.argmax(scores[iy, ix], axis=1)
    rows = np.arange(len(k))
    return np.stack([iy[rows, k], ix[rows, k]], axis=1)


def components(xyz: np.ndarray, link: float) -> np.ndarray:
    """Connected-component label of each point, joining points closer than ``link``."""
    n = len(xyz)
    if n == 0:
        return np.zeros(0, int)
    pairs = cKDTree(xyz).query_pairs(link, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def merge_close(points: np.ndarray, link: float) -> np.ndarray:
    """The points with every group joined by links shorter than ``link`` (:func:`components`) replaced by its
    mean, in the order of each group's first point."""
    pts = np.asarray(points, float)
    if len(pts) < 2:
        return pts.copy()
    group = components(pts, link)
    _, first, inverse = np.unique(group, return_index=True, return_inverse=True)
    sums = np.zeros((len(first), pts.shape[1]))
    np.add.at(sums, inverse, pts)
    merged = sums / np.bincount(inverse)[:, None]
    return merged[np.argsort(first, kind="stable")]


def greedy_keep(coords: np.ndarray, radius: float) -> np.ndarray:
    """Which of ``coords`` (best first) the greedy rule keeps: each is kept unless a kept one ranked above it lies
    within ``radius``. All close pairs are found at once (a k-d tree), then settled in rounds over all of them: a
    peak whose better neighbours are all dropped is kept, one with a kept better neighbour dropped. Each round
    settles at least the best peak not yet settled, and the rounds are few (the longest chain of ever weaker
    neighbours: under ten on a crowded micrograph's local maxima), so the result is the one-by-one rule's."""
    n = len(coords)
    pairs = cKDTree(coords).query_pairs(radius, output_type="ndarray")  # (better, worse): i < j
    if not len(pairs):
        return np.ones(n, bool)
    better, worse = pairs[:, 0], pairs[:, 1]
    has_better = np.bincount(worse, minlength=n)
    kept, dropped = has_better == 0, np.zeros(n, bool)
    open_ = ~kept
    while open_.any():
        dropped[worse[kept[better]]] = True
        cleared = np.bincount(worse, weights=dropped[better], minlength=n)
        kept |= open_ & ~dropped & (cleared == has_better)
        open_ &= ~(kept | dropped)
    return kept


def rank_close_last(coords: np.ndarray, scores: np.ndarray, radius: float, with_mask: bool = False):
    """Peaks (best first) with each one that lies within ``radius`` of a better peak (one this rule keeps in
    front, :func:`greedy_keep`) scored down by the spread of the scores plus one, so that it follows every other
    peak and falls below the weakest of them; best first again. Such peaks stay in the list (a low cut still
    reaches them) instead of being suppressed. ``radius`` 0 changes nothing. ``with_mask``: also which of the
    returned peaks were ranked last."""
    scores = np.asarray(scores)
    close = np.zeros(len(scores), bool)
    if len(coords) >= 2 and radius > 0:
        close = ~greedy_keep(np.asarray(coords, float), radius)
    if close.any():
        drop = float(scores.max() - scores.min()) + 1.0
        lowered = np.where(close, scores - drop, scores).astype(scores.dtype)
        order = np.argsort(-lowered, kind="stable")
        coords, scores, close = coords[order], lowered[order], close[order]
    return (coords, scores, close) if with_mask else (coords, scores)


def scores_near(peaks: np.ndarray, scores: np.ndarray, points: np.ndarray, radius: float) -> np.ndarray:
    """The score of the peak nearest to each of ``points`` that has one within ``radius`` (``peaks`` and
    ``points`` in the same coordinates; those without one are left out)."""
    if not len(peaks) or not len(points):
        return np.asarray(scores)[:0]
    d, j = cKDTree(peaks).query(points)
    return np.asarray(scores)[j[d <= radius]]


def refine_peaks(scores: np.ndarray, ij: np.ndarray) -> np.ndarray:
    """Sub-cell peak positions: a parabola through each peak and its two neighbours, per axis (shift ≤ ½ cell)."""
    ij = np.asarray(ij, float)
    if not len(ij):
        return ij
    out = ij.copy()
    idx = ij.astype(int)
    for axis in (0, 1):
        n = scores.shape[axis]
        lo, hi = idx.copy(), idx.copy()
        lo[:, axis] = np.clip(idx[:, axis] - 1, 0, n - 1)
        hi[:, axis] = np.clip(idx[:, axis] + 1, 0, n - 1)
        c = scores[idx[:, 0], idx[:, 1]].astype(float)
        a, b = scores[lo[:, 0], lo[:, 1]].astype(float), scores[hi[:, 0], hi[:, 1]].astype(float)
        curv = a - 2 * c + b
        inside = (idx[:, axis] > 0) & (idx[:, axis] < n - 1) & (curv < 0)
        shift = np.where(inside, 0.5 * (a - b) / np.where(curv < 0, curv, -1.0), 0.0)
        out[:, axis] += np.clip(shift, -0.5, 0.5)
    return out
