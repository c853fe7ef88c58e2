"""Self-supervised embeddings of candidate images: SimSiam with a ResNet-18-class encoder.

Augmentations (as in MiLoPYP): random resized crop, horizontal/vertical flips and rotations by multiples of
90° (all folded into one affine resampling per image, so rotations stay exact), brightness/contrast
jitter and corner dropout. SGD with momentum and a cosine-decayed learning rate. Training is
resumable by epoch: the epoch's random streams derive from (seed, epoch).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from fewpick.device import module_device, resolve_device
from fewpick.losses.simsiam import simsiam_loss
from fewpick.nn.resnet import SimSiam
from fewpick.training import fit


def augment(x: torch.Tensor, gen: torch.Generator, *, min_area: float = 0.5, max_aspect: float = 4 / 3,
            jitter: float = 0.4, corner_p: float = 0.5) -> torch.Tensor:
    """One random view of each image in ``x`` ``(B, 1, S, S)`` (zero-mean, unit-sd images): a crop of
    ``min_area``–1 of the area with aspect up to ``max_aspect``, flips, 90° rotations, brightness and
    contrast within ±``jitter``, and a blanked corner with probability ``corner_p``."""
    b, _, s, _ = x.shape

    def u(lo, hi, n=b):
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    area = u(min_area, 1.0)
    ratio = torch.exp(u(-math.log(max_aspect), math.log(max_aspect)))
    w = torch.sqrt(area * ratio).clamp(max=1.0)
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx, cy = u(-1, 1) * (1 - w), u(-1, 1) * (1 - h)
    k = torch.randint(0, 4, (b,), generator=gen).float() * (math.pi / 2)
    flip_x = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    flip_y = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(k).round(), torch.sin(k).round()
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos * w * flip_x, -sin * h * flip_y, cx
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin * w * flip_x, cos * h * flip_y, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    out = out * u(1 - jitter, 1 + jitter)[:, None, None, None] + u(-jitter, jitter)[:, None, None, None]
    # corner dropout: blank a square of 20–40 % of the side in a random corner of half the views
    drop = torch.rand(b, generator=gen) < corner_p
    side = (u(0.2, 0.4) * s).long()
    corner = torch.randint(0, 4, (b,), generator=gen)
    yy = torch.arange(s)[None, :, None]
    xx = torch.arange(s)[None, None, :]
    top, left = (corner // 2 == 0)[:, None, None], (corner % 2 == 0)[:, None, None]
    sd = side[:, None, None]
    in_y = torch.where(top, yy < sd, yy >= s - sd)
    in_x = torch.where(left, xx < sd, xx >= s - sd)
    mask = (in_y & in_x & drop[:, None, None])[:, None]
    return out.masked_fill(mask, 0.0)


def _lr(step: int, total: int, base: float) -> float:
    return base * 0.5 * (1 + math.cos(math.pi * step / max(1, total)))


def train_simsiam(inputs: np.ndarray, *, width: int = 16, dim: int = 128, epochs: int = 30, batch: int = 128,
                  lr: float = 0.05, seed: int = 0, checkpoint: str | Path | None = None,
                  progress: Callable[[dict], None] | None = None,
                  device: str | torch.device = "auto") -> tuple[SimSiam, list[dict]]:
    """Train SimSiam on normalised inputs ``(N, S, S)`` on ``device``; returns the model (eval mode) and the
    loss history. The augmentations are drawn on the CPU (the same on any device), then moved.

    ``lr`` is per 256 images (scaled by ``batch/256``, as in SimSiam). With ``checkpoint``, the state is saved
    after every epoch and a matching checkpoint there is resumed from.
    """
    n = len(inputs)
    if n < 4:
        raise ValueError(f"need at least 4 candidates to learn from, got {n}")
    batch = min(batch, n)
    per_epoch = max(1, n // batch)
    total = epochs * per_epoch
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = SimSiam(width, dim).to(dev)
    base = lr * batch / 256
    opt = torch.optim.SGD(model.parameters(), lr=base, momentum=0.9, weight_decay=1e-4)
    config = {"n": n, "width": width, "dim": dim, "epochs": epochs, "batch": batch, "lr": lr, "seed": seed}
    data = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))[:, None]
    epoch_draws: dict = {}

    def step(i):
        epoch, k = divmod(i, per_epoch)
        if k == 0:  # each epoch's order and augmentations come from its own seed, so a resumed run draws the same
            epoch_draws["gen"] = gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
            epoch_draws["order"] = torch.randperm(n, generator=gen)
        gen = epoch_draws["gen"]
        for g in opt.param_groups:
            g["lr"] = _lr(i, total, base)
        x = data[epoch_draws["order"][k * batch : (k + 1) * batch]]
        return {"loss": simsiam_loss(*model(augment(x, gen).to(dev), augment(x, gen).to(dev)))}

    history = fit(model, opt, step, steps=total, every=per_epoch, checkpoint=checkpoint,
                  resume="auto" if checkpoint is not None else False, config=config, index="epoch",
                  progress=progress)
    model.eval()
    return model, history


@torch.no_grad()
def embed(model: SimSiam, inputs: np.ndarray, batch: int = 512) -> np.ndarray:
    """Unit-norm embeddings ``(N, dim)`` of normalised inputs ``(N, S, S)``, on the model's device."""
    model.eval()
    dev = module_device(model)
    out = []
    for i in range(0, len(inputs), batch):
        x = torch.from_numpy(np.ascontiguousarray(inputs[i : i + batch], dtype=np.float32))[:, None].to(dev)
        out.append(F.normalize(model.embed(x), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config["dim"]), np.float32)
