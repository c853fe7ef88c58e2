"""Candidate particles in a tomogram and the 2D image of each one.

Candidates: the tomogram is binned (block means) so that the user's radius is about 3 voxels and
normalised. Particles are found by the **local energy** of their detail rather than by their density: the
tomogram is band-passed (a difference of Gaussians of σ = r/3 and 2.5·r/3 binned voxels, the band where
the microscope's contrast transfer carries a small complex's signal; at the particle's own scale a
phase-contrast image holds little of it), squared, and the excess of that energy over its surroundings is
measured at the particle's scale and at progressively larger ones (so small and large complexes both answer).
3D non-maximum suppression within a sphere of the radius gives one peak per blob.

Which peaks to keep comes from the data: the same detector runs on a copy of the tomogram whose Fourier
phases are scrambled (the same power spectrum — noise, ice, missing wedge — but no particles), and the cut is
the lowest score at which the copy's peaks number at most ``background`` × the tomogram's peaks above it
(an estimate of the fraction of candidates on background; a false-discovery-rate cut).

Inputs: ``2d3d`` projects each candidate into the tilt images within ±15° (tilt axis y, the
geometry of :mod:`fewpick.simulate.reconstruct`: ``x' = x cos θ + z sin θ`` about the centres) and
averages the crops; ``3d`` averages a slab of tomogram sections around it. Crops are
``box`` tomogram voxels wide and resampled to ``size`` px.

Coordinates are ``(x, y, z)`` in voxels of the tomogram as given, origin at the first voxel's centre.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

from fewpick.errors import InputError
from fewpick.ops.filters import band_energy, energy_response
from fewpick.ops.peaks import nms
from fewpick.ops.resample import block_bin

#: the fraction of the candidates allowed on background, as the phase-scrambled copy estimates it (the estimate
#: runs high: the copy keeps the particles' power, so its peaks outnumber the true background's)
BACKGROUND = 0.5


def candidate_binning(radius: float, target: float = 3.0) -> int:
    """Integer binning that brings the NMS radius to about ``target`` voxels (never below 1)."""
    return max(1, int(np.floor(radius / target)))


def scrambled_copy(volume: np.ndarray, seed: int = 0) -> np.ndarray:
    """The volume with its Fourier amplitudes kept and its phases replaced by those of white noise."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfftn(volume)
    phases = np.fft.rfftn(rng.standard_normal(volume.shape).astype(np.float32))
    phases /= np.maximum(np.abs(phases), 1e-12)
    return np.fft.irfftn(np.abs(spectrum) * phases, s=volume.shape, axes=(0, 1, 2)).astype(np.float32)


def background_cut(scores: np.ndarray, null_scores: np.ndarray, background: float) -> float:
    """The lowest score ``t`` with ``#null ≥ t`` ≤ ``background`` × ``#scores ≥ t`` (the best score if none)."""
    ranked = np.sort(scores)[::-1]
    null = np.sort(null_scores)[::-1]
    false = np.searchsorted(-null, -ranked, side="right")
    ok = np.flatnonzero(false <= background * np.arange(1, len(ranked) + 1))
    return float(ranked[ok.max()] if len(ok) else ranked[0])


def _binned(tomogram: np.ndarray, radius: float, source=None) -> tuple[np.ndarray, int, float]:
    """The tomogram binned so that ``radius`` is about 3 voxels, to zero mean and unit sd; the binning; the
    radius in binned voxels."""
    if tomogram.ndim != 3:
        raise InputError(source, f"a tomogram must be 3D, got shape {tomogram.shape}")
    if not radius > 0:
        raise InputError(None, f"the candidate radius must be positive, got {radius:g}")
    b = candidate_binning(radius)
    small = block_bin(tomogram, b)
    if min(small.shape) < 4:
        raise InputError(source, f"tomogram of shape {tomogram.shape} is too small for a radius of {radius:g} voxels")
    sd = float(small.std())
    if not np.isfinite(sd) or sd < 1e-12:
        raise InputError(source, "no blob-like peaks in the tomogram (is it empty or constant?)")
    return (small - small.mean()) / sd, b, radius / b


