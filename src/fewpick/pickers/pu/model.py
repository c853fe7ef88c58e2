"""The trained PU model and how it picks: the network's logits on the binned micrograph, peaks (centred and
rescored on the labels' rotational average where the model uses it), the edge band and the cut."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from fewpick.geometry import Geometry
from fewpick.io.images import Image
from fewpick.nn.cnn import PickerCNN
from fewpick.nn.dense import dense_logits
from fewpick.ops.peaks import auto_min_distance, greedy_keep, nms
from fewpick.ops.thresholds import threshold_gmm
from fewpick.pickers.base import CLOSE_PICKS, PickerBase, ScoreMap, picks_table
from fewpick.pickers.pu.correlation import (
    correlation_map,
    rescored_peaks,
)
from fewpick.pickers.pu.data import (
    prepare,
)
from fewpick.pickers.pu.settings import AGREEMENT, SUBSET, PUSettings, only_some_wanted
from fewpick.pickers.threshold import ThresholdLike, default_count


@dataclass
class PUModel(PickerBase):
    """A trained picker: the network and every setting needed to use it (a :class:`~fewpick.pickers.base.Picker`)."""

    net: PickerCNN
    settings: PUSettings
    pi: float
    pixel_size: float | None
    history: list = field(default_factory=list)
    threshold: float | None = 0.0  # default score cut (logit), calibrated on the training micrographs; None: none
    template: np.ndarray | None = None  # the labelled particles' rotational average (binned px), when used
    correlation_weight: float = 0.0  # logits per unit of correlation in the score (0: correlation not used)
    agreement: float | None = None  # the share of best training peaks the network and the correlation share
    # particles per micrograph behind π where the user gave no count: the general model's count on the training
    # micrographs (None: the user gave the count or π)
    estimated_particles: float | None = None
    # the general particle model's network, its logits added to this one's times ``general_weight`` (None: not
    # used); ``general_count``: the particles per training micrograph it found, which decided (None: not run)
    general_net: PickerCNN | None = None
    general_weight: float = 0.0
    general_count: float | None = None
    # run-time choice, not stored: bfloat16 convolutions when picking on a GPU; off, as it saved no time
    # (docs/decisions.md, "Mixed precision")
    mixed_precision: bool = False

    @property
    def factor(self) -> int:
        return self.settings.factor()

    @property
    def uses_correlation(self) -> bool:
        return self.template is not None and self.correlation_weight > 0

    @property
    def uses_general(self) -> bool:
        return self.general_net is not None and self.general_weight > 0

    def logits(self, binned: np.ndarray) -> np.ndarray:
        """The score map of a prepared micrograph: the network's logits, plus the general model's times its weight
        where the model uses it."""
        z = dense_logits(self.net, binned, self.mixed_precision)
        if self.uses_general:
            z += np.float32(self.general_weight) * dense_logits(self.general_net, binned, self.mixed_precision)
        return z

    def score_map(self, image: Image | np.ndarray) -> ScoreMap:
        """Scores on the binned grid (:meth:`logits`; and, for a model that uses it, the correlation map in
        ``extra``)."""
        data = image.data if isinstance(image, Image) else image
        binned, scale = binned_for_network(self, data)
        extra = {"correlation": correlation_map(binned, self.template, self.settings)} if self.uses_correlation else {}
        return ScoreMap(self.logits(binned), functools.partial(self.settings.geometry().to_original, scale=scale),
                        extra)

    auto_rule = staticmethod(threshold_gmm)  # a two-Gaussian split of one micrograph's peaks

    def calibrated_threshold(self) -> float | None:
        return self.threshold

    @property
    def counts_with_general(self) -> bool:
        """Whether the general model's count guides the default cut: where the model scores with the general model
        (only where that model counts under 1/SUBSET times the expected particles:
        :func:`~fewpick.pickers.pu.general.fit_general`) or its network started from the general model's weights
        (:func:`~fewpick.pickers.pu.general.serves_as_start`), the labels leave particles unlabelled
        (``general_count`` set) and its count is not over 1/SUBSET times the expected particles (it then counts
        other matter with them)."""
        s = self.settings
        return self.uses_general or (s.start == "general" and self.general_count is not None
                                     and not (s.expected_particles
                                              and only_some_wanted(s.expected_particles, self.general_count)))

    def expected_count(self) -> float | None:
        """The expected particle count; where the general model's count guides the cut
        (:attr:`counts_with_general`), that count where clearly larger
        (:func:`~fewpick.pickers.threshold.default_count`)."""
        return default_count(self.settings.expected_particles,
                             self.general_count if self.counts_with_general else None)

    def estimated_count(self) -> float | None:
        """The general particle model's count of the particles, scaled by the labels it misses, where the model was
        trained without an expected count (:func:`~fewpick.pickers.pu.general.estimate_particles`)."""
        return None if self.settings.expected_particles else self.estimated_particles

    def peaks(self, smap: ScoreMap, threshold: ThresholdLike = None,
              max_picks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Non-maximum suppression at the model's pick distance (for a model that uses the correlation: each
        peak centred and rescored on it, then suppressed again), outside the model's edge band, those closer
        than :data:`~fewpick.pickers.base.CLOSE_PICKS` diameters to a better one ranked last, then the cut
        (:mod:`fewpick.pickers.threshold`; None: the model's calibrated cut) and at most ``max_picks``."""
        coords, scores = all_peaks(self, smap.scores, smap.extra.get("correlation"))
        return self.select(coords, scores, self.resolve_threshold(threshold), max_picks, self.close_radius())

    def close_radius(self) -> float:
        """Binned px within which a pick is ranked after a better one (:data:`~fewpick.pickers.base.CLOSE_PICKS`)."""
        return self.settings.geometry().radius(2 * CLOSE_PICKS)


