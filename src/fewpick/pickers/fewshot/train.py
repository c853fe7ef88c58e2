"""The few-shot picker's training: masked-autoencoder pre-training, fine-tuning on the exemplars, the fast
network's distillation, and the default cut calibrated on the reference."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from fewpick import modelfile
from fewpick.device import resolve_device
from fewpick.errors import InputError
from fewpick.io.images import Image
from fewpick.losses.fewshot import scs_loss
from fewpick.nn.vit import MaskedAutoencoder
from fewpick.ops.peaks import auto_min_distance
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


def crowded_suppress(settings: FewShotSettings, resampled_shape: tuple[int, int]) -> float:
    """The suppression radius (fraction of the diameter) for micrographs of this resampled shape: the setting,
    narrowed by :func:`fewpick.ops.peaks.auto_min_distance` (to half of it at most) when the expected particle
    count says they are crowded; unchanged without a count."""
    if not settings.expected_particles:
        return settings.suppress
    radius = settings.geometry().radius()
    area = float(resampled_shape[0] * resampled_shape[1])
    return settings.suppress * auto_min_distance(settings.expected_particles, area, radius)


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
    exemplar_windows(reference, ref_img, exemplars_on(reference, exemplars, exemplars_source), settings,
                     exemplars_source, min_exemplars)
    settings = replace(settings, suppress=crowded_suppress(settings, ref_img.shape))
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
        others = [im for im in (pretrain_images or []) if im is not reference and im.name != reference.name]
        model.fast_net, model.fast_info = distill_fast_network(model, [reference, *others], progress=progress, device=dev)
    model.threshold = calibrate_threshold(model, reference)
    save_model(model, out)
    drop_checkpoints(*checkpoints)
    return model
