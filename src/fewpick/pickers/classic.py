"""Template-free and template-based baselines: difference of Gaussians and FFT cross-correlation.

Both work on a Fourier-binned, normalised copy of the micrograph in which the
particle spans the working diameter (:data:`fewpick.geometry.WORKING_DIAMETER`), score every pixel, and extract picks by
non-maximum suppression with the particle radius. Scores are in units of the
score map's robust standard deviation (DoG) or normalised cross-correlation
coefficients in [-1, 1] (template). Higher is more particle-like.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.ndimage as ndi

from fewpick.errors import InputError
from fewpick.geometry import Geometry
from fewpick.io.images import Image
from fewpick.ops.filters import dog_score_map, normalize
from fewpick.ops.peaks import nms
from fewpick.ops.resample import bin_image, fourier_crop
from fewpick.ops.templates import template_bank, template_score_map
from fewpick.ops.thresholds import threshold_gmm
from fewpick.pickers.base import PickerBase, ScoreMap, picks_table
from fewpick.pickers.threshold import Auto, Threshold, ThresholdLike, as_threshold, known_cut

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
        A number (score units of the method) or ``"auto"`` (Gaussian-mixture split of the peak scores); see
        :mod:`fewpick.pickers.threshold`.
    dark
        Particles darker than the background (cryo-EM bright field, the default);
        ``False`` for bright particles (e.g. negative stain).
    bin_factor
        Override the automatic binning (see :data:`~fewpick.geometry.WORKING_DIAMETER`).
    max_picks
        Keep at most this many per micrograph.
    border
        Ignore peaks closer than this to the edge, in original pixels (default: none).
    """

    diameter: float
    method: str = "dog"
    threshold: ThresholdLike = "auto"
    dark: bool = True
    bin_factor: int | None = None
    max_picks: int | None = None
    border: float = 0.0

    def geometry(self) -> Geometry:
        """Fourier binning to a particle of about :data:`~fewpick.geometry.WORKING_DIAMETER` binned px (or
        ``bin_factor``)."""
        return Geometry.binned(self.diameter, factor=self.bin_factor)

    def factor(self) -> int:
        return self.geometry().factor




# ---------------------------------------------------------------- template matching












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

    auto_rule = staticmethod(threshold_gmm)  # a two-Gaussian split of one micrograph's peaks

    def default_threshold(self) -> Threshold:
        t = as_threshold(self.settings.threshold)
        return Auto() if t is None else t

    def peaks(self, smap: ScoreMap, threshold: ThresholdLike = None,
              max_picks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Suppression within the particle radius, the cut (:mod:`fewpick.pickers.threshold`; None: the
        settings', a score or ``auto``) and at most ``max_picks`` (None: the settings')."""
        settings = self.settings
        threshold = self.resolve_threshold(threshold)
        max_picks = settings.max_picks if max_picks is None else max_picks
        geo = settings.geometry()
        known = known_cut(threshold, None)
        coords, scores = nms(smap.scores, geo.length(settings.diameter / 2), -np.inf if known is None else known,
                             border=settings.border / geo.factor)
        return self.select(coords, scores, threshold, max_picks)


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
