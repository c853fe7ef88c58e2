"""Tomograms and labels made ready for training: binning and denoising, the labels' target heat maps, the
training items, and subtomogram batches with their augmentation."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.ndimage as ndi
import torch

from fewpick.errors import InputError
from fewpick.io import Image
from fewpick.ops.peaks import merge_close
from fewpick.ops.resample import block_bin
from fewpick.pickers.tomo.settings import TomoSettings


def check_isotropic(path: str | os.PathLike) -> None:
    """Refuse MRC volumes whose header gives different voxel sizes along x, y and z."""
    path = Path(path)
    if path.suffix.lower() not in (".mrc", ".rec", ".map", ".st", ".ali"):
        return
    import mrcfile

    try:
        with mrcfile.mmap(path, mode="r", permissive=True) as m:
            v = m.voxel_size
            sizes = np.array([float(v.x), float(v.y), float(v.z)])
    except Exception:  # unreadable headers are reported by the reader itself
        return
    if np.all(sizes > 0) and (sizes.max() - sizes.min()) > 0.01 * sizes.max():
        raise InputError(path, f"anisotropic voxels ({sizes[0]:g} × {sizes[1]:g} × {sizes[2]:g} Å along x, y, z): "
                               "resample the tomogram to cubic voxels first")


def prepare(volume: np.ndarray, factor: int, sigma: float = 1.0) -> np.ndarray:
    """Bin by ``factor`` (block means), denoise with a Gaussian, standardise, and invert: dense matter bright."""
    v = block_bin(volume, factor)
    v = ndi.gaussian_filter(v, sigma, mode="reflect")
    v -= v.mean()
    v /= v.std() + 1e-6
    return -v


def targets(shape: tuple[int, int, int], centres_zyx: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian splats (σ = radius / 2, peak 1 at the centre voxel, cut below 0.1) on a ``(z, y, x)`` grid."""
    out = np.zeros(shape, np.float32)
    sigma = max(1.0, radius / 2)
    half = int(np.ceil(2.2 * sigma))
    offs = np.arange(-half, half + 1)
    gz, gy, gx = np.meshgrid(offs, offs, offs, indexing="ij")
    for c in np.asarray(centres_zyx, float):
        ci = np.round(c).astype(int)
        d2 = (gz + ci[0] - c[0]) ** 2 + (gy + ci[1] - c[1]) ** 2 + (gx + ci[2] - c[2]) ** 2
        g = np.exp(-d2 / (2 * sigma**2)).astype(np.float32)
        g[g < 0.1] = 0
        sl_out, sl_g = [], []
        for axis in range(3):
            lo, hi = ci[axis] - half, ci[axis] + half + 1
            a, b = max(lo, 0), min(hi, shape[axis])
            if a >= b:
                break
            sl_out.append(slice(a, b))
            sl_g.append(slice(a - lo, b - lo))
        else:
            np.maximum(out[tuple(sl_out)], g[tuple(sl_g)], out=out[tuple(sl_out)])
            out[tuple(np.clip(ci, 0, np.array(shape) - 1))] = 1.0
    return out


def _labels_zyx(labels: pd.DataFrame, image: Image, source) -> np.ndarray:
    if "z" not in labels.columns or labels["z"].isna().all():
        raise InputError(source, "the labels have no z coordinates (a 2D picks file?); a tomogram needs x, y, z")
    xyz = labels[["x", "y", "z"]].to_numpy(float)
    if not np.isfinite(xyz).all():
        raise InputError(source, "some labels have missing or non-finite coordinates")
    nz, ny, nx = image.shape
    bad = (xyz < -0.5).any(1) | (xyz[:, 0] > nx - 0.5) | (xyz[:, 1] > ny - 0.5) | (xyz[:, 2] > nz - 0.5)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(source, f"label {i + 1} at x={xyz[i, 0]:g}, y={xyz[i, 1]:g}, z={xyz[i, 2]:g} lies outside "
                                 f"{image.name} ({nx}×{ny}×{nz} voxels, x×y×z)")
    return xyz[:, ::-1]


@dataclass
class TrainingItem:
    volume: np.ndarray  # prepared, binned (z, y, x)
    target: np.ndarray
    centres: np.ndarray  # binned (z, y, x)


