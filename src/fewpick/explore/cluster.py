"""2D map and classes of the embeddings: UMAP, then over-clustering.

k-means with ``k`` ≫ ``h`` clusters cuts the map into many small, pure groups; their centres are then
merged into the ``h`` classes the user asked for (Ward linkage on the centres, each centre weighted by
nothing but its position), and every candidate takes its cluster's class. Classes are numbered from 1 by
decreasing size.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np


def radial_profiles(inputs: np.ndarray, bins: int = 16) -> np.ndarray:
    """Rotational averages ``(N, bins)`` of images ``(N, S, S)`` about their centres, out to the inscribed circle
    (the corners are averaged into the last ring): how big and how dense a candidate is, whatever its
    orientation in the image."""
    x = np.asarray(inputs, np.float32)
    s = x.shape[1]
    c = (s - 1) / 2
    yy, xx = np.mgrid[:s, :s]
    ring = np.minimum((np.hypot(yy - c, xx - c) / (s / 2) * bins).astype(int), bins - 1).ravel()
    counts = np.bincount(ring, minlength=bins)
    sums = x.reshape(len(x), -1) @ np.eye(bins, dtype=np.float32)[ring]  # (N, bins): each ring's sum
    full = np.flatnonzero(counts)
    prof = sums[:, full] / counts[full]
    if len(full) < bins:  # rings narrower than a pixel near the centre of small images: interpolated
        prof = np.stack([np.interp(np.arange(bins), full, row) for row in prof])
    return prof.astype(np.float32)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def strength(scores: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Candidate scores as a feature: their logarithm, standardised within each group (tomogram), so that a run
    over tomograms of different contrast compares each candidate with its own tomogram."""
    s = np.asarray(scores, np.float64)
    groups = np.zeros(len(s), int) if groups is None else np.asarray(groups)
    out = np.zeros(len(s), np.float32)
    for g in np.unique(groups):
        m = groups == g
        v = np.log(np.maximum(s[m], 1e-3 * max(float(s[m].max()), 1e-12)))
        out[m] = (v - v.mean()) / (v.std() + 1e-6)
    return out


def _standard_rows(x: np.ndarray) -> np.ndarray:
    """Columns to zero mean and unit sd over the candidates, then each row to unit norm."""
    x = np.asarray(x, np.float32)
    return _unit_rows((x - x.mean(0)) / (x.std(0) + 1e-6))


def pca_features(inputs: np.ndarray, components: int = 32, seed: int = 0, radial: bool = True,
                 scores: np.ndarray | None = None, context: Sequence[np.ndarray] = ()) -> np.ndarray:
    """The features of ``--features pca`` (no training), unit norm: the images' principal-component scores
    (``(N, S, S)`` images; unit norm; none with ``components=0``) and, with ``radial``, their standardised rotational averages (unit norm), and
    with ``scores`` (see :func:`strength`) half of each candidate's standardised log score, side by side.

    The components carry shape but split one species by its orientation in the image; the rotational average
    carries size and density whatever the orientation; the score carries how much signal the candidate has,
    which a 2D image normalised to unit spread loses. Each array of ``context`` (``(N, m)``: the 3D rotational
    averages of the tomogram around each candidate, :func:`fewpick.explore.candidates.context_profiles`) is
    standardised and added as one more unit-norm block beside the image features (unit norm together): the
    particle's size, density and neighbourhood in 3D, whatever its orientation (bench/results/explore_features.md).
    """
    from sklearn.decomposition import PCA

    parts = []
    if components:
        flat = np.asarray(inputs, np.float32).reshape(len(inputs), -1)
        k = max(1, min(components, len(flat) - 1, flat.shape[1]))
        parts.append(_unit_rows(PCA(k, random_state=seed).fit_transform(flat)))
    if radial:
        parts.append(_standard_rows(radial_profiles(inputs)))
    if scores is not None:
        parts.append(0.5 * np.asarray(scores, np.float32).reshape(-1, 1))
    out = _unit_rows(np.hstack(parts))
    if len(context):
        out = _unit_rows(np.hstack([out] + [_standard_rows(c) for c in context]))
    return out.astype(np.float32)


def umap_2d(embeddings: np.ndarray, n_neighbors: int = 40, seed: int = 0) -> np.ndarray:
    """UMAP of unit-norm embeddings to 2D (cosine metric, ``n_neighbors`` neighbours)."""
    import umap

    n = len(embeddings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap warns that a seed disables parallelism
        reducer = umap.UMAP(n_neighbors=min(n_neighbors, n - 1), n_components=2, metric="cosine", min_dist=0.1,
                            random_state=seed, n_jobs=1)
        return reducer.fit_transform(embeddings).astype(np.float32)


def overcluster(points: np.ndarray, classes: int, clusters: int | None = None, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Classes ``1..h`` and over-clusters ``0..k-1`` of ``points`` ``(N, d)``.

    ``clusters`` (k) defaults to ``min(10·h, N // 5)``, at least ``h``.
    """
    from sklearn.cluster import AgglomerativeClustering, KMeans

    n = len(points)
    h = max(1, min(classes, n))
    k = clusters or min(10 * h, max(h, n // 5))
    k = max(h, min(k, n))
    over = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(points)
    if k > h:
        merged = AgglomerativeClustering(n_clusters=h, linkage="ward").fit_predict(over.cluster_centers_)
    else:
        merged = np.arange(k)
    labels = merged[over.labels_]
    sizes = np.bincount(labels, minlength=h)
    rank = np.empty(h, int)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(1, h + 1)
    return rank[labels], over.labels_
