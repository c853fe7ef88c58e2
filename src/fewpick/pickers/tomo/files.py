"""The model file: save, load, and the one-line summary the command line prints."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fewpick import modelfile
from fewpick.device import cpu_state, resolve_device
from fewpick.errors import InputError
from fewpick.geometry import choose_binning
from fewpick.nn.unet import SliceUNet3D
from fewpick.pickers.tomo.model import TomoModel
from fewpick.pickers.tomo.settings import MODEL_FORMAT, MODEL_FORMAT_VERSION, TomoSettings


def save_model(model: TomoModel, path: str | os.PathLike) -> Path:
    return modelfile.save(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, model.settings, config=model.net.config,
                          pi=model.pi, voxel_size=model.voxel_size, history=model.history, threshold=model.threshold,
                          particles=model.particles, state_dict=cpu_state(model.net))


def model_summary(model: TomoModel) -> str:
    """One line describing a model, for the command line."""
    s = model.settings
    return (f"tomogram localization model ({'filament' if s.filament else 'particle'} {s.diameter:.4g} voxels, "
            f"binned ×{s.bin}, {sum(model.particles):.0f} particles assumed in the {len(model.particles)} training "
            "tomograms)")


def load_model(path: str | os.PathLike, device: str | torch.device = "auto") -> TomoModel:
    what = "tomogram localization model"
    bundle = modelfile.load(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, what)
    stored = dict(bundle["settings"])
    if stored.get("bin_factor") is None and "diameter" in stored:
        # files written before the factor was stored were binned by the rounded quotient
        target = stored.get("target_diameter", TomoSettings.target_diameter)
        stored["bin_factor"] = choose_binning(stored["diameter"], target)
    settings = modelfile.settings_from(TomoSettings, stored, path, what)
    settings.lambdas = tuple(settings.lambdas)  # type: ignore[assignment]  # a list in the file
    net = SliceUNet3D(**bundle["config"])
    try:
        net.load_state_dict(bundle["state_dict"])
    except RuntimeError as exc:
        raise InputError(Path(path), f"model weights do not fit the network it describes ({str(exc)[:120]})") from None
    net.eval().to(resolve_device(device))
    return TomoModel(net, settings, float(bundle["pi"]), bundle.get("voxel_size"), list(bundle.get("history", [])),
                     float(bundle.get("threshold", 0.5)), list(bundle.get("particles", [])))
