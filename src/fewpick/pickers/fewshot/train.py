"""The few-shot picker's training: masked-autoencoder pre-training, fine-tuning on the exemplars, the fast
network's distillation, and the default cut calibrated on the training micrographs."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch

from fewpick import modelfile
from fewpick.device import resolve_device
from fewpick.errors import InputError
from fewpick.io.images import Image
from fewpick.losses.fewshot import scs_loss
from fewpick.nn.vit import MaskedAutoencoder
from fewpick.ops.peaks import auto_min_distance, scores_near
from fewpick.ops.thresholds import count_scoring_like
from fewpick.pickers.base import ScoreMap
from fewpick.pickers.fewshot.distill import distill as distill_fast_network
from fewpick.pickers.fewshot.files import (
    load_pretrained,
    save_model,
)
from fewpick.pickers.fewshot.model import (
    FewShotModel,
    calibrate_threshold,
)
from fewpick.pickers.fewshot.settings import (
    FewShotSettings,
)
from fewpick.pickers.fewshot.windows import (
    blob_centres,
    blob_windows,
    exemplar_windows,
    exemplars_on,
    jittered,
    prepare,
    random_windows,
    shifted_windows,
)
from fewpick.pickers.pu.general import COUNT_RATIO, LABEL_QUANTILE, count_beside, estimate_particles
from fewpick.pickers.threshold import Auto, Count
from fewpick.training import drop_checkpoints, fit, seeded


def _schedule(opt: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def pretrain(images: Sequence[Image], settings: FewShotSettings, *, net: MaskedAutoencoder | None = None,
             progress: Callable[[dict], None] | None = None, prepared: Sequence[np.ndarray] | None = None,
             device: str | torch.device = "auto", checkpoint: str | os.PathLike | None = None,
             resume: bool | str = False) -> tuple[MaskedAutoencoder, dict]:
    """Pre-train the MAE by masked reconstruction on random windows of ``images`` on ``device``; returns the
    net and a summary. With ``checkpoint`` the state is saved every 100 steps; ``resume`` continues from it."""
    settings.check()
    dev = resolve_device(device)
    torch.set_num_threads(settings.train_threads)
    rng, gen = seeded(settings.seed)
    prepared = list(prepared) if prepared is not None else [prepare(im, settings.scale) for im in images]
    for im, p in zip(images, prepared):
        if min(p.shape) < settings.size:
            raise InputError(im.path, f"micrograph is smaller than one {settings.window:.0f} px window")
    weights = np.array([p.size for p in prepared], float)
    weights /= weights.sum()
    net = (net or MaskedAutoencoder(**settings.arch())).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.pretrain_lr, weight_decay=0.05, betas=(0.9, 0.95))
    sched = _schedule(opt, settings.pretrain_steps, max(1, settings.pretrain_steps // 20))

    def step(_):
        x = torch.from_numpy(random_windows(prepared, settings.pretrain_batch, settings.size, rng, weights))[:, None]
        loss, _ = net(x.to(dev), settings.mask_ratio, gen)
        return {"loss": loss}

    history = fit(net, opt, step, steps=settings.pretrain_steps, every=100, sched=sched, generators=(rng, gen),
                  checkpoint=checkpoint, resume=resume, config=_stage_config(settings, "pretrain", images),
                  extra={"stage": "pretrain"}, progress=progress)
    info = {"micrographs": [im.name for im in images], "steps": settings.pretrain_steps,
            "window_px": settings.window, "pixel_size": images[0].pixel_size if images else None, "history": history}
    return net, info


def _stage_config(settings: FewShotSettings, stage: str, images: Sequence[Image], **more) -> dict:
    """What a training stage's checkpoint must match to be resumed: the settings, the stage and the images."""
    return {"stage": stage, "settings": modelfile.settings_dict(settings), "images": [im.name for im in images],
            **more}


