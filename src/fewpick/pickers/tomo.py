"""Few-shot particle localization in tomograms (MiLoPYP's localization module).

From a few labeled centres, a :class:`~fewpick.nn.unet.SliceUNet3D` learns a per-voxel centre heat map:

- the tomogram is binned so that the particle is about ``target_diameter`` voxels wide, denoised with a
  Gaussian, and standardised;
- training draws small subtomograms (``box × box × depth``, 64 × 64 × 5 by default; half of them around
  a label), so its cost does not grow with the tomogram;
- targets are Gaussians splatted on the labels (the centre voxel is the true positive, the voxels around
  it soft positives, the rest unlabeled), scored by the PU focal loss (or BCE for the ablation);
- each subtomogram and an augmented copy (90° rotation / flip in xy, intensity jitter, noise) form the
  Siamese pair; the copy's outputs are mapped back so both views align voxel by voxel, and the debiased
  voxel contrast (λ1, λ2, λ3) ties their projections;
- Adam, lr 1e-3, ×0.1 every 5 epochs.

Picking runs the network over the whole tomogram in overlapping tiles (bounded memory), then 3D
max-pool NMS on the heat map with a kernel of the particle's size and a threshold. Coordinates are in
voxels of the tomogram as given.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.ndimage as ndi
import torch

from fewpick import modelfile
from fewpick.device import cpu_state, module_device, resolve_device
from fewpick.errors import InputError
from fewpick.geometry import Geometry
from fewpick.io import Image
from fewpick.losses.tomo import bce_loss, pu_focal_loss, voxel_contrast
from fewpick.nn.unet import SliceUNet3D
from fewpick.ops.peaks import nms
from fewpick.ops.resample import block_bin
from fewpick.ops.thresholds import auto_threshold, threshold_at_count
from fewpick.outputs import atomic_path
from fewpick.pickers.base import PickerBase, ScoreMap, picks_table
from fewpick.training import fit, seeded

MODEL_FORMAT = "fewpick-tomo-model"
MODEL_FORMAT_VERSION = 1
LOSSES = ("pu-focal", "bce")
CONTRASTS = ("debiased", "biased", "none")


@dataclass
class TomoSettings:
    """Training settings. Lengths in voxels of the tomogram as given unless stated."""

    diameter: float
    filament: bool = False
    target_diameter: float = 12.0  # the particle's width after binning, voxels
    box: int = 64  # training subtomogram side (binned voxels)
    depth: int = 5  # training subtomogram depth (binned sections)
    width: int = 16
    blocks: int = 4
    batch: int = 8
    epochs: int = 10
    steps_per_epoch: int = 30
    lr: float = 1e-3
    loss: str = "pu-focal"
    gamma: float = 2.0
    contrast: str = "debiased"
    # contrast weights against the heat-map loss per positive voxel: the paper's 0.1, 0.5, 0.1 (1:5:1) ×16, the
    # scale chosen on a validation split of the benchmark's training tomograms (×1, ×4, ×16, ×64 tried)
    lambdas: tuple[float, float, float] = (1.6, 8.0, 1.6)
    expected_particles: float | None = None  # per tomogram; default: twice the labels, or fewer (prior_epochs)
    # epochs of a quick labeled-against-unlabeled classifier trained on half the labels, whose scores of the other
    # half cap the assumed count where labels already cover most particles (:func:`estimate_particles`); 0: off
    prior_epochs: int = 3
    label_link: float = 3.0  # filaments: labels closer than this many diameters are on one filament and joined
    seed: int = 0
    threads: int = 2

    @property
    def bin(self) -> int:
        return self.geometry().factor

    def geometry(self) -> Geometry:
        """Block binning that brings the particle to about ``target_diameter`` voxels."""
        return Geometry.binned(self.diameter, self.target_diameter, block=True)

    def check(self) -> None:
        if not self.diameter > 0:
            raise InputError(None, f"the particle diameter must be positive, got {self.diameter:g}")
        if self.loss not in LOSSES:
            raise InputError(None, f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.contrast not in CONTRASTS:
            raise InputError(None, f"unknown contrast {self.contrast!r}; choose one of {', '.join(CONTRASTS)}")
        if self.box % 2 ** (self.blocks - 1):
            raise InputError(None, f"the box ({self.box}) must be a multiple of {2 ** (self.blocks - 1)} for "
                                   f"{self.blocks} encoder blocks")


@dataclass
class TomoModel(PickerBase):
    """A trained localization model (a :class:`~fewpick.pickers.base.Picker`)."""

    net: SliceUNet3D
    settings: TomoSettings
    pi: float
    voxel_size: float | None
    history: list = field(default_factory=list)
    # probability 0.5, the PU classifier's own boundary; with ``expected_particles`` the level that yields that
    # many picks in the training tomograms (:func:`calibrate_threshold`)
    threshold: float = 0.5
    # the particles assumed in each training tomogram (π's source): expected_particles, the capped estimate, or
    # twice the labels
    particles: list = field(default_factory=list)

    def score_map(self, image: Image | np.ndarray, heat: np.ndarray | None = None) -> ScoreMap:
        """The heat map: the centre probability of every binned voxel (``heat``: one computed already)."""
        if heat is None:
            heat = heat_map(self, image.data if isinstance(image, Image) else image)
        return ScoreMap(heat, self.settings.geometry().to_original)

    def peaks(self, smap: ScoreMap, threshold: float | str | None = "auto", max_picks: int | None = None,
              radius: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """3D non-maximum suppression (see :func:`pick_tomogram`) and the cut."""
        threshold = "auto" if threshold is None else threshold
        if self.settings.filament:
            r = 1.0  # a 3 × 3 × 3 kernel
        else:
            geo = self.settings.geometry()
            r = max(1.0, geo.length(radius)) if radius is not None else geo.radius(minimum=1.0)
        if threshold == "auto" and not self.settings.expected_particles:
            # one NMS pass: greedy suppression only looks at higher peaks, so cutting its output at t ≥ 0.05 is
            # the same as suppressing with threshold t
            zyx, score = nms(smap.scores, r, 0.05, footprint="box")
            keep = score >= auto_threshold(score)
            zyx, score = zyx[keep], score[keep]
        else:
            threshold = self.threshold if threshold == "auto" else float(threshold)
            zyx, score = nms(smap.scores, r, threshold, footprint="box")
        if max_picks is not None:
            zyx, score = zyx[:max_picks], score[:max_picks]
        return zyx, score

    def pick(self, image: Image, threshold: float | str | None = "auto", max_picks: int | None = None,
             radius: float | None = None, filament: dict | None = None) -> pd.DataFrame:
        """See :func:`pick_tomogram`."""
        return pick_tomogram(self, image, threshold, radius, filament=filament, max_picks=max_picks)


# ---------------------------------------------------------------- data


def check_isotropic(path: str | os.PathLike) -> None:
    """Refuse MRC volumes whose header gives different voxel sizes along x, y and z."""
    path = Path(path)
    if path.suffix.lower() not in (".mrc", ".rec", ".map", ".st", ".ali"):
        return
    import mrcfile

    try:
        with mrcfile.mmap(path, mode="r", permissive=True) as m:
            v = m.voxel_size
            sizes = np.array([float(v.x), float(v.y), float(v.z)])
    except Exception:  # unreadable headers are reported by the reader itself
        return
    if np.all(sizes > 0) and (sizes.max() - sizes.min()) > 0.01 * sizes.max():
        raise InputError(path, f"anisotropic voxels ({sizes[0]:g} × {sizes[1]:g} × {sizes[2]:g} Å along x, y, z): "
                               "resample the tomogram to cubic voxels first")


def prepare(volume: np.ndarray, factor: int, sigma: float = 1.0) -> np.ndarray:
    """Bin by ``factor`` (block means), denoise with a Gaussian, standardise, and invert: dense matter bright."""
    v = block_bin(volume, factor)
    v = ndi.gaussian_filter(v, sigma, mode="reflect")
    v -= v.mean()
    v /= v.std() + 1e-6
    return -v


def targets(shape: tuple[int, int, int], centres_zyx: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian splats (σ = radius / 2, peak 1 at the centre voxel, cut below 0.1) on a ``(z, y, x)`` grid."""
    out = np.zeros(shape, np.float32)
    sigma = max(1.0, radius / 2)
    half = int(np.ceil(2.2 * sigma))
    offs = np.arange(-half, half + 1)
    gz, gy, gx = np.meshgrid(offs, offs, offs, indexing="ij")
    for c in np.asarray(centres_zyx, float):
        ci = np.round(c).astype(int)
        d2 = (gz + ci[0] - c[0]) ** 2 + (gy + ci[1] - c[1]) ** 2 + (gx + ci[2] - c[2]) ** 2
        g = np.exp(-d2 / (2 * sigma**2)).astype(np.float32)
        g[g < 0.1] = 0
        sl_out, sl_g = [], []
        for axis in range(3):
            lo, hi = ci[axis] - half, ci[axis] + half + 1
            a, b = max(lo, 0), min(hi, shape[axis])
            if a >= b:
                break
            sl_out.append(slice(a, b))
            sl_g.append(slice(a - lo, b - lo))
        else:
            np.maximum(out[tuple(sl_out)], g[tuple(sl_g)], out=out[tuple(sl_out)])
            out[tuple(np.clip(ci, 0, np.array(shape) - 1))] = 1.0
    return out


