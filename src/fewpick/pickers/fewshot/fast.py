"""The few-shot picker's fast scoring network: a small CNN distilled from the trained encoder.

Sliding the ViT over every window of a micrograph is slow on a CPU (hundreds of thousands of windows on a
4096² micrograph of small particles; figures in ``docs/decisions.md``). After fine-tuning,
the encoder's similarity map (its *teacher* scores) is computed once on the training micrographs, and a
fully convolutional network (:class:`fewpick.nn.cnn.PickerCNN`, the PU picker's) learns to reproduce it on
the micrographs Fourier-binned as the PU picker bins them
(:meth:`fewpick.geometry.Geometry.finest`): a window's score at its centre pixel. Picking then costs what
the PU picker's does; the peaks are found, centred on the exemplars'
rotational average (drawn on the binned grid) and cut as before.

The teacher's grid cell ``(i, j)`` is the window centred at ``(i·stride + (size−1)/2)·scale`` original px;
the network's output is read there by bilinear interpolation, so no window position is rounded.

The network is used only where it follows the encoder: its agreement (correlation with the teacher's scores on
rows of every micrograph it was not trained on) must reach :data:`MIN_AGREEMENT`. Where the encoder has
learned the particle well its scores are smooth and the network follows them closely (apoferritin: 0.88, and
its picks are as good or better); where the encoder's score jumps from one window to the next (look-alike
species told apart by detail) no smooth map can follow it, and the encoder keeps scoring every window. Where
the agreement stays below :data:`NOISE_AGREEMENT` the encoder has learned nothing of the particle (noisy,
crowded micrographs: its score is noise from one window to the next) and picking uses the correlation with the
exemplars' rotational average alone (:func:`chosen_scoring`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from fewpick.geometry import Geometry
from fewpick.nn.cnn import PickerCNN

if TYPE_CHECKING:
    from fewpick.pickers.fewshot.model import FewShotModel

WIDTH = 16
DILATIONS = (1, 2, 3)
CELLS = 16  # teacher grid cells per side of a training crop
#: how the fast network's input is filled beyond the micrograph's edge, in distillation and when it scores: the
#: micrograph mirrored (:func:`fast_scores` pads as :func:`~fewpick.pickers.fewshot.distill.distill` did)
MARGIN_PAD = "reflect"


def binning(diameter: float) -> int:
    """Original px per pixel of the fast network's grid: the PU picker's rule (:meth:`Geometry.finest`; a grid
    fine enough for the encoder's 20 px did not follow it better)."""
    return int(Geometry.finest(diameter).factor)


def new_net(width: int | None = None, dilations: Sequence[int] | None = None) -> PickerCNN:
    """The fast network (the file's width and dilations when it gives them)."""
    return PickerCNN(int(width or WIDTH), tuple(dilations or DILATIONS))


def prepare_binned(data: np.ndarray, factor: int, threads: int | None = None) -> np.ndarray:
    from fewpick.pickers.pu.data import prepare

    return prepare(np.asarray(data, np.float32), factor, threads)


def grid_centres(shape: tuple[int, int], stride: int, size: int, rscale, bscale) -> tuple[np.ndarray, np.ndarray]:
    """The centres of the encoder's window grid (``shape`` cells; resampled px per cell ``stride``, windows of
    ``size``) on the binned grid: rows and columns, binned px (``rscale``, ``bscale``: original px per resampled and
    per binned px)."""
    centre = (size - 1) / 2
    rows = (np.arange(shape[0]) * stride + centre) * rscale[0] / bscale[0]
    cols = (np.arange(shape[1]) * stride + centre) * rscale[1] / bscale[1]
    return rows, cols






# at or above it (on the held-out rows) the fast network's picks are the encoder's; below it they drift from them
# (docs/decisions.md, "The few-shot picker's scorings")
MIN_AGREEMENT = 0.8
# below this the encoder's score map is noise at the particle's scale (nothing smooth follows it on rows it was
# not trained on), and the correlation with the exemplars' rotational average alone picks as well, far faster
NOISE_AGREEMENT = 0.2
# in between, the network follows the encoder loosely, well enough to say where the particles are not: the encoder
# scores only the windows the network ranks in the top ENCODER_SHARE of each micrograph's grid
ENCODER_SHARE = 0.5
SCORINGS = ("encoder", "fast", "correlation", "gated")


def chosen_scoring(agreement: float) -> str:
    """How a model whose fast network reached this ``agreement`` picks: ``fast`` (the network follows the encoder),
    ``correlation`` (the encoder's scores are noise at the particle's scale: the exemplars' rotational average
    alone) or ``gated`` (the encoder, on the windows the network ranks in the top :data:`ENCODER_SHARE`);
    ``encoder``, every window, is what a model without a fast network does."""
    if agreement >= MIN_AGREEMENT:
        return "fast"
    return "correlation" if agreement < NOISE_AGREEMENT else "gated"


def gate(model: FewShotModel, data: np.ndarray, grid_shape: tuple[int, int], rscale) -> np.ndarray:
    """Which cells of the encoder's window grid (``grid_shape``) on micrograph ``data`` the encoder scores: those
    where the fast network's score (read at the window's centre) is in the top :data:`ENCODER_SHARE`."""
    s = model.settings
    binned = prepare_binned(data, int(model.fast_info["factor"]), s.threads)
    rows, cols = grid_centres(grid_shape, s.step(), s.size, rscale, Geometry.scale(data.shape, binned.shape))
    z = sample(fast_scores(model.fast_net, binned), rows, cols)
    return z >= np.quantile(z, 1.0 - ENCODER_SHARE)


def stored_scoring(info: dict) -> str:
    """The scoring a model file's fast-network summary chose (the encoder where it holds none)."""
    return info.get("scoring") or "encoder"




@torch.inference_mode()
def agreement(net: PickerCNN, data: list[dict], offset: float) -> float:
    """Pearson correlation between the network's and the teacher's scores over the teacher cells of ``data``."""
    a, b = [], []
    for d in data:
        z = fast_scores(net, d["binned"]) + offset
        a.append(sample(z, d["rows"], d["cols"]).ravel())
        b.append(d["teacher"].ravel())
    a, b = np.concatenate(a), np.concatenate(b)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def sample(z: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear values of map ``z`` at the grid ``rows`` × ``cols`` (pixel coordinates, clamped inside)."""
    from scipy.ndimage import map_coordinates

    yy, xx = np.meshgrid(rows, cols, indexing="ij")
    return map_coordinates(z, [yy.ravel(), xx.ravel()], order=1, mode="nearest").reshape(yy.shape)


def fast_scores(net: PickerCNN, binned: np.ndarray) -> np.ndarray:
    """The network's map over a whole binned micrograph (each pixel: the score of the window centred there,
    less the offset), its margin filled as in distillation (:data:`MARGIN_PAD`)."""
    from fewpick.nn.dense import dense_logits

    return dense_logits(net, binned, pad=MARGIN_PAD)


