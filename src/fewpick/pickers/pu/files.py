"""The PU picker's model files."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fewpick import modelfile
from fewpick.device import cpu_state, resolve_device
from fewpick.errors import InputError
from fewpick.geometry import WORKING_DIAMETER, choose_binning
from fewpick.nn.cnn import PickerCNN
from fewpick.pickers.pu.model import (
    PUModel,
)
from fewpick.pickers.pu.settings import MODEL_FORMAT, MODEL_FORMAT_VERSION, PUSettings


def save_model(model: PUModel, path: str | os.PathLike) -> Path:
    """Write a self-describing model file (atomically; see :mod:`fewpick.modelfile`)."""
    return modelfile.save(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, model.settings, pi=model.pi,
                          pixel_size=model.pixel_size, receptive_field=model.net.receptive_field,
                          state_dict=cpu_state(model.net), history=model.history, threshold=model.threshold,
                          template=None if model.template is None else torch.from_numpy(np.asarray(model.template,
                                                                                                     np.float32)),
                          correlation_weight=model.correlation_weight, agreement=model.agreement,
                          estimated_particles=model.estimated_particles, general=general_bundle(model),
                          general_count=model.general_count)


def general_bundle(model: PUModel) -> dict | None:
    """The general model's network as a model file keeps it (the file then picks without the shipped one)."""
    net = model.general_net
    if net is None or model.general_weight <= 0:
        return None
    return {"width": net.width, "dilations": list(net.dilations), "state_dict": cpu_state(net),
            "weight": model.general_weight}


def general_from(bundle: dict | None, path: Path) -> PickerCNN | None:
    if bundle is None:
        return None
    net = PickerCNN(width=int(bundle["width"]), dilations=tuple(int(d) for d in bundle["dilations"]))
    try:
        net.load_state_dict(bundle["state_dict"])
    except RuntimeError as exc:
        raise InputError(path, f"the general model's weights in this file do not fit ({str(exc)[:120]})") from None
    return net.eval()


def build_network(settings: PUSettings) -> PickerCNN:
    return PickerCNN(width=settings.width, dilations=tuple(settings.dilations),
                     decoder_patch=7 if settings.autoencoder > 0 else 0)


def from_version_1(bundle: dict) -> dict:
    """Version 1 files may predate three settings; they are made explicit as those files used them: the binning
    to the nearest working diameter (before the finest one; files without an edge margin), picks a radius apart,
    and no edge band."""
    stored = dict(bundle["settings"])
    if stored.get("bin_factor") is None and "edge_margin" not in stored:
        stored["bin_factor"] = choose_binning(stored["diameter"], stored.get("binned_diameter", WORKING_DIAMETER))
    stored.setdefault("min_distance", 1.0)
    stored.setdefault("edge_margin", 0.0)
    return {**bundle, "settings": stored}


MIGRATIONS = {1: from_version_1}


def load_model(path: str | os.PathLike, device: str | torch.device = "auto") -> PUModel:
    """Read a model file written by :func:`save_model` onto ``device``; clear errors for anything else."""
    path = Path(path)
    bundle = modelfile.load(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, "PU picker model", MIGRATIONS)
    settings = modelfile.settings_from(PUSettings, bundle["settings"], path, "PU picker model")
    if "general_count" not in bundle:  # a file from before the general model's score: trained without it
        settings = replace(settings, general_score=False)
    net = build_network(settings)
    try:
        net.load_state_dict(bundle["state_dict"])
    except RuntimeError as exc:
        raise InputError(path, f"model weights do not fit the network it describes ({str(exc)[:120]})") from None
    net.eval().to(resolve_device(device))
    general = general_from(bundle.get("general"), path)
    template, threshold = bundle.get("template"), bundle.get("threshold", 0.0)
    return PUModel(net, settings, float(bundle["pi"]), bundle.get("pixel_size"), list(bundle.get("history", [])),
                   None if threshold is None else float(threshold),
                   template=None if template is None else np.asarray(template, np.float32),
                   correlation_weight=float(bundle.get("correlation_weight", 0.0)), agreement=bundle.get("agreement"),
                   estimated_particles=bundle.get("estimated_particles"),
                   general_net=None if general is None else general.to(resolve_device(device)),
                   general_weight=float(bundle["general"]["weight"]) if general is not None else 0.0,
                   general_count=bundle.get("general_count"))
