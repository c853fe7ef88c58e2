"""Training the localization network (on the shared loop of :mod:`fewpick.training`) and calibrating its default
threshold on the training tomograms."""

from __future__ import annotations

import glob
import os
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from fewpick import modelfile
from fewpick.device import resolve_device
from fewpick.errors import InputError
from fewpick.io import Image
from fewpick.losses.tomo import bce_loss, pu_focal_loss, voxel_contrast
from fewpick.nn.unet import SliceUNet3D
from fewpick.ops.peaks import nms
from fewpick.ops.thresholds import threshold_at_count
from fewpick.pickers.tomo.data import TrainingItem, augment, check_isotropic, sample_batch, training_items
from fewpick.pickers.tomo.files import save_model
from fewpick.pickers.tomo.model import TomoModel, peak_footprint, pick_views, prepared_heat_map
from fewpick.pickers.tomo.prior import assumed_particles, class_prior, prior_estimate
from fewpick.pickers.tomo.selftrain import self_training_counts, self_training_picks, with_picks
from fewpick.pickers.tomo.settings import TomoSettings
from fewpick.training import drop_checkpoints, fit, seeded


def train(tomograms: Sequence[Image], labels: pd.DataFrame, settings: TomoSettings, *, source=None,
          progress: Callable[[dict], None] | None = None, device: str | torch.device = "auto",
          checkpoint: str | os.PathLike | None = None, resume: bool = False,
          out: str | os.PathLike | None = None) -> TomoModel:
    """Train a localization model on labeled tomograms (labels name them by file stem) on ``device``, and save it
    to ``out`` when given. With ``checkpoint`` the state is saved after every epoch; ``resume`` continues an
    interrupted run from it."""
    settings.check()
    settings = replace(settings, bin_factor=settings.bin)  # the model keeps the binning it was trained at
    dev = resolve_device(device)
    torch.set_num_threads(settings.threads)
    for im in tomograms:
        check_isotropic(im.path)
    items = training_items(tomograms, labels, settings, source)
    settings = settings.for_labels(sum(len(it.centres) for it in items))
    if progress is not None:  # every record says how many epochs the training runs
        progress = partial(_with_epochs, progress, settings.epochs)
        given = int(labels["micrograph"].astype(str).isin({im.name for im in tomograms}).sum())
        particles = sum(len(it.centres) for it in items)
        if given > particles:  # labels within a radius of each other, taken as one particle each
            progress({"stage": "labels", "labels": given, "particles": particles})
    if resume and (checkpoint is None or not Path(checkpoint).is_file()):
        raise InputError(checkpoint, "no checkpoint to resume from")
    if checkpoint is not None and not resume:
        _drop_picks_files(checkpoint)  # an earlier run's
    t0 = time.perf_counter()
    estimate = prior_estimate(items, settings, dev, checkpoint, resume, progress)
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

    total = settings.epochs * settings.steps_per_epoch
    first = total - settings.self_training_steps()  # steps before the confident picks join the labels
    rounds = settings.self_training_steps() // settings.steps_per_epoch
    labelled, labelled_counts = items, counts
    picked = -1  # the self-training epoch whose picks the items hold

    def relabel(r: int) -> None:
        """At the start of self-training epoch ``r`` the model as trained so far picks its training tomograms
        again, and those confident picks join the labels (:mod:`~fewpick.pickers.tomo.selftrain`; kept beside
        the checkpoint, so that a resumed run trains on the same ones); π counts them."""
        nonlocal items, pi, pi_u, counts, picked
        saved = None if checkpoint is None else _picks_file(checkpoint, r)
        picks = self_training_picks(net, labelled, settings, saved)
        net.train()
        if not settings.expected_particles:
            counts = self_training_counts(labelled, picks, labelled_counts)
        items = [with_picks(it, p, settings) for it, p in zip(labelled, picks)]
        pi, pi_u = class_prior(items, settings, counts)
        picked = r
        if progress:
            progress({"stage": "self-training", "round": r + 1, "rounds": rounds, "picks": sum(len(p) for p in picks),
                      "labels": sum(len(it.centres) for it in labelled), "particles": float(sum(counts))})

    def step(i):
        if i >= first and (i - first) // settings.steps_per_epoch != picked:
            relabel((i - first) // settings.steps_per_epoch)
        x, t = sample_batch(items, settings, rng)
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
    history = fit(net, opt, step, steps=total, every=settings.steps_per_epoch,
                  sched=sched, generators=(rng, gen), checkpoint=checkpoint, resume=resume, config=config,
                  index="epoch", progress=progress, ping_first=True)
    model = TomoModel(net, settings, pi, tomograms[0].pixel_size if tomograms else None, history, particles=counts)
    if settings.expected_particles:
        model.threshold = calibrate_threshold(model, items)
    if out is not None:
        save_model(model, out)
        drop_checkpoints(checkpoint)
        if checkpoint is not None:  # what the checkpoint's run kept beside it: the count estimate, the picks
            Path(str(checkpoint) + ".prior.json").unlink(missing_ok=True)
            _drop_picks_files(checkpoint)
    return model


def _picks_file(checkpoint: str | os.PathLike, r: int) -> Path:
    """Where the confident picks of self-training epoch ``r`` (from 0) are kept beside the checkpoint."""
    return Path(f"{checkpoint}.picks.{r + 1}.json")


def _drop_picks_files(checkpoint: str | os.PathLike) -> None:
    ckpt = Path(checkpoint)
    for f in ckpt.parent.glob(f"{glob.escape(ckpt.name)}.picks*.json"):
        f.unlink(missing_ok=True)


def _with_epochs(progress: Callable[[dict], None], epochs: int, rec: dict) -> None:
    progress({**rec, "epochs": epochs})


def calibrate_threshold(model: TomoModel, items: list[TrainingItem]) -> float:
    """The level of the picking heat map (its views: :func:`~fewpick.pickers.tomo.model.pick_views`) at which
    each training tomogram yields the particles assumed in it (:func:`assumed_particles`), median over
    tomograms, within [0.05, 0.95]."""
    r = model.settings.geometry().radius(minimum=1.0)
    views = pick_views(model.settings)
    footprint = peak_footprint(model.settings)
    peaks = [nms(prepared_heat_map(model.net, it.volume, views=views), r, 0.0, footprint=footprint)[1]
             for it in items]
    counts = model.particles or assumed_particles(items, model.settings)
    return float(np.clip(threshold_at_count(peaks, counts, empty=0.5), 0.05, 0.95))
