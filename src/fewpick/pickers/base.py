"""The picker contract: what every picker (PU, few-shot, tomogram, classic) does, the same way.

A picker is trained into a model by its module's ``train`` (the classic methods need no training), and the
model picks one image in three steps:

1. :meth:`Picker.score_map` — the image's scores on the picker's working grid (binned or resampled), with
   the :class:`ScoreMap`'s ``to_original``, which maps that grid's coordinates back to the image's pixels;
2. :meth:`Picker.peaks` — the peaks kept (non-maximum suppression and the threshold, then at most
   ``max_picks``), on the working grid; the threshold means the same for every picker
   (:mod:`fewpick.pickers.threshold`: a fixed score, the picker's automatic rule on this image, the model's
   calibrated cut, or the expected count on the images picked);
3. :meth:`Picker.pick` — the picks table (``micrograph, x, y[, z], score``, best first) in original pixels.

Two picks closer than :data:`CLOSE_PICKS` diameters are more often one particle picked twice than two
particles: the 2D pickers rank the weaker after every other pick (it stays in the list, scored below the
image's weakest peak, so that a very low cut still reaches it), and no default cut keeps it.

``pick`` is shared (:class:`PickerBase`); a picker that does more after the peaks (the tomogram picker traces
filaments) extends it. :func:`fewpick.batch.pick_files` runs ``pick`` over many files for every ``pick`` verb.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from fewpick.errors import InputError
from fewpick.io.images import Image
from fewpick.io.picks import make_picks
from fewpick.pickers.threshold import (
    Auto,
    Calibrated,
    Count,
    CountCut,
    Threshold,
    ThresholdLike,
    as_threshold,
    count_cut_of,
    known_cut,
    select_peaks,
)

#: a pick closer than this many particle diameters to a better one is ranked after every other pick: touching
#: particles lie a diameter apart, two picks on one particle closer (measured on the three real sets: two picks
#: half a diameter apart on one particle were the duplicates left by a rule of half a diameter)
CLOSE_PICKS = 2 / 3


@dataclass
class ScoreMap:
    """Scores on a picker's working grid; ``mapping`` takes grid coordinates ``(n, ndim)`` (row, col[, …]
    order, like the array) to the image's own pixels."""

    scores: np.ndarray
    mapping: Callable[[np.ndarray], np.ndarray]
    extra: dict = field(default_factory=dict)  # what else a picker keeps (e.g. the few-shot window stride)

    def to_original(self, coords) -> np.ndarray:
        """Grid coordinates (any number of them, even none) → the image's pixels, ``(n, ndim)``."""
        return self.mapping(np.reshape(np.asarray(coords, float), (-1, self.scores.ndim)))


