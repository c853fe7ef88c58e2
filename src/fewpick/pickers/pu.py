"""Positive-unlabeled CNN picker (Topaz-class; seed 003, SPEC §1).

Training reads micrographs and a few labeled particle centres. Each micrograph is
Fourier-binned so the particle is 12–16 px across and robustly normalised; pixels within
``label_radius`` (binned px) of a labeled centre are positives, all others unlabeled.
A small dilated residual CNN (receptive field ≈ the particle) is trained on random
tiles — half of them around labeled particles — with 90° rotations and flips (Adam, cosine
learning-rate decay), on a PU
objective (:mod:`fewpick.losses.pu`) over the tiles' interior pixels, optionally plus
the autoencoder term ``a·‖x − x'‖²``. Picking applies the CNN to whole binned
micrographs and extracts peaks by non-maximum suppression with the particle radius.
Scores are logits (log-odds); higher is more particle-like; 0 means probability ½.

Round particles: after training, the labelled particles' rotational average is matched (local normalised
correlation) on the training micrographs. Where the network's best peaks there are nearly the same as the
correlation's (at least ``AGREEMENT`` of the expected count in common: the rotational average describes the
particle, as for apoferritin), each pick moves to the best correlation within a quarter diameter and scores
its logit plus the correlation, weighted so that both spread alike over the best training peaks. Elsewhere
(particles that are not round, other complexes of their size around) the correlation is left out.

Micrograph edges: where the labels leave a band along the edges empty although particles spread evenly would
put at least ``EDGE_EXPECTED`` labels there (the user does not pick particles cut by the edge), picks lying more
than a particle radius closer to the edge than the closest label are dropped (at most a radius from the edge).
With a few labels the band says nothing and every pick is kept; ``edge_margin`` sets the band instead.

The class prior π is the fraction of unlabeled pixels that are positive: the expected
number of particles per micrograph × the area of a label **disk** (2D: π r², not a
ball) ÷ the binned micrograph's area.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from fewpick import modelfile
from fewpick.device import cpu_state, resolve_device
from fewpick.errors import InputError
from fewpick.geometry import Geometry, choose_binning, finest_binning
from fewpick.io.images import Image, match_names
from fewpick.io.picks import check_inside
from fewpick.losses.pu import PU_METHODS, pu_loss
from fewpick.nn.cnn import PickerCNN
from fewpick.nn.dense import dense_logits
from fewpick.ops.filters import normalize
from fewpick.ops.peaks import auto_min_distance, ball, best_within, greedy_keep, nms
from fewpick.ops.resample import bin_image
from fewpick.ops.thresholds import threshold_at_count, threshold_gmm
from fewpick.pickers.base import PickerBase, ScoreMap, picks_table
from fewpick.training import fit, seeded

MODEL_FORMAT = "fewpick-pu-model"
MODEL_FORMAT_VERSION = 1
AGREEMENT = 0.9  # the share of the network's best training peaks the correlation must also rank best
CENTRE = 0.25  # picks move to the best correlation within this many diameters
EDGE_EXPECTED = 3.0  # labels an empty edge band must have been expected to hold (chance of none: e^-3 ≈ 5 %)


@dataclass
class PUSettings:
    """Everything that defines a PU picker; stored in the model file.

    Lengths are original pixels unless named ``binned``.
    """

    diameter: float
    method: str = "ge-binomial"
    pi: float | None = None
    expected_particles: float | None = None
    label_radius_binned: float | None = None  # default: 15 % of the binned diameter, at least 1.5 px
    bin_factor: int | None = None
    ge_weight: float = 1.0  # λ of GE-KL / GE-binomial
    slack: float = 0.0  # β of nnPU
    autoencoder: float = 0.0  # a: weight of the reconstruction error (0 = classifier only)
    width: int = 16  # channels of the network
    dilations: tuple[int, ...] = (1, 2, 3)  # one residual block per entry (see PickerCNN)
    binned_diameter: float = 16.0  # the particle's largest diameter after binning (see finest_binning)
    steps: int = 1500
    steps_per_epoch: int = 100
    batch: int = 8
    tile: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-5
    unlabeled_per_tile: int = 256  # unlabeled pixels drawn from each tile for the loss
    # picks closer than this fraction of the particle radius suppress each other; None: automatic at training
    # (see auto_min_distance), and 1 for models written before it existed
    min_distance: float | None = None
    # after training, test the labelled particles' rotational average; centre and rescore picks on it where
    # it agrees with the network (see the module)
    correlation: bool = True
    # picks closer than this many particle diameters to the micrograph edge are dropped; None: from the labels at
    # training (see the module), and 0 for models written before it existed
    edge_margin: float | None = None
    seed: int = 0
    threads: int = 2

    def geometry(self) -> Geometry:
        """Fourier binning by ``bin_factor``, else the finest that brings the particle to at most ``binned_diameter``
        (16) binned px and at least 3/4 of that where an integer factor allows (:func:`finest_binning`)."""
        return Geometry.binned(self.diameter, self.binned_diameter,
                               factor=self.bin_factor or finest_binning(self.diameter, self.binned_diameter))

    def factor(self) -> int:
        return self.geometry().factor

    def label_radius(self) -> float:
        return self.label_radius_binned or self.geometry().radius(0.3, minimum=1.5)

    def particles_in(self, pi: float, binned_area: float) -> float:
        """Particles expected on a micrograph of this binned area: ``--expected-particles``, else from π
        (each particle's label disk covers the fraction π of the unlabeled pixels)."""
        if self.expected_particles:
            return float(self.expected_particles)
        return pi * binned_area / float(ball(self.label_radius(), 2).sum())

    def edge_band(self) -> float:
        """Width (binned px) of the band along the edges where picks are dropped."""
        return (self.edge_margin or 0.0) * self.geometry().working_diameter

    def suppression_radius(self) -> float:
        """Radius of the non-maximum suppression, binned px (at least 1)."""
        return self.geometry().radius(1.0 if self.min_distance is None else self.min_distance, minimum=1.0)



@dataclass
class PUModel(PickerBase):
    """A trained picker: the network and every setting needed to use it (a :class:`~fewpick.pickers.base.Picker`)."""

    net: PickerCNN
    settings: PUSettings
    pi: float
    pixel_size: float | None
    history: list = field(default_factory=list)
    threshold: float = 0.0  # default score cut (logit), calibrated on the training micrographs
    template: np.ndarray | None = None  # the labelled particles' rotational average (binned px), when used
    correlation_weight: float = 0.0  # logits per unit of correlation in the score (0: correlation not used)
    agreement: float | None = None  # the share of best training peaks the network and the correlation share
    # run-time choice, not stored: bfloat16 convolutions when picking on a GPU. Off: on an H100 it saved no
    # time (reading and binning dominate) and moved 0.3–1.2 % of the picks (bench/results/gpu.md)
    mixed_precision: bool = False

    @property
    def factor(self) -> int:
        return self.settings.factor()

    @property
    def uses_correlation(self) -> bool:
        return self.template is not None and self.correlation_weight > 0

    def score_map(self, image: Image | np.ndarray) -> ScoreMap:
        """Logits on the binned grid (and, for a model that uses it, the correlation map in ``extra``)."""
        data = image.data if isinstance(image, Image) else image
        binned, scale = _binned(self, data)
        extra = {"correlation": correlation_map(binned, self.template, self.settings)} if self.uses_correlation else {}
        return ScoreMap(dense_logits(self.net, binned, self.mixed_precision),
                        functools.partial(self.settings.geometry().to_original, scale=scale), extra)

    def peaks(self, smap: ScoreMap, threshold: float | str | None = None,
              max_picks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Non-maximum suppression at the model's pick distance (for a model that uses the correlation: each
        peak centred and rescored on it, then suppressed again), outside the model's edge band; ``threshold``: a
        score, ``auto`` (a two-Gaussian split of this micrograph's peaks) or None (the model's calibrated default)."""
        threshold = self.threshold if threshold is None else threshold
        thr = -np.inf if threshold == "auto" else float(threshold)
        coords, scores = all_peaks(self, smap.scores, smap.extra.get("correlation"))
        keep = scores >= thr
        coords, scores = coords[keep][:max_picks], scores[keep][:max_picks]
        if threshold == "auto" and len(scores):
            keep = scores >= threshold_gmm(scores)
            coords, scores = coords[keep], scores[keep]
        return coords, scores


# ---------------------------------------------------------------- data


def prepare(data: np.ndarray, factor: int, threads: int | None = None) -> np.ndarray:
    """The network's input: Fourier-binned by ``factor`` (FFTs on ``threads``) and robustly normalised (clipped
    at ±6)."""
    return normalize(bin_image(data, factor, threads), clip=6.0)


# ---------------------------------------------------------------- the labels' rotational average


def correlation_radius(settings: PUSettings) -> float:
    """Radius (binned px) within which the template is matched: 0.6 particle diameters."""
    return 0.6 * settings.geometry().working_diameter


def correlation_map(binned: np.ndarray, template: np.ndarray, settings: PUSettings) -> np.ndarray:
    """Local normalised correlation of a prepared micrograph with ``template``, on the binned grid."""
    from fewpick.ops.templates import template_score_map

    return template_score_map(binned, np.asarray(template, np.float32)[None], correlation_radius(settings))


def label_template(items: Sequence[TrainingItem], settings: PUSettings, rng: np.random.Generator,
                   most: int = 400) -> np.ndarray:
    """The labelled particles' rotational average on the binned grid (at most ``most`` of them, drawn at random),
    from windows 1.2 diameters wide about each label (:func:`fewpick.pickers.fewshot.rotational_template`)."""
    from fewpick.ops.templates import rotational_template

    n = int(np.ceil(1.2 * settings.geometry().working_diameter)) | 1
    h = n // 2
    windows = []
    for it in items:
        if len(it.centres):
            padded = np.pad(it.image, h, mode="reflect")
            windows += [padded[cy : cy + n, cx : cx + n] for cy, cx in np.round(it.centres).astype(int)]
    if len(windows) > most:
        windows = [windows[i] for i in np.sort(rng.choice(len(windows), most, replace=False))]
    return rotational_template(np.stack(windows), correlation_radius(settings))


def centred_on_correlation(coords: np.ndarray, corr: np.ndarray, settings: PUSettings) -> np.ndarray:
    """Each peak (binned grid) moved to the best correlation within ``CENTRE`` diameters (whole pixels)."""
    return best_within(corr, coords, CENTRE * settings.geometry().working_diameter)


def rescored_peaks(model: PUModel, logits: np.ndarray, corr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every peak of ``logits`` centred on the correlation and scored ``logit + weight × correlation``, suppressed
    again at the model's pick distance; best first."""
    coords, values = nms(logits, model.settings.suppression_radius(), -np.inf)
    if not len(values):
        return coords, values
    moved = centred_on_correlation(coords, corr, model.settings)
    score = values + model.correlation_weight * corr[moved[:, 0], moved[:, 1]]
    order = np.argsort(-score, kind="stable")
    moved, score = moved[order].astype(float), score[order].astype(np.float32)
    keep = greedy_keep(moved, model.settings.suppression_radius())
    return moved[keep], score[keep]


