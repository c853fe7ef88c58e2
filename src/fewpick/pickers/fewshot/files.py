"""The few-shot picker's files: the pre-trained encoder, the trained model, and score maps written as PNG and MRC."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fewpick import modelfile
from fewpick.device import cpu_state, resolve_device
from fewpick.errors import InputError
from fewpick.nn.vit import MaskedAutoencoder
from fewpick.outputs import atomic_path
from fewpick.pickers.fewshot.model import (
    FewShotModel,
)
from fewpick.pickers.fewshot.settings import (
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    PRETRAINED_FORMAT,
    FewShotSettings,
)


def from_version_1(bundle: dict) -> dict:
    """Version 1 models written before the correlation and the gated scorings existed hold only ``use`` beside
    their fast network: they scored with it where it was used, else with the encoder at every window."""
    info = bundle.get("fast_info")
    if bundle.get("fast_state") is not None and info and "scoring" not in info:
        bundle = {**bundle, "fast_info": {**info, "scoring": "fast" if info.get("use") else "encoder"}}
    return bundle


MIGRATIONS = {1: from_version_1}


def _load_bundle(path: str | os.PathLike, fmt: str, what: str) -> dict:
    return modelfile.load(path, fmt, MODEL_FORMAT_VERSION, what, MIGRATIONS)


def _settings_from(d: dict, path, what: str) -> FewShotSettings:
    return modelfile.settings_from(FewShotSettings, d, path, what)


def _net_from(bundle: dict, settings: FewShotSettings, path) -> MaskedAutoencoder:
    net = MaskedAutoencoder(**settings.arch())
    try:
        net.load_state_dict(bundle["state_dict"])
    except RuntimeError as exc:
        raise InputError(path, f"weights do not fit the network the file describes ({str(exc)[:120]})") from None
    return net.eval()


def save_pretrained(net: MaskedAutoencoder, settings: FewShotSettings, info: dict, path: str | os.PathLike) -> Path:
    return modelfile.save(path, PRETRAINED_FORMAT, MODEL_FORMAT_VERSION, settings, info=info,
                          state_dict=cpu_state(net))


def load_pretrained(path: str | os.PathLike, device: str | torch.device = "auto"
                    ) -> tuple[MaskedAutoencoder, FewShotSettings, dict]:
    bundle = _load_bundle(path, PRETRAINED_FORMAT, "pre-trained encoder")
    settings = _settings_from(bundle["settings"], path, "pre-trained encoder")
    return _net_from(bundle, settings, path).to(resolve_device(device)), settings, dict(bundle.get("info", {}))


def save_model(model: FewShotModel, path: str | os.PathLike) -> Path:
    return modelfile.save(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, model.settings, state_dict=cpu_state(model.net),
                          exemplars=torch.from_numpy(np.ascontiguousarray(model.exemplars)),
                          pixel_size=model.pixel_size, reference=model.reference, pretrained=model.pretrained,
                          history=model.history, threshold=model.threshold,
                          fast_state=cpu_state(model.fast_net) if model.fast_net is not None else None,
                          fast_info=model.fast_info, general_count=model.general_count,
                          estimated_particles=model.estimated_particles)


def load_model(path: str | os.PathLike, device: str | torch.device = "auto") -> FewShotModel:
    bundle = _load_bundle(path, MODEL_FORMAT, "few-shot picker model")
    settings = _settings_from(bundle["settings"], path, "few-shot picker model")
    dev = resolve_device(device)
    net = _net_from(bundle, settings, path).to(dev)
    fast = None
    if bundle.get("fast_state") is not None:
        from fewpick.pickers.fewshot import fast as ff

        info = bundle.get("fast_info") or {}
        fast = ff.new_net(info.get("width"), info.get("dilations"))
        try:
            fast.load_state_dict(bundle["fast_state"])
        except RuntimeError as exc:
            raise InputError(path, f"fast network's weights do not fit it ({str(exc)[:120]})") from None
        fast = fast.to(dev).eval()
    return FewShotModel(net, settings, bundle["exemplars"].numpy(), bundle.get("pixel_size"),
                        bundle.get("reference", ""), dict(bundle.get("pretrained", {})), list(bundle.get("history", [])),
                        bundle.get("threshold"), fast_net=fast, fast_info=dict(bundle.get("fast_info") or {}),
                        general_count=bundle.get("general_count"),
                        estimated_particles=bundle.get("estimated_particles"))


def write_score_map(kept: dict, folder: Path, name: str, image: np.ndarray | None = None,
                    picks: pd.DataFrame | None = None, diameter: float | None = None) -> list[Path]:
    """Write a similarity map from :func:`pick_micrograph` (``keep_map``) as ``<name>_scores.png`` — drawn over
    the micrograph's own extent and aspect, about 1,200 px wide, with a colour bar; over the micrograph itself
    (``image``, in grey) and with the ``picks`` circled (``diameter``) when given — and as ``<name>_scores.mrc``
    (the window grid's values)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fewpick.io.images import write_mrc

    folder.mkdir(parents=True, exist_ok=True)
    png, mrc = folder / f"{name}_scores.png", folder / f"{name}_scores.mrc"
    scores = kept["scores"]
    gh, gw = scores.shape
    if "to_original" in kept:
        h, w = kept["shape"]
        (y0, x0), (y1, x1) = kept["to_original"](np.array([[0, 0], [max(gh - 1, 1), max(gw - 1, 1)]]))
    else:  # a map kept without its geometry: one cell per grid point
        h, w, y0, x0, y1, x1 = gh, gw, 0.0, 0.0, max(gh - 1, 1), max(gw - 1, 1)
    dy, dx = (y1 - y0) / max(gh - 1, 1), (x1 - x0) / max(gw - 1, 1)
    fig, ax = plt.subplots(figsize=(8, max(2.0, 8 * h / w * 0.9)), dpi=150, layout="constrained")
    if image is not None:
        from fewpick.ops.resample import bin_image

        shown = bin_image(np.asarray(image, np.float32), max(1.0, max(image.shape) / 1200))
        lo, hi = np.percentile(shown, [1, 99])
        ax.imshow(shown, cmap="gray", vmin=lo, vmax=hi, extent=(0, w, h, 0), interpolation="bilinear")
    im = ax.imshow(scores, cmap="viridis", vmin=-1, vmax=1, interpolation="nearest", aspect="equal",
                   extent=(x0 - dx / 2, x0 + dx * (gw - 0.5), y0 + dy * (gh - 0.5), y0 - dy / 2),
                   alpha=0.45 if image is not None else 1.0)
    if picks is not None and len(picks) and diameter:
        from matplotlib.collections import EllipseCollection

        ax.add_collection(EllipseCollection(diameter, diameter, 0, units="xy", offsets=picks[["x", "y"]].to_numpy(),
                                            offset_transform=ax.transData, facecolors="none", edgecolors="#ff3b30",
                                            linewidths=0.8))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    ax.set_title(f"{name}: {kept.get('label', 'similarity to the exemplars')}", fontsize=10)
    # the colour bar at full strength, though the map over the micrograph is see-through
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=im.norm, cmap=im.cmap), ax=ax, fraction=0.046, pad=0.03, label=f"{kept.get('label', 'cosine similarity')} (picks are its peaks)")
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)
    write_mrc(mrc, scores.astype(np.float32), None)
    return [png, mrc]
