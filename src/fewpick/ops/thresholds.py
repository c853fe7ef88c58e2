"""Automatic score cuts: where the peaks of a score map split into particles and background."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

#: Ashman's D above which a two-Gaussian mixture's components count as two groups (the usual bimodality criterion)
BIMODAL_D = 2.0


def two_group_mixture(scores: np.ndarray, seed: int = 0):
    """A two-component Gaussian mixture fitted to the finite ``scores``; None with fewer than 10 of them."""
    from sklearn.mixture import GaussianMixture

    s = np.asarray(scores, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    if len(s) < 10:
        return None
    return GaussianMixture(2, random_state=seed).fit(s[:, None])


def two_groups(scores: np.ndarray, seed: int = 0) -> bool:
    """Whether ``scores`` fall into two clearly separate groups: Ashman's D of a two-Gaussian mixture fitted to
    them above :data:`BIMODAL_D` (False with fewer than 10 finite scores)."""
    gmm = two_group_mixture(scores, seed)
    return gmm is not None and ashman_d(gmm) > BIMODAL_D


def threshold_gmm(scores: np.ndarray, seed: int = 0) -> float:
    """Automatic threshold between background peaks and particle peaks.

    Fits a two-component Gaussian mixture to the peak scores. When the two
    components are clearly apart (Ashman's D > 2), returns the lowest score at
    which the higher component is the more probable one. Otherwise the peaks form
    one population (a crowded micrograph, where nearly every peak is a particle)
    and only the low outliers are dropped: median − 2 robust standard deviations.
    With fewer than 10 peaks, the median.
    """
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    return _mixture_cut(s, two_group_mixture(s, seed), _low_outliers_cut)


def _mixture_cut(s: np.ndarray, gmm, one_population) -> float:
    """The cut of a two-Gaussian mixture ``gmm`` fitted to the finite scores ``s`` (None: fewer than 10 of them,
    the median): the start of its upper component where the two are clearly apart, else ``one_population(s)``."""
    if gmm is None:
        return float(np.median(s)) if len(s) else 0.0
    if ashman_d(gmm) <= BIMODAL_D:
        return one_population(s)
    cut = upper_component_start(gmm, gmm.means_.ravel().min(), s.max(), 2048)
    return float(np.median(s)) if cut is None else cut


def _low_outliers_cut(s: np.ndarray) -> float:
    """Median − 2 robust standard deviations: one population of particles, only the low outliers dropped."""
    med = np.median(s)
    return float(med - 2 * 1.4826 * np.median(np.abs(s - med)))


def threshold_logits(scores: np.ndarray, seed: int = 0) -> float:
    """:func:`threshold_gmm` for peak scores that are log-odds of a particle centre against background (a network
    trained with every particle labelled, both classes weighed alike): where the median peak looks more like
    background than a centre (a negative logit), most peaks are background, not particles crowded together, and
    the cut is :func:`background_cut` where they form one population (instead of dropping only the low outliers)
    or where they fall into two groups that both look like background (the upper one no particles either: a
    mixture's cut between them would keep it whole)."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    gmm = two_group_mixture(s, seed)
    background = bool(len(s)) and np.median(s) < 0
    if background and gmm is not None and gmm.means_.max() <= 0:
        return background_cut(s)
    return _mixture_cut(s, gmm, background_cut if background else _low_outliers_cut)


#: the largest share of the peaks above :func:`background_cut` expected from the background (over all the picks it
#: keeps, which is lower than the share among the weakest of them); chosen where the picks on sparse simulated
#: micrographs of small or faint particles came closest to the particles in number (docs/decisions.md, "The general
#: model reads its scores as log-odds")
BACKGROUND_SHARE = 1 / 3


def background_cut(scores: np.ndarray) -> float:
    """The lowest cut above which at most :data:`BACKGROUND_SHARE` of the peaks are expected from the background,
    for peaks that are mostly background: the background's scores taken as normal, with the median and robust
    spread (1.4826 × median absolute deviation) of all the peaks (an empirical null, as in Benjamini–Hochberg's
    step-up rule on its tail probabilities). Above the best peak where no cut qualifies."""
    from scipy.stats import norm

    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if not len(s):
        return 0.0
    med = np.median(s)
    spread = 1.4826 * np.median(np.abs(s - med))
    if spread <= 0:
        return float(np.nextafter(s[0], np.inf))
    expected = len(s) * norm.sf((s - med) / spread)  # background peaks expected at or above each score
    ok = np.flatnonzero(expected <= BACKGROUND_SHARE * np.arange(1, len(s) + 1))
    return float(s[ok[-1]]) if len(ok) else float(np.nextafter(s[0], np.inf))


def ashman_d(gmm) -> float:
    """Ashman's D of a fitted two-component 1D Gaussian mixture: the distance between the means over the
    components' pooled spread; above 2 the two populations are clearly apart (the mixture is bimodal)."""
    m = gmm.means_.ravel()
    sd = np.sqrt(gmm.covariances_.ravel())
    return float(np.sqrt(2) * abs(m[0] - m[1]) / np.sqrt(sd[0] ** 2 + sd[1] ** 2))


def upper_component_start(gmm, lo: float, hi: float, n: int) -> float | None:
    """The lowest of ``n`` levels from ``lo`` to ``hi`` at which a fitted 1D Gaussian mixture's highest
    component is the more probable one (posterior ≥ 0.5); None if there is none."""
    grid = np.linspace(lo, hi, n)
    post = gmm.predict_proba(grid[:, None])[:, int(np.argmax(gmm.means_[:, 0]))]
    above = np.flatnonzero(post >= 0.5)
    return float(grid[above[0]]) if len(above) else None


def threshold_knn_density(scores: np.ndarray, k: int = 5) -> float:
    """Density-based automatic threshold (as cryoMAE's): cut where the scores are sparsest between two dense groups.

    The scores are sorted in decreasing order and each one's mean distance to its ``k`` nearest
    neighbours (in score) measures the local spacing; a running mean over ``2k+1`` scores smooths it.
    Particles form a dense group of high scores and background a dense bulk below; walking down the
    sorted list, the spacing rises where the particles run out and falls where the background begins.
    The valley is where the spacing is largest relative to the denser-spaced groups on both sides
    (``spacing / max(densest above, densest below)``), so neither the naturally sparse top of the list
    nor its bottom tail can be chosen; the cut is the widest step between consecutive scores within
    ``k`` of it, and scores ``>= threshold`` (the upper group) are kept. With fewer than ``4k`` scores,
    the median.
    """
    s, spacing, i = score_spacing(scores, k)
    if i is None:
        return float(np.median(s)) if len(s) else 0.0
    # the smoothing spreads a gap over 2k+1 scores: cut at the widest step between consecutive scores there
    lo, hi = max(0, i - k), min(len(s) - 1, i + k)
    j = lo + int(np.argmax(s[lo:hi] - s[lo + 1 : hi + 1]))
    return float(s[j])


def score_spacing(scores: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray, int | None]:
    """The finite ``scores`` sorted in decreasing order, each one's local spacing (its mean distance to its ``k``
    nearest neighbours in score, smoothed by a running mean over ``2k+1``) and the index of the valley between two
    dense groups that :func:`threshold_knn_density` cuts at (None with fewer than ``4k`` scores)."""
    s = np.sort(np.asarray(scores, dtype=np.float64)[np.isfinite(scores)])[::-1]
    n = len(s)
    if n < 4 * k:
        return s, np.zeros(n), None
    # k nearest neighbours in 1D lie among the k on either side in sorted order
    pad = np.concatenate([np.full(k, np.inf), s, np.full(k, np.inf)])
    offsets = np.concatenate([np.arange(-k, 0), np.arange(1, k + 1)])
    dist = np.abs(pad[k + np.arange(n)[:, None] + offsets[None]] - s[:, None])
    spacing = np.sort(dist, axis=1)[:, :k].mean(axis=1)
    spacing = ndi.uniform_filter1d(spacing, 2 * k + 1, mode="nearest")
    floor = 1e-6 * max(s[0] - s[-1], 1e-12)
    densest_above = np.minimum.accumulate(spacing)  # densest (smallest spacing) among scores 0..i
    densest_below = np.minimum.accumulate(spacing[::-1])[::-1]  # among i..n-1
    ratio = spacing / (np.maximum(densest_above, densest_below) + floor)
    ratio[:k] = ratio[n - k :] = 0  # a group needs at least k members on each side
    return s, spacing, int(np.argmax(ratio))


def otsu_split(s: np.ndarray) -> float:
    """Otsu's split of scores (256 bins): the level that maximises the variance between the two sides."""
    hist, edges = np.histogram(s, 256)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    return float(centres[np.argmax(w0 * w1 * (m0 - m1) ** 2)])


def auto_threshold(scores: np.ndarray, floor: float = 0.05, bic_margin: float = 10.0) -> float:
    """A tomogram's cut between its particles and the rest, from its NMS peak probabilities ≥ ``floor``; 0.5
    where there are too few peaks to split.

    First Otsu's split of all those peaks: the heat map's many weak background peaks against the particle-like
    ones. Then, above it, one Gaussian against a mixture of two (probabilities, not log-odds): if BIC prefers
    two by more than ``bic_margin`` (10: "very strong" evidence, Kass & Raftery 1995) and its components are
    clearly apart (:func:`ashman_d` > 2), other particles that resemble the target score in a middle band, and
    the cut moves up to where the upper component's posterior passes 0.5. (Otsu's split alone cut CCT models
    below mTOR and RuvAB, precision 0.2–0.25 at recall 1; two Otsu splits always cut through the ribosomes.
    Without the separation test, a confident model's particles, piled against 1 with a tail below, were split
    in two and the cut dropped part of them.)"""
    s = np.asarray(scores, float)
    s = s[(s >= floor) & (s <= 1)]
    if len(s) < 10:
        return 0.5
    t1 = otsu_split(s)
    cut = upper_band_cut(s[s >= t1], bic_margin)
    return t1 if cut is None else max(t1, cut)


def upper_band_cut(upper: np.ndarray, bic_margin: float = 10.0) -> float | None:
    """The second step of :func:`auto_threshold`, on the peak scores above Otsu's split: where the upper of two
    Gaussian components takes over, if BIC prefers two by more than ``bic_margin`` and they are clearly apart
    (:func:`ashman_d` > :data:`BIMODAL_D`); None where one component describes them (or fewer than 10 scores)."""
    u = np.asarray(upper, float)[:, None]
    if len(u) < 10 or np.ptp(u) < 1e-6:
        return None
    from sklearn.mixture import GaussianMixture

    one = GaussianMixture(1, random_state=0).fit(u)
    two = GaussianMixture(2, random_state=0, n_init=3).fit(u)
    if two.bic(u) + bic_margin >= one.bic(u) or ashman_d(two) <= BIMODAL_D:
        return None
    lo, hi = np.sort(two.means_[:, 0])
    return upper_component_start(two, lo, hi, 512)


def count_scoring_like(peak_scores, sample, quantile: float) -> float:
    """Particles per image from a random ``sample`` of their scores (the peaks of labelled particles): the
    median over the images of their peaks (``peak_scores``, one array per image) that score at least the
    sample's ``quantile``, divided by the share of the particles that score so (1 − ``quantile``)."""
    level = np.quantile(sample, quantile)
    return float(np.median([np.sum(np.asarray(s) >= level) for s in peak_scores])) / (1 - quantile)


def threshold_at_count(peak_scores, counts, empty: float | None = None) -> float:
    """A model's default cut from its training images: on each image the score of its k-th best peak (k its
    expected particle count, at least 1; scores sorted best first), the median over images. An image without
    peaks counts as ``empty`` (or is left out when None); 0 when nothing is left."""
    cuts = []
    for scores, k in zip(peak_scores, counts):
        if len(scores):
            cuts.append(float(scores[min(len(scores), max(1, int(round(k)))) - 1]))
        elif empty is not None:
            cuts.append(float(empty))
    return float(np.median(cuts)) if cuts else 0.0