def all_peaks(model: PUModel, logits: np.ndarray, corr: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every peak of one micrograph's logit map, best first: suppressed at the model's pick distance (with ``corr``,
    the correlation map of a model that uses it: centred and rescored, :func:`rescored_peaks`), outside the edge
    band."""
    if corr is not None:
        coords, scores = rescored_peaks(model, logits, corr)
    else:
        coords, scores = nms(logits, model.settings.suppression_radius(), -np.inf)
    band = model.settings.edge_band()
    if band > 0 and len(coords):
        h, w = logits.shape
        keep = ((coords[:, 0] >= band) & (coords[:, 0] <= h - 1 - band) & (coords[:, 1] >= band)
                & (coords[:, 1] <= w - 1 - band))
        coords, scores = coords[keep], scores[keep]
    return coords, scores


def label_edge_margin(labels: dict[str, pd.DataFrame], shapes: dict[str, tuple[int, int]], diameter: float) -> float:
    """The edge band (particle diameters) that ``labels`` (per micrograph, original px) ask for: the closest label's
    distance to its micrograph's edge, at most one diameter, less a radius, where no label in that band is
    significant (particles spread evenly would put at least ``EDGE_EXPECTED`` there); else 0."""
    dist, count = [], {}
    for name, rows in labels.items():
        h, w = shapes[name]
        y, x = rows["y"].to_numpy(float), rows["x"].to_numpy(float)
        dist.append(np.minimum.reduce([y, x, h - 1 - y, w - 1 - x]))
        count[name] = len(rows)
    if not dist:
        return 0.0
    band = min(float(np.concatenate(dist).min()), diameter)
    expected = sum(n * (1 - max(0.0, shapes[m][0] - 2 * band) * max(0.0, shapes[m][1] - 2 * band)
                        / (shapes[m][0] * shapes[m][1])) for m, n in count.items())
    if expected < EDGE_EXPECTED:
        return 0.0
    return max(0.0, band - diameter / 2) / diameter


def fit_correlation(model: PUModel, items: Sequence[TrainingItem], logits: Sequence[np.ndarray],
                    rng: np.random.Generator) -> list[np.ndarray]:
    """Decide whether the model uses the labels' rotational average (see the module): sets ``template``,
    ``correlation_weight`` (0 where the agreement is below ``AGREEMENT``) and ``agreement``. ``logits``: the
    network's maps of ``items``. Returns the items' correlation maps."""
    s = model.settings
    template = label_template(items, s, rng)
    logit_peaks, corr_peaks, maps = [], [], []
    for it, z in zip(items, logits):
        coords, values = nms(z, s.suppression_radius(), -np.inf)
        corr = correlation_map(it.image, template, s)
        maps.append(corr)
        moved = centred_on_correlation(coords, corr, s)
        logit_peaks.append(values)
        corr_peaks.append(corr[moved[:, 0], moved[:, 1]])
    logit_peaks, corr_peaks = np.concatenate(logit_peaks), np.concatenate(corr_peaks)
    expected = sum(s.particles_in(model.pi, it.image.size) for it in items)
    k = int(np.clip(round(expected), 1, len(logit_peaks)))
    best_logit, best_corr = np.argsort(-logit_peaks)[:k], np.argsort(-corr_peaks)[:k]
    model.agreement = float(len(np.intersect1d(best_logit, best_corr)) / k)
    top = np.argsort(-logit_peaks)[: min(len(logit_peaks), 2 * k)]
    spread = float(np.std(corr_peaks[top]))
    if model.agreement >= AGREEMENT and spread > 0:
        model.template = template
        model.correlation_weight = float(np.std(logit_peaks[top]) / spread)
    else:
        model.template, model.correlation_weight = None, 0.0
    return maps


@dataclass
class TrainingItem:
    name: str
    image: np.ndarray  # binned, normalised
    mask: np.ndarray  # bool positives
    centres: np.ndarray  # (n, 2) binned (row, col) of labels


def _positive_mask(shape, centres_rc: np.ndarray, radius: float) -> np.ndarray:
    mask = np.zeros(shape, bool)
    disk = ball(radius, 2)
    r = disk.shape[0] // 2
    for cy, cx in np.round(centres_rc).astype(int):
        y0, y1, x0, x1 = cy - r, cy + r + 1, cx - r, cx + r + 1
        dy0, dx0 = max(0, -y0), max(0, -x0)
        dy1, dx1 = disk.shape[0] - max(0, y1 - shape[0]), disk.shape[1] - max(0, x1 - shape[1])
        if dy1 > dy0 and dx1 > dx0:
            mask[max(0, y0) : min(shape[0], y1), max(0, x0) : min(shape[1], x1)] |= disk[dy0:dy1, dx0:dx1]
    return mask


def labels_by_micrograph(images: Sequence[Image], labels: pd.DataFrame, source) -> dict[str, pd.DataFrame]:
    names = [im.name for im in images]
    wanted = list(dict.fromkeys(labels["micrograph"].astype(str)))
    pairs = match_names(wanted, names)
    missing = [w for w in wanted if w not in pairs]
    if missing:
        raise InputError(source, f"labels name micrograph {missing[0]!r}, which is not among the images given "
                                 f"({len(missing)} such name(s))")
    out = {}
    shapes = {im.name: im.shape for im in images}
    for w, name in pairs.items():
        rows = labels[labels["micrograph"].astype(str) == w].assign(micrograph=name)
        check_inside(rows, {name: shapes[name]}, source)
        out[name] = rows
    return out


def training_items(images: Sequence[Image], labels: dict[str, pd.DataFrame], settings: PUSettings) -> list[TrainingItem]:
    items = []
    geo = settings.geometry()
    for im in images:
        binned = prepare(im.data, geo.factor)
        rows = labels.get(im.name)
        centres = (geo.to_working(rows[["y", "x"]].to_numpy(float), Geometry.scale(im.shape, binned.shape))
                   if rows is not None and len(rows) else np.zeros((0, 2)))
        items.append(TrainingItem(im.name, binned, _positive_mask(binned.shape, centres, settings.label_radius()), centres))
    return items


def class_prior(expected_particles: float, label_radius: float, binned_shapes: Sequence[tuple[int, int]]) -> float:
    """π = expected particles per micrograph × label disk area / binned micrograph area (mean over micrographs)."""
    disk = float(ball(label_radius, 2).sum())
    return float(np.mean([expected_particles * disk / (h * w) for h, w in binned_shapes]))


# ---------------------------------------------------------------- model files


def save_model(model: PUModel, path: str | os.PathLike) -> Path:
    """Write a self-describing model file (atomically; see :mod:`fewpick.modelfile`)."""
    return modelfile.save(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, model.settings, pi=model.pi,
                          pixel_size=model.pixel_size, receptive_field=model.net.receptive_field,
                          state_dict=cpu_state(model.net), history=model.history, threshold=model.threshold,
                          template=None if model.template is None else torch.from_numpy(np.asarray(model.template,
                                                                                                     np.float32)),
                          correlation_weight=model.correlation_weight, agreement=model.agreement)


def build_network(settings: PUSettings) -> PickerCNN:
    return PickerCNN(width=settings.width, dilations=tuple(settings.dilations),
                     decoder_patch=7 if settings.autoencoder > 0 else 0)


def load_model(path: str | os.PathLike, device: str | torch.device = "auto") -> PUModel:
    """Read a model file written by :func:`save_model` onto ``device``; clear errors for anything else."""
    path = Path(path)
    bundle = modelfile.load(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, "PU picker model")
    settings = modelfile.settings_from(PUSettings, bundle["settings"], path, "PU picker model")
    if settings.bin_factor is None and "edge_margin" not in bundle["settings"]:
        # written before the binning became the finest to at most 16 px: it was binned to the nearest 16 px
        settings.bin_factor = choose_binning(settings.diameter, settings.binned_diameter)
    net = build_network(settings)
    try:
        net.load_state_dict(bundle["state_dict"])
    except RuntimeError as exc:
        raise InputError(path, f"model weights do not fit the network it describes ({str(exc)[:120]})") from None
    net.eval().to(resolve_device(device))
    template = bundle.get("template")
    return PUModel(net, settings, float(bundle["pi"]), bundle.get("pixel_size"), list(bundle.get("history", [])),
                   float(bundle.get("threshold", 0.0)),
                   template=None if template is None else np.asarray(template, np.float32),
                   correlation_weight=float(bundle.get("correlation_weight", 0.0)), agreement=bundle.get("agreement"))


# ---------------------------------------------------------------- training


def _sample_batch(items: list[TrainingItem], settings: PUSettings, rng: np.random.Generator):
    t = settings.tile
    xs, ms = [], []
    weights = np.array([it.image.size for it in items], float)
    weights /= weights.sum()
    labeled = [i for i, it in enumerate(items) if len(it.centres)]
    for b in range(settings.batch):
        if labeled and b % 2 == 0:
            it = items[labeled[rng.integers(len(labeled))]]
            cy, cx = it.centres[rng.integers(len(it.centres))]
            y0 = int(round(cy)) - rng.integers(t // 4, 3 * t // 4)
            x0 = int(round(cx)) - rng.integers(t // 4, 3 * t // 4)
        else:
            it = items[rng.choice(len(items), p=weights)]
            y0 = rng.integers(0, max(1, it.image.shape[0] - t + 1))
            x0 = rng.integers(0, max(1, it.image.shape[1] - t + 1))
        h, w = it.image.shape
        y0 = int(np.clip(y0, 0, max(0, h - t)))
        x0 = int(np.clip(x0, 0, max(0, w - t)))
        x = it.image[y0 : y0 + t, x0 : x0 + t]
        m = it.mask[y0 : y0 + t, x0 : x0 + t]
        k = rng.integers(4)
        x, m = np.rot90(x, k), np.rot90(m, k)
        if rng.random() < 0.5:
            x, m = x[:, ::-1], m[:, ::-1]
        xs.append(np.ascontiguousarray(x))
        ms.append(np.ascontiguousarray(m))
    return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ms))


def _step_loss(net: PickerCNN, x: torch.Tensor, mask: torch.Tensor, settings: PUSettings, pi: float,
               gen: torch.Generator) -> torch.Tensor:
    logits, recon = net.forward_with_reconstruction(x)
    logits = logits[:, 0]
    m = net.receptive_field // 2
    inner = (slice(None), slice(m, -m), slice(m, -m))
    z, pos = logits[inner], mask[inner]
    z_pos = z[pos]
    z_unl_all = z[~pos]
    n = min(z_unl_all.numel(), settings.unlabeled_per_tile * x.shape[0])
    idx = torch.randperm(z_unl_all.numel(), generator=gen)[:n].to(z.device)
    loss = pu_loss(z_pos, z_unl_all[idx], pi, settings.method, settings.ge_weight, settings.slack)
    if recon is not None:
        k = net.decoder_patch
        target = F.unfold(x, k, padding=k // 2).reshape(x.shape[0], k * k, *x.shape[2:])
        loss = loss + settings.autoencoder * F.mse_loss(recon[:, :, m:-m, m:-m], target[:, :, m:-m, m:-m])
    return loss


def train(
    images: Sequence[Image],
    labels: pd.DataFrame,
    settings: PUSettings,
    out: str | os.PathLike,
    *,
    labels_source: str | os.PathLike | None = None,
    val_images: Sequence[Image] | None = None,
    val_labels: pd.DataFrame | None = None,
    resume: bool = False,
    progress: Callable[[dict], None] | None = None,
    device: str | torch.device = "auto",
    init: PUModel | str | os.PathLike | None = None,
) -> PUModel:
    """Train a PU picker on ``device`` and write it to ``out`` (checkpoints to ``out + '.ckpt'`` each epoch).

    ``init``: a PU model (or its file) whose network weights training starts from instead of random ones; it
    must have the same network (width, blocks, autoencoder) and should have been trained at the same binned
    particle size.

    Batches are drawn on the CPU from seeded generators, so a seeded run trains on the same tiles on any
    device; the weights differ between devices by floating-point rounding only.

    Raises
    ------
    InputError
        Labels outside their image or naming an image not given, no labels, π outside
        (0, 0.5), a particle larger than the micrographs, a checkpoint from other settings.
    """
    if settings.method not in PU_METHODS:
        raise InputError(None, f"unknown method {settings.method!r}; choose one of {', '.join(PU_METHODS)}")
    if len(labels) == 0:
        raise InputError(labels_source, "holds no particle coordinates")
    if settings.diameter >= min(min(im.shape) for im in images):
        raise InputError(None, f"particle diameter {settings.diameter:g} px is larger than the smallest micrograph")
    dev = resolve_device(device)
    torch.set_num_threads(settings.threads)
    if settings.bin_factor is None:  # stored: the file bins as trained whatever later versions choose
        settings = replace(settings, bin_factor=settings.factor())
    rng, gen = seeded(settings.seed)
    per_image = labels_by_micrograph(images, labels, labels_source)
    items = training_items(images, per_image, settings)
    if settings.pi is not None:
        pi = float(settings.pi)
    elif settings.expected_particles is not None:
        pi = class_prior(settings.expected_particles, settings.label_radius(), [it.image.shape for it in items])
    else:
        raise InputError(None, "give the expected number of particles per micrograph (--expected-particles) or π (--pi)")
    if not 0 < pi < 0.5:
        raise InputError(None, f"class prior π = {pi:.4g} lies outside (0, 0.5): check --expected-particles / --pi "
                               f"(a label disk covers {ball(settings.label_radius(), 2).sum()} binned px)")
    if settings.edge_margin is None:
        shapes = {im.name: im.shape for im in images}
        settings = replace(settings, edge_margin=label_edge_margin(per_image, shapes, settings.diameter))
    if settings.min_distance is None:
        area = float(np.mean([it.image.size for it in items]))
        settings = replace(settings, min_distance=auto_min_distance(settings.particles_in(pi, area), area,
                                                                    settings.geometry().radius()))
    net = build_network(settings)
    if settings.tile <= 2 * (net.receptive_field // 2) + 8:
        raise InputError(None, f"tile {settings.tile} px is too small for the network's receptive field")
    min_side = min(min(it.image.shape) for it in items)
    if min_side < settings.tile:
        settings = PUSettings(**{**asdict(settings), "tile": int(min_side)})

    if init is not None:
        start = init if isinstance(init, PUModel) else load_model(init, "cpu")
        try:
            net.load_state_dict(cpu_state(start.net))
        except RuntimeError:
            raise InputError(init if not isinstance(init, PUModel) else None,
                             "the starting model's network differs from this one (width, blocks or autoencoder); "
                             "train from scratch or with the same network settings") from None
    net = net.to(dev, memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    # cosine decay to zero over the run: the last steps settle instead of jittering around a minimum
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.steps)
    model = PUModel(net, settings, pi, images[0].pixel_size, [])

    def step(_):
        x, m = _sample_batch(items, settings, rng)
        x = x.to(dev).contiguous(memory_format=torch.channels_last)
        return {"loss": _step_loss(net, x, m.to(dev), settings, pi, gen)}

    def validate():
        from fewpick.evaluate import evaluate

        picks = pick_images(model, val_images, threshold=-1e9)
        return {"val_auprc": evaluate(picks, val_labels, radius=settings.diameter / 2)["auprc"]}

    model.history = fit(net, opt, step, steps=settings.steps, every=settings.steps_per_epoch, sched=sched,
                        generators=(rng, gen), checkpoint=Path(str(out) + ".ckpt"), resume=resume,
                        config=modelfile.settings_dict(settings), progress=progress,
                        validate=validate if val_images is not None and val_labels is not None else None)
    net.eval()
    _finish(model, items)
    save_model(model, out)
    return model


def _finish(model: PUModel, items: Sequence[TrainingItem]) -> None:
    """What follows the network's training: the rotational-average test (:func:`fit_correlation`) and the
    default cut."""
    logits = [dense_logits(model.net, it.image, model.mixed_precision) for it in items]
    corrs = (fit_correlation(model, items, logits, np.random.default_rng(model.settings.seed))
             if model.settings.correlation else None)
    model.threshold = calibrate_threshold(model, items, logits, corrs)


def refit(model: PUModel, images: Sequence[Image], labels: pd.DataFrame,
          labels_source: str | os.PathLike | None = None) -> PUModel:
    """Redo, for a trained model, the steps after its network's training (the rotational-average test and the
    default cut) on its training micrographs and labels: what a model trained before those steps existed
    needs to pick as a newly trained one does. The network is left as it is."""
    model.net.eval()
    _finish(model, training_items(images, labels_by_micrograph(images, labels, labels_source), model.settings))
    return model


def calibrate_threshold(model: PUModel, items: Sequence[TrainingItem], logits: Sequence[np.ndarray],
                        corrs: Sequence[np.ndarray] | None = None) -> float:
    """Default score cut: the score of the k-th best peak on each training micrograph (median over them),
    with k the expected number of particles per micrograph (from ``--expected-particles``, or from π).
    ``logits``: the items' logit maps; ``corrs``: their correlation maps with the model's template, where
    already computed."""
    s = model.settings
    peaks = []
    for i, (it, z) in enumerate(zip(items, logits)):
        corr = None
        if model.uses_correlation:
            corr = corrs[i] if corrs is not None else correlation_map(it.image, model.template, s)
        peaks.append(all_peaks(model, z, corr)[1])
    return threshold_at_count(peaks, [s.particles_in(model.pi, it.image.size) for it in items])


# ---------------------------------------------------------------- picking


def _binned(model: PUModel, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One micrograph prepared for the network (on the model's threads), and the binned→original scale (y, x)."""
    torch.set_num_threads(model.settings.threads)
    binned = prepare(data, model.factor, model.settings.threads)
    return binned, Geometry.scale(data.shape, binned.shape)


