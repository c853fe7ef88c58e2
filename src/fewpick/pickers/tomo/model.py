"""The trained localization model and how it picks: the heat map over the whole tomogram in overlapping tiles
(bounded memory), 3D non-maximum suppression and the cut, and filament tracing for filament models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection

import numpy as np
import pandas as pd
import torch

from fewpick.device import module_device
from fewpick.io import Image
from fewpick.nn.fusion import inference_copy
from fewpick.nn.unet import SliceUNet3D
from fewpick.ops.peaks import nms
from fewpick.ops.thresholds import auto_threshold
from fewpick.pickers.base import PickerBase, ScoreMap, picks_table
from fewpick.pickers.threshold import Auto, Calibrated, Threshold, ThresholdLike, known_cut
from fewpick.pickers.tomo.data import prepare
from fewpick.pickers.tomo.settings import TomoSettings


@dataclass
class TomoModel(PickerBase):
    """A trained localization model (a :class:`~fewpick.pickers.base.Picker`)."""

    net: SliceUNet3D
    settings: TomoSettings
    pi: float
    voxel_size: float | None
    history: list = field(default_factory=list)
    # probability 0.5, the PU classifier's own boundary; with ``expected_particles`` the level that yields that
    # many picks in the training tomograms (:func:`calibrate_threshold`)
    threshold: float = 0.5
    # the particles assumed in each training tomogram (π's source): expected_particles, the capped estimate, or
    # twice the labels
    particles: list = field(default_factory=list)

    def score_map(self, image: Image | np.ndarray, heat: np.ndarray | None = None) -> ScoreMap:
        """The heat map: the centre probability of every binned voxel (``heat``: one computed already)."""
        if heat is None:
            heat = heat_map(self, image.data if isinstance(image, Image) else image)
        return ScoreMap(heat, self.settings.geometry().to_original)

    auto_rule = staticmethod(auto_threshold)  # each tomogram's split between its particles and the rest

    def calibrated_threshold(self) -> float | None:
        return self.threshold

    def default_threshold(self) -> Threshold:
        """The calibrated level for a model trained with an expected count, else each tomogram's own split (the
        stored 0.5 of a model trained without one is the classifier's boundary, not a calibration)."""
        return Calibrated() if self.settings.expected_particles else Auto()

    def peaks(self, smap: ScoreMap, threshold: ThresholdLike = None, max_picks: int | None = None,
              radius: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """3D non-maximum suppression (see :func:`pick_tomogram`), the cut (:mod:`fewpick.pickers.threshold`)
        and at most ``max_picks``."""
        threshold = self.resolve_threshold(threshold)
        if self.settings.filament:
            r = 1.0  # a 3 × 3 × 3 kernel
        else:
            geo = self.settings.geometry()
            r = max(1.0, geo.length(radius)) if radius is not None else geo.radius(minimum=1.0)
        # greedy suppression only looks at higher peaks, so cutting its output at t is the same as suppressing
        # with threshold t: suppress from the known cut, or from the automatic rule's floor (0.05)
        known = known_cut(threshold, self.calibrated_threshold())
        floor = known if known is not None else 0.05 if isinstance(threshold, Auto) else -np.inf
        zyx, score = nms(smap.scores, r, floor, footprint=peak_footprint(self.settings))
        return self.select(zyx, score, threshold, max_picks)

    def pick(self, image: Image, threshold: ThresholdLike = None, max_picks: int | None = None,
             radius: float | None = None, filament: dict | None = None) -> pd.DataFrame:
        """See :func:`pick_tomogram`."""
        return pick_tomogram(self, image, threshold, radius, filament=filament, max_picks=max_picks)


def peak_footprint(settings: TomoSettings) -> str:
    """The neighbourhood a peak of the heat map must top (:func:`~fewpick.ops.peaks.nms`): for a particle the
    sphere of its radius, not the cube around it, whose corners reach 1.7 radii and hand a weaker particle touching
    a stronger one to the stronger one's flank (docs/decisions.md, "Tomogram peaks within a sphere"); for a
    filament the 3 × 3 × 3 cube of neighbours."""
    return "box" if settings.filament else "ball"


#: views a particle model's picking heat map averages: the tomogram as it is and turned by 180° in its plane (y
#: and x reversed), which keeps the tilt axis, and so the missing wedge, where training saw it
PICK_VIEWS = 2


def pick_views(settings: TomoSettings) -> int:
    """The views a model's picking heat map averages: :data:`PICK_VIEWS` for particles, one for filaments (whose
    tracing, on the benchmark, followed the single view's peaks further)."""
    return 1 if settings.filament else PICK_VIEWS


def heat_map(model: TomoModel, volume: np.ndarray, tile: int = 256, chunk: int = 16,
             views: int | None = None) -> np.ndarray:
    """The centre probability of every binned voxel ``(z, y, x)`` of a tomogram as given, averaged over ``views``
    (:func:`prepared_heat_map`; default :func:`pick_views`)."""
    views = pick_views(model.settings) if views is None else views
    return prepared_heat_map(model.net, prepare(np.asarray(volume), model.settings.bin), tile, chunk, views=views)


HALO_XY = 16  # voxels of context on each side of a heat-map tile


def _block_steps(shape, tile: int) -> tuple[int, int]:
    """The y and x extent of a block: the whole axis where it fits in one tile (no halo needed at a tomogram's
    edge), else a tile less the halo on each side."""
    _, ny, nx = shape
    return (ny if ny <= tile else tile - 2 * HALO_XY), (nx if nx <= tile else tile - 2 * HALO_XY)


def heat_map_blocks(shape, tile: int = 256, chunk: int = 16) -> list[tuple[slice, slice, slice]]:
    """The blocks (z, y, x slices) :func:`prepared_heat_map` computes one at a time, in its order: ``chunk``
    sections by tiles of ``tile`` less the halo on each side (the whole of an axis that fits in one tile)."""
    nz, ny, nx = shape
    sy, sx = _block_steps(shape, tile)
    return [(slice(z0, min(nz, z0 + chunk)), slice(y0, min(ny, y0 + sy)), slice(x0, min(nx, x0 + sx)))
            for z0 in range(0, nz, chunk) for y0 in range(0, ny, sy) for x0 in range(0, nx, sx)]


def block_index(points_zyx: np.ndarray, shape, tile: int = 256, chunk: int = 16) -> np.ndarray:
    """The block of :func:`heat_map_blocks` (its index in that list) holding each point (z, y, x)."""
    sy, sx = _block_steps(shape, tile)
    _, ny, nx = shape
    p = np.clip(np.round(np.asarray(points_zyx, float).reshape(-1, 3)).astype(int), 0, np.array(shape) - 1)
    ny_b, nx_b = -(-ny // sy), -(-nx // sx)
    return (p[:, 0] // chunk) * ny_b * nx_b + (p[:, 1] // sy) * nx_b + p[:, 2] // sx


@torch.inference_mode()
def prepared_heat_map(net: SliceUNet3D, v: np.ndarray, tile: int = 256, chunk: int = 16,
                      blocks: Collection[int] | None = None, views: int = 1) -> np.ndarray:
    """Heat map of a prepared volume: overlapping xy tiles, z in chunks with a halo for the fusion convolution,
    on the device the network is on. ``blocks``: only these of :func:`heat_map_blocks` (the rest NaN).
    ``views=2``: each block's probabilities averaged with those of the block turned by 180° about z (the turn
    undone on the output), which smooths out part of the network's own errors at twice the cost. The network
    scores with its batch normalisation folded into the convolutions (:meth:`SliceUNet3D.fused`) and is left in
    eval mode."""
    if views not in (1, 2):
        raise ValueError(f"a heat map averages 1 or 2 views, not {views}")
    net.eval()
    net = inference_copy(net, SliceUNet3D.fused)
    dev = module_device(net)
    nz, ny, nx = v.shape
    halo_z = net.config["fuse"] // 2
    if tile - 2 * HALO_XY < net.multiple and max(ny, nx) > tile:
        raise ValueError(f"tiles of {tile} voxels leave no room inside their halo for this network")
    out = np.zeros(v.shape, np.float32) if blocks is None else np.full(v.shape, np.nan, np.float32)
    for i, (zs, ys, xs) in enumerate(heat_map_blocks(v.shape, tile, chunk)):
        if blocks is not None and i not in blocks:
            continue
        za, zb = max(0, zs.start - halo_z), min(nz, zs.stop + halo_z)
        ya, yb = max(0, ys.start - HALO_XY), min(ny, ys.stop + HALO_XY)
        xa, xb = max(0, xs.start - HALO_XY), min(nx, xs.stop + HALO_XY)
        block = v[za:zb, ya:yb, xa:xb]
        p = _block_probabilities(net, block, dev)
        if views == 2:  # the turned block is padded at its own far edges, so each view's padding lies elsewhere
            p = 0.5 * (p + _block_probabilities(net, block[:, ::-1, ::-1], dev)[:, ::-1, ::-1])
        out[zs, ys, xs] = p[zs.start - za : zs.stop - za, ys.start - ya : ys.stop - ya, xs.start - xa : xs.stop - xa]
    return out


def _block_probabilities(net: SliceUNet3D, block: np.ndarray, dev) -> np.ndarray:
    """The network's centre probabilities for one block, padded (reflected at its far y and x edges) to a
    multiple of the network's stride and cropped back; on a CPU a few slices at a time
    (:meth:`SliceUNet3D.pass_slices`)."""
    m = net.multiple
    ny, nx = block.shape[1:]
    ph, pw = (-ny) % m, (-nx) % m
    if ph or pw:
        block = np.pad(block, ((0, 0), (0, ph), (0, pw)), mode="reflect")
    per_pass = net.pass_slices(ny + ph, nx + pw) if dev.type == "cpu" else None
    logits, _ = net(torch.from_numpy(np.ascontiguousarray(block))[None, None].to(dev), with_projection=False,
                    slices_per_pass=per_pass)
    return torch.sigmoid(logits[0]).cpu().numpy()[:, :ny, :nx]


def pick_tomogram(model: TomoModel, image: Image, threshold: ThresholdLike = None, radius: float | None = None,
                  heat: np.ndarray | None = None, filament: dict | None = None,
                  max_picks: int | None = None) -> pd.DataFrame:
    """Picks ``(micrograph, x, y, z, score)`` in the tomogram's voxels: 3D NMS on the heat map (within a sphere
    of the particle's radius unless ``radius`` is given, in the tomogram's voxels: :func:`peak_footprint`), scores ≥ ``threshold``.

    ``threshold`` (:mod:`fewpick.pickers.threshold`): None, the model's calibrated level when it was trained with
    ``expected_particles``, else ``auto``: :func:`~fewpick.ops.thresholds.auto_threshold` of this tomogram's
    peaks.

    Filament models: NMS with a kernel of 3 binned voxels, then :func:`~fewpick.pickers.filament.trace_filaments`
    (``filament`` holds its options: ``link`` in the tomogram's voxels, default the filament's diameter, and
    ``max_residual``, ``max_curvature``, ``step``, ``min_points``); the output has ``rlnHelicalTubeID``."""
    smap = model.score_map(image, heat)
    zyx, score = model.peaks(smap, threshold, max_picks, radius)
    picks = picks_table(image.name, smap.to_original(zyx), score)
    if model.settings.filament:
        from fewpick.pickers.filament import trace_filaments

        opts = {"link": model.settings.diameter, **(filament or {})}
        picks = trace_filaments(picks, **opts)
    return picks
