"""The threshold vocabulary: what a cut means, the same for every picker.

A cut is one of four things:

- :class:`Fixed` — a score given by the user; peaks scoring at least this are kept.
- :class:`Auto` — the picker's own rule applied to *this image's* peak scores (each picker names its rule in
  :attr:`~fewpick.pickers.base.PickerBase.auto_rule`, one function of :mod:`fewpick.ops.thresholds`).
- :class:`Calibrated` — the cut the model stored when it was trained (from its training images and the
  expected particle count); the same on every image.
- :class:`Count` — the cut that keeps the expected number of particles per image, on the images being picked:
  one score for all of them, set where their peaks pooled together give that many per image
  (:meth:`~fewpick.pickers.base.PickerBase.count_cut`, which the pick verbs and the labelling page run on the
  micrographs they pick before picking); on one image alone, its best ``per_image`` peaks. Scores shift from
  the training micrographs (which the network has seen) to new ones; a cut set on the new ones follows them.
  The model's own count is a guide (``split``): where the pooled peak scores fall into two clear groups, the
  cut goes between them, if that keeps within :data:`SPLIT_RANGE` of the count (:func:`gap_near_count`). A
  count the model estimated itself guides only (``otherwise``: where there is no such gap, its calibrated cut).

``None`` means "the model's default" (:meth:`~fewpick.pickers.base.PickerBase.default_threshold`): ``count``
for a model trained with an expected particle count (raised where the general particle model clearly counts more,
:func:`default_count`); for a model that counted the particles itself, its calibrated cut or the gap near its
count; else its calibrated cut or ``auto``. Every picker applies
the cut first and ``max_picks`` after it (the best ``max_picks`` of the peaks the cut keeps).

The command line, the library and the pages accept the plain spellings too: a number, ``"auto"``,
``"calibrated"``, ``"count"`` or ``None`` (:func:`as_threshold`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Union

import numpy as np

from fewpick.errors import InputError
from fewpick.ops.peaks import rank_close_last
from fewpick.ops.thresholds import threshold_knn_density, two_groups


@dataclass(frozen=True)
class Fixed:
    """Keep peaks scoring at least ``value``."""

    value: float

    def __str__(self) -> str:
        return f"{self.value:g}"


@dataclass(frozen=True)
class Auto:
    """Each image cut by the picker's own rule on its peak scores."""

    def __str__(self) -> str:
        return "auto"


@dataclass(frozen=True)
class Calibrated:
    """The model's stored cut, set on its training images."""

    def __str__(self) -> str:
        return "calibrated"


@dataclass(frozen=True)
class Count:
    """Keep ``per_image`` picks per image on average over the images picked together (None: the model's expected
    count). ``score``: the cut, once set on the images picked together (:meth:`~fewpick.pickers.base.PickerBase.
    count_cut`). ``split``: the count is a guide, and the cut goes where the peak scores fall into two clear
    groups when they do (:func:`cut_for_count`); the model's own count is used so. ``otherwise``: where they do
    not, this score instead of the count's cut (a count the model estimated itself only guides the split). A
    count never keeps a peak ranked last for lying close to a better one: where there are fewer other peaks than
    the count, it keeps those."""

    per_image: float | None = None
    score: float | None = None
    split: bool = False
    otherwise: float | None = None

    def __str__(self) -> str:
        return "count" if self.per_image is None else f"count {self.per_image:g}"


Threshold = Union[Fixed, Auto, Calibrated, Count]
ThresholdLike = Union[Threshold, float, int, str, None]

WORDS: dict[str, Threshold] = {"auto": Auto(), "calibrated": Calibrated(), "count": Count()}


def as_threshold(value: ThresholdLike) -> Threshold | None:
    """A :data:`Threshold` from any accepted spelling (None stays None: the model's default).

    Raises :class:`~fewpick.errors.InputError` for a word it does not know or a score that is not a number."""
    if value is None or isinstance(value, (Fixed, Auto, Calibrated, Count)):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in WORDS:
            return WORDS[word]
        try:
            value = float(word)
        except ValueError:
            raise InputError(None, f"a threshold is a number, 'auto', 'calibrated' or 'count', not {value!r}") from None
    value = float(value)
    if np.isnan(value):
        raise InputError(None, "a threshold cannot be NaN")
    return Fixed(value)


def known_cut(threshold: Threshold, calibrated: float | None) -> float | None:
    """The score a cut keeps from, where it is known before the image's peaks are seen (Fixed, Calibrated);
    None for :class:`Auto` and :class:`Count`. A :class:`Calibrated` cut of a model that stored none is refused."""
    if isinstance(threshold, Fixed):
        return threshold.value
    if isinstance(threshold, Calibrated):
        if calibrated is None:
            raise InputError(None, "this picker has no calibrated threshold (a model trained with an expected "
                                   "particle count has one); use 'auto' or a score")
        return float(calibrated)
    return None