def score_map(model: PUModel, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logit map of one micrograph on the binned grid, and the binned→original scale (y, x)."""
    binned, scale = _binned(model, data)
    return dense_logits(model.net, binned, model.mixed_precision), scale








def pick_micrograph(model: PUModel, data: np.ndarray, name: str, threshold: float | str | None = None,
                    max_picks: int | None = None) -> pd.DataFrame:
    """Picks of one micrograph in original pixels; scores are logits. ``threshold=None`` uses the model's."""
    smap = model.score_map(data)
    coords, scores = model.peaks(smap, threshold, max_picks)
    return picks_table(name, smap.to_original(coords), scores)


def pick_images(model: PUModel, images: Sequence[Image], threshold: float | str | None = None,
                max_picks: int | None = None) -> pd.DataFrame:
    return model.pick_images(images, threshold, max_picks)


def model_summary(model: PUModel) -> str:
    """One line describing a model, for the command line."""
    s = model.settings
    if model.uses_correlation:
        corr = f", picks centred and rescored on the labels' rotational average (agreement {model.agreement:.2f})"
    elif model.agreement is not None:
        corr = f", labels' rotational average not used (agreement {model.agreement:.2f} < {AGREEMENT:g})"
    else:
        corr = ""
    if s.edge_margin:
        corr += f", no picks within {s.edge_margin * s.diameter:.0f} px of the edge (as the labels)"
    return (f"PU picker ({s.method}{', +autoencoder' if s.autoencoder else ''}): particle {s.diameter:g} px, "
            f"binning {model.factor}, π = {model.pi:.4g}, receptive field {model.net.receptive_field} binned px, "
            f"picks at least {1.0 if s.min_distance is None else s.min_distance:g} radius apart, "
            f"default threshold {model.threshold:.3g}{corr}")
