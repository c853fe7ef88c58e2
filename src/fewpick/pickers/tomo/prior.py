"""The class prior π: how many particles each training tomogram holds (the expected count, an estimate from a
quick model trained on half the labels and tested on the other half, or twice the labels)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from fewpick import modelfile
from fewpick.device import resolve_device
from fewpick.losses.tomo import bce_loss
from fewpick.nn.unet import SliceUNet3D
from fewpick.ops.peaks import nms
from fewpick.outputs import atomic_path
from fewpick.pickers.tomo.data import TrainingItem, augment, sample_batch, targets
from fewpick.pickers.tomo.model import block_index, heat_map_blocks, prepared_heat_map
from fewpick.pickers.tomo.settings import TomoSettings
from fewpick.training import fit


def assumed_particles(items: list[TrainingItem], settings: TomoSettings,
                      estimate: Sequence[float] | None = None) -> list[float]:
    """The particles assumed in each training tomogram: ``expected_particles``, else the held-out ``estimate``
    (:func:`estimate_particles`), else twice its labels."""
    return [float(settings.expected_particles or (estimate[i] if estimate is not None else 2.0 * len(it.centres)))
            for i, it in enumerate(items)]


def class_prior(items: list[TrainingItem], settings: TomoSettings,
                counts: Sequence[float] | None = None) -> tuple[float, float]:
    """(π, π_U): the positive target mass of every particle (``counts`` per tomogram, by default
    :func:`assumed_particles`) over all voxels, and that of the particles left unlabeled over the unlabeled voxels."""
    counts = assumed_particles(items, settings) if counts is None else counts
    pis, pus = [], []
    for it, n in zip(items, counts):
        n_lab = len(it.centres)
        per = it.target.sum() / max(1, n_lab)
        pis.append(n * per / it.target.size)
        pus.append(max(0.0, n - n_lab) * per / max(1.0, it.target.size - it.target.sum()))
    return float(np.clip(np.mean(pis), 1e-6, 0.5)), float(np.clip(np.mean(pus), 0.0, 0.5))


#: binned voxels of the training tomograms the estimate scores per step of its classifier's training: at the
#: defaults (2 epochs of 30 steps) 150 million, the whole of four 256×256×100 tomograms binned ×2 or about three
#: 512×512×200 ones; beyond that a random sample of the tomograms' blocks instead (its counts scaled up)
SCORED_VOXELS_PER_STEP = 2_500_000


def prior_epochs(settings: TomoSettings) -> int:
    """Epochs of the estimate's quick classifier: ``prior_epochs``, at most a third of ``epochs`` (rounded up)."""
    return min(settings.prior_epochs, -(-settings.epochs // 3))


def scored_blocks(items: list[TrainingItem], held: list[np.ndarray], budget: float,
                  rng: np.random.Generator) -> tuple[list[set[int] | None], list[np.ndarray | None]]:
    """Which heat-map blocks (:func:`~fewpick.pickers.tomo.model.heat_map_blocks`) of each training tomogram the
    estimate scores, within ``budget`` voxels, and each block's weight in the counts: None for both where the
    tomograms are smaller than the budget (all of them scored, each peak counting once); else every block holding a held-out label (weight 1) and,
    of each tomogram's other blocks, a random sample as large as the budget left allows (shared in proportion
    to their number), each sampled block counting for the others it stands for."""
    if sum(it.volume.size for it in items) <= budget:
        return [None] * len(items), [None] * len(items)
    grids = [heat_map_blocks(it.volume.shape) for it in items]
    chosen = [set(block_index(it.centres[h], it.volume.shape).tolist()) for it, h in zip(items, held)]
    others = [[b for b in range(len(g)) if b not in c] for g, c in zip(grids, chosen)]
    used = sum(_size(g[b]) for g, c in zip(grids, chosen) for b in c)
    sizes = [_size(g[b]) for g, o in zip(grids, others) for b in o]
    n_all = int(np.clip((budget - used) // max(1.0, float(np.mean(sizes))), 1, len(sizes))) if sizes else 0
    weights: list[np.ndarray | None] = []
    for g, c, o in zip(grids, chosen, others):
        w = np.ones(len(g))
        n = int(np.clip(round(n_all * len(o) / max(1, len(sizes))), 1, len(o))) if o else 0
        if n:
            sample = rng.choice(o, n, replace=False)
            c.update(int(b) for b in sample)
            w[sample] = len(o) / n
        weights.append(w)
    return list(chosen), weights


def _size(block: tuple[slice, ...]) -> int:
    return int(np.prod([s.stop - s.start for s in block]))


def estimate_particles(items: list[TrainingItem], settings: TomoSettings, quantile: float = 0.5,
                       device: str | torch.device = "auto",
                       progress: Callable[[dict], None] | None = None) -> list[float] | None:
    """Particles per training tomogram, estimated from held-out labels, within [labels, twice the labels].

    Half the labels train a plain labeled-against-unlabeled classifier (BCE, ``prior_epochs`` epochs); the
    other half, unlabeled to it, are a random sample of the particles it has not seen. Its heat-map peaks that
    score at least the held-out half's median, away from the training half, are counted and divided by the
    fraction of unseen particles that reach that level: at least a half less a 90 % Hoeffding margin, so the
    count is an upper bound (Elkan & Noto's held-out estimate, counted at one level; none of it depends on π).
    It only ever lowers the default, twice the labels: with few labels it is noisy (lookalikes pass the median,
    the margin is wide), and too large a prior lifts lookalikes while too small a one only weakens the heat map.
    Where labels cover most particles (200 CCT labels of 246 in the benchmark) it keeps the prior from assuming
    ~200 unlabeled ones. ``None`` where it cannot be measured: fewer than 12 labels (too few held out for the
    margin), or half the held-out labels without a peak.
    """
    if settings.prior_epochs <= 0 or settings.filament:
        return None
    n_all = np.array([len(it.centres) for it in items])
    m = int(n_all.sum()) // 2  # labels held out
    # the fraction of all unseen particles scoring at least the held-out median: a half in the sample; its lower
    # bound at 90 % confidence (Hoeffding) makes the count an upper bound, so noise from few held-out labels
    # leaves the default alone rather than lowering it (below 12 labels the bound is too loose to count)
    frac = (1 - quantile) - np.sqrt(np.log(10) / (2 * max(m, 1)))
    if frac <= 0.05:
        return None
    rng = np.random.default_rng(settings.seed + 7919)
    held = np.split(rng.permutation(int(n_all.sum())) < m, np.cumsum(n_all)[:-1])
    r = settings.geometry().radius()
    half = [TrainingItem(it.volume, targets(it.volume.shape, it.centres[~h], r), it.centres[~h]) for it, h in zip(items, held)]
    torch.manual_seed(settings.seed + 7919)
    gen = torch.Generator().manual_seed(settings.seed + 7919)
    dev = resolve_device(device)
    net = SliceUNet3D(settings.width, settings.blocks).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)

    def step(_):
        x, t = sample_batch(half, settings, rng)
        view, inverse = augment(x.to(dev), gen)
        logits, _ = net(view, with_projection=False)
        return {"loss": bce_loss(inverse(logits), t.to(dev))}

    steps = prior_epochs(settings) * settings.steps_per_epoch
    fit(net, opt, step, steps=steps, every=settings.steps_per_epoch,
        index="epoch", extra={"stage": "prior"}, progress=progress, ping_first=True)
    from scipy.spatial import cKDTree

    r_match = max(1.0, r)

    def near(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each point: whether a centre lies within r_match, and the nearest centre's index."""
        if not len(points) or not len(centres):
            return np.zeros(len(points), bool), np.zeros(len(points), int)
        d, i = cKDTree(centres).query(points)
        return d <= r_match, i

    blocks, weights = scored_blocks(items, held, steps * SCORED_VOXELS_PER_STEP, rng)
    unlabeled, unlabeled_weight, held_scores = [], [], []
    load = [it.volume.size if c is None else len(c) for it, c in zip(items, blocks)]  # what each costs, roughly
    t0 = time.perf_counter()
    for k, (it, tr, h, chosen, w) in enumerate(zip(items, half, held, blocks, weights)):
        heat = prepared_heat_map(net, it.volume, blocks=chosen)
        if progress:
            spent = time.perf_counter() - t0
            progress({"stage": "prior-scoring", "tomogram": k + 1, "tomograms": len(items), "seconds": spent,
                      "eta_s": spent / sum(load[: k + 1]) * sum(load[k + 1 :])})
        p, sc = nms(heat, r_match, 0.02, footprint="box")
        p, sc = np.asarray(p, float).reshape(-1, 3), np.asarray(sc, float)
        found, i = near(it.centres[h], p)
        held_scores += list(np.where(found, sc[i] if len(sc) else 0.0, 0.0))
        away = ~near(p, tr.centres)[0]
        unlabeled.append(sc[away])
        unlabeled_weight.append(np.ones(int(away.sum())) if w is None else w[block_index(p[away], it.volume.shape)])
    level = float(np.quantile(held_scores, quantile))
    if level <= 0.02:
        return None
    est = [len(tr.centres) + float(w[sc >= level].sum()) / frac for tr, sc, w in zip(half, unlabeled, unlabeled_weight)]
    return [float(np.clip(e, n, 2 * n)) for e, n in zip(est, n_all)]


def prior_estimate(items: list[TrainingItem], settings: TomoSettings, dev: torch.device, checkpoint, resume: bool,
                    progress: Callable[[dict], None] | None) -> list[float] | None:
    """:func:`estimate_particles` (none with ``expected_particles``), reporting its epochs with ``stage: prior``
    and each training tomogram it scores with ``stage: prior-scoring``, with a time left that counts the training
    after it; saved beside the checkpoint, so that a resumed run does
    not estimate again."""
    if settings.expected_particles:
        return None
    key = {"settings": modelfile.settings_dict(settings), "labels": [it.centres.tolist() for it in items]}
    saved = Path(str(checkpoint) + ".prior.json") if checkpoint is not None else None
    if resume and saved is not None and saved.is_file():
        try:
            stored = json.loads(saved.read_text())
            if stored.get("key") == json.loads(json.dumps(key)):
                return stored["estimate"]
        except (OSError, ValueError):
            pass
    main_steps = settings.epochs * settings.steps_per_epoch
    per_step_seen = [0.0]  # seconds per step of the quick model, as last measured

    def report(rec: dict) -> None:
        if progress and rec.get("stage") == "prior-scoring":
            progress({**rec, "eta_s": rec["eta_s"] + 2 * per_step_seen[0] * main_steps})
        elif progress:
            per_step = rec["seconds"] / (1 if rec.get("first_step") else rec["epoch"] * settings.steps_per_epoch)
            per_step_seen[0] = per_step
            # a training step works on two views and the contrastive head: about twice a prior step
            progress({**rec, "prior_epochs": prior_epochs(settings),
                      "eta_s": rec["eta_s"] + 2 * per_step * main_steps})

    estimate = estimate_particles(items, settings, device=dev, progress=report)
    if saved is not None:
        with atomic_path(saved) as tmp:
            Path(tmp).write_text(json.dumps({"key": key, "estimate": estimate}))
    return estimate
