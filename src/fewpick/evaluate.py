"""Scoring picks against ground truth: matching, precision-recall, AUPRC, F1.

Matching is one-to-one within each micrograph (or tomogram). A pick and a true
particle may match when their centres are within ``radius`` pixels, or, with the
box protocol (cryoMAE), when square (cubic) boxes of edge ``box`` centred on them
overlap with IoU >= 0.5. Among the allowed pairs the matching is a maximum one:
at a fixed threshold it is found by optimal assignment
(:func:`scipy.optimize.linear_sum_assignment`, shortest total distance among the
largest matchings); along the precision-recall curve, by adding picks in order of
decreasing score and searching one augmenting path per pick, which keeps the
matching maximum at every threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from fewpick.errors import InputError
from fewpick.io.images import pair_names


def _axes(pred: pd.DataFrame, true: pd.DataFrame) -> list[str]:
    return ["x", "y", "z"] if ("z" in pred.columns and "z" in true.columns) else ["x", "y"]


def candidate_pairs(pred_xyz: np.ndarray, true_xyz: np.ndarray, radius: float | None = None,
                    box: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (pick, truth) pairs allowed to match, with their centre distances.

    Exactly one of ``radius`` (centre distance <= radius) and ``box`` (IoU of
    boxes of edge ``box`` >= 0.5) must be given.
    """
    if (radius is None) == (box is None):
        raise ValueError("give exactly one of radius and box")
    pred_xyz = np.asarray(pred_xyz, dtype=float)
    true_xyz = np.asarray(true_xyz, dtype=float)
    empty = np.zeros(0, int)
    if pred_xyz.size == 0 or true_xyz.size == 0:
        return empty, empty, np.zeros(0)
    pred_xyz, true_xyz = np.atleast_2d(pred_xyz), np.atleast_2d(true_xyz)
    reach = radius if radius is not None else box  # IoU >= 0.5 needs every |d_i| < box
    pairs = cKDTree(pred_xyz).query_ball_tree(cKDTree(true_xyz), reach)
    pi = np.fromiter((i for i, js in enumerate(pairs) for _ in js), int)
    tj = np.fromiter((j for js in pairs for j in js), int)
    d = pred_xyz[pi] - true_xyz[tj]
    dist = np.sqrt((d**2).sum(axis=1))
    if box is not None:
        overlap = np.prod(np.clip(box - np.abs(d), 0, None), axis=1)
        iou = overlap / (2 * box ** d.shape[1] - overlap)
        ok = iou >= 0.5 - 1e-12
        pi, tj, dist = pi[ok], tj[ok], dist[ok]
    else:
        ok = dist <= radius
        pi, tj, dist = pi[ok], tj[ok], dist[ok]
    return pi, tj, dist