def _labels_zyx(labels: pd.DataFrame, image: Image, source) -> np.ndarray:
    if "z" not in labels.columns or labels["z"].isna().all():
        raise InputError(source, "the labels have no z coordinates (a 2D picks file?); a tomogram needs x, y, z")
    xyz = labels[["x", "y", "z"]].to_numpy(float)
    if not np.isfinite(xyz).all():
        raise InputError(source, "some labels have missing or non-finite coordinates")
    nz, ny, nx = image.shape
    bad = (xyz < -0.5).any(1) | (xyz[:, 0] > nx - 0.5) | (xyz[:, 1] > ny - 0.5) | (xyz[:, 2] > nz - 0.5)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(source, f"label {i + 1} at x={xyz[i, 0]:g}, y={xyz[i, 1]:g}, z={xyz[i, 2]:g} lies outside "
                                 f"{image.name} ({nx}×{ny}×{nz} voxels, x×y×z)")
    return xyz[:, ::-1]


@dataclass
class TrainingItem:
    volume: np.ndarray  # prepared, binned (z, y, x)
    target: np.ndarray
    centres: np.ndarray  # binned (z, y, x)


def training_items(tomograms: Sequence[Image], labels: pd.DataFrame, settings: TomoSettings, source) -> list[TrainingItem]:
    b = settings.bin
    items = []
    by_name = {str(k): g for k, g in labels.groupby(labels["micrograph"].astype(str))}
    for im in tomograms:
        rows = by_name.get(im.name)
        if rows is None or not len(rows):
            continue
        zyx = _labels_zyx(rows, im, source)
        vol = prepare(np.asarray(im.data), b)
        if vol.shape[0] < settings.depth or vol.shape[1] < settings.box or vol.shape[2] < settings.box:
            raise InputError(im.path, f"binned ×{b} to {vol.shape[2]}×{vol.shape[1]}×{vol.shape[0]} voxels, smaller "
                                      f"than the training box {settings.box}×{settings.box}×{settings.depth}: "
                                      "use a smaller --box or a smaller binning")
        centres = settings.geometry().to_working(zyx)
        if settings.filament:
            # fibres: TP + unlabeled only (no soft positives). The points clicked along a filament are joined
            # into chains (links shorter than ``label_link`` diameters), and every voxel within one voxel of
            # the joins is a true positive: a few clicks mark the whole centre line. (Single clicked voxels gave
            # π ~ 1e-4 and no heat on realistic tomograms; with this line, training still depends on the seed.)
            from fewpick.pickers.filament import label_segments, rasterise

            line = np.zeros(vol.shape, bool)
            idx = np.clip(np.round(centres).astype(int), 0, np.array(vol.shape) - 1)
            line[tuple(idx.T)] = True
            link = settings.geometry().length(settings.label_link * settings.diameter)
            line[tuple(rasterise(label_segments(centres, link), vol.shape).T)] = True
            tgt = ndi.binary_dilation(line, ndi.generate_binary_structure(3, 1)).astype(np.float32)
        else:
            tgt = targets(vol.shape, centres, settings.geometry().radius())
        items.append(TrainingItem(vol, tgt, centres))
    if not items:
        raise InputError(source, "no label names any of the tomograms given (labels name tomograms by file stem: "
                                 f"{', '.join(sorted(by_name)[:5])})")
    return items