def finetune(reference: Image, exemplars: pd.DataFrame, settings: FewShotSettings, *,
             net: MaskedAutoencoder | None = None, pretrained: dict | None = None, exemplars_source=None,
             prepared: np.ndarray | None = None, progress: Callable[[dict], None] | None = None,
             min_exemplars: int = 2, device: str | torch.device = "auto",
             checkpoint: str | os.PathLike | None = None, resume: bool | str = False) -> FewShotModel:
    """Fine-tune on the reference micrograph on ``device``: exemplars + random unlabeled windows,
    ``L_MSE + β·L̂_SCS``. With ``checkpoint`` the state is saved every 25 steps; ``resume`` continues from it."""
    settings.check()
    dev = resolve_device(device)
    torch.set_num_threads(settings.train_threads)
    rng, gen = seeded(settings.seed + 1)
    rows = exemplars_on(reference, exemplars, exemplars_source)
    img = prepare(reference, settings.scale) if prepared is None else prepared
    if min(img.shape) < settings.size + 2:
        raise InputError(reference.path, f"micrograph is smaller than one {settings.window:.0f} px window")
    windows, centres = exemplar_windows(reference, img, rows, settings, exemplars_source, min_exemplars)
    if net is None:
        net = MaskedAutoencoder(**settings.arch())
    elif net.config != settings.arch():
        raise InputError(None, "the pre-trained encoder has another architecture than these settings")
    net = net.to(dev)
    # one pixel of reflect padding for the ±1 px jitter of exemplar and blob windows
    s = settings.size
    padded = np.pad(img, 1, mode="reflect")
    blobs = blob_centres(img, settings) if settings.blobs > 0 else np.empty((0, 2))
    opt = torch.optim.AdamW(net.parameters(), lr=settings.finetune_lr, weight_decay=0.05, betas=(0.9, 0.95))
    sched = _schedule(opt, settings.finetune_steps, max(1, settings.finetune_steps // 10))
    m = len(windows)
    n_shift = int(round(settings.shifted * settings.unlabeled))
    n_cand = int(round(settings.blobs * settings.unlabeled)) if len(blobs) else 0

    def step(_):
        xl = np.empty((m, s, s), np.float32)
        for i, (cy, cx) in enumerate(centres):
            xl[i] = jittered(padded, cy, cx, s, rng)
        xu = np.concatenate([random_windows([img], settings.unlabeled - n_shift - n_cand, s, rng),
                             shifted_windows(img, centres, n_shift, settings, rng),
                             blob_windows(padded, blobs, n_cand, s, rng)])
        x = torch.from_numpy(np.concatenate([xl, xu]))[:, None].to(dev)
        mse, feats = net(x, settings.mask_ratio, gen)
        if settings.scs_view == "full":
            feats = net.features(x)
        scs = scs_loss(feats[:m], feats[m:], settings.scs, settings.pi, settings.alpha, settings.tau)
        return {"loss": mse + settings.beta * scs, "mse": mse, "scs": scs}

    config = _stage_config(settings, "finetune", [reference], exemplars=centres.tolist(),
                           pretrained=(pretrained or {}).get("file"))
    history = fit(net, opt, step, steps=settings.finetune_steps, every=25, sched=sched, generators=(rng, gen),
                  checkpoint=checkpoint, resume=resume, config=config, reduce="last", extra={"stage": "finetune"},
                  progress=progress)
    return FewShotModel(net, settings, windows, reference.pixel_size, reference.name, pretrained or {}, history)


def crowded_suppress(settings: FewShotSettings, resampled_shape: tuple[int, int],
                     counted: float | None = None) -> float:
    """The suppression radius (fraction of the diameter) for micrographs of this resampled shape: the setting,
    narrowed by :func:`fewpick.ops.peaks.auto_min_distance` (to half of it at most) when the expected particle
    count (or, without one, the ``counted`` particles per micrograph) says they are crowded; unchanged without
    either."""
    count = settings.expected_particles or counted
    if not count:
        return settings.suppress
    radius = settings.geometry().radius()
    area = float(resampled_shape[0] * resampled_shape[1])
    return settings.suppress * auto_min_distance(count, area, radius)


def count_particles(settings: FewShotSettings, micrographs: Sequence[Image], on_reference: pd.DataFrame,
                    device: str | torch.device = "cpu") -> tuple[float | None, float | None]:
    """The general particle model's count of the training ``micrographs`` (the reference first): ``(estimate,
    None)`` where the user gave no count — the particles per micrograph it finds, scaled by the share of the
    exemplars (``on_reference``) among them, never fewer than the exemplars
    (:func:`~fewpick.pickers.pu.general.estimate_particles`) —, else ``(None, its count beside the user's)``
    (:func:`~fewpick.pickers.pu.general.count_beside`; None where it counts other particles too)."""
    if settings.expected_particles:
        return None, count_beside(settings.expected_particles, micrographs, settings.diameter, device=device,
                                  threads=settings.train_threads)
    reference = micrographs[0]
    found = estimate_particles(micrographs, settings.diameter, {reference.name: on_reference}, device=device,
                               threads=settings.train_threads)
    return max(found, float(len(on_reference))), None


def counted(settings: FewShotSettings, micrographs: Sequence[Image], resampled_shape: tuple[int, int],
            on_reference: pd.DataFrame, device: str | torch.device = "cpu",
            progress: Callable[[dict], None] | None = None) -> tuple[FewShotSettings, float | None, float | None]:
    """What the particle count decides (:func:`count_particles` on ``micrographs``, the reference first, whose
    resampled shape is ``resampled_shape``): the settings with the suppression narrowed where the micrographs are
    crowded (:func:`crowded_suppress`), the general model's estimate and its count beside the user's."""
    estimated, beside = count_particles(settings, micrographs, on_reference, device)
    if progress is not None and estimated is not None:
        progress({"stage": "count", "particles": estimated})
    return replace(settings, suppress=crowded_suppress(settings, resampled_shape, estimated)), estimated, beside


#: how far the general model's estimate may lie from where the model's own scores of the training micrographs
#: fall off (:func:`settle_count`) for the latter to replace it: about the estimate's uncertainty, as it is
#: scaled by the share of some 15 exemplars the general model finds (two binomial spreads of that share)
ESTIMATE_SPREAD = 1 / 3

#: micrographs (the reference first) on which :func:`settle_count` looks for where the scores fall off, and whose
#: score maps :func:`finish_count` calibrates the cut on
SETTLE_SAMPLE = 3


class Settled(NamedTuple):
    """The particle count :func:`settle_count` settles on; ``of_reference``: it counts the reference micrograph
    alone (the peaks that score as the exemplars do there), not a typical training micrograph."""

    count: float | None
    of_reference: bool = False


def settle_count(model: FewShotModel, micrographs: Sequence[Image], on_reference: pd.DataFrame,
                 maps: Sequence[ScoreMap] | None = None) -> Settled:
    """The model's estimated particle count after seeing its own scores: where its automatic cut (each
    micrograph's scores split at their sparsest) keeps within :data:`ESTIMATE_SPREAD` of the general model's
    estimate on the training ``micrographs`` (median over the first :data:`SETTLE_SAMPLE`), that count, else the
    estimate. Where particles and background separate cleanly, the gap in the scores finds the particles more
    exactly than a count from another model; where they do not, the gap falls anywhere, and the estimate
    stands.

    Where that count is more than :data:`~fewpick.pickers.pu.general.COUNT_RATIO` times the reference's peaks
    that score as the exemplars (``on_reference``) do (:func:`count_like_exemplars`), the user wants one complex
    among others the general model counts alike, and those peaks count instead. None without an estimate (the
    user gave the count). ``maps``: the model's score maps of the first :data:`SETTLE_SAMPLE` micrographs, where
    already made."""
    estimate = model.estimated_particles
    if not estimate:
        return Settled(estimate)
    maps = list(maps) if maps is not None else [model.score_map(im) for im in micrographs[:SETTLE_SAMPLE]]
    own = float(np.median([len(model.peaks(smap, Auto())[1]) for smap in maps]))
    settled = own if own > 0 and abs(np.log(own / estimate)) <= np.log(1 + ESTIMATE_SPREAD) else estimate
    like = count_like_exemplars(model, micrographs[0], on_reference, maps[0])
    return Settled(like, True) if like and settled > COUNT_RATIO * like else Settled(settled)


def count_like_exemplars(model: FewShotModel, reference: Image, on_reference: pd.DataFrame,
                         smap: ScoreMap | None = None) -> float | None:
    """The particles on the ``reference`` micrograph as the model's own scores count them: its peaks that score
    at least as the exemplars' lowest tenth (:data:`~fewpick.pickers.pu.general.LABEL_QUANTILE`; each exemplar's
    score: the model's peak within a radius of it), scaled up by the share of the particles that score so and by
    the share of the exemplars with a peak (:func:`~fewpick.ops.thresholds.count_scoring_like`). None where no
    exemplar has one. ``smap``: the model's score map of the reference, where already made."""
    smap = smap if smap is not None else model.score_map(reference)
    coords, scores = model.peaks(smap, Count(score=-np.inf))
    near = scores_near(smap.to_original(coords)[:, ::-1], scores, on_reference[["x", "y"]].to_numpy(float),
                       model.settings.diameter / 2)
    if not len(near):
        return None
    return count_scoring_like([scores], near, LABEL_QUANTILE) / (len(near) / len(on_reference))


def refit(model: FewShotModel, reference: Image, exemplars: pd.DataFrame,
          pretrain_images: Sequence[Image] | None = None, exemplars_source=None,
          device: str | torch.device = "cpu") -> FewShotModel:
    """Redo, for a trained model, the steps that follow from the particle count (:func:`counted`, then the
    calibrated cut) as training does them now: what a model trained before those steps existed needs to pick as
    a newly trained one does. The networks are left as they are; ``model.settings.suppress`` must be the setting
    as given, not yet narrowed for crowded micrographs."""
    others = other_micrographs(reference, pretrain_images)
    on_reference = exemplars_on(reference, exemplars, exemplars_source)
    shape = prepare(reference, model.settings.scale).shape
    model.settings, estimated, beside = counted(model.settings, [reference, *others], shape, on_reference,
                                                resolve_device(device))
    return finish_count(model, reference, others, on_reference, estimated, beside)


def other_micrographs(reference: Image, pretrain_images: Sequence[Image] | None) -> list[Image]:
    """The pre-training micrographs other than the reference."""
    return [im for im in (pretrain_images or []) if im is not reference and im.name != reference.name]


def finish_count(model: FewShotModel, reference: Image, others: Sequence[Image], on_reference: pd.DataFrame,
                 estimated: float | None, beside: float | None) -> FewShotModel:
    """The steps after the networks' training that follow from the count (:func:`counted`): the model keeps the
    general model's counts, the estimate settled on its own scores (:func:`settle_count`), and its calibrated
    cut, set on the micrographs the count describes that fine-tuning did not learn from (:func:`calibrated_on`)."""
    model.estimated_particles, model.general_count = estimated, beside
    micrographs = [reference, *others][:SETTLE_SAMPLE]
    maps = [model.score_map(im) for im in micrographs]  # made once for both steps
    settled = settle_count(model, micrographs, on_reference, maps)
    model.estimated_particles = settled.count
    chosen = calibrated_on(len(micrographs), settled.of_reference)
    model.threshold = calibrate_threshold(model, [micrographs[i] for i in chosen], [maps[i] for i in chosen])
    return model


def calibrated_on(micrographs: int, of_reference: bool) -> list[int]:
    """Which of the training micrographs (the reference first, then those it was pre-trained on) the calibrated
    cut is set on: those other than the reference, where there are any and the count is not the reference's own
    (``of_reference``). Fine-tuning learns from the reference alone, and scores it higher than micrographs it has
    not seen, so its k-th best pick keeps fewer on them."""
    return [0] if of_reference or micrographs < 2 else list(range(1, micrographs))


def train(reference: Image, exemplars: pd.DataFrame, settings: FewShotSettings, out: str | os.PathLike, *,
          pretrain_images: Sequence[Image] | None = None, pretrained_path: str | os.PathLike | None = None,
          no_pretrain: bool = False, exemplars_source=None,
          progress: Callable[[dict], None] | None = None, min_exemplars: int = 2,
          device: str | torch.device = "auto", resume: bool = False, distill: bool = True) -> FewShotModel:
    """Pre-train (unless given a pre-trained encoder or told not to), fine-tune on ``device``, and (``distill``)
    fit the fast scoring network to the encoder's scores on the reference and the pre-training micrographs;
    write the model to ``out``.

    Without ``pretrain_images`` the encoder is pre-trained on the reference micrograph alone. Checkpoints go
    to ``out + '.pretrain.ckpt'`` and ``out + '.ckpt'``; ``resume`` continues an interrupted run from them; they
    are removed once the model is written.
    """
    settings.check()
    dev = resolve_device(device)
    ref_img = prepare(reference, settings.scale)
    # the exemplars are checked before pre-training, which takes minutes
    on_reference = exemplars_on(reference, exemplars, exemplars_source)
    exemplar_windows(reference, ref_img, on_reference, settings, exemplars_source, min_exemplars)
    others = other_micrographs(reference, pretrain_images)
    settings, estimated, beside = counted(settings, [reference, *others], ref_img.shape, on_reference, dev, progress)
    checkpoints = (Path(str(out) + ".pretrain.ckpt"), Path(str(out) + ".ckpt"))
    if resume and not any(c.is_file() for c in checkpoints):
        raise InputError(checkpoints[1], "no checkpoint to resume from")
    resume = "auto" if resume else False  # a stage not reached before the interruption starts afresh
    net, info = None, {}
    if pretrained_path is not None:
        net, pre_settings, info = load_pretrained(pretrained_path, dev)
        if pre_settings.arch() != settings.arch():
            raise InputError(pretrained_path, "pre-trained encoder has another architecture "
                                              f"({pre_settings.arch()}) than asked ({settings.arch()})")
        info = {**info, "file": str(pretrained_path)}
    elif not no_pretrain:
        images = list(pretrain_images or [reference])
        prepared = [ref_img if im is reference else prepare(im, settings.scale) for im in images]
        net, info = pretrain(images, settings, prepared=prepared, progress=progress, device=dev,
                             checkpoint=checkpoints[0], resume=resume)
    model = finetune(reference, exemplars, settings, net=net, pretrained=info, exemplars_source=exemplars_source,
                     prepared=ref_img, progress=progress, min_exemplars=min_exemplars, device=dev,
                     checkpoint=checkpoints[1], resume=resume)
    if distill and settings.distill_steps > 0:
        model.fast_net, model.fast_info = distill_fast_network(model, [reference, *others], progress=progress, device=dev)
    finish_count(model, reference, others, on_reference, estimated, beside)
    save_model(model, out)
    drop_checkpoints(*checkpoints)
    return model
