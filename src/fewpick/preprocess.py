"""Image preprocessing: Fourier binning, normalisation, filters.

Plain functions on NumPy arrays of any dimension (2D micrographs, 3D volumes),
in the spirit of ``skimage.filters``. Lengths are in pixels of the array given.
"""

from __future__ import annotations

import re

import numpy as np
import scipy.fft
import scipy.ndimage as ndi

from fewpick.errors import InputError

_WORKERS = 2  # the project's machines have 2 cores; scipy.fft uses them for large arrays


def fourier_crop(image: np.ndarray, shape: tuple[int, ...], workers: int | None = None) -> np.ndarray:
    """Resample ``image`` to a smaller ``shape`` by cropping its Fourier transform.

    Each axis is transformed, its frequencies above the new Nyquist dropped, and
    transformed back; values are rescaled so the mean is preserved. Sample ``j``
    of the output lies at position ``j * n_in / n_out`` of the input (both grids
    start at the first pixel's centre).

    Parameters
    ----------
    image
        Real array, any number of dimensions.
    shape
        Output shape, each axis no larger than the input's.
    workers
        Threads for the FFTs (default 2). A picker passes its own thread count, so that one-thread runs side by
        side (Dask workers, several processes) do not each start two FFT threads on the same cores.

    Returns
    -------
    ndarray of float32, shape ``shape``
    """
    out = np.asarray(image, dtype=np.float32)
    workers = workers or _WORKERS
    if len(shape) != out.ndim:
        raise ValueError(f"shape {shape} does not match an array of {out.ndim} dimensions")
    for axis, (n_in, n_out) in enumerate(zip(out.shape, shape)):
        if n_out > n_in or n_out < 1:
            raise ValueError(f"cannot crop axis {axis} from {n_in} to {n_out} samples")
        if n_out == n_in:
            continue
        spectrum = scipy.fft.rfft(out, axis=axis, workers=workers)
        keep = [slice(None)] * out.ndim
        keep[axis] = slice(0, n_out // 2 + 1)
        cropped = spectrum[tuple(keep)]
        if n_out % 2 == 0:  # the new Nyquist bin stands for both +f and -f: keep its real part only
            nyq = [slice(None)] * out.ndim
            nyq[axis] = slice(n_out // 2, n_out // 2 + 1)
            cropped[tuple(nyq)] = cropped[tuple(nyq)].real
        out = scipy.fft.irfft(cropped, n=n_out, axis=axis, workers=workers).astype(np.float32)
        out *= n_out / n_in
    return out


def binned_shape(shape: tuple[int, ...], factor: float) -> tuple[int, ...]:
    """Shape after binning by ``factor`` (at least one pixel per axis)."""
    return tuple(max(1, int(round(n / factor))) for n in shape)


def bin_image(image: np.ndarray, factor: float, workers: int | None = None) -> np.ndarray:
    """Fourier-bin ``image`` by ``factor`` (>= 1) on every axis; see :func:`fourier_crop`."""
    if factor < 1:
        raise ValueError(f"binning factor must be >= 1, got {factor}")
    if factor == 1:
        return np.asarray(image, dtype=np.float32)
    return fourier_crop(image, binned_shape(image.shape, factor), workers)


def block_bin(volume: np.ndarray, factor: int) -> np.ndarray:
    """Bin a volume by an integer ``factor`` on every axis with block means (trailing voxels dropped)."""
    v = np.asarray(volume, dtype=np.float32)
    if factor <= 1:
        return np.array(v, dtype=np.float32)
    shape = tuple(n // factor for n in v.shape)
    if min(shape) < 1:
        raise ValueError(f"cannot bin a volume of shape {v.shape} by {factor}")
    cut = v[tuple(slice(0, n * factor) for n in shape)]
    return cut.reshape(shape[0], factor, shape[1], factor, shape[2], factor).mean(axis=(1, 3, 5), dtype=np.float32)


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


_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px|pix|pixels?|a|å|ang|angstroms?|nm)?\s*$", re.I)


def parse_length(text: str | float, pixel_size: float | None = None, what: str = "length") -> float:
    """Parse a length such as ``"68"``, ``"68px"``, ``"120A"``, ``"120Å"`` or ``"12nm"`` into pixels.

    Plain numbers are pixels. Ångström and nanometre values need ``pixel_size`` (Å/px).
    """
    if isinstance(text, (int, float)):
        value, unit = float(text), "px"
    else:
        m = _LENGTH.match(str(text))
        if not m:
            raise InputError(None, f"cannot read {what} {text!r}; write e.g. 68, 68px, 120A or 12nm")
        value, unit = float(m.group(1)), (m.group(2) or "px").lower()
    if value <= 0:
        raise InputError(None, f"{what} must be positive, got {text!r}")
    if unit.startswith("p"):
        return value
    if pixel_size is None:
        raise InputError(None, f"{what} {text!r} is in physical units but the pixel size is unknown; "
                               "give it in pixels or pass --pixel-size")
    angstrom = value * 10.0 if unit == "nm" else value
    return angstrom / pixel_size
