"""Templates: projections of 3D maps and banks of rotated templates, rotational averages of particle windows, and
their local normalised correlation with a micrograph."""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.ndimage as ndi
from scipy.spatial.transform import Rotation

from fewpick.errors import InputError
from fewpick.ops.peaks import ball, refine_peaks
from fewpick.ops.resample import FFT_WORKERS


def _pad_to(t: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop or zero-pad a square template to ``size`` (odd)."""
    out = np.zeros((size, size), np.float32)
    n = t.shape[0]
    if n >= size:
        o = (n - size) // 2
        return t[o : o + size, o : o + size].astype(np.float32)
    o = (size - n) // 2
    out[o : o + n, o : o + n] = t
    return out


def project_volume(volume: np.ndarray, rotations: Rotation) -> np.ndarray:
    """Projections of a cubic ``volume`` (z, y, x) along z after each rotation about its centre.

    Returns an array ``(n, size, size)``. Linear interpolation.
    """
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3 or len(set(vol.shape)) != 1:
        raise InputError(None, f"template map must be a cubic 3D volume, got shape {vol.shape}")
    n = vol.shape[0]
    c = (n - 1) / 2.0
    matrices = rotations.as_matrix().reshape(-1, 3, 3)
    out = np.empty((len(matrices), n, n), np.float32)
    for i, m in enumerate(matrices):
        # output voxel p samples the input at R^T (p - c) + c (matrix in z, y, x order)
        mat = m.T[::-1, ::-1]
        offset = c - mat @ np.full(3, c)
        rotated = ndi.affine_transform(vol, mat, offset=offset, order=1, mode="constant", cval=0.0)
        out[i] = rotated.sum(axis=0)
    return out


def _fibonacci_directions(step_deg: float) -> np.ndarray:
    """About ``4π / step²`` directions spread evenly over the sphere (unit vectors)."""
    step = np.deg2rad(step_deg)
    n = max(1, int(round(4 * np.pi / step**2)))
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = np.pi * (1 + 5**0.5) * k
    r = np.sqrt(1 - z**2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def template_bank(
    template: np.ndarray,
    size: int,
    *,
    angular_step: float = 30.0,
    invert: bool = False,
) -> np.ndarray:
    """Templates of edge ``size`` (odd) at every orientation to search.

    A 2D ``template`` is rotated in plane every ``angular_step`` degrees. A 3D map
    is projected along directions about ``angular_step`` apart over the sphere,
    each projection then rotated in plane. ``invert`` flips the contrast (a density
    map is bright; particles in cryo-EM micrographs are dark).
    """
    template = np.asarray(template, dtype=np.float32)
    inplane = np.arange(0.0, 360.0, angular_step)
    if template.ndim == 3:
        dirs = _fibonacci_directions(angular_step)
        # rotation taking each direction onto +z, then in-plane turns about z
        base = [Rotation.align_vectors([[0, 0, 1]], [d])[0] for d in dirs]
        rots = Rotation.concatenate([Rotation.from_euler("z", a, degrees=True) * b for b in base for a in inplane])
        stack = project_volume(template, rots)
    elif template.ndim == 2:
        if template.shape[0] != template.shape[1]:
            raise InputError(None, f"2D template must be square, got {template.shape[1]}x{template.shape[0]} px")
        stack = np.stack([ndi.rotate(template, a, reshape=False, order=1, mode="nearest") for a in inplane])
    else:
        raise InputError(None, f"template must be 2D or 3D, got {template.ndim} dimensions")
    if invert:
        stack = -stack
    return np.stack([_pad_to(t, size) for t in stack])


def template_score_map(image: np.ndarray, templates: np.ndarray, mask_radius: float) -> np.ndarray:
    """Best normalised cross-correlation over ``templates`` at every pixel of ``image``.

    Local normalised correlation under a circular mask (Roseman 2003): each template
    is normalised to zero mean and unit variance inside the mask; the image's local
    mean and variance under the same mask come from two FFT convolutions computed
    once (the disk does not change as templates rotate). Values are correlation
    coefficients in [-1, 1].
    """
    img = np.asarray(image, dtype=np.float32)
    n_t, size, _ = templates.shape
    half = size // 2
    padded = np.pad(img, half, mode="reflect")
    shape = padded.shape
    mask = _pad_to(ball(mask_radius, 2).astype(np.float32), size)
    n_mask = float(mask.sum())

    def spectrum_of_kernel(k: np.ndarray) -> np.ndarray:
        full = np.zeros(shape, np.float32)
        full[:size, :size] = k
        full = np.roll(full, (-half, -half), axis=(0, 1))  # kernel centre at the origin
        return np.conj(scipy.fft.rfft2(full, workers=FFT_WORKERS))

    f_img = scipy.fft.rfft2(padded, workers=FFT_WORKERS)
    f_img2 = scipy.fft.rfft2(padded * padded, workers=FFT_WORKERS)
    f_mask = spectrum_of_kernel(mask)
    local_sum = scipy.fft.irfft2(f_img * f_mask, s=shape, workers=FFT_WORKERS)
    local_sum2 = scipy.fft.irfft2(f_img2 * f_mask, s=shape, workers=FFT_WORKERS)
    var = np.maximum(local_sum2 / n_mask - (local_sum / n_mask) ** 2, 0)
    denom = n_mask * np.sqrt(var) + 1e-6
    best = np.full(shape, -np.inf, np.float32)
    inside = mask > 0
    for t in templates:
        vals = t[inside]
        sd = vals.std()
        if sd <= 0:
            continue
        tn = np.where(inside, (t - vals.mean()) / sd, 0).astype(np.float32)
        cc = scipy.fft.irfft2(f_img * spectrum_of_kernel(tn), s=shape, workers=FFT_WORKERS) / denom
        np.maximum(best, cc, out=best)
    return best[half : half + img.shape[0], half : half + img.shape[1]]


def rescaled_template(template: np.ndarray, zoom: float) -> np.ndarray:
    """A rotationally symmetric ``template`` (odd grid) drawn on a grid ``zoom`` times finer (< 1: coarser)."""
    n = template.shape[-1]
    c = (n - 1) / 2
    radii = np.arange(0.0, n / 2 * np.sqrt(2) + 1)
    profile = ring_profile(template, (c, c), radii)
    return draw_profile(profile, radii * zoom, int(np.ceil(n * zoom)) | 1)


def ring_profile(window: np.ndarray, centre: tuple[float, float], radii: np.ndarray) -> np.ndarray:
    """Rotational average of ``window`` about ``centre`` (row, col), at ``radii`` (px): one-pixel rings,
    interpolated at each ring's mean radius."""
    yy, xx = np.mgrid[: window.shape[0], : window.shape[1]]
    r = np.hypot(yy - centre[0], xx - centre[1]).ravel()
    ring = np.round(r).astype(int)
    counts = np.bincount(ring)
    full = counts > 0
    mean_r = np.bincount(ring, r)[full] / counts[full]
    values = np.bincount(ring, np.asarray(window, np.float64).ravel())[full] / counts[full]
    return np.interp(radii, mean_r, values)


def draw_profile(profile: np.ndarray, radii: np.ndarray, size: int) -> np.ndarray:
    h = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    return np.interp(np.hypot(yy - h, xx - h), radii, profile).astype(np.float32)


def rotational_template(windows: np.ndarray, mask_radius: float) -> np.ndarray:
    """The mean rotational average of particle ``windows`` (n, s, s) about their centres, on an odd grid (s
    rounded up to odd), matched within ``mask_radius``.

    Particles are clicked a pixel or two off their centres, which blurs their average: each window is first
    centred on the average about the windows' centres (its best correlation within 2.5 px, refined below a
    pixel) and the average is taken again about those centres. Orientation-free, so one template serves
    particles in any in-plane orientation, hollow ones (a ring) included.
    """
    ex = np.asarray(windows, np.float32)
    n = ex.shape[-1]
    c = (n - 1) / 2
    size = n | 1
    radii = np.arange(0.0, size / 2 * np.sqrt(2) + 1)
    first = draw_profile(np.mean([ring_profile(w, (c, c), radii) for w in ex], axis=0), radii, size)
    yy, xx = np.mgrid[:n, :n]
    near = np.hypot(yy - c, xx - c) <= 2.5
    profiles = []
    for w in ex:
        cc = np.where(near, template_score_map(w, first[None], mask_radius), -np.inf)
        best = np.array([np.unravel_index(int(np.argmax(cc)), cc.shape)], float)
        cy, cx = refine_peaks(np.maximum(cc, cc[near].min()), best)[0]  # outside the 2.5 px: the lowest value inside
        profiles.append(ring_profile(w, (cy, cx), radii))
    return draw_profile(np.mean(profiles, axis=0), radii, size)
