"""The few-shot picker's settings and the names of its file formats."""

from __future__ import annotations

from dataclasses import dataclass

from fewpick.errors import InputError
from fewpick.geometry import Geometry

MODEL_FORMAT = "fewpick-fewshot-model"


PRETRAINED_FORMAT = "fewpick-fewshot-pretrained"


MODEL_FORMAT_VERSION = 2  # 2: the fast network's scoring always stored (files.from_version_1)


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
    scs_view: str = "full"  # SCS on the encoder features of the whole windows, as matched at picking, or "masked" views (as cryoMAE)
    stride: int | None = None  # sliding stride in resampled px (default size // 6: the picks are centred afterwards)
    match: str = "max"
    suppress: float = 0.75  # NMS radius as a fraction of the particle diameter (on sparse micrographs)
    centre: float = 0.5  # each peak moves to the best match of the exemplars' rotational average within this many diameters (0: off)
    expected_particles: float | None = None  # per micrograph, if the user knows: narrows the NMS when crowded
    seed: int = 0
    distill_steps: int = 600  # the fast scoring network (fewshot.fast): steps fitting it to the encoder's scores (0: none)
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