@runtime_checkable
class Picker(Protocol):
    """What every trained model (and the classic picker) offers."""

    def score_map(self, image: Image) -> ScoreMap: ...

    def peaks(self, smap: ScoreMap, threshold: ThresholdLike = None,
              max_picks: int | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    def pick(self, image: Image, threshold: ThresholdLike = None, max_picks: int | None = None) -> pd.DataFrame: ...

    def default_threshold(self) -> Threshold: ...


def picks_table(name: str, coords: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """A picks table from original-pixel coordinates in array order ((y, x) or (z, y, x))."""
    c = np.asarray(coords, float)  # (n, ndim), as ScoreMap.to_original gives them
    if c.shape[1] == 3:
        return make_picks(name, c[:, 2], c[:, 1], c[:, 0], score=scores)
    return make_picks(name, c[:, 1], c[:, 0], score=scores)


class PickerBase:
    """The shared :meth:`pick` (score map → peaks → picks table in original pixels) and the shared cut."""

    #: the picker's automatic cut of one image's peak scores (a function of :mod:`fewpick.ops.thresholds`)
    auto_rule: ClassVar[Callable[..., float]]

    def score_map(self, image: Image) -> ScoreMap:
        raise NotImplementedError

    def peaks(self, smap: ScoreMap, threshold: ThresholdLike = None,
              max_picks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def calibrated_threshold(self) -> float | None:
        """The cut the model stored when it was trained; None for a picker that has none."""
        return None

    def expected_count(self) -> float | None:
        """Particles per image the model expects, which a count cut keeps (the user's count, or more,
        :func:`~fewpick.pickers.threshold.default_count`); None where it was not told."""
        return None

    def estimated_count(self) -> float | None:
        """Particles per image the model counted itself where it was given no count; None where it did not."""
        return None

    def default_threshold(self) -> Threshold:
        """The cut used when none is given: for a model that estimated the particle count itself, its calibrated
        cut, or where the scores of the images picked fall into two clear groups near that count, the gap between
        them; else the expected count on the images picked where the model knows it (a guide too:
        :func:`~fewpick.pickers.threshold.cut_for_count`), else the calibrated cut where the model has one, else
        the automatic rule."""
        calibrated = self.calibrated_threshold()
        if self.estimated_count() and calibrated is not None:
            return Count(self.estimated_count(), split=True, otherwise=float(calibrated))
        if self.expected_count():
            return Count(self.expected_count(), split=True)
        return Auto() if calibrated is None else Calibrated()

    def resolve_threshold(self, threshold: ThresholdLike) -> Threshold:
        """Any accepted spelling of a threshold (None: :meth:`default_threshold`) as a :data:`Threshold`; a
        cut the model cannot make (calibrated without a stored cut, count without an expected count) is refused
        here, before any image is read."""
        t = as_threshold(threshold)
        t = self.default_threshold() if t is None else t
        known_cut(t, self.calibrated_threshold())
        if isinstance(t, Count) and t.per_image is None and t.score is None:
            if not self.expected_count():
                raise InputError(None, "this model was trained without an expected particle count; use 'auto' or "
                                       "a score")
            t = Count(self.expected_count(), split=True)
        return t

    def count_cut(self, images, per_image: float | None, split: bool = False, otherwise: float | None = None,
                  **score_options) -> float:
        """One score for images picked together: where their peaks, pooled, give ``per_image`` picks per image
        (``split``: or where they fall into two clear groups near that, :func:`~fewpick.pickers.threshold.
        gap_near_count`; ``score_options``: passed to :meth:`score_map`, as the picking that follows will). Peaks
        ranked last for lying close to a better one are not counted; where the others are fewer than the count,
        the weakest of them; ``otherwise``: where no gap replaces the count, this score instead."""
        return self.count_cut_kept(images, per_image, split, otherwise, **score_options)[0]

    def count_cut_kept(self, images, per_image: float | None, split: bool = False, otherwise: float | None = None,
                       **score_options) -> CountCut:
        """:meth:`count_cut`, with the picks per image it keeps where it is the gap between two groups of scores
        (None where it is the count's, or ``otherwise`` where given: the cut where there is no such gap), and such
        a gap left aside for lying far from the count (:class:`~fewpick.pickers.threshold.CountCut`)."""
        pooled = [self.peaks(self.score_map(im, **score_options), Count(score=-np.inf))[1] for im in images]
        found = count_cut_of(pooled, per_image, split, otherwise)
        cut = found.cut
        if not np.isfinite(cut) and any(len(s) for s in pooled):
            cut = float(min(np.min(s) for s in pooled if len(s)))
        return found._replace(cut=float(cut))

    def select(self, coords: np.ndarray, scores: np.ndarray, threshold: Threshold,
               max_picks: int | None = None, close_radius: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """The peaks (best first) the cut keeps, then at most ``max_picks``; those within ``close_radius`` (grid
        cells) of a better one ranked last (:func:`~fewpick.pickers.threshold.select_peaks`)."""
        return select_peaks(coords, scores, threshold, rule=type(self).auto_rule,
                            calibrated=self.calibrated_threshold(), max_picks=max_picks, close_radius=close_radius)

    def pick(self, image: Image, threshold: ThresholdLike = None, max_picks: int | None = None) -> pd.DataFrame:
        smap = self.score_map(image)
        coords, scores = self.peaks(smap, threshold, max_picks)
        return picks_table(image.name, smap.to_original(coords), scores)

    def pick_images(self, images, threshold: ThresholdLike = None, max_picks: int | None = None) -> pd.DataFrame:
        """Picks of several images in one table; a count cut is one score for all of them, as the pick verbs set
        it (:meth:`count_cut`)."""
        images = list(images)
        t = self.resolve_threshold(threshold)
        if isinstance(t, Count) and t.score is None and images:
            t = replace(t, score=self.count_cut(images, t.per_image, t.split, t.otherwise))
        tables = [self.pick(im, t, max_picks) for im in images]
        return pd.concat(tables, ignore_index=True) if tables else make_picks("", [], [])