def augment(x: torch.Tensor, gen: torch.Generator):
    """A random xy dihedral transform, intensity jitter and noise; returns the view and the inverse map."""
    k = int(torch.randint(0, 4, (1,), generator=gen))
    flip = bool(torch.rand(1, generator=gen) < 0.5)
    y = torch.rot90(x, k, dims=(-2, -1))
    if flip:
        y = torch.flip(y, dims=(-1,))
    # drawn on the CPU generator and moved: the same draws on any device
    scale = (0.8 + 0.4 * torch.rand(x.shape[0], generator=gen)).to(x.device)
    shift = (0.4 * torch.rand(x.shape[0], generator=gen) - 0.2).to(x.device)
    y = y * scale.view(-1, *[1] * (x.dim() - 1)) + shift.view(-1, *[1] * (x.dim() - 1))
    y = y + 0.1 * torch.randn(y.shape, generator=gen).to(x.device)

    def inverse(t: torch.Tensor) -> torch.Tensor:
        if flip:
            t = torch.flip(t, dims=(-1,))
        return torch.rot90(t, -k, dims=(-2, -1))

    return y, inverse


def _sample(items: list[TrainingItem], settings: TomoSettings, rng: np.random.Generator):
    d, s = settings.depth, settings.box
    xs, ts = [], []
    for _ in range(settings.batch):
        it = items[rng.integers(len(items))]
        nz, ny, nx = it.volume.shape
        if rng.random() < 0.5 and len(it.centres):
            c = it.centres[rng.integers(len(it.centres))] + np.array([rng.integers(-1, 2), *rng.integers(-s // 4, s // 4 + 1, 2)])
            z0, y0, x0 = int(round(c[0])) - d // 2, int(round(c[1])) - s // 2, int(round(c[2])) - s // 2
        else:
            z0, y0, x0 = rng.integers(0, nz - d + 1), rng.integers(0, ny - s + 1), rng.integers(0, nx - s + 1)
        z0, y0, x0 = int(np.clip(z0, 0, nz - d)), int(np.clip(y0, 0, ny - s)), int(np.clip(x0, 0, nx - s))
        xs.append(it.volume[z0 : z0 + d, y0 : y0 + s, x0 : x0 + s])
        ts.append(it.target[z0 : z0 + d, y0 : y0 + s, x0 : x0 + s])
    return torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ts))


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
    held = rng.permutation(int(n_all.sum())) < m
    held = np.split(held, np.cumsum(n_all)[:-1])
    r = settings.geometry().radius()
    half = [TrainingItem(it.volume, targets(it.volume.shape, it.centres[~h], r), it.centres[~h]) for it, h in zip(items, held)]
    torch.manual_seed(settings.seed + 7919)
    gen = torch.Generator().manual_seed(settings.seed + 7919)
    dev = resolve_device(device)
    net = SliceUNet3D(settings.width, settings.blocks).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)

    def step(_):
        x, t = _sample(half, settings, rng)
        view, inverse = augment(x.to(dev), gen)
        logits, _ = net(view, with_projection=False)
        return {"loss": bce_loss(inverse(logits), t.to(dev))}

    fit(net, opt, step, steps=settings.prior_epochs * settings.steps_per_epoch, every=settings.steps_per_epoch,
        index="epoch", extra={"stage": "prior"}, progress=progress, ping_first=True)
    from scipy.spatial import cKDTree

    r_match = max(1.0, r)

    def near(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each point: whether a centre lies within r_match, and the nearest centre's index."""
        if not len(points) or not len(centres):
            return np.zeros(len(points), bool), np.zeros(len(points), int)
        d, i = cKDTree(centres).query(points)
        return d <= r_match, i

    unlabeled, held_scores = [], []
    for it, tr, h in zip(items, half, held):
        p, sc = nms(_heat(net, it.volume), r_match, 0.02, footprint="box")
        p, sc = np.asarray(p, float).reshape(-1, 3), np.asarray(sc, float)
        found, i = near(it.centres[h], p)
        held_scores += list(np.where(found, sc[i] if len(sc) else 0.0, 0.0))
        unlabeled.append(sc[~near(p, tr.centres)[0]])
    level = float(np.quantile(held_scores, quantile))
    if level <= 0.02:
        return None
    est = [len(tr.centres) + (sc >= level).sum() / frac for tr, sc in zip(half, unlabeled)]
    return [float(np.clip(e, n, 2 * n)) for e, n in zip(est, n_all)]


def _prior_estimate(items: list[TrainingItem], settings: TomoSettings, dev: torch.device, checkpoint, resume: bool,
                    progress: Callable[[dict], None] | None) -> list[float] | None:
    """:func:`estimate_particles` (none with ``expected_particles``), reporting its epochs with ``stage: prior``
    and a time left that counts the training after it; saved beside the checkpoint, so that a resumed run does
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

    def report(rec: dict) -> None:
        if progress:
            per_step = rec["seconds"] / (1 if rec.get("first_step") else rec["epoch"] * settings.steps_per_epoch)
            # a training step works on two views and the contrastive head: about twice a prior step
            progress({**rec, "prior_epochs": settings.prior_epochs,
                      "eta_s": rec["eta_s"] + 2 * per_step * main_steps})

    estimate = estimate_particles(items, settings, device=dev, progress=report)
    if saved is not None:
        with atomic_path(saved) as tmp:
            Path(tmp).write_text(json.dumps({"key": key, "estimate": estimate}))
    return estimate


def train(tomograms: Sequence[Image], labels: pd.DataFrame, settings: TomoSettings, *, source=None,
          progress: Callable[[dict], None] | None = None, device: str | torch.device = "auto",
          checkpoint: str | os.PathLike | None = None, resume: bool = False,
          out: str | os.PathLike | None = None) -> TomoModel:
    """Train a localization model on labeled tomograms (labels name them by file stem) on ``device``, and save it
    to ``out`` when given. With ``checkpoint`` the state is saved after every epoch; ``resume`` continues an
    interrupted run from it."""
    settings.check()
    dev = resolve_device(device)
    torch.set_num_threads(settings.threads)
    for im in tomograms:
        check_isotropic(im.path)
    items = training_items(tomograms, labels, settings, source)
    if resume and (checkpoint is None or not Path(checkpoint).is_file()):
        raise InputError(checkpoint, "no checkpoint to resume from")
    t0 = time.perf_counter()
    estimate = _prior_estimate(items, settings, dev, checkpoint, resume, progress)
    counts = assumed_particles(items, settings, estimate)
    if progress and estimate is not None:
        progress({"estimated": sum(counts), "labels": sum(len(it.centres) for it in items), "tomograms": len(items),
                  "seconds": round(time.perf_counter() - t0, 1)})
    pi, pi_u = class_prior(items, settings, counts)
    rng, gen = seeded(settings.seed)
    net = SliceUNet3D(settings.width, settings.blocks).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5 * settings.steps_per_epoch, gamma=0.1)
    use_contrast = settings.contrast != "none"

    def step(_):
        x, t = _sample(items, settings, rng)
        x, t = x.to(dev), t.to(dev)
        view, inverse = augment(x, gen)
        both = torch.cat([x, view])
        logits, proj = net(both, with_projection=use_contrast)
        b = x.shape[0]
        z1, z2 = logits[:b], inverse(logits[b:])
        if settings.loss == "pu-focal":
            heat = 0.5 * (pu_focal_loss(z1, t, pi, settings.gamma, pi_unlabeled=pi_u)
                          + pu_focal_loss(z2, t, pi, settings.gamma, pi_unlabeled=pi_u))
        else:
            heat = 0.5 * (bce_loss(z1, t) + bce_loss(z2, t))
        con = heat.new_zeros(())
        if use_contrast:
            prob = torch.sigmoid(0.5 * (z1 + z2)).detach()
            con = voxel_contrast(proj[:b], inverse(proj[b:]), t, prob, pi_u, weights=settings.lambdas,
                                 biased=settings.contrast == "biased", generator=gen)
        return {"loss": heat + con, "heat": heat, "contrast": con}

    config = {"settings": modelfile.settings_dict(settings), "tomograms": [im.name for im in tomograms],
              "labels": [it.centres.tolist() for it in items], "pi": pi}
    history = fit(net, opt, step, steps=settings.epochs * settings.steps_per_epoch, every=settings.steps_per_epoch,
                  sched=sched, generators=(rng, gen), checkpoint=checkpoint, resume=resume, config=config,
                  index="epoch", progress=progress, ping_first=True)
    model = TomoModel(net, settings, pi, tomograms[0].pixel_size if tomograms else None, history, particles=counts)
    if settings.expected_particles:
        model.threshold = calibrate_threshold(model, items)
    if out is not None:
        save_model(model, out)
    return model


def calibrate_threshold(model: TomoModel, items: list[TrainingItem]) -> float:
    """The heat-map level at which each training tomogram yields the particles assumed in it
    (:func:`assumed_particles`), median over tomograms, within [0.05, 0.95]."""
    r = model.settings.geometry().radius(minimum=1.0)
    peaks = [nms(_heat(model.net, it.volume), r, 0.0, footprint="box")[1] for it in items]
    counts = model.particles or assumed_particles(items, model.settings)
    return float(np.clip(threshold_at_count(peaks, counts, empty=0.5), 0.05, 0.95))


# ---------------------------------------------------------------- inference


def heat_map(model: TomoModel, volume: np.ndarray, tile: int = 256, chunk: int = 16) -> np.ndarray:
    """The centre probability of every binned voxel ``(z, y, x)`` of a tomogram as given."""
    return _heat(model.net, prepare(np.asarray(volume), model.settings.bin), tile, chunk)


@torch.no_grad()
def _heat(net: SliceUNet3D, v: np.ndarray, tile: int = 256, chunk: int = 16) -> np.ndarray:
    """Heat map of a prepared volume: overlapping xy tiles, z in chunks with a halo for the fusion convolution,
    on the device the network is on."""
    net.eval()
    dev = module_device(net)
    nz, ny, nx = v.shape
    m = net.multiple
    halo_xy = 16
    halo_z = net.config["fuse"] // 2
    out = np.zeros(v.shape, np.float32)
    step = max(m, tile - 2 * halo_xy)
    for z0 in range(0, nz, chunk):
        za, zb = max(0, z0 - halo_z), min(nz, z0 + chunk + halo_z)
        for y0 in range(0, ny, step):
            for x0 in range(0, nx, step):
                ya, yb = max(0, y0 - halo_xy), min(ny, y0 + step + halo_xy)
                xa, xb = max(0, x0 - halo_xy), min(nx, x0 + step + halo_xy)
                block = v[za:zb, ya:yb, xa:xb]
                ph, pw = (-block.shape[1]) % m, (-block.shape[2]) % m
                if ph or pw:
                    block = np.pad(block, ((0, 0), (0, ph), (0, pw)), mode="reflect")
                logits, _ = net(torch.from_numpy(np.ascontiguousarray(block))[None, None].to(dev), with_projection=False)
                p = torch.sigmoid(logits[0]).cpu().numpy()[:, : yb - ya, : xb - xa]
                zs, ys, xs = z0 - za, y0 - ya, x0 - xa
                ze, ye, xe = min(nz, z0 + chunk), min(ny, y0 + step), min(nx, x0 + step)
                out[z0:ze, y0:ye, x0:xe] = p[zs : zs + ze - z0, ys : ys + ye - y0, xs : xs + xe - x0]
    return out


def pick_tomogram(model: TomoModel, image: Image, threshold: float | str | None = "auto", radius: float | None = None,
                  heat: np.ndarray | None = None, filament: dict | None = None,
                  max_picks: int | None = None) -> pd.DataFrame:
    """Picks ``(micrograph, x, y, z, score)`` in the tomogram's voxels: 3D NMS on the heat map (kernel of the
    particle's radius unless ``radius`` is given, in the tomogram's voxels), scores ≥ ``threshold``.

    ``"auto"``: the model's calibrated threshold when it was trained with ``expected_particles``, else
    :func:`auto_threshold` of this tomogram's peaks.

    Filament models: NMS with a kernel of 3 binned voxels, then :func:`~fewpick.pickers.filament.trace_filaments`
    (``filament`` holds its options: ``link`` in the tomogram's voxels, default the filament's diameter, and
    ``max_residual``, ``max_curvature``, ``step``, ``min_points``); the output has ``rlnHelicalTubeID``."""
    smap = model.score_map(image, heat)
    zyx, score = model.peaks(smap, threshold, max_picks, radius)
    picks = picks_table(image.name, smap.to_original(zyx), score)
    if model.settings.filament:
        from fewpick.pickers.filament import trace_filaments

        opts = {"link": model.settings.diameter, **(filament or {})}
        picks = trace_filaments(picks, **opts)
    return picks


# ---------------------------------------------------------------- files


def save_model(model: TomoModel, path: str | os.PathLike) -> Path:
    return modelfile.save(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, model.settings, config=model.net.config,
                          pi=model.pi, voxel_size=model.voxel_size, history=model.history, threshold=model.threshold,
                          particles=model.particles, state_dict=cpu_state(model.net))


def model_summary(model: TomoModel) -> str:
    """One line describing a model, for the command line."""
    s = model.settings
    return (f"tomogram localization model ({'filament' if s.filament else 'particle'} {s.diameter:g} voxels, "
            f"binned ×{s.bin}, π {model.pi:.3g} from {sum(model.particles):.0f} particles assumed in "
            f"{len(model.particles)} training tomograms)")


def load_model(path: str | os.PathLike, device: str | torch.device = "auto") -> TomoModel:
    what = "tomogram localization model"
    bundle = modelfile.load(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, what)
    settings = modelfile.settings_from(TomoSettings, bundle["settings"], path, what)
    settings.lambdas = tuple(settings.lambdas)
    net = SliceUNet3D(**bundle["config"])
    try:
        net.load_state_dict(bundle["state_dict"])
    except RuntimeError as exc:
        raise InputError(Path(path), f"model weights do not fit the network it describes ({str(exc)[:120]})") from None
    net.eval().to(resolve_device(device))
    return TomoModel(net, settings, float(bundle["pi"]), bundle.get("voxel_size"), list(bundle.get("history", [])),
                     float(bundle.get("threshold", 0.5)), list(bundle.get("particles", [])))
