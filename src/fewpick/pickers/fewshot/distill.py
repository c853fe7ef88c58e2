"""The fast scoring network's training: the encoder's scores on the training micrographs (the teacher) and the
network fitted to them."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fewpick.device import resolve_device
from fewpick.geometry import Geometry
from fewpick.io.images import Image
from fewpick.nn.cnn import PickerCNN
from fewpick.pickers.fewshot.fast import (
    CELLS,
    MARGIN_PAD,
    MIN_AGREEMENT,
    agreement,
    binning,
    chosen_scoring,
    grid_centres,
    new_net,
    prepare_binned,
)
from fewpick.pickers.fewshot.model import FewShotModel, encoder_scores
from fewpick.pickers.fewshot.windows import prepare
from fewpick.training import fit, seeded


def crop_budget(shape: tuple[int, int], scale: float, size: int, stride: int, budget: int) -> tuple[int, int]:
    """The largest centred crop (original px, rows × cols, aspect kept) whose window grid has at most
    ``budget`` cells (at least one window)."""
    h, w = shape

    def crop(f):
        return max(1, int(h * f)), max(1, int(w * f))

    def cells(f):
        ch, cw = crop(f)
        ny = (int(round(ch / scale)) - size) // stride + 1  # the resampled shape, as prepare() rounds it
        nx = (int(round(cw / scale)) - size) // stride + 1
        return max(ny, 0) * max(nx, 0)

    if cells(1.0) <= budget:
        return h, w
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cells(mid) <= budget else (lo, mid)
    if cells(lo) == 0:  # not even one window within the budget: one window
        lo = min(1.0, (size + 1) * scale / min(h, w))
    return crop(lo)


def teacher_data(model: FewShotModel, images: Sequence[Image], budget: int,
                 threads: int | None = None) -> list[dict]:
    """For each image (while the budget of teacher windows lasts; larger ones cropped about their centre):
    the binned micrograph, the teacher's grid scores and the grid's centres on the binned grid (rows, cols)."""
    s = model.settings
    factor = binning(s.diameter)
    stride = s.step()
    out, left = [], int(budget)
    for im in images:
        if left <= 0:
            break
        data = np.asarray(im.data, np.float32)
        ch, cw = crop_budget(data.shape, s.scale, s.size, stride, left)
        if out and min(ch, cw) / s.scale < s.size + 2 * CELLS * stride:
            break  # a sliver of a micrograph would only shrink the training crops of all of them
        y0, x0 = (data.shape[0] - ch) // 2, (data.shape[1] - cw) // 2
        data = data[y0 : y0 + ch, x0 : x0 + cw]
        resampled = prepare(data, s.scale, im.path, threads)
        if min(resampled.shape) < s.size:
            continue
        grid = encoder_scores(model, resampled, s.match, stride)
        binned = prepare_binned(data, factor, threads)
        rows, cols = grid_centres(grid.shape, stride, s.size, Geometry.scale(data.shape, resampled.shape),
                                  Geometry.scale(data.shape, binned.shape))
        out.append({"binned": binned, "teacher": grid, "rows": rows, "cols": cols})
        left -= grid.size
    return out


HELD_OUT = 0.2  # the bottom fifth of each micrograph's teacher rows: not trained on, for the agreement


def distill(model: FewShotModel, images: Sequence[Image], *, progress: Callable[[dict], None] | None = None,
            device: str | torch.device = "auto", data: list[dict] | None = None) -> tuple[PickerCNN, dict]:
    """Train the fast network to reproduce the encoder's scores on ``images`` (the reference first); returns it
    (in eval mode, on ``device``) and a summary: its binning factor and offset, its agreement with the encoder
    (Pearson correlation on held-out rows of every micrograph) and whether picking uses it (``use``: the
    agreement reaches :data:`MIN_AGREEMENT`; where the encoder's scores change from one window to the next
    more than any smooth map can follow, the encoder keeps scoring every window) and how picking scores
    (``scoring``: :func:`chosen_scoring`)."""
    s = model.settings
    dev = resolve_device(device)
    torch.set_num_threads(s.train_threads)
    data = data if data is not None else teacher_data(model, images, s.distill_windows, s.threads)
    if not data:
        raise ValueError("no micrograph holds a whole window")
    rng, gen = seeded(s.seed + 2)
    net = new_net().to(dev)
    margin = net.receptive_field // 2 + 2
    splits = [max(1, int(round(d["teacher"].shape[0] * (1 - HELD_OUT)))) for d in data]
    k = max(1, min([CELLS, *splits, *(d["teacher"].shape[1] for d in data)]))
    spacing = max(float(np.max(np.diff(d[a]))) if len(d[a]) > 1 else 1.0 for d in data for a in ("rows", "cols"))
    side = int(np.ceil(spacing * (k - 1))) + 2 * margin + 2
    pad = margin + side
    padded = [np.pad(d["binned"], pad, mode=MARGIN_PAD) for d in data]
    weights = np.array([n * d["teacher"].shape[1] for n, d in zip(splits, data)], float)
    weights /= weights.sum()
    # the network learns the scores less their mean (cosine similarities, mostly well above 0)
    offset = float(np.mean(np.concatenate([d["teacher"][:n].ravel() for n, d in zip(splits, data)])))
    opt = torch.optim.AdamW(net.parameters(), lr=s.distill_lr, weight_decay=1e-4)
    warm = max(1, s.distill_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(t, s.distill_steps) / s.distill_steps)))
    batch = 16

    def draw():
        xs, grids, ys = [], [], []
        for n in rng.choice(len(data), size=batch, p=weights):
            d = data[n]
            i0 = int(rng.integers(0, splits[n] - k + 1))
            j0 = int(rng.integers(0, d["teacher"].shape[1] - k + 1))
            r, c = d["rows"][i0 : i0 + k], d["cols"][j0 : j0 + k]
            top, left = int(np.floor(r[0])) - margin, int(np.floor(c[0])) - margin
            xs.append(padded[n][top + pad : top + pad + side, left + pad : left + pad + side])
            gy, gx = np.meshgrid((r - top) * 2 / (side - 1) - 1, (c - left) * 2 / (side - 1) - 1, indexing="ij")
            grids.append(np.stack([gx, gy], -1))
            ys.append(d["teacher"][i0 : i0 + k, j0 : j0 + k])
        # one random 90° rotation of the whole batch, crops and targets alike (the encoder's scores hardly depend
        # on the orientation; the network should not either): the point (gx, gy) goes to (gy, −gx)
        t = int(rng.integers(0, 4))
        x = np.rot90(np.stack(xs), t, (1, 2))
        y = np.rot90(np.stack(ys), t, (1, 2))
        g = np.rot90(np.stack(grids), t, (1, 2))
        for _ in range(t):
            g = np.stack([g[..., 1], -g[..., 0]], -1)
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(dev)  # noqa: E731
        return as_t(x)[:, None], as_t(g), as_t(y) - offset

    def step(_):
        x, g, y = draw()
        z = F.grid_sample(net(x), g, mode="bilinear", align_corners=True)[:, 0]
        return {"loss": F.mse_loss(z, y)}

    history = fit(net, opt, step, steps=s.distill_steps, every=100, sched=sched, generators=(rng, gen),
                  extra={"stage": "distill"}, progress=progress)
    net.eval()
    held = [dict(d, teacher=d["teacher"][n:], rows=d["rows"][n:]) for n, d in zip(splits, data)
            if n < d["teacher"].shape[0]]
    corr = agreement(net, held or data, offset)
    info = {"factor": binning(s.diameter), "width": net.stem[0].out_channels,
            "dilations": [b.conv1.dilation[0] for b in net.blocks], "offset": offset, "agreement": corr, "use": bool(corr >= MIN_AGREEMENT),
            "scoring": chosen_scoring(corr),
            "windows": int(sum(d["teacher"].size for d in data)), "micrographs": len(data),
            "steps": s.distill_steps, "history": history}
    return net, info
