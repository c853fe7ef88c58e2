"""2D map and classes of the embeddings (SPEC §3, step 5): UMAP, then over-clustering.

k-means with ``k`` ≫ ``h`` clusters cuts the map into many small, pure groups; their centres are then
merged into the ``h`` classes the user asked for (Ward linkage on the centres, each centre weighted by
nothing but its position), and every candidate takes its cluster's class. Classes are numbered from 1 by
decreasing size.
"""

from __future__ import annotations

import warnings

import numpy as np


def pca_features(inputs: np.ndarray, components: int = 32, seed: int = 0) -> np.ndarray:
    """Unit-norm principal-component scores ``(N, components)`` of images ``(N, S, S)``: the features of
    ``--features pca`` (no training; the leading components carry the particles' size and density)."""
    from sklearn.decomposition import PCA

    flat = np.asarray(inputs, np.float32).reshape(len(inputs), -1)
    k = max(1, min(components, len(flat) - 1, flat.shape[1]))
    scores = PCA(k, random_state=seed).fit_transform(flat)
    return (scores / np.maximum(np.linalg.norm(scores, axis=1, keepdims=True), 1e-12)).astype(np.float32)


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
