"""Few-shot picker with a masked autoencoder (cryoMAE-class; seed 002, SPEC §2).

A user labels ``m`` (~15) particles on one reference micrograph. Every micrograph is resampled
(Fourier cropping) so that a window of ``window_ratio`` (1.2) × the particle diameter becomes ``size``
px (24, so the particle is ~20 px across, near the PU picker's binning rule) and robustly normalised;
the ViT-MAE (:mod:`fewpick.nn.vit`) works on such windows.

1. **Pre-training** (reconstruction only) on random windows from any unlabeled micrographs,
   saved on its own so it can be reused for other targets.
2. **Fine-tuning** on the reference: each step takes the exemplars (random 90° rotations, flips and
   a one-pixel jitter) and ``n`` fresh unlabeled windows of the same micrograph (a quarter of them
   ½–1½ diameters off an exemplar, an eighth centred on particle-sized blobs — difference-of-Gaussians
   peaks, mostly particles of every kind, so that look-alike species are pushed away as well as the
   ice — and the rest anywhere), and minimises ``L_MSE + β·L̂_SCS``: the self-cross similarity
   loss, PU-adjusted for the fraction ``π̂`` of unlabeled windows that hold a particle (or
   unadjusted, or left out, for the ablation), on the encoder features of the whole windows as
   they are matched at picking (``scs_view="masked"``: of the masked views, as in seed 002).
3. **Picking**: the encoder slides over each micrograph (stride ``size/6``) with no masking; a
   window's score is its max (or mean) cosine similarity to the exemplars' features; non-maximum
   suppression within 0.75 × the diameter gives one pick per particle (narrowed down to half of that
   when an expected particle count says the micrographs are crowded). The similarity finds particles but
   is nearly flat across each one, so every peak then moves to the best correlation, within half a
   diameter, with the exemplars' rotational average (centred exemplars, orientation-free), and scores the
   mean of the two. The default cut is calibrated at training: the score of the reference's k-th best
   pick, k the expected particle count; without a count, or with ``auto``, each micrograph is cut at the
   deepest valley of the density of its sorted peak scores (k = 5 nearest neighbours;
   :func:`fewpick.extract.threshold_knn_density`).
4. **Faster scoring**, chosen at training (:mod:`fewpick.pickers.fewshot_fast`): a small network distilled from
   the encoder replaces it where it follows the encoder's scores; where nothing can (its agreement stays near 0:
   the encoder's score is noise at the particle's scale, as on noisy, crowded micrographs), each window scores
   its correlation with the exemplars' rotational average alone (:func:`correlation_score_map`), and the encoder
   is not run; in between, the encoder scores only the half of the windows the network ranks higher.

Coordinates in and out are original pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from fewpick import modelfile
from fewpick._fileutil import atomic_path
from fewpick.device import cpu_state, mixed_precision, module_device, resolve_device
from fewpick.errors import InputError
from fewpick.extract import (auto_min_distance, best_within, greedy_keep, nms, threshold_at_count,
                             threshold_knn_density)
from fewpick.geometry import Geometry
from fewpick.io.images import Image, match_names
from fewpick.io.picks import check_inside, make_picks
from fewpick.losses.fewshot import scs_loss
from fewpick.nn.vit import MaskedAutoencoder
from fewpick.pickers.base import PickerBase, ScoreMap, picks_table
from fewpick.pickers.classic import template_score_map
from fewpick.preprocess import fourier_crop, normalize
from fewpick.training import fit, seeded

MODEL_FORMAT = "fewpick-fewshot-model"
PRETRAINED_FORMAT = "fewpick-fewshot-pretrained"
MODEL_FORMAT_VERSION = 1
SCS_MODES = ("adjusted", "unadjusted", "none")
MATCH_MODES = ("max", "mean")
ARCH_FIELDS = ("size", "patch", "dim", "depth", "heads", "decoder_dim", "decoder_depth", "mlp_ratio", "window_norm")


@dataclass
class FewShotSettings:
    """Everything that defines a few-shot picker; stored in the model file. Lengths in original px."""

    diameter: float
    window_ratio: float = 1.2  # window side = window_ratio × diameter
    size: int = 24  # window side after resampling (the network's input), px
    patch: int = 6
    dim: int = 64
    depth: int = 3
    heads: int = 4
    decoder_dim: int = 48
    decoder_depth: int = 1
    mlp_ratio: float = 2.0
    window_norm: str = "meanstd"  # per-window normalisation: to zero mean and unit sd, or "mean" only
    mask_ratio: float = 0.75
    pretrain_steps: int = 6000
    pretrain_batch: int = 128
    pretrain_lr: float = 1.5e-3
    finetune_steps: int = 1000
    unlabeled: int = 64  # n: random unlabeled windows per fine-tuning step
    shifted: float = 0.25  # fraction of them drawn around exemplars, off-centre by ½–1½ diameters
    blobs: float = 0.125  # fraction of them centred on blobs of the particle size (DoG peaks): the hard unlabeled examples
    finetune_lr: float = 1e-3
    scs: str = "adjusted"
    pi: float = 0.05  # π̂: fraction of unlabeled windows that hold a particle
    alpha: float = 0.5
    tau: float = 0.0
    beta: float = 10.0
    scs_view: str = "full"  # SCS on the encoder features of the whole windows, as matched at picking, or "masked" views (seed 002)
    stride: int | None = None  # sliding stride in resampled px (default size // 6: the picks are centred afterwards)
    match: str = "max"
    suppress: float = 0.75  # NMS radius as a fraction of the particle diameter (on sparse micrographs)
    centre: float = 0.5  # each peak moves to the best match of the exemplars' rotational average within this many diameters (0: off)
    expected_particles: float | None = None  # per micrograph, if the user knows: narrows the NMS when crowded
    seed: int = 0
    distill_steps: int = 600  # the fast scoring network (fewshot_fast): steps fitting it to the encoder's scores (0: none)
    distill_windows: int = 150_000  # teacher windows scored for it (the reference first, then the other micrographs)
    distill_lr: float = 2e-3
    threads: int = 2  # torch threads for picking (sliding windows: large batches)
    train_threads: int = 2  # for training (one is faster only when other jobs share the cores)

    def geometry(self) -> Geometry:
        """Resampling that brings a window of ``window_ratio`` diameters to ``size`` px."""
        return Geometry.resampled(self.diameter, self.window_ratio, self.size)

    @property
    def scale(self) -> float:
        """Original pixels per resampled pixel (never below 1: tiny particles get a wider window, not upsampling)."""
        return self.geometry().factor

    @property
    def window(self) -> float:
        """Window side in original pixels."""
        return self.size * self.scale

    def step(self) -> int:
        return self.stride or max(1, self.size // 6)

    def arch(self) -> dict:
        a = {k: getattr(self, k) for k in ARCH_FIELDS}
        a["norm"] = a.pop("window_norm")
        return a

    def check(self) -> None:
        if self.scs not in SCS_MODES:
            raise InputError(None, f"unknown SCS mode {self.scs!r}; choose one of {', '.join(SCS_MODES)}")
        if self.match not in MATCH_MODES:
            raise InputError(None, f"unknown matching {self.match!r}; choose one of {', '.join(MATCH_MODES)}")
        if not 0 <= self.pi < 1:
            raise InputError(None, f"π̂ = {self.pi:g} must lie in [0, 1)")
        if not (0 <= self.shifted and 0 <= self.blobs and self.shifted + self.blobs <= 1):
            raise InputError(None, f"fractions of shifted ({self.shifted:g}) and blob ({self.blobs:g}) windows must "
                                   "be non-negative and add up to at most 1")
        if not 0 <= self.alpha <= 1:
            raise InputError(None, f"α = {self.alpha:g} must lie in [0, 1]")
        if not self.diameter > 0:
            raise InputError(None, f"particle diameter must be positive, got {self.diameter:g}")
        if self.size % self.patch:
            raise InputError(None, f"window size {self.size} px is not a multiple of the patch size {self.patch} px")


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
    # the default cut, calibrated on the reference with the expected particle count (None: the density-based cut)
    threshold: float | None = None
    # run-time choice, not stored: bfloat16 matrix products when picking on a GPU. Off: on an H100 it saved no
    # time (reading and binning dominate) and moved 0.3–1.2 % of the picks (bench/results/gpu.md)
    mixed_precision: bool = False
    # the fast scoring network distilled from the encoder (fewshot_fast; None in files written before it) and its
    # summary (binning factor, offset, fit)
    fast_net: torch.nn.Module | None = None
    fast_info: dict = field(default_factory=dict)
    # run-time choice, not stored: score every window with the encoder itself (what the fast network learned)
    exact: bool = False
    # run-time choice, not stored: one of fewshot_fast.SCORINGS instead of the model's own (benchmarks)
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
        """How picking scores (:func:`fewpick.pickers.fewshot_fast.chosen_scoring`, made at training): ``fast``,
        the fast network; ``correlation``, the correlation with the exemplars' rotational average alone (the
        encoder learned nothing its fast network could follow); ``gated``, the encoder on the windows the fast
        network ranks in the top half; or ``encoder``, every window. The encoder at every window whenever it is
        asked for (``exact``) or a matching or stride other than the model's is."""
        if self.exact or stride not in (None, self.settings.step()) or match not in (None, self.settings.match):
            return "encoder"
        if self.scoring_override is not None:
            from fewpick.pickers.fewshot_fast import SCORINGS

            if self.scoring_override not in SCORINGS or (self.scoring_override == "fast" and self.fast_net is None):
                raise ValueError(f"cannot score by {self.scoring_override!r} with this model")
            return self.scoring_override
        if self.fast_net is None:
            return "encoder"
        from fewpick.pickers.fewshot_fast import stored_scoring

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

    def peaks(self, smap: ScoreMap, threshold: float | str | None = None,
              max_picks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Suppression within ``suppress`` × the diameter, each peak centred (:func:`centre_peaks`), the cut
        (None: the model's calibrated cut if it has one, else ``auto``: the density-based cut, k = 5, on this
        micrograph's peak scores) and at most ``max_picks``."""
        if threshold is None:
            threshold = "auto" if self.threshold is None else self.threshold
        # windows are wider than the particle, so off-centre windows still score high: suppress within
        # ``suppress`` × the diameter (particles do not overlap), in grid cells
        stride = smap.extra["stride"]
        geo = smap.extra.get("geometry") or self.settings.geometry()  # the fast network's grid, or the encoder's
        radius = geo.radius(2 * self.settings.suppress) / stride
        # (the fast network's map covers the whole micrograph, the encoder's grid only the windows that fit: on
        # apoferritin, annotated to within 0.2 diameters of the edges, searching the map only where a window fits
        # cost 0.03 box F1 to the fast network, seed 0 each way)
        ij, values = nms(smap.scores, max(radius, 1.0), -np.inf, max_picks=None)
        ij = refine_peaks(smap.scores, ij)
        if smap.extra.get("match") is not None and self.settings.centre > 0 and len(ij):
            ij, values = centre_peaks(ij, values, smap.extra["match"], stride, self.settings, geo,
                                      smap.extra.get("offset"))
        if threshold == "auto":
            cut = threshold_knn_density(values, k=5) if len(values) else 0.0
        else:
            cut = float(threshold)
        keep = values >= cut
        ij, values = ij[keep], values[keep]
        if max_picks is not None:
            ij, values = ij[:max_picks], values[:max_picks]
        return ij, values


# ---------------------------------------------------------------- data


def prepare(image: Image | np.ndarray, scale: float, source=None, threads: int | None = None) -> np.ndarray:
    """Resample a micrograph by ``scale`` (original px per output px; Fourier cropping) and normalise it robustly."""
    data = image.data if isinstance(image, Image) else image
    source = image.path if isinstance(image, Image) else source
    shape = tuple(max(1, int(round(n / scale))) for n in data.shape)
    try:
        return normalize(fourier_crop(np.asarray(data, np.float32), shape, threads) if scale != 1 else data,
                         clip=6.0)
    except InputError as exc:
        raise InputError(source, exc.problem) from None


def window_grid(shape: tuple[int, int], size: int, stride: int) -> tuple[int, int]:
    """Rows and columns of the grid of ``size``² windows at ``stride`` that fit in an image of ``shape``."""
    return (shape[0] - size) // stride + 1, (shape[1] - size) // stride + 1


def _resampled(model: "FewShotModel", image: Image | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The micrograph prepared for the encoder's windows (:func:`prepare`) and the original px per resampled px
    (y, x); a micrograph smaller than one window is refused."""
    s = model.settings
    data = image.data if isinstance(image, Image) else image
    img = prepare(image, s.scale, threads=s.threads)
    if min(img.shape) < s.size:
        raise InputError(getattr(image, "path", None), f"micrograph is smaller than one {s.window:.0f} px window")
    return img, Geometry.scale(data.shape, img.shape)


def _window_at(img: np.ndarray, cy: float, cx: float, size: int) -> np.ndarray | None:
    y0, x0 = int(round(cy - (size - 1) / 2)), int(round(cx - (size - 1) / 2))
    if y0 < 0 or x0 < 0 or y0 + size > img.shape[0] or x0 + size > img.shape[1]:
        return None
    return img[y0 : y0 + size, x0 : x0 + size]


def _dihedral(w: np.ndarray, k: int) -> np.ndarray:
    w = np.rot90(w, k % 4, axes=(-2, -1))
    return w[..., ::-1] if k >= 4 else w


def _random_windows(images: Sequence[np.ndarray], count: int, size: int, rng: np.random.Generator,
                    weights: np.ndarray | None = None) -> np.ndarray:
    idx = rng.choice(len(images), size=count, p=weights)
    out = np.empty((count, size, size), np.float32)
    for i, j in enumerate(idx):
        img = images[j]
        y0 = rng.integers(0, img.shape[0] - size + 1)
        x0 = rng.integers(0, img.shape[1] - size + 1)
        out[i] = _dihedral(img[y0 : y0 + size, x0 : x0 + size], int(rng.integers(8)))
    return out


def _shifted_windows(img: np.ndarray, centres: np.ndarray, count: int, settings: "FewShotSettings",
                     rng: np.random.Generator) -> np.ndarray:
    """Windows off-centre from random exemplars by ½–1½ particle diameters (in a random direction): the
    neighbourhood the picker must score lower than the centre, so that one particle gives one pick."""
    out = np.empty((count, settings.size, settings.size), np.float32)
    d = settings.geometry().working_diameter
    i = 0
    while i < count:
        cy, cx = centres[rng.integers(len(centres))]
        r, a = rng.uniform(0.5, 1.5) * d, rng.uniform(0, 2 * np.pi)
        w = _window_at(img, cy + r * np.sin(a), cx + r * np.cos(a), settings.size)
        if w is None:
            w = _random_windows([img], 1, settings.size, rng)[0]
        out[i] = _dihedral(w, int(rng.integers(8)))
        i += 1
    return out


def _blob_centres(img: np.ndarray, settings: "FewShotSettings", min_score: float = 2.0) -> np.ndarray:
    """Centres (resampled px) of blobs of the particle's size whose whole window fits: DoG peaks at least
    ``min_score`` robust sd above the background. Most are particles of some kind, so windows there are the
    hard unlabeled examples (targets and look-alikes) rather than empty ice."""
    from fewpick.pickers.classic import dog_score_map

    r = settings.geometry().radius()
    ij, _ = nms(dog_score_map(img, r), r, min_score)
    h = settings.size / 2 + 1
    inside = (ij[:, 0] >= h) & (ij[:, 1] >= h) & (ij[:, 0] < img.shape[0] - h) & (ij[:, 1] < img.shape[1] - h)
    return ij[inside].astype(float)


def _jittered(padded: np.ndarray, cy: float, cx: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """The window at (cy, cx) of the unpadded image, moved by up to one pixel and turned by a random
    dihedral transform; ``padded`` has a one-pixel margin, so a window that fits the image always fits."""
    dy, dx = rng.integers(-1, 2, size=2)
    return _dihedral(_window_at(padded, cy + 1 + dy, cx + 1 + dx, size), int(rng.integers(8)))


def _blob_windows(padded: np.ndarray, centres: np.ndarray, count: int, size: int,
                  rng: np.random.Generator) -> np.ndarray:
    out = np.empty((count, size, size), np.float32)
    for i in range(count):
        out[i] = _jittered(padded, *centres[rng.integers(len(centres))], size, rng)
    return out


def exemplar_windows(reference: Image, prepared: np.ndarray, exemplars: pd.DataFrame, settings: FewShotSettings,
                     source=None, min_exemplars: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Windows around the exemplars (m, size, size) and their resampled centres (m, 2).

    ``min_exemplars`` is 2 for users (the self-similarity of one exemplar says nothing); the
    exemplar-count benchmark lowers it to 1 to reproduce seed 002's table."""
    if len(exemplars) < min_exemplars:
        raise InputError(source, f"{len(exemplars)} exemplar(s) on {reference.name}: the few-shot picker needs at "
                                 "least 2")
    check_inside(exemplars, {reference.name: reference.shape}, source)
    centres = settings.geometry().to_working(exemplars[["y", "x"]].to_numpy(float),
                                             Geometry.scale(reference.shape, prepared.shape))
    out = []
    half = settings.window / 2
    for (cy, cx), (_, row) in zip(centres, exemplars.iterrows()):
        w = _window_at(prepared, cy, cx, settings.size)
        if w is None:
            raise InputError(source, f"exemplar at x={row['x']:.0f}, y={row['y']:.0f} on {reference.name} lies within "
                                     f"{half:.0f} px of the border: its {settings.window:.0f} px window does not fit "
                                     "(drop it or pick one further in)")
        out.append(w)
    return np.stack(out).astype(np.float32), centres


def _exemplars_for(reference: Image, exemplars: pd.DataFrame, source) -> pd.DataFrame:
    """The exemplar rows that name the reference micrograph (all rows if none names any micrograph)."""
    names = exemplars["micrograph"].astype(str)
    if names.nunique() == 1 and (names.iloc[0] in ("", "nan") or Path(str(source or "")).stem == names.iloc[0]):
        return exemplars.assign(micrograph=reference.name)
    pairs = match_names(list(dict.fromkeys(names)), [reference.name])
    if not pairs:
        raise InputError(source, f"no exemplar names the reference micrograph {reference.name} "
                                 f"(it names {', '.join(sorted(set(names))[:3])}…)")
    rows = exemplars[names.isin(list(pairs))]
    return rows.assign(micrograph=reference.name)


# ---------------------------------------------------------------- loss


# ---------------------------------------------------------------- model files


def _load_bundle(path: str | os.PathLike, fmt: str, what: str) -> dict:
    return modelfile.load(path, fmt, MODEL_FORMAT_VERSION, what)


def _settings_from(d: dict, path, what: str) -> FewShotSettings:
    return modelfile.settings_from(FewShotSettings, d, path, what)


def _net_from(bundle: dict, settings: FewShotSettings, path) -> MaskedAutoencoder:
    net = MaskedAutoencoder(**settings.arch())
    try:
        net.load_state_dict(bundle["state_dict"])
    except RuntimeError as exc:
        raise InputError(path, f"weights do not fit the network the file describes ({str(exc)[:120]})") from None
    return net.eval()


def is_model_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a few-shot model file (so ``fewpick pick --model`` can hand it over)."""
    return modelfile.format_of(path) == MODEL_FORMAT


def save_pretrained(net: MaskedAutoencoder, settings: FewShotSettings, info: dict, path: str | os.PathLike) -> Path:
    return modelfile.save(path, PRETRAINED_FORMAT, MODEL_FORMAT_VERSION, settings, info=info,
                          state_dict=cpu_state(net))


def load_pretrained(path: str | os.PathLike, device: str | torch.device = "auto"
                    ) -> tuple[MaskedAutoencoder, FewShotSettings, dict]:
    bundle = _load_bundle(path, PRETRAINED_FORMAT, "pre-trained encoder")
    settings = _settings_from(bundle["settings"], path, "pre-trained encoder")
    return _net_from(bundle, settings, path).to(resolve_device(device)), settings, dict(bundle.get("info", {}))


def save_model(model: FewShotModel, path: str | os.PathLike) -> Path:
    return modelfile.save(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, model.settings, state_dict=cpu_state(model.net),
                          exemplars=torch.from_numpy(np.ascontiguousarray(model.exemplars)),
                          pixel_size=model.pixel_size, reference=model.reference, pretrained=model.pretrained,
                          history=model.history, threshold=model.threshold,
                          fast_state=cpu_state(model.fast_net) if model.fast_net is not None else None,
                          fast_info=model.fast_info)


def load_model(path: str | os.PathLike, device: str | torch.device = "auto") -> FewShotModel:
    bundle = _load_bundle(path, MODEL_FORMAT, "few-shot picker model")
    settings = _settings_from(bundle["settings"], path, "few-shot picker model")
    dev = resolve_device(device)
    net = _net_from(bundle, settings, path).to(dev)
    fast = None
    if bundle.get("fast_state") is not None:
        from fewpick.pickers import fewshot_fast as ff

        info = bundle.get("fast_info") or {}
        fast = ff.new_net(info.get("width"), info.get("dilations"))
        try:
            fast.load_state_dict(bundle["fast_state"])
        except RuntimeError as exc:
            raise InputError(path, f"fast network's weights do not fit it ({str(exc)[:120]})") from None
        fast = fast.to(dev).eval()
    return FewShotModel(net, settings, bundle["exemplars"].numpy(), bundle.get("pixel_size"),
                        bundle.get("reference", ""), dict(bundle.get("pretrained", {})), list(bundle.get("history", [])),
                        bundle.get("threshold"), fast_net=fast, fast_info=dict(bundle.get("fast_info") or {}))


# ---------------------------------------------------------------- training


def _schedule(opt: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def pretrain(images: Sequence[Image], settings: FewShotSettings, *, net: MaskedAutoencoder | None = None,
             progress: Callable[[dict], None] | None = None, prepared: Sequence[np.ndarray] | None = None,
             device: str | torch.device = "auto", checkpoint: str | os.PathLike | None = None,
             resume: bool | str = False) -> tuple[MaskedAutoencoder, dict]:
    """Pre-train the MAE by masked reconstruction on random windows of ``images`` on ``device``; returns the
    net and a summary. With ``checkpoint`` the state is saved every 100 steps; ``resume`` continues from it."""
    settings.check()
    dev = resolve_device(device)
    torch.set_num_threads(settings.train_threads)
    rng, gen = seeded(settings.seed)
    prepared = list(prepared) if prepared is not None else [prepare(im, settings.scale) for im in images]
    for im, p in zip(images, prepared):
        if min(p.shape) < settings.size:
            raise InputError(im.path, f"micrograph is smaller than one {settings.window:.0f} px window")
    weights = np.array([p.size for p in prepared], float)
    weights /= weights.sum()
    net = (net or MaskedAutoencoder(**settings.arch())).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.pretrain_lr, weight_decay=0.05, betas=(0.9, 0.95))
    sched = _schedule(opt, settings.pretrain_steps, max(1, settings.pretrain_steps // 20))

    def step(_):
        x = torch.from_numpy(_random_windows(prepared, settings.pretrain_batch, settings.size, rng, weights))[:, None]
        loss, _ = net(x.to(dev), settings.mask_ratio, gen)
        return {"loss": loss}

    history = fit(net, opt, step, steps=settings.pretrain_steps, every=100, sched=sched, generators=(rng, gen),
                  checkpoint=checkpoint, resume=resume, config=_stage_config(settings, "pretrain", images),
                  extra={"stage": "pretrain"}, progress=progress)
    info = {"micrographs": [im.name for im in images], "steps": settings.pretrain_steps,
            "window_px": settings.window, "pixel_size": images[0].pixel_size if images else None, "history": history}
    return net, info


def _stage_config(settings: FewShotSettings, stage: str, images: Sequence[Image], **more) -> dict:
    """What a training stage's checkpoint must match to be resumed: the settings, the stage and the images."""
    return {"stage": stage, "settings": modelfile.settings_dict(settings), "images": [im.name for im in images],
            **more}


def finetune(reference: Image, exemplars: pd.DataFrame, settings: FewShotSettings, *,
             net: MaskedAutoencoder | None = None, pretrained: dict | None = None, exemplars_source=None,
             prepared: np.ndarray | None = None, progress: Callable[[dict], None] | None = None,
             min_exemplars: int = 2, device: str | torch.device = "auto",
             checkpoint: str | os.PathLike | None = None, resume: bool | str = False) -> FewShotModel:
    """Fine-tune on the reference micrograph on ``device``: exemplars + random unlabeled windows,
    ``L_MSE + β·L̂_SCS``. With ``checkpoint`` the state is saved every 25 steps; ``resume`` continues from it."""
    settings.check()
    dev = resolve_device(device)
    torch.set_num_threads(settings.train_threads)
    rng, gen = seeded(settings.seed + 1)
    rows = _exemplars_for(reference, exemplars, exemplars_source)
    img = prepare(reference, settings.scale) if prepared is None else prepared
    if min(img.shape) < settings.size + 2:
        raise InputError(reference.path, f"micrograph is smaller than one {settings.window:.0f} px window")
    windows, centres = exemplar_windows(reference, img, rows, settings, exemplars_source, min_exemplars)
    if net is None:
        net = MaskedAutoencoder(**settings.arch())
    elif net.config != settings.arch():
        raise InputError(None, "the pre-trained encoder has another architecture than these settings")
    net = net.to(dev)
    # one pixel of reflect padding for the ±1 px jitter of exemplar and blob windows
    s = settings.size
    padded = np.pad(img, 1, mode="reflect")
    blobs = _blob_centres(img, settings) if settings.blobs > 0 else np.empty((0, 2))
    opt = torch.optim.AdamW(net.parameters(), lr=settings.finetune_lr, weight_decay=0.05, betas=(0.9, 0.95))
    sched = _schedule(opt, settings.finetune_steps, max(1, settings.finetune_steps // 10))
    m = len(windows)
    n_shift = int(round(settings.shifted * settings.unlabeled))
    n_cand = int(round(settings.blobs * settings.unlabeled)) if len(blobs) else 0

    def step(_):
        xl = np.empty((m, s, s), np.float32)
        for i, (cy, cx) in enumerate(centres):
            xl[i] = _jittered(padded, cy, cx, s, rng)
        xu = np.concatenate([_random_windows([img], settings.unlabeled - n_shift - n_cand, s, rng),
                             _shifted_windows(img, centres, n_shift, settings, rng),
                             _blob_windows(padded, blobs, n_cand, s, rng)])
        x = torch.from_numpy(np.concatenate([xl, xu]))[:, None].to(dev)
        mse, feats = net(x, settings.mask_ratio, gen)
        if settings.scs_view == "full":
            feats = net.features(x)
        scs = scs_loss(feats[:m], feats[m:], settings.scs, settings.pi, settings.alpha, settings.tau)
        return {"loss": mse + settings.beta * scs, "mse": mse, "scs": scs}

    config = _stage_config(settings, "finetune", [reference], exemplars=centres.tolist(),
                           pretrained=(pretrained or {}).get("file"))
    history = fit(net, opt, step, steps=settings.finetune_steps, every=25, sched=sched, generators=(rng, gen),
                  checkpoint=checkpoint, resume=resume, config=config, reduce="last", extra={"stage": "finetune"},
                  progress=progress)
    return FewShotModel(net, settings, windows, reference.pixel_size, reference.name, pretrained or {}, history)


def crowded_suppress(settings: FewShotSettings, resampled_shape: tuple[int, int]) -> float:
    """The suppression radius (fraction of the diameter) for micrographs of this resampled shape: the setting,
    narrowed by :func:`fewpick.extract.auto_min_distance` (to half of it at most) when the expected particle
    count says they are crowded; unchanged without a count."""
    if not settings.expected_particles:
        return settings.suppress
    radius = settings.geometry().radius()
    area = float(resampled_shape[0] * resampled_shape[1])
    return settings.suppress * auto_min_distance(settings.expected_particles, area, radius)


def train(reference: Image, exemplars: pd.DataFrame, settings: FewShotSettings, out: str | os.PathLike, *,
          pretrain_images: Sequence[Image] | None = None, pretrained_path: str | os.PathLike | None = None,
          no_pretrain: bool = False, exemplars_source=None,
          progress: Callable[[dict], None] | None = None, min_exemplars: int = 2,
          device: str | torch.device = "auto", resume: bool = False, distill: bool = True) -> FewShotModel:
    """Pre-train (unless given a pre-trained encoder or told not to), fine-tune on ``device``, and (``distill``)
    fit the fast scoring network to the encoder's scores on the reference and the pre-training micrographs;
    write the model to ``out``.

    Without ``pretrain_images`` the encoder is pre-trained on the reference micrograph alone. Checkpoints go
    to ``out + '.pretrain.ckpt'`` and ``out + '.ckpt'``; ``resume`` continues an interrupted run from them.
    """
    settings.check()
    dev = resolve_device(device)
    ref_img = prepare(reference, settings.scale)
    # the exemplars are checked before pre-training, which takes minutes
    exemplar_windows(reference, ref_img, _exemplars_for(reference, exemplars, exemplars_source), settings,
                     exemplars_source, min_exemplars)
    settings = replace(settings, suppress=crowded_suppress(settings, ref_img.shape))
    checkpoints = (Path(str(out) + ".pretrain.ckpt"), Path(str(out) + ".ckpt"))
    if resume and not any(c.is_file() for c in checkpoints):
        raise InputError(checkpoints[1], "no checkpoint to resume from")
    resume = "auto" if resume else False  # a stage not reached before the interruption starts afresh
    net, info = None, {}
    if pretrained_path is not None:
        net, pre_settings, info = load_pretrained(pretrained_path, dev)
        if pre_settings.arch() != settings.arch():
            raise InputError(pretrained_path, "pre-trained encoder has another architecture "
                                              f"({pre_settings.arch()}) than asked ({settings.arch()})")
        info = {**info, "file": str(pretrained_path)}
    elif not no_pretrain:
        images = list(pretrain_images or [reference])
        prepared = [ref_img if im is reference else prepare(im, settings.scale) for im in images]
        net, info = pretrain(images, settings, prepared=prepared, progress=progress, device=dev,
                             checkpoint=checkpoints[0], resume=resume)
    model = finetune(reference, exemplars, settings, net=net, pretrained=info, exemplars_source=exemplars_source,
                     prepared=ref_img, progress=progress, min_exemplars=min_exemplars, device=dev,
                     checkpoint=checkpoints[1], resume=resume)
    if distill and settings.distill_steps > 0:
        from fewpick.pickers import fewshot_fast as ff

        others = [im for im in (pretrain_images or []) if im is not reference and im.name != reference.name]
        model.fast_net, model.fast_info = ff.distill(model, [reference, *others], progress=progress, device=dev)
    model.threshold = calibrate_threshold(model, reference)
    save_model(model, out)
    return model


def calibrate_threshold(model: FewShotModel, reference: Image) -> float | None:
    """The default cut: the score of the reference micrograph's k-th best pick, k the expected particle count
    (None without one: each micrograph is then cut where its scores are sparsest)."""
    k = model.settings.expected_particles
    if not k:
        return None
    _, values = model.peaks(model.score_map(reference), -np.inf)
    return threshold_at_count([values], [k], empty=0.0)


# ---------------------------------------------------------------- picking


def check_pixel_size(model: FewShotModel, image: Image) -> None:
    ref, px = model.pixel_size, image.pixel_size
    if ref and px and abs(ref - px) > 0.01 * ref:
        raise InputError(image.path, f"pixel size {px:g} Å differs from the reference micrograph's {ref:g} Å "
                                     f"({model.reference}); resample it or train on a reference at {px:g} Å")


def score_map(model: FewShotModel, image: Image | np.ndarray, match: str | None = None,
              stride: int | None = None, gated: bool = False) -> tuple[np.ndarray, np.ndarray, int, np.ndarray | None]:
    """Similarity of every window to the exemplars (``gated``: of the windows the fast network ranks in the top
    :data:`~fewpick.pickers.fewshot_fast.ENCODER_SHARE`; the others get the lowest of those).

    Returns the score map (rows, cols) on the window grid, the original-per-resampled scale (y, x), the
    stride, and (with centring on, else None) the correlation with the exemplars' rotational average at every
    pixel of the resampled micrograph; grid cell (i, j) is the window whose top-left corner is at
    (i·stride, j·stride) resampled px.
    """
    s = model.settings
    torch.set_num_threads(s.threads)
    match = match or s.match
    stride = stride or s.step()
    img, scale = _resampled(model, image)
    mask = None
    if gated:
        from fewpick.pickers import fewshot_fast as ff

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
    :mod:`fewpick.pickers.fewshot_fast`) and, with centring on, the correlation with the exemplars' rotational
    average on the same grid."""
    from fewpick.pickers import fewshot_fast as ff

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
    :func:`fewpick.pickers.fewshot_fast.chosen_scoring`)."""
    s = model.settings
    img, scale = _resampled(model, image)
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


def rescaled_template(template: np.ndarray, zoom: float) -> np.ndarray:
    """A rotationally symmetric ``template`` (odd grid) drawn on a grid ``zoom`` times finer (< 1: coarser)."""
    n = template.shape[-1]
    c = (n - 1) / 2
    radii = np.arange(0.0, n / 2 * np.sqrt(2) + 1)
    profile = _ring_profile(template, (c, c), radii)
    return _draw_profile(profile, radii * zoom, int(np.ceil(n * zoom)) | 1)


def _ring_profile(window: np.ndarray, centre: tuple[float, float], radii: np.ndarray) -> np.ndarray:
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


def _draw_profile(profile: np.ndarray, radii: np.ndarray, size: int) -> np.ndarray:
    h = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    return np.interp(np.hypot(yy - h, xx - h), radii, profile).astype(np.float32)


def exemplar_template(exemplars: np.ndarray, settings: FewShotSettings) -> tuple[np.ndarray, float]:
    """The exemplars' mean rotational average (:func:`rotational_template`) on an odd grid (a window's side,
    rounded up to odd) and the radius (resampled px) within which it is matched: the window's inscribed circle,
    0.6 diameters."""
    mask_radius = settings.geometry().radius(settings.window_ratio)
    return rotational_template(exemplars, mask_radius), mask_radius


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
    first = _draw_profile(np.mean([_ring_profile(w, (c, c), radii) for w in ex], axis=0), radii, size)
    yy, xx = np.mgrid[:n, :n]
    near = np.hypot(yy - c, xx - c) <= 2.5
    profiles = []
    for w in ex:
        cc = np.where(near, template_score_map(w, first[None], mask_radius), -np.inf)
        best = np.array([np.unravel_index(int(np.argmax(cc)), cc.shape)], float)
        cy, cx = refine_peaks(np.maximum(cc, cc[near].min()), best)[0]  # outside the 2.5 px: the lowest value inside
        profiles.append(_ring_profile(w, (cy, cx), radii))
    return _draw_profile(np.mean(profiles, axis=0), radii, size)


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


def refine_peaks(scores: np.ndarray, ij: np.ndarray) -> np.ndarray:
    """Sub-cell peak positions: a parabola through each peak and its two neighbours, per axis (shift ≤ ½ cell)."""
    ij = np.asarray(ij, float)
    if not len(ij):
        return ij
    out = ij.copy()
    idx = ij.astype(int)
    for axis in (0, 1):
        n = scores.shape[axis]
        lo, hi = idx.copy(), idx.copy()
        lo[:, axis] = np.clip(idx[:, axis] - 1, 0, n - 1)
        hi[:, axis] = np.clip(idx[:, axis] + 1, 0, n - 1)
        c = scores[idx[:, 0], idx[:, 1]].astype(float)
        a, b = scores[lo[:, 0], lo[:, 1]].astype(float), scores[hi[:, 0], hi[:, 1]].astype(float)
        curv = a - 2 * c + b
        inside = (idx[:, axis] > 0) & (idx[:, axis] < n - 1) & (curv < 0)
        shift = np.where(inside, 0.5 * (a - b) / np.where(curv < 0, curv, -1.0), 0.0)
        out[:, axis] += np.clip(shift, -0.5, 0.5)
    return out


def grid_to_original(ij: np.ndarray, stride: int, size: int, scale: np.ndarray) -> np.ndarray:
    """Window-grid (i, j) → window centres in original (y, x) px."""
    return (np.asarray(ij, float) * stride + (size - 1) / 2) * np.asarray(scale, float)


def pick_micrograph(model: FewShotModel, image: Image, threshold: float | str | None = None, *, match: str | None = None,
                    stride: int | None = None, max_picks: int | None = None,
                    keep_map: dict | None = None) -> pd.DataFrame:
    """Picks of one micrograph in original pixels; scores are cosine similarities (−1…1).

    ``threshold``: None, the model's calibrated cut (or ``auto`` if it has none); ``auto``, the density-based
    cut (k = 5) on this micrograph's peak scores; or a score.
    """
    smap = model.score_map(image, match, stride)
    if keep_map is not None:
        keep_map.update(scores=smap.scores, to_original=smap.to_original, shape=image.shape, **smap.extra)
    coords, values = model.peaks(smap, threshold, max_picks)
    return picks_table(image.name, smap.to_original(coords), values)


def pick_images(model: FewShotModel, images: Sequence[Image], threshold: float | str | None = None, **kw) -> pd.DataFrame:
    tables = [pick_micrograph(model, im, threshold, **kw) for im in images]
    return pd.concat(tables, ignore_index=True) if tables else make_picks("", [], [])


def write_score_map(kept: dict, folder: Path, name: str) -> list[Path]:
    """Write a similarity map from :func:`pick_micrograph` (``keep_map``) as ``<name>_scores.png`` — drawn over
    the micrograph's own extent and aspect, about 1,200 px wide, with a colour bar — and as ``<name>_scores.mrc``
    (the window grid's values)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fewpick.io.images import write_mrc

    folder.mkdir(parents=True, exist_ok=True)
    png, mrc = folder / f"{name}_scores.png", folder / f"{name}_scores.mrc"
    scores = kept["scores"]
    gh, gw = scores.shape
    if "to_original" in kept:
        h, w = kept["shape"]
        (y0, x0), (y1, x1) = kept["to_original"](np.array([[0, 0], [max(gh - 1, 1), max(gw - 1, 1)]]))
    else:  # a map kept without its geometry: one cell per grid point
        h, w, y0, x0, y1, x1 = gh, gw, 0.0, 0.0, max(gh - 1, 1), max(gw - 1, 1)
    dy, dx = (y1 - y0) / max(gh - 1, 1), (x1 - x0) / max(gw - 1, 1)
    fig, ax = plt.subplots(figsize=(8, max(2.0, 8 * h / w * 0.9)), dpi=150, layout="constrained")
    im = ax.imshow(scores, cmap="viridis", vmin=-1, vmax=1, interpolation="nearest", aspect="equal",
                   extent=(x0 - dx / 2, x0 + dx * (gw - 0.5), y0 + dy * (gh - 0.5), y0 - dy / 2))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    ax.set_title(f"{name}: {kept.get('label', 'similarity to the exemplars')}", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label=f"{kept.get('label', 'cosine similarity')} (picks are its peaks)")
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)
    write_mrc(mrc, scores.astype(np.float32), None)
    return [png, mrc]


def model_summary(model: FewShotModel) -> str:
    s = model.settings
    pre = model.pretrained
    pre_text = (f"pre-trained on {len(pre.get('micrographs', []))} micrograph(s)" if pre else "not pre-trained")
    return (f"few-shot picker: {len(model.exemplars)} exemplars on {model.reference}, particle {s.diameter:g} px, "
            f"window {s.window:.0f} px → {s.size} px, ViT {s.dim}×{s.depth}, SCS {s.scs}, {pre_text}, "
            f"picks at least {s.suppress:.3g} diameters apart, {fast_summary(model)}, "
            + (f"default cut {model.threshold:.3f} (calibrated on the reference)" if model.threshold is not None
               else "each micrograph cut where its scores are sparsest"))


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
        from fewpick.pickers.fewshot_fast import ENCODER_SHARE

        return (f"the encoder scores the {ENCODER_SHARE:.0%} of the windows its fast network ranks highest (the "
                f"network follows it only roughly: agreement {info.get('agreement', float('nan')):.2f})")
    return (f"the encoder scores every window (the fast network agrees with it too little: "
            f"{info.get('agreement', float('nan')):.2f})")