def candidate_peaks(tomogram: np.ndarray, radius: float, *, background: float | None = BACKGROUND, seed: int = 0,
                    source=None) -> tuple[np.ndarray, np.ndarray, float]:
    """Every peak ``(n, 3)`` as ``(x, y, z)`` voxels of ``tomogram``, their scores (best first) and the cut that
    keeps the candidates (``-inf`` with ``background=None``); parameters as :func:`find_candidates`."""
    small, b, r = _binned(tomogram, radius, source)
    # local maxima within a sphere of the radius: the cube around it reaches 1.7 radii at its corners, where a
    # larger neighbour's response took the peak of a small complex touching it
    zyx, values = nms(energy_response(small, r), r, footprint="ball", border=r)
    if len(values) == 0:
        raise InputError(source, "no blob-like peaks in the tomogram (is it empty or constant?)")
    cut = -np.inf
    if background is not None:
        _, null = nms(energy_response(scrambled_copy(small, seed), r), r, footprint="ball", border=r)
        cut = background_cut(values, null, background)
    xyz = zyx[:, ::-1] * b + (b - 1) / 2  # centre of the block in original voxels
    return xyz, values, cut


def find_candidates(tomogram: np.ndarray, radius: float, *, background: float | None = BACKGROUND, seed: int = 0,
                    source=None) -> tuple[np.ndarray, np.ndarray]:
    """Candidate centres ``(n, 3)`` as ``(x, y, z)`` voxels of ``tomogram`` and their scores, best first.

    Parameters
    ----------
    tomogram
        ``(z, y, x)`` volume.
    radius
        Non-maximum suppression radius in voxels (about the smallest particle's radius; smaller for
        crowded tomograms).
    background
        The fraction of the candidates allowed to be background, as estimated from a phase-scrambled copy of
        the tomogram; ``None`` keeps every peak.
    seed
        Seed of the scrambled copy's phases.
    """
    xyz, values, cut = candidate_peaks(tomogram, radius, background=background, seed=seed, source=source)
    keep = values >= cut
    return xyz[keep], values[keep]


