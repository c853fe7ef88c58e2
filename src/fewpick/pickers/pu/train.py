"""The PU picker's training: batches of tiles, the positive-unlabeled loss, the correlation test and the
calibrated default cut."""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from fewpick import modelfile
from fewpick.device import cpu_state, resolve_device
from fewpick.errors import InputError
from fewpick.io.images import Image
from fewpick.losses.pu import PU_METHODS, pu_loss
from fewpick.nn.cnn import PickerCNN
from fewpick.nn.dense import dense_logits
from fewpick.ops.peaks import rank_close_last
from fewpick.ops.thresholds import threshold_at_count
from fewpick.pickers.pu.correlation import (
    correlation_map,
    fit_correlation,
)
from fewpick.pickers.pu.data import (
    TrainingItem,
    class_prior,
    label_edge_margin,
    labels_by_micrograph,
    training_items,
)
from fewpick.pickers.pu.files import build_network, load_model, save_model
from fewpick.pickers.pu.general import GENERAL_MODEL, estimate_particles, fit_general, serves_as_start
from fewpick.pickers.pu.model import (
    PUModel,
    all_peaks,
    pick_images,
)
from fewpick.pickers.pu.settings import FINE_TUNING_RATE, LEARNING_RATE, PUSettings
from fewpick.training import drop_checkpoints, fit, seeded


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
    init: PUModel | str | os.PathLike | None = "general",
) -> PUModel:
    """Train a PU picker on ``device`` and write it to ``out`` (checkpoints to ``out + '.ckpt'`` each epoch,
    removed once the model is written).

    ``init``: where the network's weights start. ``"general"`` (the default): the general particle model shipped
    with fewpick (:mod:`fewpick.pickers.pu.general`) where it serves (:func:`~fewpick.pickers.pu.general.serves_as_start`),
    else random weights; None or ``"none"``: random weights; a PU model (or its file), which must have the same
    network (width, blocks) and should have been trained at the same binned particle size. A start from trained
    weights learns at :data:`~fewpick.pickers.pu.settings.FINE_TUNING_RATE` unless ``settings.lr`` is set.

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
    estimated = None
    items = training_items(images, per_image, settings)
    if settings.pi is not None:
        pi = float(settings.pi)
    elif settings.expected_particles is not None:
        pi = class_prior(settings.expected_particles, settings.label_radius(), [it.image.shape for it in items])
    else:
        estimated = counted_particles(images, per_image, settings, dev)
        if progress is not None:
            progress({"stage": "count", "particles": estimated})
        pi = class_prior(estimated, settings.label_radius(), [it.image.shape for it in items])
    if not 0 < pi < 0.5 and estimated is not None:
        raise InputError(None, f"the general particle model counted about {estimated:.0f} particles per micrograph, "
                               "more than micrographs of this size hold at this particle diameter: check "
                               "--particle-diameter, or give --expected-particles")
    if not 0 < pi < 0.5:
        raise InputError(None, f"the share of each micrograph taken for particle centres (π = {pi:.3g}) lies outside "
                               "(0, 0.5): check --expected-particles or --pi")
    if settings.edge_margin is None:
        shapes = {im.name: im.shape for im in images}
        settings = replace(settings, edge_margin=label_edge_margin(per_image, shapes, settings.diameter))
    if settings.min_distance is None:
        area = float(np.mean([it.image.size for it in items]))
        settings = replace(settings, min_distance=settings.crowded_min_distance(settings.particles_in(pi, area), area))
    if isinstance(init, str) and init == "none":
        init = None
    if isinstance(init, str) and init == "general" and not serves_as_start(settings, pi, items, dev):
        init = None
    lr = settings.lr if settings.lr is not None else LEARNING_RATE if init is None else FINE_TUNING_RATE
    start = "none" if init is None else "general" if isinstance(init, str) and init == "general" else "model"
    settings = replace(settings, lr=lr, start=start)
    net = build_network(settings)
    if settings.tile <= 2 * (net.receptive_field // 2) + 8:
        raise InputError(None, f"tile {settings.tile} px is too small for the network's receptive field")
    min_side = min(min(it.image.shape) for it in items)
    if min_side < settings.tile:
        settings = PUSettings(**{**asdict(settings), "tile": int(min_side)})

    if init is not None:
        start_from(net, init)
    net = net.to(dev, memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=settings.weight_decay)
    # cosine decay to zero over the run: the last steps settle instead of jittering around a minimum
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.steps)
    model = PUModel(net, settings, pi, images[0].pixel_size, [], estimated_particles=estimated)

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
    finish_training(model, items)
    save_model(model, out)
    drop_checkpoints(str(out) + ".ckpt")
    return model


def counted_particles(images: Sequence[Image], labels: dict[str, pd.DataFrame], settings: PUSettings,
                      device: str | torch.device = "cpu") -> float:
    """Particles per micrograph for a user who gave no count: what the general model finds on the training
    micrographs, scaled by the share of the labels it finds (:func:`~fewpick.pickers.pu.general.estimate_particles`),
    and never fewer than the labels on the most labelled micrograph."""
    found = estimate_particles(images, settings.diameter, labels, device=device, threads=settings.threads,
                               bin_factor=settings.bin_factor)
    return float(max(found, max((len(rows) for rows in labels.values()), default=0)))


def start_from(net: PickerCNN, init: PUModel | str | os.PathLike) -> None:
    """Load ``init``'s network weights into ``net`` (``"general"``: the general particle model). A decoder the
    starting network lacks (the general model has none) starts from random weights."""
    start = init if isinstance(init, PUModel) else load_model(GENERAL_MODEL if init == "general" else init, "cpu")
    try:
        missing, unexpected = net.load_state_dict(cpu_state(start.net), strict=False)
    except RuntimeError:
        missing, unexpected = ["(shapes)"], []
    if unexpected or any(not k.startswith("decoder.") for k in missing):
        raise InputError(init if not isinstance(init, PUModel) else None,
                         "the starting model's network differs from this one (width or blocks); "
                         "train from scratch or with the same network settings")


def finish_training(model: PUModel, items: Sequence[TrainingItem]) -> None:
    """What follows the network's training: the general model's score added where it serves
    (:func:`~fewpick.pickers.pu.general.fit_general`), the rotational-average test (:func:`fit_correlation`) and
    the default cut."""
    logits = [dense_logits(model.net, it.image, model.mixed_precision) for it in items]
    if model.settings.general_score:
        logits = fit_general(model, items, logits)
    else:
        model.general_net, model.general_weight, model.general_count = None, 0.0, None
    corrs = (fit_correlation(model, items, logits, np.random.default_rng(model.settings.seed))
             if model.settings.correlation else None)
    model.threshold = calibrate_threshold(model, items, logits, corrs)


def refit(model: PUModel, images: Sequence[Image], labels: pd.DataFrame,
          labels_source: str | os.PathLike | None = None) -> PUModel:
    """Redo, for a trained model, the steps after its network's training (the rotational-average test and the
    default cut) on its training micrographs and labels: what a model trained before those steps existed
    needs to pick as a newly trained one does. The network is left as it is."""
    model.net.eval()
    finish_training(model, training_items(images, labels_by_micrograph(images, labels, labels_source), model.settings))
    return model


def calibrate_threshold(model: PUModel, items: Sequence[TrainingItem], logits: Sequence[np.ndarray],
                        corrs: Sequence[np.ndarray] | None = None) -> float:
    """Default score cut: the score of the k-th best peak on each training micrograph (median over them),
    with k the picks per micrograph the default cut keeps (:meth:`PUModel.expected_count`: the expected count,
    or the general model's where clearly larger), or, without an expected count, the particles from π; peaks
    ranked last for lying close to a better one are not counted (where the others are fewer, the weakest of them).
    ``logits``: the items' logit maps; ``corrs``: their correlation maps with the model's template, where
    already computed."""
    s = model.settings
    peaks = []
    for i, (it, z) in enumerate(zip(items, logits)):
        corr = None
        if model.uses_correlation:
            corr = corrs[i] if corrs is not None else correlation_map(it.image, model.template, s)
        _, scores, close = rank_close_last(*all_peaks(model, z, corr), model.close_radius(), with_mask=True)
        peaks.append(scores[~close])  # as picking ranks them; a count-based cut never reaches those ranked last
    count = model.expected_count()
    return threshold_at_count(peaks, [count or s.particles_in(model.pi, it.image.size) for it in items])
