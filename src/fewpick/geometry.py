"""A picker's geometry: the particle diameter in the image's own pixels and the grid the network works on.

Every picker shrinks the image before its network sees it, so that a particle spans a fixed number of
working pixels: the PU and classic pickers and the tomogram picker bin by an integer factor (a particle of
about :data:`WORKING_DIAMETER` binned pixels in 2D; the tomogram settings choose their own target, and the
factor nearest it by ratio), the few-shot picker resamples
by a real factor (its window, ``window_ratio`` particle diameters, becomes ``size`` pixels). One
:class:`Geometry` holds the result, and every radius and coordinate conversion goes through it.

Coordinates are ``(row, col[, ...])``. After Fourier binning or resampling (2D), sample ``j`` of the working
grid lies at original ``j · scale`` on each axis, with ``scale = original shape / working shape`` (the whole
field of view is kept, so the per-axis scale may differ slightly from the factor when a side is not a
multiple of it). After block binning (tomograms: means of ``factor``³ voxels) it lies at the block's centre,
``j · factor + (factor − 1) / 2``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from fewpick.errors import InputError

#: The binning policy of the 2D pickers: a particle spans about this many working pixels after binning, the
#: size at which small CNNs and filters work best. Every 2D default below derives from it.
WORKING_DIAMETER = 16.0


def choose_binning(diameter_px: float, target_px: float = WORKING_DIAMETER) -> int:
    """Integer binning factor that brings a particle of ``diameter_px`` to about ``target_px``.

    The result keeps the binned diameter within roughly 2/3 to 4/3 of the target
    (11–21 px for the default 16), the size at which small CNNs and filters work best.
    """
    if not diameter_px > 0:
        raise InputError(None, f"particle diameter must be positive, got {diameter_px}")
    return max(1, int(round(diameter_px / target_px)))


def nearest_binning(diameter_px: float, target_px: float) -> int:
    """The integer binning that brings a particle of ``diameter_px`` nearest to ``target_px`` by ratio.

    A particle 1.48 times the target is binned by 2, to 0.74 times it (1 / 0.74 = 1.35 < 1.48), where
    :func:`choose_binning` rounds the quotient and keeps it unbinned. The factor changes where the quotient
    passes the geometric mean of two neighbouring factors (√2 ≈ 1.41, √6 ≈ 2.45, ...), not their midpoint.
    """
    if not diameter_px > 0:
        raise InputError(None, f"particle diameter must be positive, got {diameter_px}")
    ratio = diameter_px / target_px
    low = max(1, math.floor(ratio))
    return low if ratio * ratio < low * (low + 1) else low + 1


def finest_binning(diameter_px: float, target_px: float = WORKING_DIAMETER, lowest: float = 0.75) -> int:
    """The finest integer binning that brings a particle of ``diameter_px`` to at most ``target_px``, unless the
    particle would then span fewer than ``lowest × target_px`` px (a small particle); then :func:`choose_binning`.

    For the default 16 px the binned particle spans 12–16 px wherever an integer factor allows: a 36 px particle
    binned by 3 (12 px, not 18 px by 2: 2.25 times fewer pixels to score), 68 px by 5, 148 px by 10.
    """
    factor = choose_binning(diameter_px, target_px)  # also checks the diameter
    finest = max(1, int(np.ceil(diameter_px / target_px)))
    return finest if diameter_px / finest >= lowest * target_px else factor


@dataclass(frozen=True)
class Geometry:
    """The particle ``diameter`` (original pixels) and ``factor``: original pixels per working pixel."""

    diameter: float
    factor: float
    block: bool = False  # block binning (samples at the blocks' centres) rather than Fourier binning

    @classmethod
    def binned(cls, diameter: float, target: float = WORKING_DIAMETER, factor: int | None = None,
               block: bool = False) -> Geometry:
        """Integer binning: ``factor`` if given, else the one that brings the particle to about ``target``
        working pixels (:func:`choose_binning`)."""
        return cls(float(diameter), int(factor or choose_binning(diameter, target)), block)

    @classmethod
    def nearest(cls, diameter: float, target: float, factor: int | None = None, block: bool = False) -> Geometry:
        """Integer binning: ``factor`` if given, else the one that brings the particle nearest ``target`` working
        pixels by ratio (:func:`nearest_binning`)."""
        return cls(float(diameter), int(factor or nearest_binning(diameter, target)), block)

    @classmethod
    def finest(cls, diameter: float, target: float = WORKING_DIAMETER, factor: int | None = None) -> Geometry:
        """Integer binning: ``factor`` if given, else the finest that brings the particle to at most ``target``
        working pixels (:func:`finest_binning`)."""
        return cls(float(diameter), int(factor or finest_binning(diameter, target)))

    @classmethod
    def resampled(cls, diameter: float, window_ratio: float, size: int) -> Geometry:
        """Real resampling: a window of ``window_ratio`` particle diameters becomes ``size`` working pixels
        (never upsampled: a tiny particle gets a wider window instead)."""
        return cls(float(diameter), max(1.0, window_ratio * diameter / size))

    @property
    def working_diameter(self) -> float:
        """The particle diameter on the working grid."""
        return self.diameter / self.factor

    def radius(self, fraction: float = 1.0, minimum: float = 0.0) -> float:
        """``fraction`` of the particle radius on the working grid, at least ``minimum``."""
        return max(minimum, fraction * self.diameter / 2 / self.factor)

    def length(self, original: float) -> float:
        """A length in original pixels on the working grid."""
        return original / self.factor

    def shape(self, original_shape) -> tuple[int, ...]:
        """The working grid's shape for an image of ``original_shape`` (each side rounded, at least 1)."""
        return tuple(max(1, int(round(n / self.factor))) for n in original_shape)

    @staticmethod
    def scale(original_shape, working_shape) -> np.ndarray:
        """Original pixels per working pixel, per axis, after Fourier binning or resampling."""
        return np.asarray(original_shape, float) / np.asarray(working_shape, float)

    def to_original(self, coords, scale=None) -> np.ndarray:
        """Working-grid coordinates ``(n, ndim)`` → original pixels (``scale`` from :meth:`scale`; by default
        the factor on every axis)."""
        c = np.asarray(coords, float)
        if self.block:
            return c * self.factor + (self.factor - 1) / 2
        return c * (self.factor if scale is None else np.asarray(scale, float))

    def to_working(self, coords, scale=None) -> np.ndarray:
        """Original-pixel coordinates ``(n, ndim)`` → the working grid (the inverse of :meth:`to_original`)."""
        c = np.asarray(coords, float)
        if self.block:
            return (c - (self.factor - 1) / 2) / self.factor
        return c / (self.factor if scale is None else np.asarray(scale, float))