def select_peaks(coords: np.ndarray, scores: np.ndarray, threshold: Threshold, *,
                 rule: Callable[[np.ndarray], float], calibrated: float | None = None,
                 max_picks: int | None = None, close_radius: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The peaks (best first) that ``threshold`` keeps, then at most ``max_picks`` of them.

    ``rule`` is the picker's automatic cut of one image's peak scores (made on the peaks as they scored);
    ``calibrated`` the model's stored cut. Peaks closer than ``close_radius`` (grid cells) to a better one are
    ranked after every other before any cut (:func:`~fewpick.ops.peaks.rank_close_last`); a :class:`Count`
    leaves them out."""
    cut = known_cut(threshold, calibrated)
    if cut is None and len(scores) and not isinstance(threshold, Count):
        cut = rule(scores)
    coords, scores, close = rank_close_last(coords, scores, close_radius, with_mask=True)
    if isinstance(threshold, Count):  # never a peak ranked last for closeness
        coords, scores = coords[~close], scores[~close]
        cut = (threshold.score if threshold.score is not None
               else cut_for_count([scores], threshold.per_image, threshold.split, threshold.otherwise))
    if cut is not None:
        keep = scores >= cut
        coords, scores = coords[keep], scores[keep]
    if max_picks is not None:
        coords, scores = coords[:max_picks], scores[:max_picks]
    return coords, scores


#: a second count of the same micrographs must exceed the user's ``N`` by this many times a count's chance spread
#: (√N) before the default cut keeps it (:func:`default_count`)
COUNT_SPREADS = 2.0


def default_count(expected: float | None, counted: float | None) -> float | None:
    """The picks per image a default cut keeps: the user's ``expected`` count, or ``counted`` (the general particle
    model's count of the same particles on the training micrographs) where that is larger by more than
    :data:`COUNT_SPREADS` × √``expected``; None without an expected count.

    A count made by eye tends to be short (faint particles, clumps, particles at edges), and F1 gains from picks
    past the true count for as long as they are right more than half as often as the picks before them, which is
    the case wherever the ranking is not clean. Where an independent count is clearly larger, the cut keeps that
    many; where it is smaller, the user's count stands."""
    if not expected:
        return expected
    if counted is not None and counted > expected + COUNT_SPREADS * np.sqrt(expected):
        return float(counted)
    return float(expected)


#: how far from the count a split of the scores may keep picks and still replace it (:func:`gap_near_count`), as a
#: factor either way: about the spread of two counts of the same particles (docs/decisions.md, "The expected count
#: is a guide")
SPLIT_RANGE = 1.5


def cut_for_count(peak_scores, per_image: float | None, split: bool = False, otherwise: float | None = None) -> float:
    """The cut of :func:`cut_at_count` (``otherwise``: this score instead); with ``split``, where the images' peak
    scores pooled fall into two clear groups near the count, the gap between them instead (:func:`gap_near_count`)."""
    return count_cut_of(peak_scores, per_image, split, otherwise).cut


class CountCut(NamedTuple):
    """A count's cut, set on the peak scores of the images picked together (:func:`count_cut_of`).

    ``kept``: the picks per image where ``cut`` is the gap between two clear groups of scores (None where it is
    the count's cut, or ``otherwise``). ``far``: the gap and the picks per image it keeps, where the scores do fall
    into two clear groups but the gap lies too far from the count to replace it (None elsewhere): what a user
    who knows the micrographs hold that many particles would cut at instead."""

    cut: float
    kept: float | None = None
    far: tuple[float, float] | None = None


def count_cut_of(peak_scores, per_image: float | None, split: bool = False,
                 otherwise: float | None = None) -> CountCut:
    """:func:`cut_for_count`, with the picks per image it keeps where it is the gap between two groups of scores,
    and a gap left aside for lying far from the count (:class:`CountCut`)."""
    found = clear_gap(peak_scores) if split and per_image else None
    if found is not None and near_count(found[1], per_image):
        return CountCut(*found)
    return CountCut(otherwise if otherwise is not None else cut_at_count(peak_scores, per_image), None, found)


def clear_gap(peak_scores) -> tuple[float, float] | None:
    """Where the images' peak scores pooled fall into two clear groups (:func:`~fewpick.ops.thresholds.two_groups`),
    the sparsest point between them (:func:`~fewpick.ops.thresholds.threshold_knn_density`) and the picks per
    image at or above it; else None."""
    pooled = np.concatenate([np.asarray(s, float).ravel() for s in peak_scores] or [np.zeros(0)])
    pooled = pooled[np.isfinite(pooled)]
    if not two_groups(pooled):
        return None
    gap = threshold_knn_density(pooled)
    return gap, float(np.sum(pooled >= gap)) / max(len(peak_scores), 1)


def near_count(kept: float, per_image: float | None) -> bool:
    """Whether ``kept`` picks per image lie within a factor :data:`SPLIT_RANGE` of ``per_image`` either way (never
    without a count)."""
    if not per_image or kept <= 0:
        return False
    return bool(abs(np.log(kept / per_image)) <= np.log(SPLIT_RANGE))


def gap_near_count(peak_scores, per_image: float | None) -> tuple[float, float] | None:
    """The gap between two clear groups of the images' pooled peak scores and the picks per image it keeps
    (:func:`clear_gap`), if those lie within a factor :data:`SPLIT_RANGE` of ``per_image``; else None.

    A count given or estimated beforehand is right for a typical micrograph at best; where particles and
    background score apart, the gap between them finds the particles of the micrographs picked. Where the
    scores form one group (crowded micrographs, where most peaks are particles of some quality), a split would
    fall anywhere, and the count stands; so it does where the gap lies far from it (the upper group then being
    something else: the best views, or contamination)."""
    found = clear_gap(peak_scores) if per_image else None
    return found if found is not None and near_count(found[1], per_image) else None


def cut_at_count(peak_scores, per_image: float | None) -> float:
    """The score that keeps ``per_image`` × (number of images) of the images' peaks pooled together (each array
    one image's peak scores); -inf where there are fewer peaks than that, or no count."""
    pooled = np.sort(np.concatenate([np.asarray(s, float).ravel() for s in peak_scores] or [np.zeros(0)]))[::-1]
    if per_image is None or not len(pooled):
        return -np.inf
    k = int(round(per_image * len(peak_scores)))
    return float(pooled[k - 1]) if 0 < k <= len(pooled) else -np.inf
