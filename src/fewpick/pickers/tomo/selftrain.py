"""Self-training: the model's confident picks on its own training tomograms join the labels for the last epochs,
picked again at the start of each of them by the model as trained so far (a second look finds the particles the
first one scored under the cut).

A few labels teach the network the particle only roughly: on tomograms it has not seen it ranks the particles
well enough that its automatic cut keeps few false picks, but it gives the unlabelled particles lower scores
than the labelled ones, so the cut keeps only some of them. Its picks above that cut on the training tomograms
are mostly particles; taken as labels they multiply the examples, and the last epochs learn from all of them.

A model that has not yet told the particle from a lookalike of its size would teach itself the lookalike too, so
a pick joins only if its radial density profile (the mean density in shells around its centre of mass, out to one
diameter) correlates with the labels' mean profile at least as well as every label does with the mean of the
others. The profile tells particles of other sizes and densities apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from fewpick.nn.unet import SliceUNet3D
from fewpick.ops.peaks import nms
from fewpick.ops.thresholds import auto_threshold
from fewpick.outputs import atomic_path
from fewpick.pickers.tomo.data import TrainingItem, targets
from fewpick.pickers.tomo.model import prepared_heat_map
from fewpick.pickers.tomo.settings import TomoSettings


def confident_picks(net: SliceUNet3D, item: TrainingItem, settings: TomoSettings) -> np.ndarray:
    """The peaks (binned z, y, x) of the network's heat map on a training tomogram above that tomogram's
    automatic cut (:func:`~fewpick.ops.thresholds.auto_threshold`), less those within a radius of a label."""
    geo = settings.geometry()
    heat = prepared_heat_map(net, item.volume)
    p, sc = nms(heat, geo.radius(minimum=1.0), 0.05, footprint="box")
    p, sc = np.asarray(p, float).reshape(-1, 3), np.asarray(sc, float)
    p = p[sc >= auto_threshold(sc)]
    if len(p) and len(item.centres):
        d, _ = cKDTree(item.centres).query(p)
        p = p[d > geo.radius()]
    return p


def radial_profiles(volume: np.ndarray, centres: np.ndarray, radius: float) -> np.ndarray:
    """The mean density in shells one voxel thick around each centre (binned z, y, x; rounded, clipped into
    the volume), out to ``radius`` voxels: ``(n, ceil(radius) + 1)``."""
    rmax = max(1, int(np.ceil(radius)))
    off = np.arange(-rmax, rmax + 1)
    gz, gy, gx = np.meshgrid(off, off, off, indexing="ij")
    shell = np.round(np.sqrt(gz**2 + gy**2 + gx**2)).astype(int).ravel()
    inside = shell <= rmax
    shell, size = shell[inside], np.bincount(shell[inside], minlength=rmax + 1)
    flat = np.stack([gz.ravel()[inside], gy.ravel()[inside], gx.ravel()[inside]], 1)
    top = np.array(volume.shape) - 1
    c = np.clip(np.round(np.asarray(centres, float).reshape(-1, 3)).astype(int), 0, top)
    out = np.empty((len(c), rmax + 1))
    for k, ck in enumerate(c):
        idx = np.abs(ck + flat)  # mirrored at the low edges
        idx = np.where(idx > top, 2 * top - idx, idx)  # and at the high ones
        out[k] = np.bincount(shell, volume[idx[:, 0], idx[:, 1], idx[:, 2]], rmax + 1) / size
    return out


def centred(volume: np.ndarray, centres: np.ndarray, radius: float, rounds: int = 2) -> np.ndarray:
    """Each centre moved to the centre of mass of the dense matter (positive values of a prepared volume) within
    ``radius`` voxels of it, ``rounds`` times: a pick a voxel or two off its particle comes back to its middle,
    so that its radial profile is comparable with the labels'."""
    r = max(1.0, float(radius))
    rm = int(np.ceil(r))
    off = np.arange(-rm, rm + 1)
    grid = np.stack(np.meshgrid(off, off, off, indexing="ij"), -1).reshape(-1, 3)
    grid = grid[(grid**2).sum(1) <= r * r]
    top = np.array(volume.shape) - 1
    c = np.asarray(centres, float).reshape(-1, 3).copy()
    for _ in range(rounds):
        ci = np.clip(np.round(c).astype(int), 0, top)
        for k in range(len(c)):
            idx = np.clip(ci[k] + grid, 0, top)
            w = np.maximum(volume[idx[:, 0], idx[:, 1], idx[:, 2]], 0)
            if w.sum() > 0:
                c[k] = ci[k] + (grid * w[:, None]).sum(0) / w.sum()
    return c


