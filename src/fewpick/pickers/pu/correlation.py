"""The labels' rotational average: its correlation map, the test of whether it agrees with the network, and
picks centred and rescored on it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from fewpick.ops.peaks import best_within, greedy_keep, nms
from fewpick.pickers.pu.data import (
    TrainingItem,
)
from fewpick.pickers.pu.settings import AGREEMENT, CENTRE, PUSettings

if TYPE_CHECKING:
    from fewpick.pickers.pu.model import PUModel


def correlation_radius(settings: PUSettings) -> float:
    """Radius (binned px) within which the template is matched: 0.6 particle diameters."""
    return 0.6 * settings.geometry().working_diameter


def correlation_map(binned: np.ndarray, template: np.ndarray, settings: PUSettings) -> np.ndarray:
    """Local normalised correlation of a prepared micrograph with ``template``, on the binned grid."""
    from fewpick.ops.templates import template_score_map

    return template_score_map(binned, np.asarray(template, np.float32)[None], correlation_radius(settings))


def label_template(items: Sequence[TrainingItem], settings: PUSettings, rng: np.random.Generator,
                   most: int = 400) -> np.ndarray:
    """The labelled particles' rotational average on the binned grid (at most ``most`` of them, drawn at random),
    from windows 1.2 diameters wide about each label (:func:`fewpick.pickers.fewshot.rotational_template`)."""
    from fewpick.ops.templates import rotational_template

    n = int(np.ceil(1.2 * settings.geometry().working_diameter)) | 1
    h = n // 2
    windows = []
    for it in items:
        if len(it.centres):
            padded = np.pad(it.image, h, mode="reflect")
            windows += [padded[cy : cy + n, cx : cx + n] for cy, cx in np.round(it.centres).astype(int)]
    if len(windows) > most:
        windows = [windows[i] for i in np.sort(rng.choice(len(windows), most, replace=False))]
    return rotational_template(np.stack(windows), correlation_radius(settings))


def centred_on_correlation(coords: np.ndarray, corr: np.ndarray, settings: PUSettings) -> np.ndarray:
    """Each peak (binned grid) moved to the best correlation within ``CENTRE`` diameters (whole pixels)."""
    return best_within(corr, coords, CENTRE * settings.geometry().working_diameter)


def rescored_peaks(model: PUModel, logits: np.ndarray, corr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every peak of ``logits`` centred on the correlation and scored ``logit + weight × correlation``, suppressed
    again at the model's pick distance; best first."""
    coords, values = nms(logits, model.settings.suppression_radius(), -np.inf)
    if not len(values):
        return coords, values
    moved = centred_on_correlation(coords, corr, model.settings)
    score = values + model.correlation_weight * corr[moved[:, 0], moved[:, 1]]
    order = np.argsort(-score, kind="stable")
    moved, score = moved[order].astype(float), score[order].astype(np.float32)
    keep = greedy_keep(moved, model.settings.suppression_radius())
    return moved[keep], score[keep]


def fit_correlation(model: PUModel, items: Sequence[TrainingItem], logits: Sequence[np.ndarray],
                    rng: np.random.Generator) -> list[np.ndarray]:
    """Decide whether the model uses the labels' rotational average (see the module): sets ``template``,
    ``correlation_weight`` (0 where the agreement is below ``AGREEMENT``) and ``agreement``. ``logits``: the
    network's maps of ``items``. Returns the items' correlation maps."""
    s = model.settings
    template = label_template(items, s, rng)
    logit_peaks, corr_peaks, maps = [], [], []
    for it, z in zip(items, logits):
        coords, values = nms(z, s.suppression_radius(), -np.inf)
        corr = correlation_map(it.image, template, s)
        maps.append(corr)
        moved = centred_on_correlation(coords, corr, s)
        logit_peaks.append(values)
        corr_peaks.append(corr[moved[:, 0], moved[:, 1]])
    logit_peaks, corr_peaks = np.concatenate(logit_peaks), np.concatenate(corr_peaks)
    expected = sum(s.particles_in(model.pi, it.image.size) for it in items)
    k = int(np.clip(round(expected), 1, len(logit_peaks)))
    best_logit, best_corr = np.argsort(-logit_peaks)[:k], np.argsort(-corr_peaks)[:k]
    model.agreement = float(len(np.intersect1d(best_logit, best_corr)) / k)
    top = np.argsort(-logit_peaks)[: min(len(logit_peaks), 2 * k)]
    spread = float(np.std(corr_peaks[top]))
    if model.agreement >= AGREEMENT and spread > 0:
        model.template = template
        model.correlation_weight = float(np.std(logit_peaks[top]) / spread)
    else:
        model.template, model.correlation_weight = None, 0.0
    return maps