def training_items(tomograms: Sequence[Image], labels: pd.DataFrame, settings: TomoSettings, source) -> list[TrainingItem]:
    b = settings.bin
    items = []
    by_name = {str(k): g for k, g in labels.groupby(labels["micrograph"].astype(str))}
    for im in tomograms:
        rows = by_name.get(im.name)
        if rows is None or not len(rows):
            continue
        zyx = _labels_zyx(rows, im, source)
        if not settings.filament:
            # labels closer than a radius mark one particle (two candidates on a large one, exported together from
            # the exploration's classes): one label at their mean, so that no particle is taught twice off-centre
            zyx = merge_close(zyx, settings.diameter / 2)
        vol = prepare(np.asarray(im.data), b)
        if vol.shape[0] < settings.depth or vol.shape[1] < settings.box or vol.shape[2] < settings.box:
            raise InputError(im.path, f"binned ×{b} to {vol.shape[2]}×{vol.shape[1]}×{vol.shape[0]} voxels, smaller "
                                      f"than the training box {settings.box}×{settings.box}×{settings.depth}: "
                                      "use a smaller --box or a smaller binning")
        centres = settings.geometry().to_working(zyx)
        if settings.filament:
            # fibres: TP + unlabeled only (no soft positives). The points clicked along a filament are joined
            # into chains (links shorter than ``label_link`` diameters), and every voxel within one voxel of
            # the joins is a true positive: a few clicks mark the whole centre line. (Single clicked voxels gave
            # π ~ 1e-4 and no heat on realistic tomograms; with this line, training still depends on the seed.)
            from fewpick.pickers.filament import label_segments, rasterise

            line = np.zeros(vol.shape, bool)
            idx = np.clip(np.round(centres).astype(int), 0, np.array(vol.shape) - 1)
            line[tuple(idx.T)] = True
            link = settings.geometry().length(settings.label_link * settings.diameter)
            line[tuple(rasterise(label_segments(centres, link), vol.shape).T)] = True
            tgt = ndi.binary_dilation(line, ndi.generate_binary_structure(3, 1)).astype(np.float32)
        else:
            tgt = targets(vol.shape, centres, settings.geometry().radius())
        items.append(TrainingItem(vol, tgt, centres))
    if not items:
        raise InputError(source, "no label names any of the tomograms given (labels name tomograms by file stem: "
                                 f"{', '.join(sorted(by_name)[:5])})")
    return items


def augment(x: torch.Tensor, gen: torch.Generator):
    """A random xy dihedral transform, intensity jitter and noise; returns the view and the inverse map."""
    k = int(torch.randint(0, 4, (1,), generator=gen))
    flip = bool(torch.rand(1, generator=gen) < 0.5)
    y = torch.rot90(x, k, dims=(-2, -1))
    if flip:
        y = torch.flip(y, dims=(-1,))
    # drawn on the CPU generator and moved: the same draws on any device
    scale = (0.8 + 0.4 * torch.rand(x.shape[0], generator=gen)).to(x.device)
    shift = (0.4 * torch.rand(x.shape[0], generator=gen) - 0.2).to(x.device)
    y = y * scale.view(-1, *[1] * (x.dim() - 1)) + shift.view(-1, *[1] * (x.dim() - 1))
    y = y + 0.1 * torch.randn(y.shape, generator=gen).to(x.device)

    def inverse(t: torch.Tensor) -> torch.Tensor:
        if flip:
            t = torch.flip(t, dims=(-1,))
        return torch.rot90(t, -k, dims=(-2, -1))

    return y, inverse


def sample_batch(items: list[TrainingItem], settings: TomoSettings, rng: np.random.Generator):
    d, s = settings.depth, settings.box
    xs, ts = [], []
    for _ in range(settings.batch):
        it = items[rng.integers(len(items))]
        nz, ny, nx = it.volume.shape
        if rng.random() < 0.5 and len(it.centres):
            c = it.centres[rng.integers(len(it.centres))] + np.array([rng.integers(-1, 2), *rng.integers(-s // 4, s // 4 + 1, 2)])
            z0, y0, x0 = int(round(c[0])) - d // 2, int(round(c[1])) - s // 2, int(round(c[2])) - s // 2
        else:
            z0, y0, x0 = rng.integers(0, nz - d + 1), rng.integers(0, ny - s + 1), rng.integers(0, nx - s + 1)
        z0, y0, x0 = int(np.clip(z0, 0, nz - d)), int(np.clip(y0, 0, ny - s)), int(np.clip(x0, 0, nx - s))
        xs.append(it.volume[z0 : z0 + d, y0 : y0 + s, x0 : x0 + s])
        ts.append(it.target[z0 : z0 + d, y0 : y0 + s, x0 : x0 + s])
    return torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ts))