def all_peaks(model: PUModel, logits: np.ndarray, corr: np.ndarray | None = None,
              radius: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every peak of one micrograph's logit map, best first: the local maxima over ``radius`` binned px (None:
    :func:`local_maxima_radius`; with ``corr``, the correlation map of a model that uses it: centred and rescored,
    :func:`rescored_peaks`), of them the best kept the model's spacing apart, outside the edge band."""
    radius = local_maxima_radius(model, logits) if radius is None else radius
    if corr is not None:
        coords, scores = rescored_peaks(model, logits, corr)
    else:
        coords, scores = nms(logits, radius, -np.inf)
    spacing = max(model.settings.geometry().radius(model.settings.spacing), radius)
    if spacing > radius and len(coords):
        keep = greedy_keep(coords, spacing)
        coords, scores = coords[keep], scores[keep]
    band = model.settings.edge_band()
    if band > 0 and len(coords):
        h, w = logits.shape
        keep = ((coords[:, 0] >= band) & (coords[:, 0] <= h - 1 - band) & (coords[:, 1] >= band)
                & (coords[:, 1] <= w - 1 - band))
        coords, scores = coords[keep], scores[keep]
    return coords, scores


def local_maxima_radius(model: PUModel, logits: np.ndarray, floor_px: float | None = None) -> float:
    """Binned px within which a peak of one micrograph's ``logits`` is the highest: the model's ``min_distance``;
    for a model without one (the general model, which saw no micrograph of the user's), from how crowded this
    micrograph is (:func:`~fewpick.ops.peaks.auto_min_distance` of the expected count, or else of the peaks a
    whole radius apart that its automatic cut keeps), down to ``floor_px`` on crowded micrographs (None: half a
    radius). Counted over half a radius, the noise's peaks on a sparse micrograph outnumber the particles and its
    scores no longer split in two; on crowded micrographs the general model ranks the peaks over one pixel
    (:meth:`~fewpick.pickers.pu.general.GeneralModel.peaks`)."""
    s = model.settings
    if s.min_distance is not None:
        return s.suppression_radius()
    radius = s.geometry().radius()
    count = s.expected_particles
    if not count:
        _, scores = nms(logits, max(radius, 1.0), -np.inf)
        count = int(np.sum(scores >= type(model).auto_rule(scores))) if len(scores) else 0
    floor = 0.5 if floor_px is None else floor_px / radius
    return s.geometry().radius(auto_min_distance(count, logits.size, radius, floor=floor), minimum=1.0)


