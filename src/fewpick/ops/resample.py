"""Resampling: Fourier cropping and binning of 2D and 3D arrays, block binning of volumes.

Lengths are in pixels of the array given."""

from __future__ import annotations

import numpy as np
import scipy.fft

FFT_WORKERS = 2  # threads of the FFTs of large arrays: the cores of a laptop-class machine


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
    workers = workers or FFT_WORKERS
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