_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px|pix|pixels?|a|å|ang|angstroms?|nm)?\s*$", re.I)


MIN_DIAMETER = 4.0  # px: below this a "particle" is a pixel or two of noise


def parse_length(text: str | float, pixel_size: float | None = None, what: str = "length",
                 shape: tuple[int, ...] | None = None, minimum: float = MIN_DIAMETER) -> float:
    """Parse a particle's diameter such as ``"68"``, ``"68px"``, ``"120A"``, ``"120Å"`` or ``"12nm"`` into pixels.

    Plain numbers are pixels. Ångström and nanometre values need ``pixel_size`` (Å/px). The result must be
    finite, at least ``minimum`` px and, given the image's ``shape``, at most half its smaller side (of a
    tomogram: of its sections).
    """
    px = _to_pixels(text, pixel_size, what)
    if not math.isfinite(px):
        raise InputError(None, f"{what} must be a finite number, got {text!r}")
    if px < minimum:
        raise InputError(None, f"{what} {text} is {px:.3g} px, too small (at least {minimum:g} px)")
    if shape is not None and px > min(shape[-2:]) / 2:  # a tomogram's depth may be smaller than its particles
        raise InputError(None, f"{what} {text} is {px:.0f} px: larger than half the image "
                               f"({' × '.join(map(str, shape[-2:]))} px)")
    return px


def _to_pixels(text: str | float, pixel_size: float | None, what: str) -> float:
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