def match_points(pred_xyz: np.ndarray, true_xyz: np.ndarray, radius: float | None = None,
                 box: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of picks to truths by optimal assignment.

    Returns the indices ``(pred_idx, true_idx)`` of matched pairs: as many pairs
    as possible, and among those the shortest total centre distance.
    """
    pi, tj, dist = candidate_pairs(pred_xyz, true_xyz, radius, box)
    if len(pi) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    up, ip = np.unique(pi, return_inverse=True)
    ut, it = np.unique(tj, return_inverse=True)
    big = 1.0 + dist.sum() * 2 + 1.0  # any disallowed pair costs more than all allowed ones together
    cost = np.full((len(up), len(ut)), big)
    cost[ip, it] = dist
    rows, cols = linear_sum_assignment(cost)
    ok = cost[rows, cols] < big
    return up[rows[ok]], ut[cols[ok]]


def _augment(start: int, adj: list[list[int]], match_t: np.ndarray, match_p: np.ndarray) -> bool:
    """Search one augmenting path from pick ``start``; apply it if found."""
    parent: dict[int, int] = {}
    stack = [start]
    seen: set[int] = set()
    while stack:
        p = stack.pop()
        for t in adj[p]:
            if t in seen:
                continue
            seen.add(t)
            parent[t] = p
            if match_t[t] < 0:
                while True:
                    p2 = parent[t]
                    previous = match_p[p2]
                    match_t[t], match_p[p2] = p2, t
                    if p2 == start:
                        return True
                    t = previous
            stack.append(match_t[t])
    return False


@dataclass
class PRCurve:
    """Precision and recall after each distinct score threshold (descending)."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    tp: np.ndarray
    n_pred: np.ndarray
    n_true: int

    @property
    def f1(self) -> np.ndarray:
        s = self.precision + self.recall
        return np.divide(2 * self.precision * self.recall, s, out=np.zeros_like(s), where=s > 0)

    @property
    def auprc(self) -> float:
        """Area under the curve as average precision: Σ (R_k − R_{k−1}) P_k.

        Recall is over all true particles, so particles never picked lower it.
        """
        if len(self.recall) == 0:
            return 0.0
        r = np.concatenate([[0.0], self.recall])
        return float(np.sum(np.diff(r) * self.precision))


def _pair_micrographs(pred: pd.DataFrame, true: pd.DataFrame) -> dict[str, str]:
    """Map each truth micrograph to the name the picks use for it (if any)."""
    return pair_names(dict.fromkeys(true["micrograph"].astype(str)), dict.fromkeys(pred["micrograph"].astype(str)))


def _scores(df: pd.DataFrame) -> np.ndarray:
    s = df["score"].to_numpy(dtype=float) if "score" in df.columns else np.zeros(len(df))
    return np.where(np.isnan(s), 0.0, s)


def pr_curve(pred: pd.DataFrame, true: pd.DataFrame, radius: float | None = None,
             box: float | None = None) -> PRCurve:
    """Precision-recall curve over all score thresholds, pooled over micrographs.

    Picks on micrographs absent from ``true`` are ignored (the truth does not cover
    them); picks without a score all share score 0.
    """
    axes = _axes(pred, true)
    pairs = _pair_micrographs(pred, true)
    scores_all, adj_all = [], []
    offset_t = 0
    for tname, tgroup in true.groupby(true["micrograph"].astype(str), sort=False):
        pname = pairs.get(tname)
        if pname is None:
            offset_t += len(tgroup)
            continue
        pgroup = pred[pred["micrograph"].astype(str) == pname]
        pi, tj, _ = candidate_pairs(pgroup[axes].to_numpy(float), tgroup[axes].to_numpy(float), radius, box)
        adj = [[] for _ in range(len(pgroup))]
        for a, b in zip(pi, tj):
            adj[a].append(int(b) + offset_t)
        adj_all.extend(adj)
        scores_all.append(_scores(pgroup))
        offset_t += len(tgroup)
    n_true = len(true)
    scores = np.concatenate(scores_all) if scores_all else np.zeros(0)
    order = np.argsort(-scores, kind="stable")
    match_t = np.full(n_true, -1, dtype=np.int64)
    match_p = np.full(len(scores), -1, dtype=np.int64)
    thresholds, tps, npred = [], [], []
    tp = 0
    for k, i in enumerate(order):
        if adj_all[i] and _augment(int(i), adj_all, match_t, match_p):
            tp += 1
        last_of_group = k == len(order) - 1 or scores[order[k + 1]] != scores[i]
        if last_of_group:
            thresholds.append(scores[i])
            tps.append(tp)
            npred.append(k + 1)
    tps_a = np.asarray(tps, dtype=float)
    npred_a = np.asarray(npred, dtype=float)
    precision = np.divide(tps_a, npred_a, out=np.zeros_like(tps_a), where=npred_a > 0)
    recall = tps_a / n_true if n_true else np.zeros_like(tps_a)
    return PRCurve(np.asarray(thresholds), precision, recall, tps_a.astype(int), npred_a.astype(int), n_true)


@dataclass
class Counts:
    """Precision, recall and F1 at one threshold."""

    threshold: float | None
    n_pred: int
    n_true: int
    tp: int
    precision: float = field(init=False)
    recall: float = field(init=False)
    f1: float = field(init=False)

    def __post_init__(self):
        self.precision = self.tp / self.n_pred if self.n_pred else 0.0
        self.recall = self.tp / self.n_true if self.n_true else 0.0
        s = self.precision + self.recall
        self.f1 = 2 * self.precision * self.recall / s if s else 0.0


def counts_at(pred: pd.DataFrame, true: pd.DataFrame, threshold: float | None = None,
              radius: float | None = None, box: float | None = None) -> Counts:
    """Precision/recall/F1 of the picks scoring ``>= threshold`` (all picks if ``None``)."""
    axes = _axes(pred, true)
    if threshold is not None:
        pred = pred[_scores(pred) >= threshold]
    pairs = _pair_micrographs(pred, true)
    tp = n_pred = 0
    for tname, tgroup in true.groupby(true["micrograph"].astype(str), sort=False):
        pname = pairs.get(tname)
        if pname is None:
            continue
        pgroup = pred[pred["micrograph"].astype(str) == pname]
        n_pred += len(pgroup)
        pi, _ = match_points(pgroup[axes].to_numpy(float), tgroup[axes].to_numpy(float), radius, box)
        tp += len(pi)
    return Counts(threshold, n_pred, len(true), tp)


def duplicates(pred: pd.DataFrame, true: pd.DataFrame, radius: float, threshold: float | None = None) -> dict:
    """Particles picked more than once: a pick is a duplicate when a better-scoring pick lies within ``radius``
    of the same true particle (each pick counted with its nearest true particle within ``radius``).

    Returns ``n_pred`` (the picks scoring ``>= threshold``, all without one), ``duplicates`` (picks beyond the
    first on a particle), ``rate`` (duplicates / n_pred) and ``particles`` (true particles picked twice or more).
    Every pick put into 2D classification counts, so a duplicate is a particle counted twice."""
    pairs = _pair_micrographs(pred, true)
    axes = _axes(pred, true)
    n_pred = extra = twice = 0
    for tname, tgroup in true.groupby(true["micrograph"].astype(str), sort=False):
        pname = pairs.get(tname)
        if pname is None:
            continue
        p = pred[pred["micrograph"].astype(str) == pname]
        if threshold is not None:
            p = p[_scores(p) >= threshold]
        n_pred += len(p)
        if not len(p):
            continue
        dist, nearest = cKDTree(tgroup[axes].to_numpy(float)).query(p[axes].to_numpy(float),
                                                                     distance_upper_bound=radius)
        hits = np.bincount(nearest[np.isfinite(dist)], minlength=len(tgroup))
        extra += int(np.maximum(hits - 1, 0).sum())
        twice += int((hits >= 2).sum())
    return {"n_pred": n_pred, "duplicates": extra, "rate": extra / n_pred if n_pred else 0.0, "particles": twice}


def evaluate(pred: pd.DataFrame, true: pd.DataFrame, radius: float | None = None, box: float | None = None,
             threshold: float | None = None) -> dict:
    """Everything ``fewpick evaluate`` reports, as a JSON-ready dict.

    Keys: ``criterion``, ``n_true``, ``n_pred``, ``n_micrographs``, ``auprc``,
    ``best`` (threshold, precision, recall, F1 at the best-F1 threshold),
    ``all_picks`` (P/R/F1 of every pick given), ``at_threshold`` (if given),
    ``duplicates`` (:func:`duplicates` of the picks at ``threshold``, or of all picks),
    ``per_micrograph`` (AUPRC, best F1 and counts for each).
    """
    if len(true) == 0:
        raise InputError(None, "the ground truth holds no particles")
    if radius is None and box is None:
        raise InputError(None, "give a matching radius (--radius) or a box size (--box)")
    for name, v in (("radius", radius), ("box", box)):
        if v is not None and not v > 0:
            raise InputError(None, f"{name} must be positive, got {v}")
    axes = _axes(pred, true)
    pairs = _pair_micrographs(pred, true)
    covered = set(pairs.values())
    pred_eval = pred[pred["micrograph"].astype(str).isin(covered)]
    curve = pr_curve(pred_eval, true, radius, box)
    f1 = curve.f1
    best = int(np.argmax(f1)) if len(f1) else None
    report = {
        "criterion": {"radius": radius} if radius is not None else {"box": box, "iou": 0.5},
        "dimensions": len(axes),
        "n_true": int(len(true)),
        "n_pred": int(len(pred_eval)),
        "n_pred_ignored": int(len(pred) - len(pred_eval)),
        "n_micrographs": int(true["micrograph"].nunique()),
        "n_micrographs_without_picks": int(sum(1 for t in true["micrograph"].astype(str).unique() if t not in pairs)),
        "auprc": curve.auprc,
        "best": None if best is None else {
            "threshold": float(curve.thresholds[best]), "precision": float(curve.precision[best]),
            "recall": float(curve.recall[best]), "f1": float(f1[best]), "tp": int(curve.tp[best]),
            "n_pred": int(curve.n_pred[best])},
        "all_picks": _counts_dict(counts_at(pred_eval, true, None, radius, box)),
    }
    if threshold is not None:
        report["at_threshold"] = _counts_dict(counts_at(pred_eval, true, threshold, radius, box))
    # particles picked twice, within half a box or the matching radius
    report["duplicates"] = duplicates(pred_eval, true, radius if radius is not None else box / 2, threshold)
    per = []
    for tname, tgroup in true.groupby(true["micrograph"].astype(str), sort=False):
        pname = pairs.get(tname)
        pgroup = pred_eval[pred_eval["micrograph"].astype(str) == pname] if pname else pred_eval.iloc[:0]
        c = pr_curve(pgroup, tgroup, radius, box)
        per.append({"micrograph": tname, "n_true": int(len(tgroup)), "n_pred": int(len(pgroup)),
                    "auprc": c.auprc, "best_f1": float(c.f1.max()) if len(c.f1) else 0.0})
    report["per_micrograph"] = per
    report["curve"] = {"threshold": curve.thresholds.tolist(), "precision": curve.precision.tolist(),
                       "recall": curve.recall.tolist()}
    return report


def _counts_dict(c: Counts) -> dict:
    d = asdict(c)
    d["threshold"] = None if c.threshold is None else float(c.threshold)
    return d


def plot_pr(report: dict, path, title: str | None = None) -> None:
    """Write the precision-recall curve of an :func:`evaluate` report as a PNG, atomically, with the points a user
    gets: every pick in the file (the picker's own cut, when it picked with its default threshold), the given
    threshold's, and the best F1's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fewpick.outputs import atomic_path

    fig, ax = plt.subplots(figsize=(4.5, 4.2), dpi=120)
    ax.step(report["curve"]["recall"], report["curve"]["precision"], where="post", color="C0",
            label=f"AUPRC {report['auprc']:.3f}")
    if report["best"]:
        b = report["best"]
        ax.plot([b["recall"]], [b["precision"]], "o", color="C3", label=f"best F1 {b['f1']:.3f}")
    a = report["all_picks"]
    ax.plot([a["recall"]], [a["precision"]], "s", color="C2", mfc="none", ms=8,
            label=f"every pick in the file: F1 {a['f1']:.3f}")
    if "at_threshold" in report:
        t = report["at_threshold"]
        ax.plot([t["recall"]], [t["precision"]], "D", color="C1", mfc="none", ms=7,
                label=f"at threshold {t['threshold']:.3g}: F1 {t['f1']:.3f}")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title or "precision-recall")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
