"""The trained few-shot model and how it scores a micrograph: the encoder's similarity to the exemplars (every
window or gated), the fast network, or the correlation with the exemplars' rotational average; peaks centred on
that correlation, and the calibrated cut."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from fewpick.device import mixed_precision, module_device
from fewpick.errors import InputError
from fewpick.geometry import Geometry
from fewpick.io.images import Image
from fewpick.io.picks import make_picks
from fewpick.nn.vit import MaskedAutoencoder
from fewpick.ops.peaks import best_within, greedy_keep, nms, refine_peaks
from fewpick.ops.templates import rescaled_template, rotational_template, template_score_map
from fewpick.ops.thresholds import threshold_at_count, threshold_knn_density
from fewpick.pickers.base import CLOSE_PICKS, PickerBase, ScoreMap, picks_table
from fewpick.pickers.fewshot.settings import (
    FewShotSettings,
)
from fewpick.pickers.fewshot.windows import (
    resampled,
    window_grid,
)
from fewpick.pickers.threshold import Count, ThresholdLike, default_count


@dataclass
class FewShotModel(PickerBase):
    """A trained few-shot picker (a :class:`~fewpick.pickers.base.Picker`): the encoder, the exemplar windows
    and the settings."""

    net: MaskedAutoencoder
    settings: FewShotSettings
    exemplars: np.ndarray  # (m, size, size) exemplar windows, resampled and normalised
    pixel_size: float | None
    reference: str = ""
    pretrained: dict = field(default_factory=dict)  # what the encoder was pre-trained on
    history: list = field(default_factory=list)
    # the default cut, calibrated on the training micrographs with the expected particle count (None: the
    # density-based cut)
    threshold: float | None = None
    # run-time choice, not stored: bfloat16 matrix products when picking on a GPU; off, as it saved no time
    # (docs/decisions.md, "Mixed precision")
    mixed_precision: bool = False
    # the fast scoring network distilled from the encoder (fewshot.fast; None in files written before it) and its
    # summary (binning factor, offset, fit)
    fast_net: torch.nn.Module | None = None
    fast_info: dict = field(default_factory=dict)
    # the general particle model's particles per micrograph on the training micrographs: where the user gave no
    # count, its estimate (scaled by the share of the exemplars it finds); where the user gave one, its own count
    # beside it, if it counts the same particles; None otherwise (and in files from before them)
    estimated_particles: float | None = None
    general_count: float | None = None
    # run-time choice, not stored: score every window with the encoder itself (what the fast network learned)
    exact: bool = False
    # run-time choice, not stored: one of fast.SCORINGS instead of the model's own (benchmarks)
    scoring_override: str | None = None
    _template: tuple | None = field(default=None, init=False, repr=False)  # exemplar_template, computed once
    _fast_template: tuple | None = field(default=None, init=False, repr=False)

    @torch.inference_mode()
    def exemplar_features(self) -> torch.Tensor:
        """Unit-norm features of the exemplars, (m, dim), on the network's device."""
        self.net.eval()
        x = torch.from_numpy(self.exemplars)[:, None].to(module_device(self.net))
        return F.normalize(self.net.features(x).float(), dim=1)

    def score_map(self, image: Image | np.ndarray, match: str | None = None, stride: int | None = None) -> ScoreMap:
        """Similarity to the exemplars of the window at each grid cell (see :func:`score_map`); with centring on,
        ``extra['match']`` holds the correlation with the exemplars' rotational average at every resampled pixel."""
        if isinstance(image, Image):
            check_pixel_size(self, image)
        how = self.scoring(match, stride)
        if how == "fast":
            return fast_score_map(self, image)
        if how == "correlation":
            return correlation_score_map(self, image)
        scores, scale, stride, match_map = score_map(self, image, match, stride, gated=how == "gated")
        size = self.settings.size
        return ScoreMap(scores, lambda ij: grid_to_original(ij, stride, size, scale),
                        {"scale": scale, "stride": stride, "match": match_map})

    def scoring(self, match: str | None = None, stride: int | None = None) -> str:
        """How picking scores (:func:`fewpick.pickers.fewshot.fast.chosen_scoring`, made at training): ``fast``,
        the fast network; ``correlation``, the correlation with the exemplars' rotational average alone (the
        encoder learned nothing its fast network could follow); ``gated``, the encoder on the windows the fast
        network ranks in the top half; or ``encoder``, every window. The encoder at every window whenever it is
        asked for (``exact``) or a matching or stride other than the model's is."""
        if self.exact or stride not in (None, self.settings.step()) or match not in (None, self.settings.match):
            return "encoder"
        if self.scoring_override is not None:
            from fewpick.pickers.fewshot.fast import SCORINGS

            if self.scoring_override not in SCORINGS or (self.scoring_override == "fast" and self.fast_net is None):
                raise ValueError(f"cannot score by {self.scoring_override!r} with this model")
            return self.scoring_override
        if self.fast_net is None:
            return "encoder"
        from fewpick.pickers.fewshot.fast import stored_scoring

        return stored_scoring(self.fast_info)

    def uses_fast(self, match: str | None = None, stride: int | None = None) -> bool:
        """Whether picking uses the fast network (:meth:`scoring`)."""
        return self.scoring(match, stride) == "fast"

    def template(self) -> tuple[np.ndarray, float]:
        """The exemplars' rotational average (see :func:`exemplar_template`) and its mask radius, resampled px."""
        if self._template is None:
            self._template = exemplar_template(self.exemplars, self.settings)
        return self._template

    def fast_template(self) -> tuple[np.ndarray, float]:
        """:meth:`template` drawn on the fast network's binned grid, and its mask radius there."""
        if self._fast_template is None:
            template, radius = self.template()
            zoom = self.settings.scale / float(self.fast_info["factor"])
            self._fast_template = (rescaled_template(template, zoom), radius * zoom)
        return self._fast_template

    auto_rule = staticmethod(threshold_knn_density)  # each micrograph cut where its peak scores are sparsest

    def calibrated_threshold(self) -> float | None:
        return self.threshold

    def expected_count(self) -> float | None:
        """The picks per micrograph a count cut keeps: the user's count, or the general model's where clearly
        larger (:func:`~fewpick.pickers.threshold.default_count`); without the user's, the general model's
        estimate."""
        if self.settings.expected_particles:
            return default_count(self.settings.expected_particles, self.general_count)
        return self.estimated_particles

    def estimated_count(self) -> float | None:
        """The general particle model's count of the particles, where the model was trained without an expected
        count (scaled by the exemplars it misses and checked against this model's scores)."""
        return None if self.settings.expected_particles else self.estimated_particles

    def peaks(self, smap: ScoreMap, threshold: ThresholdLike = None,
              max_picks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Suppression within ``suppress`` × the diameter, each peak centred (:func:`centre_peaks`), those closer
        than :data:`~fewpick.pickers.base.CLOSE_PICKS` diameters to a better one ranked last, then the cut
        (:mod:`fewpick.pickers.threshold`; None: the model's calibrated cut if it has one, else ``auto``) and at
        most ``max_picks``."""
        threshold = self.resolve_threshold(threshold)
        # windows are wider than the particle, so off-centre windows still score high: suppress within
        # ``suppress`` × the diameter (particles do not overlap), in grid cells
        stride = smap.extra["stride"]
        geo = smap.extra.get("geometry") or self.settings.geometry()  # the fast network's grid, or the encoder's
        radius = geo.radius(2 * self.settings.suppress) / stride
        # (the fast network's map covers the whole micrograph, the encoder's grid only the windows that fit; limiting
        # the search to where a window fits lost particles near the edges)
        ij, values = nms(smap.scores, max(radius, 1.0), -np.inf, max_picks=None)
        ij = refine_peaks(smap.scores, ij)
        if smap.extra.get("match") is not None and self.settings.centre > 0 and len(ij):
            ij, values = centre_peaks(ij, values, smap.extra["match"], stride, self.settings, geo,
                                      smap.extra.get("offset"))
        return self.select(ij, values, threshold, max_picks, close_radius=geo.radius(2 * CLOSE_PICKS) / stride)


def calibrate_threshold(model: FewShotModel, micrographs: Sequence[Image],
                        maps: Sequence[ScoreMap] | None = None) -> float | None:
    """The calibrated cut: the score of each micrograph's k-th best pick, the median over ``micrographs``, k the
    picks per micrograph the default cut keeps (:meth:`FewShotModel.expected_count`; None without a count).
    ``maps``: the model's score maps of them, where already made."""
    k = model.expected_count()
    if not k:
        return None
    maps = maps if maps is not None else [model.score_map(im) for im in micrographs]
    return threshold_at_count([model.peaks(smap, -np.inf)[1] for smap in maps], [k] * len(maps), empty=0.0)


def check_pixel_size(model: FewShotModel, image: Image) -> None:
    ref, px = model.pixel_size, image.pixel_size
    if ref and px and abs(ref - px) > 0.01 * ref:
        raise InputError(image.path, f"pixel size {px:g} Å differs from the reference micrograph's {ref:g} Å "
                                     f"({model.reference}); resample it or train on a reference at {px:g} Å")


def score_map(model: FewShotModel, image: Image | np.ndarray, match: str | None = None,
              stride: int | None = None, gated: bool = False) -> tuple[np.ndarray, np.ndarray, int, np.ndarray | None]:
    """Similarity of every window to the exemplars (``gated``: of the windows the fast network ranks in the top
    :data:`~fewpick.pickers.fewshot.fast.ENCODER_SHARE`; the others get the lowest of those).

    Returns the score map (rows, cols) on the window grid, the original-per-resampled scale (y, x), the
    stride, and (with centring on, else None) the correlation with the exemplars' rotational average at every
    pixel of the resampled micrograph; grid cell (i, j) is the window whose top-left corner is at
    (i·stride, j·stride) resampled px.
    """
    s = model.settings
    torch.set_num_threads(s.threads)
    match = match or s.match
    stride = stride or s.step()
    img, scale = resampled(model, image)
    mask = None
    if gated:
        from fewpick.pickers.fewshot import fast as ff

        data = image.data if isinstance(image, Image) else image
        mask = ff.gate(model, data, window_grid(img.shape, s.size, stride), scale)
    out = encoder_scores(model, img, match, stride, mask)
    match_map = None
    if s.centre > 0:
        template, mask_radius = model.template()
        match_map = template_score_map(img, template[None], mask_radius)
    return out, scale, stride, match_map


def encoder_scores(model: FewShotModel, img: np.ndarray, match: str, stride: int,
                   mask: np.ndarray | None = None) -> np.ndarray:
    """The encoder's similarity to the exemplars of every window of a prepared micrograph, on the window grid (with
    ``mask``, of those windows only; the others get the lowest of their scores)."""
    s = model.settings
    ex = model.exemplar_features()
    out = np.empty(window_grid(img.shape, s.size, stride), np.float32)
    dev = module_device(model.net)
    # a GPU takes many more window rows at once
    chunk = 16 if dev.type == "cpu" else 256
    with mixed_precision(dev, model.mixed_precision):
        for r0, feats in model.net.sliding_features(img, stride, rows_per_chunk=chunk, mask=mask):
            with torch.autocast(dev.type, enabled=False):  # the similarities in full precision
                sim = F.normalize(feats.float(), dim=-1) @ ex.float().T  # (rows, nx, m)
            out[r0 : r0 + feats.shape[0]] = (sim.amax(-1) if match == "max" else sim.mean(-1)).float().cpu().numpy()
    if mask is not None:
        out[~mask] = out[mask].min() if mask.any() else 0.0
    return out


def fast_score_map(model: FewShotModel, image: Image | np.ndarray) -> ScoreMap:
    """The fast network's scores at every pixel of the micrograph binned for it (the window centred there; see
    :mod:`fewpick.pickers.fewshot.fast`) and, with centring on, the correlation with the exemplars' rotational
    average on the same grid."""
    from fewpick.pickers.fewshot import fast as ff

    s = model.settings
    torch.set_num_threads(s.threads)
    data = image.data if isinstance(image, Image) else image
    factor = int(model.fast_info["factor"])
    try:
        binned = ff.prepare_binned(data, factor, s.threads)
    except InputError as exc:
        raise InputError(getattr(image, "path", None), exc.problem) from None
    geo = Geometry(s.diameter, factor)
    if min(binned.shape) < 2 * geo.radius(s.window_ratio):
        raise InputError(getattr(image, "path", None), f"micrograph is smaller than one {s.window:.0f} px window")
    scores = ff.fast_scores(model.fast_net, binned) + np.float32(model.fast_info.get("offset", 0.0))
    scale = Geometry.scale(data.shape, binned.shape)
    match_map = None
    if s.centre > 0:
        template, mask_radius = model.fast_template()
        match_map = template_score_map(binned, template[None], mask_radius)
    return ScoreMap(scores, lambda ij: np.asarray(ij, float) * scale,
                    {"scale": scale, "stride": 1, "offset": 0.0, "geometry": geo, "match": match_map})


def correlation_score_map(model: FewShotModel, image: Image | np.ndarray) -> ScoreMap:
    """The correlation with the exemplars' rotational average at every pixel of the resampled micrograph, read at
    the centres of the encoder's windows as their scores; the encoder does not run (see
    :func:`fewpick.pickers.fewshot.fast.chosen_scoring`)."""
    s = model.settings
    img, scale = resampled(model, image)
    template, mask_radius = model.template()
    match = template_score_map(img, template[None], mask_radius)
    stride = s.step()
    ny, nx = window_grid(img.shape, s.size, stride)
    off = (s.size - 1) // 2  # the pixel nearest each window's centre
    scores = np.ascontiguousarray(match[off : off + (ny - 1) * stride + 1 : stride,
                                        off : off + (nx - 1) * stride + 1 : stride], np.float32)
    return ScoreMap(scores, lambda ij: (np.asarray(ij, float) * stride + off) * np.asarray(scale, float),
                    {"scale": scale, "stride": stride, "offset": float(off), "match": match,
                     "label": "correlation with the exemplars' average"})


def exemplar_template(exemplars: np.ndarray, settings: FewShotSettings) -> tuple[np.ndarray, float]:
    """The exemplars' mean rotational average (:func:`rotational_template`) on an odd grid (a window's side,
    rounded up to odd) and the radius (resampled px) within which it is matched: the window's inscribed circle,
    0.6 diameters."""
    mask_radius = settings.geometry().radius(settings.window_ratio)
    return rotational_template(exemplars, mask_radius), mask_radius


def centre_peaks(ij: np.ndarray, values: np.ndarray, match: np.ndarray, stride: int,
                 settings: FewShotSettings, geo: Geometry | None = None,
                 offset: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Move each peak (window-grid coordinates) to the best correlation with the exemplars' rotational average
    within ``centre`` diameters (refined below a pixel), score it by the mean of its similarity and that
    correlation, and suppress again (two peaks may have moved onto one particle). Best first.

    The similarity of whole windows is nearly flat within a particle's radius (a window 1.2 diameters wide
    still holds most of a particle a third of a diameter off its centre), so it finds particles but places
    picks anywhere on them; the correlation with a centred, rotationally averaged particle peaks at the centre.
    ``geo`` and ``offset``: the grid the maps lie on and the position of cell 0 on it (default: the encoder's
    resampled grid, cell 0 the first window's centre).
    """
    geo = geo or settings.geometry()
    off = (settings.size - 1) / 2 if offset is None else offset
    yx = np.asarray(ij, float) * stride + off  # on the match map's grid
    best = best_within(match, yx, settings.centre * geo.working_diameter)
    score = (np.asarray(values, np.float64) + match[best[:, 0], best[:, 1]]) / 2
    order = np.argsort(-score, kind="stable")
    moved, score = refine_peaks(match, best[order]), score[order]
    keep = greedy_keep(moved, geo.radius(2 * settings.suppress))
    return (moved[keep] - off) / stride, score[keep].astype(np.float32)


def grid_to_original(ij: np.ndarray, stride: int, size: int, scale: np.ndarray) -> np.ndarray:
    """Window-grid (i, j) → window centres in original (y, x) px."""
    return (np.asarray(ij, float) * stride + (size - 1) / 2) * np.asarray(scale, float)


def pick_micrograph(model: FewShotModel, image: Image, threshold: ThresholdLike = None, *, match: str | None = None,
                    stride: int | None = None, max_picks: int | None = None,
                    keep_map: dict | None = None) -> pd.DataFrame:
    """Picks of one micrograph in original pixels; scores are cosine similarities (−1…1).

    ``threshold``: see :meth:`FewShotModel.peaks`.
    """
    smap = model.score_map(image, match, stride)
    if keep_map is not None:
        keep_map.update(scores=smap.scores, to_original=smap.to_original, shape=image.shape, **smap.extra)
    coords, values = model.peaks(smap, threshold, max_picks)
    return picks_table(image.name, smap.to_original(coords), values)


def pick_images(model: FewShotModel, images: Sequence[Image], threshold: ThresholdLike = None, **kw) -> pd.DataFrame:
    """Picks of several micrographs in one table (``kw``: as :func:`pick_micrograph`); a count cut is one score
    for all of them (:meth:`FewShotModel.count_cut`)."""
    images = list(images)
    t = model.resolve_threshold(threshold)
    if isinstance(t, Count) and t.score is None and images:
        t = replace(t, score=model.count_cut(images, t.per_image, t.split, t.otherwise, match=kw.get("match"),
                                             stride=kw.get("stride")))
    tables = [pick_micrograph(model, im, t, **kw) for im in images]
    return pd.concat(tables, ignore_index=True) if tables else make_picks("", [], [])


def model_summary(model: FewShotModel) -> str:
    s = model.settings
    pre = model.pretrained
    pre_text = (f"pre-trained on {len(pre.get('micrographs', []))} micrograph(s)" if pre else "not pre-trained")
    return (f"few-shot picker: {len(model.exemplars)} exemplars on {model.reference}, particle {s.diameter:.4g} px "
            f"(seen in windows of {s.window:.0f} px), {pre_text}, "
            f"picks at least {s.suppress:.2g} diameters apart, {fast_summary(model)}, {default_cut_summary(model)}")


def default_cut_summary(model: FewShotModel) -> str:
    """What the summary says of the default cut and the count behind it."""
    expected, k = model.settings.expected_particles, model.expected_count()
    if not k:
        return "each micrograph cut where its scores are sparsest"
    gap = ", or the gap in the scores where they fall into two clear groups near that"
    if not expected and model.threshold is not None:
        return (f"default threshold {model.threshold:.3g}, which keeps about the {k:.0f} best picks per training "
                f"micrograph (about {k:.0f} particles per micrograph, counted with the general particle model and "
                f"checked against this model's scores: where they fall off, and how many score as the exemplars do), "
                f"or the gap in the scores where they fall into two clear groups near that count")
    if not expected:
        return (f"default threshold: the best {k:.0f} picks per micrograph (about {k:.0f} particles per "
                f"micrograph, counted with the general particle model and checked against this model's scores: "
                f"where they fall off, and how many score as the exemplars do){gap}")
    if k != expected:
        return (f"default threshold: the best {k:.0f} picks per micrograph (the general particle model counts about "
                f"{k:.0f} particles per micrograph where {expected:g} were expected: the default threshold keeps "
                f"that many){gap}")
    return f"default threshold: the best {k:g} picks per micrograph{gap}"


def fast_summary(model: FewShotModel) -> str:
    """How this model scores windows when picking."""
    info = model.fast_info
    if model.fast_net is None:
        return "the encoder scores every window"
    if model.exact:
        return "the encoder scores every window (asked for)"
    how = model.scoring()
    if how == "fast":
        return f"a fast network scores every window (agreement with the encoder {info['agreement']:.2f})"
    if how == "correlation":
        return ("the correlation with the exemplars' rotational average scores every window (the encoder's scores "
                f"are noise at the particle's scale: agreement {info.get('agreement', float('nan')):.2f})")
    if how == "gated":
        from fewpick.pickers.fewshot.fast import ENCODER_SHARE

        return (f"the encoder scores the {ENCODER_SHARE:.0%} of the windows its fast network ranks highest (the "
                f"network follows it only roughly: agreement {info.get('agreement', float('nan')):.2f})")
    return (f"the encoder scores every window (the fast network agrees with it too little: "
            f"{info.get('agreement', float('nan')):.2f})")