def _correlation(rows: np.ndarray, ref: np.ndarray) -> np.ndarray:
    a = rows - rows.mean(-1, keepdims=True)
    b = ref - ref.mean()
    return (a @ b) / np.maximum(np.sqrt((a**2).sum(-1) * (b**2).sum()), 1e-12)


def like_the_labels(items: list[TrainingItem], picks: list[np.ndarray], settings: TomoSettings) -> list[np.ndarray]:
    """The ``picks`` whose radial profile correlates with the labels' mean profile at least as well as the least
    typical label does with the mean of the others (every profile about its :func:`centred` centre); none with
    fewer than three labels (no spread to measure)."""
    r = settings.geometry().radius()
    reach = 2 * r

    def profiles(volume: np.ndarray, centres: np.ndarray) -> np.ndarray:
        return radial_profiles(volume, centred(volume, centres, r), reach)

    labelled = [profiles(it.volume, it.centres) for it in items]
    lab = np.concatenate(labelled)
    if len(lab) < 3:
        return [p[:0] for p in picks]
    total = lab.sum(0)
    floor = min(_correlation(lab[i : i + 1], (total - lab[i]) / (len(lab) - 1))[0] for i in range(len(lab)))
    ref = total / len(lab)
    return [p[_correlation(profiles(it.volume, p), ref) >= floor] if len(p) else p
            for it, p in zip(items, picks)]


def with_picks(item: TrainingItem, picks: np.ndarray, settings: TomoSettings) -> TrainingItem:
    """The training tomogram with ``picks`` labelled too (targets rebuilt; the labels first)."""
    centres = np.concatenate([item.centres, np.asarray(picks, float).reshape(-1, 3)])
    return TrainingItem(item.volume, targets(item.volume.shape, centres, settings.geometry().radius()), centres)


def self_training_counts(items: list[TrainingItem], picks: list[np.ndarray], counts: list[float]) -> list[float]:
    """The particles assumed in each training tomogram once its confident ``picks`` join its labels: its labels
    plus twice the picks (the picks taken as half of the particles left unlabelled, as the labels are taken as
    half of all particles without an expected count), and never fewer than assumed before (``counts``)."""
    return [max(float(c), len(it.centres) + 2.0 * len(p)) for it, p, c in zip(items, picks, counts)]


def self_training_picks(net: SliceUNet3D, items: list[TrainingItem], settings: TomoSettings,
                        saved: str | Path | None = None) -> list[np.ndarray]:
    """:func:`confident_picks` on every training tomogram that look like the labels (:func:`like_the_labels`);
    with ``saved`` (a file beside the checkpoint) they
    are written there, and read back from it when it exists, so that a resumed run keeps the picks it trained on."""
    if saved is not None and Path(saved).is_file():
        try:
            stored = json.loads(Path(saved).read_text())
            if len(stored) == len(items):
                return [np.asarray(p, float).reshape(-1, 3) for p in stored]
        except (OSError, ValueError):
            pass
    picks = like_the_labels(items, [confident_picks(net, it, settings) for it in items], settings)
    if saved is not None:
        with atomic_path(saved) as tmp:
            Path(tmp).write_text(json.dumps([p.tolist() for p in picks]))
    return picks