def sphere_directions(n: int = 64) -> np.ndarray:
    """``n`` unit vectors ``(x, y, z)`` spread evenly over the sphere (a Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    polar = np.arccos(1 - 2 * i / n)
    azimuth = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


def shell_means(volume: np.ndarray, centres_xyz: np.ndarray, radii: np.ndarray, directions: int = 64) -> np.ndarray:
    """``(N, len(radii))``: the mean of ``volume`` ``(z, y, x)`` over spheres of each radius (voxels) about each
    centre ``(x, y, z)`` (linear interpolation, edges extended)."""
    d = sphere_directions(directions)
    p = np.asarray(centres_xyz, float)
    out = np.empty((len(p), len(radii)), np.float32)
    for j, rad in enumerate(radii):
        pts = p[:, None, :] + rad * d[None]
        v = ndi.map_coordinates(volume, [pts[..., 2].ravel(), pts[..., 1].ravel(), pts[..., 0].ravel()], order=1,
                                mode="nearest")
        out[:, j] = v.reshape(len(p), -1).mean(axis=1)
    return out


SHELLS = np.arange(0.0, 4.01, 0.5)  # the shells of :func:`context_profiles`, in candidate radii


def context_profiles(tomogram: np.ndarray, xyz: np.ndarray, radius: float, source=None) -> tuple[np.ndarray, np.ndarray]:
    """The 3D rotational averages of the tomogram around each candidate ``(x, y, z)`` (voxels), out to 4 radii:
    ``(energy, density)``, each ``(N, 9)``.

    On the tomogram binned and normalised as for the candidates, smoothed with σ = r/3: the log of the local
    band-passed energy (how much detail there is, and how far it reaches: a small complex, a large one, the
    edge of something larger still) and the density. Unlike a 2D image they do not depend on how the
    particle lies, and they see the particle's whole neighbourhood in 3D.
    """
    small, b, r = _binned(tomogram, radius, source)
    s = r / 3.0
    energy = np.log(ndi.gaussian_filter(band_energy(small, r), s, mode="reflect") + 1e-6)
    density = ndi.gaussian_filter(small, s, mode="reflect")
    p = (np.asarray(xyz, float) - (b - 1) / 2) / b  # binned voxels
    radii = SHELLS * r
    return shell_means(energy, p, radii), shell_means(density, p, radii)


# ---------------------------------------------------------------- inputs


def _crops(image: np.ndarray, centres_yx: np.ndarray, box: float, size: int) -> np.ndarray:
    """Square crops of side ``box`` px centred (sub-pixel, linear interpolation) on ``centres_yx``,
    sampled on a ``size`` × ``size`` grid (averaging over the ``box/size`` footprint first when shrinking)."""
    img = np.asarray(image, dtype=np.float32)
    step = box / size
    if step > 1.5:
        img = ndi.uniform_filter(img, size=int(round(step)), mode="reflect")
    offs = (np.arange(size) - (size - 1) / 2) * step
    out = np.empty((len(centres_yx), size, size), np.float32)
    gy, gx = np.meshgrid(offs, offs, indexing="ij")
    for i, (cy, cx) in enumerate(centres_yx):
        out[i] = ndi.map_coordinates(img, [cy + gy, cx + gx], order=1, mode="reflect")
    return out


def project(xyz: np.ndarray, angle_deg: float, tomo_shape: tuple[int, int, int],
            image_shape: tuple[int, int]) -> np.ndarray:
    """Where tomogram voxels ``(x, y, z)`` fall in a tilt image ``(y, x)`` at ``angle_deg``.

    The tilt axis is y; the image may sample the field more finely than the tomogram (binned
    reconstruction): positions scale by the ratio of the widths.
    """
    nz, ny, nx = tomo_shape
    h, w = image_shape
    s = w / nx
    t = np.deg2rad(angle_deg)
    x = (xyz[:, 0] - (nx - 1) / 2) * np.cos(t) + (xyz[:, 2] - (nz - 1) / 2) * np.sin(t)
    y = xyz[:, 1] - (ny - 1) / 2
    return np.stack([y * s + (h - 1) / 2, x * s + (w - 1) / 2], axis=1)


def tilt_inputs(tilt_series: np.ndarray, angles: np.ndarray, xyz: np.ndarray, tomo_shape: tuple[int, int, int],
                box: float, size: int, max_tilt: float = 15.0, source=None) -> np.ndarray:
    """``2d3d`` inputs: each candidate's crops from the tilt images with |θ| ≤ ``max_tilt``, averaged."""
    angles = np.asarray(angles, float)
    if len(angles) != tilt_series.shape[0]:
        raise InputError(source, f"tilt series has {tilt_series.shape[0]} images but its .tlt file lists "
                                 f"{len(angles)} angles")
    use = np.flatnonzero(np.abs(angles) <= max_tilt)
    if not len(use):
        raise InputError(source, f"no tilt image within ±{max_tilt:g}° (angles {angles.min():g}…{angles.max():g})")
    s = tilt_series.shape[2] / tomo_shape[2]
    acc = np.zeros((len(xyz), size, size), np.float32)
    for k in use:
        acc += _crops(tilt_series[k], project(xyz, angles[k], tomo_shape, tilt_series.shape[1:]), box * s, size)
    return acc / len(use)


def slab_inputs(tomogram: np.ndarray, xyz: np.ndarray, box: float, size: int, half_thickness: int) -> np.ndarray:
    """``3d`` inputs: each candidate's crop from the mean of the sections within ``half_thickness`` of it."""
    nz = tomogram.shape[0]
    out = np.empty((len(xyz), size, size), np.float32)
    zc = np.clip(np.round(xyz[:, 2]).astype(int), 0, nz - 1)
    for z in np.unique(zc):
        rows = np.flatnonzero(zc == z)
        lo, hi = max(0, z - half_thickness), min(nz, z + half_thickness + 1)
        slab = np.asarray(tomogram[lo:hi], dtype=np.float32).mean(axis=0)
        out[rows] = _crops(slab, xyz[rows][:, [1, 0]], box, size)
    return out


def normalize_inputs(inputs: np.ndarray) -> np.ndarray:
    """Each input to zero mean and unit sd, proteins bright (inverted), as the network sees them."""
    x = -np.asarray(inputs, dtype=np.float32)
    x -= x.mean(axis=(1, 2), keepdims=True)
    x /= x.std(axis=(1, 2), keepdims=True) + 1e-6
    return x
