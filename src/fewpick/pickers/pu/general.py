"""The general particle model shipped with fewpick: picks with no label at all, and PU training starts from it.

It is the PU picker's network trained on simulated micrographs in which every particle is labelled (many
structures, sizes, defoci, ice thicknesses, crowdings, carbon edges, contamination; raw and 8-bit denoised;
``bench/general_model.py`` rebuilds it, ``docs/general_model.md`` is its model card). It works on the binned
grid, where every particle spans about :data:`~fewpick.geometry.WORKING_DIAMETER` pixels, so one file serves
every particle size: :func:`general_model` makes from it a PU model for the diameter a user gives.
"""

from __future__ import annotations

import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree
from scipy.stats import binomtest

from fewpick.errors import InputError
from fewpick.io.images import Image, evenly_spread
from fewpick.nn.dense import dense_logits
from fewpick.ops.peaks import scores_near
from fewpick.ops.thresholds import count_scoring_like, threshold_logits
from fewpick.pickers.base import ScoreMap
from fewpick.pickers.pu.data import TrainingItem
from fewpick.pickers.pu.files import load_model
from fewpick.pickers.pu.model import PUModel, all_peaks, local_maxima_radius
from fewpick.pickers.pu.settings import PUSettings, only_some_wanted
from fewpick.pickers.threshold import Auto, Count, ThresholdLike

#: binned px within which the general model's peaks are the highest on crowded micrographs: the plain local maximum
#: (docs/decisions.md, "The general model's peaks down to one pixel on crowded micrographs")
PEAK_FLOOR_PX = 1.0

#: the shipped weights (a PU model file trained for a particle of the working diameter, binned ×1)
GENERAL_MODEL = Path(__file__).resolve().parent / "general_2d.pt"


