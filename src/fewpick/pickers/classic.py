"""Template-free and template-based baselines: difference of Gaussians and FFT cross-correlation.

Both work on a Fourier-binned, normalised copy of the micrograph in which the
particle is about 16 px across, score every pixel, and extract picks by
non-maximum suppression with the particle radius. Scores are in units of the
score map's robust standard deviation (DoG) or normalised cross-correlation
coefficients in [-1, 1] (template). Higher is more particle-like.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.fft
import scipy.ndimage as ndi
from scipy.spatial.transform import Rotation

from fewpick.errors import InputError
from fewpick.extract import ball, nms, threshold_gmm
from fewpick.geometry import Geometry
from fewpick.io.images import Image
from fewpick.pickers.base import PickerBase, ScoreMap, picks_table
from fewpick.preprocess import bin_image, fourier_crop, normalize

_WORKERS = 2


@dataclass
class ClassicSettings:
    """Settings shared by the classic pickers.

    Attributes
    ----------
    diameter
        Particle diameter in original pixels.
    method
        ``"dog"`` or ``"template"``.
    threshold
        A number (score units of the method) or ``"auto"`` (Gaussian-mixture split of the peak scores).
    dark
        Particles darker than the background (cryo-EM bright field, the default);
        ``False`` for bright particles (e.g. negative stain).
    bin_factor
        Override the automatic binning (particle ≈ 16 px after binning).
    max_picks
        Keep at most this many per micrograph.
    border
        Ignore peaks closer than this to the edge, in original pixels (default: none).
    """

    diameter: float
    method: str = "dog"
    threshold: float | str = "auto"
    dark: bool = True
    bin_factor: int | None = None
    max_picks: int | None = None
    border: float = 0.0

    def geometry(self) -> Geometry:
        """Fourier binning to a particle of about 16 binned px (or ``bin_factor``)."""
        return Geometry.binned(self.diameter, factor=self.bin_factor)

    def factor(self) -> int:
        return self.geometry().factor


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


# ---------------------------------------------------------------- template matching


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
        return np.conj(scipy.fft.rfft2(full, workers=_WORKERS))

    f_img = scipy.fft.rfft2(padded, workers=_WORKERS)
    f_img2 = scipy.fft.rfft2(padded * padded, workers=_WORKERS)
    f_mask = spectrum_of_kernel(mask)
    local_sum = scipy.fft.irfft2(f_img * f_mask, s=shape, workers=_WORKERS)
    local_sum2 = scipy.fft.irfft2(f_img2 * f_mask, s=shape, workers=_WORKERS)
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
        cc = scipy.fft.irfft2(f_img * spectrum_of_kernel(tn), s=shape, workers=_WORKERS) / denom
        np.maximum(best, cc, out=best)
    return best[half : half + img.shape[0], half : half + img.shape[1]]


# ---------------------------------------------------------------- one micrograph


def pick_micrograph(
    data: np.ndarray,
    settings: ClassicSettings,
    name: str = "micrograph",
    templates: np.ndarray | None = None,
    return_map: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, np.ndarray]:
    """Pick one micrograph with a classic method.

    Parameters
    ----------
    data
        The micrograph ``(y, x)`` in original pixels.
    settings
        See :class:`ClassicSettings`.
    name
        Micrograph name written into the table.
    templates
        For ``method="template"``: a bank from :func:`template_bank` at the binned size.
    return_map
        Also return the score map (binned pixels).

    Returns
    -------
    picks : DataFrame
        ``micrograph, x, y, score`` in original pixels, best first.
    """
    picker = ClassicPicker(settings, templates)
    smap = picker.score_map(np.asarray(data, dtype=np.float32), name)
    coords, scores = picker.peaks(smap)
    picks = picks_table(name, smap.to_original(coords), scores)
    return (picks, smap.scores) if return_map else picks


@dataclass
class ClassicPicker(PickerBase):
    """A classic method as a :class:`~fewpick.pickers.base.Picker` (no training): difference of Gaussians, or
    template matching with a bank from :func:`prepare_templates`."""

    settings: ClassicSettings
    templates: np.ndarray | None = None

    def score_map(self, image: Image | np.ndarray, name: str | None = None) -> ScoreMap:
        """Scores on the binned grid."""
        settings = self.settings
        data = np.asarray(image.data if isinstance(image, Image) else image, dtype=np.float32)
        name = name or (image.name if isinstance(image, Image) else "micrograph")
        radius = settings.diameter / 2
        if radius * 2 >= min(data.shape):
            raise InputError(None, f"particle diameter {settings.diameter:g} px does not fit in the "
                                   f"{data.shape[1]}x{data.shape[0]} px micrograph {name!r}")
        geo = settings.geometry()
        small = normalize(bin_image(data, geo.factor))
        scale = Geometry.scale(data.shape, small.shape)
        r_small = geo.length(radius)
        if settings.method == "dog":
            score = dog_score_map(small, r_small, settings.dark)
        elif settings.method == "template":
            if self.templates is None:
                raise InputError(None, "template matching needs a template (--template)")
            score = template_score_map(small, self.templates, r_small)
        else:
            raise InputError(None, f"unknown classic method {settings.method!r}; choose dog or template")
        return ScoreMap(score, functools.partial(geo.to_original, scale=scale))

    def peaks(self, smap: ScoreMap, threshold: float | str | None = None,
              max_picks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Suppression within the particle radius; ``threshold`` (None: the settings') a score or ``auto`` (a
        two-Gaussian split of the peak scores)."""
        settings = self.settings
        threshold = settings.threshold if threshold is None else threshold
        max_picks = settings.max_picks if max_picks is None else max_picks
        geo = settings.geometry()
        thr = -np.inf if threshold == "auto" else float(threshold)
        coords, scores = nms(smap.scores, geo.length(settings.diameter / 2), thr,
                             border=settings.border / geo.factor)
        if threshold == "auto" and len(scores):
            keep = scores >= threshold_gmm(scores)
            coords, scores = coords[keep], scores[keep]
        if max_picks is not None:
            coords, scores = coords[:max_picks], scores[:max_picks]
        return coords, scores


def prepare_templates(template: np.ndarray, settings: ClassicSettings, template_pixel: float | None,
                      image_pixel: float | None, angular_step: float = 30.0) -> np.ndarray:
    """Bring a template (2D image or 3D map) to the binned micrograph's sampling and build the bank."""
    factor = settings.factor()
    t = np.asarray(template, dtype=np.float32)
    ratio = 1.0 / factor
    if template_pixel and image_pixel:
        ratio = template_pixel / (image_pixel * factor)
    new = tuple(max(3, int(round(n * ratio))) for n in t.shape)
    if ratio < 1:
        t = fourier_crop(t, new)
    elif ratio > 1:
        t = ndi.zoom(t, ratio, order=1)
    t = t - np.median(t)
    size = int(np.ceil(settings.diameter / factor * 1.25)) | 1  # odd, a little beyond the particle
    invert = settings.dark if t.ndim == 3 else False
    return template_bank(t, size, angular_step=angular_step, invert=invert)
