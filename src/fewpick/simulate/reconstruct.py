"""Weighted back-projection (WBP) of a single-axis tilt series, tilt axis along y.

Every row y of the tilt images reconstructs one xz slice, and every slice uses the
same geometry, so back-projection is one sparse matrix ``B`` (xz voxels × tilt
samples, linear interpolation) applied to all rows at once, in chunks of rows to
bound memory. ``B.T`` is the matching forward projector.

Geometry: voxel (x, z), relative to the volume centre, projects in the tilt image at
``x' = x cos θ + z sin θ`` (same units), y unchanged — the convention of
:mod:`fewpick.simulate.tomogram`.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.sparse as sp


def backprojection_matrix(nx: int, nz: int, angles_deg: np.ndarray, n_det: int | None = None) -> sp.csr_matrix:
    """Sparse ``(nz*nx, n_tilts*n_det)`` matrix: linear-interpolation back-projection."""
    n_det = nx if n_det is None else n_det
    theta = np.deg2rad(np.asarray(angles_deg, float))
    z = np.arange(nz) - (nz - 1) / 2
    x = np.arange(nx) - (nx - 1) / 2
    zz, xx = np.meshgrid(z, x, indexing="ij")
    rows_all, cols_all, vals_all = [], [], []
    voxel = np.arange(nz * nx)
    for t, th in enumerate(theta):
        xp = (xx * np.cos(th) + zz * np.sin(th)).ravel() + (n_det - 1) / 2
        i0 = np.floor(xp).astype(np.int64)
        f = xp - i0
        for di, w in ((0, 1 - f), (1, f)):
            i = i0 + di
            ok = (i >= 0) & (i < n_det) & (w > 0)
            rows_all.append(voxel[ok])
            cols_all.append(t * n_det + i[ok])
            vals_all.append(w[ok])
    return sp.csr_matrix((np.concatenate(vals_all).astype(np.float32),
                          (np.concatenate(rows_all), np.concatenate(cols_all))),
                         shape=(nz * nx, len(theta) * n_det))


def ramp_filter(tilts: np.ndarray, angles_deg: np.ndarray, cutoff: float = 1.0) -> np.ndarray:
    """Weight each tilt image along x (perpendicular to the axis) by ``|k_x|``.

    A cosine roll-off from ``0.8·cutoff`` to ``cutoff`` (fraction of Nyquist) tames the
    noise; each tilt is also weighted by the angular interval it covers.
    """
    n = tilts.shape[-1]
    k = np.fft.rfftfreq(2 * n)  # zero-padded to avoid wrap-around
    ramp = np.abs(k) * 2
    ramp[0] = ramp[1] / 4  # keep a little of the mean (Ram-Lak DC term)
    kc = np.clip((ramp - 0.8 * cutoff) / (0.2 * cutoff), 0, 1)
    ramp = ramp * (0.5 + 0.5 * np.cos(np.pi * kc)) * (ramp <= cutoff)
    angles = np.sort(np.asarray(angles_deg, float))
    spacing = np.gradient(angles) if len(angles) > 1 else np.ones(1)
    order = np.argsort(np.argsort(np.asarray(angles_deg, float)))
    weights = np.deg2rad(spacing[order])
    spec = scipy.fft.rfft(tilts, n=2 * n, axis=-1, workers=2)
    spec *= ramp.astype(np.float32)
    out = scipy.fft.irfft(spec, n=2 * n, axis=-1, workers=2)[..., :n]
    return (out * weights[:, None, None] * n / np.pi).astype(np.float32)


def weighted_back_projection(tilts: np.ndarray, angles_deg: np.ndarray, nz: int, *, chunk_rows: int = 64,
                             cutoff: float = 1.0) -> np.ndarray:
    """Reconstruct ``(nz, ny, nx)`` from a tilt series ``(n_tilts, ny, nx)`` by WBP."""
    tilts = np.asarray(tilts, dtype=np.float32)
    n_t, ny, nx = tilts.shape
    if len(angles_deg) != n_t:
        raise ValueError(f"{n_t} tilt images but {len(angles_deg)} angles")
    filtered = ramp_filter(tilts - tilts.mean(axis=(1, 2), keepdims=True), angles_deg, cutoff)
    b = backprojection_matrix(nx, nz, angles_deg)
    out = np.empty((nz, ny, nx), np.float32)
    # stack as (n_tilts * nx, ny): each column is one row y of every tilt
    stacked = np.ascontiguousarray(filtered.transpose(0, 2, 1).reshape(n_t * nx, ny))
    for y0 in range(0, ny, chunk_rows):
        y1 = min(ny, y0 + chunk_rows)
        vol = b @ np.ascontiguousarray(stacked[:, y0:y1])  # (nz*nx, rows)
        out[:, y0:y1, :] = vol.reshape(nz, nx, y1 - y0).transpose(0, 2, 1)
    return out


def forward_project(volume: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """Project ``(nz, ny, nx)`` along tilted rays (the transpose of back-projection)."""
    nz, ny, nx = volume.shape
    b = backprojection_matrix(nx, nz, angles_deg)
    flat = np.ascontiguousarray(volume.transpose(0, 2, 1).reshape(nz * nx, ny))
    proj = (b.T @ flat).reshape(len(angles_deg), nx, ny)
    return np.ascontiguousarray(proj.transpose(0, 2, 1)).astype(np.float32)