def binned_for_network(model: PUModel, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One micrograph prepared for the network (on the model's threads), and the binned→original scale (y, x)."""
    torch.set_num_threads(model.settings.threads)
    binned = prepare(data, model.factor, model.settings.threads)
    return binned, Geometry.scale(data.shape, binned.shape)


def score_map(model: PUModel, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Score map of one micrograph on the binned grid (:meth:`PUModel.logits`), and the binned→original scale
    (y, x)."""
    binned, scale = binned_for_network(model, data)
    return model.logits(binned), scale


def pick_micrograph(model: PUModel, data: np.ndarray, name: str, threshold: float | str | None = None,
                    max_picks: int | None = None) -> pd.DataFrame:
    """Picks of one micrograph in original pixels; scores are logits. ``threshold=None`` uses the model's."""
    smap = model.score_map(data)
    coords, scores = model.peaks(smap, threshold, max_picks)
    return picks_table(name, smap.to_original(coords), scores)


def pick_images(model: PUModel, images: Sequence[Image], threshold: float | str | None = None,
                max_picks: int | None = None) -> pd.DataFrame:
    return model.pick_images(images, threshold, max_picks)


def model_summary(model: PUModel) -> str:
    """One line describing a model, for the command line."""
    s = model.settings
    if model.uses_correlation:
        corr = (f", picks centred and rescored on the labels' rotational average (it ranks the labels as the "
                f"network does: correlation {model.agreement:.2f})")
    elif model.agreement is not None:
        corr = (f", labels' rotational average not used (it does not rank the labels as the network does: "
                f"agreement {model.agreement:.2f} < {AGREEMENT:g})")
    else:
        corr = ""
    if model.expected_count():
        cut = (f"default threshold: the best {model.expected_count():.0f} picks per micrograph, or the gap in the "
               f"scores where they fall into two clear groups near that")
    elif model.threshold is not None and model.estimated_count():
        cut = (f"default threshold {model.threshold:.3g}, or the gap in the scores where they fall into two clear "
               f"groups near the count")
    else:
        cut = "no default threshold" if model.threshold is None else f"default threshold {model.threshold:.3g}"
    counted = ("" if model.estimated_particles is None else
               f" (about {model.estimated_particles:.0f} particles per micrograph, counted by the general model)")
    if model.counts_with_general:
        corr += (", started from the general particle model" if s.start == "general"
                 else ", scored together with the general particle model")
        if s.expected_particles and model.expected_count() != s.expected_particles:
            corr += (f", which counts about {model.general_count:.0f} particles per micrograph where "
                     f"{s.expected_particles:g} were expected: the default threshold keeps that many")
    elif s.start == "general" and model.general_count is not None:  # started from it, its count left out of the cut
        corr += (f", started from the general particle model (which finds about {model.general_count:.0f} particles "
                 f"per micrograph, over {1 / SUBSET:.0f} times the count expected, but ranks the labelled ones first)")
    elif model.general_count is not None:  # it was run, and its count left it out
        corr += (f", general particle model not used (it finds about {model.general_count:.0f} particles per "
                 f"micrograph, over {1 / SUBSET:.0f} times the count expected: only some of them are wanted)")
    elif s.general_score:  # not run: the labels cover the particles (see fewpick.pickers.pu.general.fit_general)
        corr += ", general particle model not used (the labels cover the particles of their micrographs)"
    if s.edge_margin:
        corr += f", no picks within {s.edge_margin * s.diameter:.0f} px of the edge (as the labels)"
    return (f"particle picker trained on labelled and unlabelled regions: particle {s.diameter:.4g} px, "
            f"micrographs binned ×{model.factor}, about {model.pi:.1%} of the binned pixels taken as particle "
            f"centres{counted}, picks at least {s.spacing:.2g} radius apart, {cut}{corr}")