class GeneralModel(PUModel):
    """The general model as a PU picker. Trained with every particle labelled (both classes weighed alike), its
    scores are the log-odds of a particle centre against background, and its automatic cut reads them so
    (:func:`~fewpick.ops.thresholds.threshold_logits`): where a micrograph's peaks form one population whose median
    peak looks more like background than a centre, they are mostly background (a sparse micrograph of a small,
    faint particle), not particles crowded together."""

    auto_rule = staticmethod(threshold_logits)

    def peaks(self, smap: ScoreMap, threshold: ThresholdLike = None,
              max_picks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The PU model's peaks, over a disk down to :data:`PEAK_FLOOR_PX` on crowded micrographs, so that a
        particle on the flank of a brighter neighbour stays a peak (the spacing still keeps picks apart). The
        automatic cut keeps the peaks over half a radius there as before, one for each bump of the map: it splits
        their scores in two, and the weak peaks the smaller disk adds would make a group of their own and move the
        split; what it keeps is also the general model's count of the particles."""
        t = self.resolve_threshold(threshold)
        if isinstance(t, Auto):
            return super().peaks(smap, t, max_picks)
        coords, scores = all_peaks(self, smap.scores, smap.extra.get("correlation"),
                                   radius=local_maxima_radius(self, smap.scores, PEAK_FLOOR_PX))
        return self.select(coords, scores, t, max_picks, self.close_radius())


def general_model(diameter: float, expected_particles: float | None = None, device: str | torch.device = "cpu",
                  threads: int = 2, bin_factor: int | None = None, path: str | os.PathLike = GENERAL_MODEL) -> PUModel:
    """The general model as a PU picker for particles of ``diameter`` px: the micrographs are binned for that
    diameter (by ``bin_factor`` if given); its default cut is ``expected_particles`` per micrograph where given,
    else each micrograph's automatic split. ``path``: another file of the same kind (``bench/general_model.py``)."""
    if not Path(path).exists():
        raise InputError(path, "the general particle model is missing from this installation of fewpick")
    loaded = load_model(path, device)
    model = GeneralModel(**{f.name: getattr(loaded, f.name) for f in fields(loaded)})
    # min_distance None: its peaks follow each micrograph's crowding (fewpick.pickers.pu.model.local_maxima_radius)
    model.settings = replace(model.settings, diameter=float(diameter), bin_factor=bin_factor,
                             expected_particles=expected_particles, threads=threads, min_distance=None)
    model.settings = replace(model.settings, bin_factor=model.settings.factor())
    model.threshold = None  # no calibrated cut: no micrograph of the user's was seen
    return model


def general_summary(model: PUModel) -> str:
    """One line describing the general model as it will pick, for the command line."""
    s = model.settings
    cut = (f"default threshold: about {s.expected_particles:g} picks per micrograph (or the gap in the scores where "
           f"they fall into two clear groups near that)" if s.expected_particles
           else "default threshold: each micrograph's scores split in two, or where most of its peaks look like "
                "background, the peaks that stand out from it")
    return (f"general particle model (no labels): particle {s.diameter:.4g} px, micrographs binned ×{model.factor}, "
            f"{cut}")


def fit_general(model: PUModel, items: Sequence[TrainingItem], logits: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Decide whether ``model`` adds the general model's score to its network's, from its training micrographs
    (``items``, binned as the model bins) and the network's logit maps of them; returns the maps the model
    scores them with from now on.

    The network learnt the particle from the labels; the general model learnt what a particle centre looks like
    from many simulated ones. Where the labels are few, their sum ranks and centres picks better than either.
    The general model's logits are weighted so that both maps spread alike over the training micrographs (the
    ratio of their standard deviations), times the share of the particles on the labelled micrographs that
    carry no label: it stands in for the particles the user did not label, and a network taught every particle
    of its micrographs needs no stand-in. It is left out where the expected count is under
    :data:`~fewpick.pickers.pu.settings.SUBSET` of the particles the general model finds at its automatic cut
    (median over the micrographs): such a user wants one complex among others, and the general model would
    promote the others. A network that started from the
    general model's weights (:func:`serves_as_start`) holds what it knows already: its score is not added again,
    but its count still guides the default cut (:meth:`~fewpick.pickers.pu.model.PUModel.expected_count`).
    Sets ``general_net``, ``general_weight`` and ``general_count`` (None where the labels cover the particles:
    the general model is then not run)."""
    s = model.settings
    model.general_net, model.general_weight, model.general_count = None, 0.0, None
    expected = [s.particles_in(model.pi, it.image.size) for it in items]
    unlabelled = unlabelled_share(items, expected)
    if unlabelled <= 0:
        return list(logits)
    general = general_model(s.diameter, None, next(model.net.parameters()).device, s.threads, model.factor)
    maps = [dense_logits(general.net, it.image, model.mixed_precision) for it in items]
    model.general_count = count_on(general, maps)
    spread = float(np.sqrt(np.mean([np.var(g) for g in maps])))
    if only_some_wanted(float(np.mean(expected)), model.general_count) or spread == 0 or s.start == "general":
        return list(logits)
    model.general_net = general.net
    model.general_weight = float(unlabelled * np.sqrt(np.mean([np.var(z) for z in logits])) / spread)
    return [z + np.float32(model.general_weight) * g for z, g in zip(logits, maps)]


def unlabelled_share(items: Sequence[TrainingItem], expected: Sequence[float]) -> float:
    """The share of the particles on the labelled micrographs that carry no label (``expected``: the particles
    expected on each micrograph)."""
    labelled = [i for i, it in enumerate(items) if len(it.centres)]
    return 1.0 - sum(len(items[i].centres) for i in labelled) / max(sum(expected[i] for i in labelled), 1e-9)


def count_on(general: PUModel, maps: Sequence[np.ndarray]) -> float:
    """The general model's count of the particles: the median of its picks at its automatic cut over its logit
    ``maps`` of the training micrographs."""
    return float(np.median([len(general.peaks(ScoreMap(g, lambda c: c), None)[0]) for g in maps]))


def serves_as_start(settings: PUSettings, pi: float, items: Sequence[TrainingItem],
                    device: str | torch.device = "cpu") -> bool:
    """Whether a PU network trained with ``settings`` (binning included) and prior ``pi`` on ``items`` starts from
    the general model's weights: where that model's network is the one trained (width, blocks, binned particle
    size), some particles on the labelled micrographs carry no label, and the general model ranks the user's
    particles first: either the user does not want only some of the particles it finds (:func:`fit_general`'s
    test), or the labels lie among its best picks (:func:`ranks_labels_first`), so that what it finds beyond the
    count is other matter it ranks lower (clumps, ice), not a complex the user left out.

    Started from it, a network keeps what the general model knows of particles and their centres, and the labels
    teach it the user's particle: from 15 labels it ranked and centred the picks of the crowded real sets better
    than a network from random weights with the general model's score added (docs/decisions.md, "The PU picker
    starts from the general model"). Where the user wants one complex among others of its size, which the general
    model ranks alike, a network from random weights learns that complex better."""
    with torch.random.fork_rng(devices=[]):  # building its network draws weights: a random start stays as seeded
        general = general_model(settings.diameter, None, device, settings.threads, settings.factor())
    g = general.settings
    if (settings.width, tuple(settings.dilations), settings.binned_diameter) != (g.width, tuple(g.dilations),
                                                                              g.binned_diameter):
        return False
    expected = [settings.particles_in(pi, it.image.size) for it in items]
    if unlabelled_share(items, expected) <= 0:
        return False
    maps = [dense_logits(general.net, it.image) for it in items]
    count = count_on(general, maps)
    return (not only_some_wanted(float(np.mean(expected)), count)
            or ranks_labels_first(general, items, maps, expected, count))


#: the chance below which the labels' place among the general model's best picks is not taken for a random
#: draw from all its picks (:func:`ranks_labels_first`)
FIRST_LEVEL = 0.05


def ranks_labels_first(general: PUModel, items: Sequence[TrainingItem], maps: Sequence[np.ndarray],
                       expected: Sequence[float], count: float) -> bool:
    """Whether the labels lie among the general model's best picks: on each labelled micrograph, more labels have
    one of its ``expected`` best peaks within a radius than a random draw from all its ``count`` picks would give
    (one-sided binomial test, chance under :data:`FIRST_LEVEL`; ``maps``: its logit maps of ``items``).

    Where a user wants one complex among others it finds, the labels are such a random draw: it ranks every
    particle alike. Where its count includes other matter (clumps of particles, ice), the user's particles rank
    above it."""
    radius = general.settings.geometry().radius()
    first, total = 0, 0
    for it, g, n in zip(items, maps, expected):
        if not len(it.centres):
            continue
        total += len(it.centres)
        coords, scores = general.peaks(ScoreMap(g, lambda c: c), Count(score=-np.inf))
        if not len(coords):
            continue
        best = np.sort(scores)[::-1][: max(1, int(round(n)))]
        first += int(np.sum(scores_near(coords, scores, it.centres, radius) >= best[-1]))
    share = min(1.0, float(np.mean(expected)) / max(count, 1e-9))
    return total > 0 and binomtest(first, total, share, alternative="greater").pvalue < FIRST_LEVEL


#: micrographs on which :func:`estimate_particles` counts: the labelled ones first, then others spread evenly
COUNT_SAMPLE = 8

#: the share of the labels the general model must find for its count to be scaled up by it; below, the count is
#: scaled by this much at most (three times)
MIN_FOUND = 1 / 3


def count_beside(expected: float, images: Sequence[Image], diameter: float, *, device: str | torch.device = "cpu",
                 threads: int = 2, sample: int = COUNT_SAMPLE) -> float | None:
    """The general model's particles per micrograph beside a count the user gave: the median number of picks it
    makes at its automatic cut on at most ``sample`` of ``images`` spread evenly (:func:`estimate_particles`
    without labels); None where the user wants only some of them (:func:`only_some_wanted`), which its count
    would not tell apart."""
    counted = estimate_particles(images, diameter, device=device, threads=threads, sample=sample)
    return None if only_some_wanted(expected, counted) else counted


#: the labels' score quantile below which a peak of the general model is not counted as scoring like them
#: (:func:`estimate_particles`): a tenth of a random sample of particles scores lower
LABEL_QUANTILE = 0.1

#: how many times the peaks scoring like the labels the automatic cut's count may be before those peaks count
#: instead (:func:`estimate_particles`): two counts of the same particles differ by less
COUNT_RATIO = 2.0


def estimate_particles(images: Sequence[Image], diameter: float, labels: Mapping[str, pd.DataFrame] | None = None,
                       *, device: str | torch.device = "cpu", threads: int = 2, bin_factor: int | None = None,
                       sample: int = COUNT_SAMPLE) -> float:
    """Particles per micrograph, where the user gave no count: the median number of picks the general model
    makes at its automatic cut (each micrograph's scores split in two) on at most ``sample`` of ``images``,
    divided by the share of the user's ``labels`` (by micrograph name) that have one of its picks within a
    radius. The general model, trained on no particle of the user's, finds only part of them; the labels show
    which part, and the particles it misses are counted back (that share taken as at least :data:`MIN_FOUND`).

    The labels are also a sample of the particles' scores: where the automatic cut counts more than
    :data:`COUNT_RATIO` times the peaks that score at least as the labels' lowest tenth (:data:`LABEL_QUANTILE`;
    their scores: the general model's pick within a radius of each), scaled up alike, it counted background with
    the particles, and those peaks count instead."""
    if not images:
        raise InputError(None, "no micrographs to count particles on")
    model = general_model(diameter, None, device, threads, bin_factor)
    labels = {name: rows for name, rows in (labels or {}).items() if len(rows)}
    chosen = [i for i, im in enumerate(images) if im.name in labels][:sample]
    others = [i for i in range(len(images)) if i not in chosen]
    chosen += evenly_spread(others, sample - len(chosen))
    counts, found, total = [], 0, 0
    every, labelled = [], []  # every peak's score per micrograph; the scores of the labels' picks
    for i in chosen:
        smap = model.score_map(images[i])
        auto = smap.to_original(model.peaks(smap, Auto())[0])  # (y, x) original px
        coords, scores = model.peaks(smap, Count(score=-np.inf))  # every peak but those ranked last for closeness
        counts.append(len(auto))
        every.append(scores)
        rows = labels.get(images[i].name)
        if rows is not None:
            xy = rows[["x", "y"]].to_numpy(float)
            total += len(rows)
            if len(auto):
                d, _ = cKDTree(auto[:, ::-1]).query(xy)
                found += int((d <= diameter / 2).sum())
            labelled += scores_near(smap.to_original(coords)[:, ::-1], scores, xy, diameter / 2).tolist()
    share = max(found / total if total else 1.0, MIN_FOUND)
    estimate = float(np.median(counts) / share)
    if labelled:
        like = count_scoring_like(every, labelled, LABEL_QUANTILE) / share
        if estimate > COUNT_RATIO * like:
            return like
    return estimate
