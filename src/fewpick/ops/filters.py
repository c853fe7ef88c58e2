"""Filters on 2D and 3D arrays: robust normalisation, Gaussian low-pass, difference of Gaussians (as a blob score
for particles of a given radius), the local energy of a band of detail (as a blob score that does not depend on
the contrast's sign), histogram equalisation."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

from fewpick.errors import InputError


def normalize(image: np.ndarray, *, robust: bool = True, clip: float | None = None) -> np.ndarray:
    """Zero-centre and scale an image to unit spread.

    With ``robust`` the median and the median absolute deviation (×1.4826, the
    standard deviation for Gaussian noise) are used, so a few extreme pixels
    (ice contamination, hot pixels) do not set the scale. ``clip`` limits the
    result to ±clip.
    """
    x = np.asarray(image, dtype=np.float32)
    if robust:
        sample = x.ravel()[:: max(1, x.size // 1_000_000)]
        centre = float(np.median(sample))
        spread = 1.4826 * float(np.median(np.abs(sample - centre)))
        if spread <= 0:
            spread = float(x.std())
    else:
        centre, spread = float(x.mean()), float(x.std())
    if spread <= 0 or not np.isfinite(spread):
        raise InputError(None, "image is constant: it cannot be normalised")
    out = (x - centre) / spread
    if clip is not None:
        np.clip(out, -clip, clip, out=out)
    return out


def gaussian_lowpass(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass filter with standard deviation ``sigma`` pixels (reflecting edges)."""
    x = np.asarray(image, dtype=np.float32)
    if sigma <= 0:
        return x.copy()
    return ndi.gaussian_filter(x, sigma, mode="reflect")


def difference_of_gaussians(image: np.ndarray, sigma_low: float, sigma_high: float) -> np.ndarray:
    """Band-pass ``G(sigma_low) * image − G(sigma_high) * image`` with ``sigma_low < sigma_high``.

    Bright blobs of radius ``≈ sqrt(2)·sigma`` give positive peaks at their centres.
    """
    if not 0 <= sigma_low < sigma_high:
        raise ValueError(f"need 0 <= sigma_low < sigma_high, got {sigma_low}, {sigma_high}")
    x = np.asarray(image, dtype=np.float32)
    return gaussian_lowpass(x, sigma_low) - gaussian_lowpass(x, sigma_high)


def histogram_equalize(image: np.ndarray, nbins: int = 256) -> np.ndarray:
    """Histogram equalisation: map values through their cumulative distribution to [0, 1]."""
    x = np.asarray(image, dtype=np.float32)
    hist, edges = np.histogram(x, bins=nbins)
    cdf = np.cumsum(hist).astype(np.float64)
    cdf /= cdf[-1]
    centres = 0.5 * (edges[:-1] + edges[1:])
    return np.interp(x, centres, cdf).astype(np.float32)


def dog_score_map(image: np.ndarray, radius: float, dark: bool = True) -> np.ndarray:
    """Difference-of-Gaussians blob score for particles of ``radius`` pixels.

    The band-pass ``G(σ₁) − G(σ₂)`` with ``σ₁ = r/(√2·1.25)`` and ``σ₂ = 1.6·σ₁``
    peaks at the centres of blobs of radius ``r`` (for a disk, the Laplacian of
    Gaussian responds most at ``σ = r/√2``; the DoG pair brackets it). The map is
    signed so that particles score high and scaled to unit robust spread.
    """
    s1 = radius / (np.sqrt(2) * 1.25)
    s2 = 1.6 * s1
    x = np.asarray(image, dtype=np.float32)
    dog = ndi.gaussian_filter(x, s1, mode="reflect") - ndi.gaussian_filter(x, s2, mode="reflect")
    if dark:
        dog = -dog
    return normalize(dog)


OUTER_SCALES = (1.6, 2.56, 4.096)  # outer σ of the differences of Gaussians, as multiples of the inner σ


def blob_response(volume: np.ndarray, radius: float) -> np.ndarray:
    """Difference of Gaussians at the particle's scale against progressively wider surroundings.

    ``max_k [G(σ₀) − G(1.6^k σ₀)]`` for k = 1, 2, 3 with σ₀ = r/√3 (where a ball of radius r answers
    most): the inner Gaussian averages the blob (finer σ only finds noise), the outer ones remove the
    background at growing distances, so blobs of radius ≳ r in any surroundings respond.
    """
    s0 = radius / np.sqrt(3.0)
    inner = ndi.gaussian_filter(volume, s0, mode="reflect")
    best = inner - ndi.gaussian_filter(volume, s0 * OUTER_SCALES[0], mode="reflect")
    for k in OUTER_SCALES[1:]:
        np.maximum(best, inner - ndi.gaussian_filter(volume, s0 * k, mode="reflect"), out=best)
    return best


def energy_response(volume: np.ndarray, radius: float) -> np.ndarray:
    """Local excess of band-passed energy around each voxel, at the scale ``radius`` (voxels) and larger.

    The band is ``G(r/3) − G(2.5 r/3)``; its square (:func:`band_energy`) is scored by :func:`blob_response`.
    """
    return blob_response(band_energy(volume, radius), radius)


def band_energy(volume: np.ndarray, radius: float) -> np.ndarray:
    """The square of the volume band-passed by ``G(r/3) − G(2.5 r/3)`` (``radius`` in voxels)."""
    s = radius / 3.0
    band = ndi.gaussian_filter(volume, s, mode="reflect")
    band -= ndi.gaussian_filter(volume, 2.5 * s, mode="reflect")
    np.square(band, out=band)
    return band
