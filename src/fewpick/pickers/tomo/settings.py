"""What a user sets for tomogram localization, and the model file's format name and version."""

from __future__ import annotations

from dataclasses import dataclass, replace

from fewpick.errors import InputError
from fewpick.geometry import Geometry

MODEL_FORMAT = "fewpick-tomo-model"


MODEL_FORMAT_VERSION = 1


LOSSES = ("pu-focal", "bce")


CONTRASTS = ("debiased", "biased", "none")


#: labels below which the particle-count estimate cannot run (:func:`~fewpick.pickers.tomo.prior.estimate_particles`
#: needs 12 to hold half of them out) and training self-trains by default
SELF_TRAINING_BELOW = 12


EPOCHS = 6  # the default training length


FEW_LABEL_SELF_TRAINING = 2  # below SELF_TRAINING_BELOW labels, the last 2 epochs self-train by default


@dataclass
class TomoSettings:
    """Training settings. Lengths in voxels of the tomogram as given unless stated."""

    diameter: float
    filament: bool = False
    target_diameter: float = 12.0  # the particle's width after binning, voxels
    # block binning of the tomogram; None: the factor that brings the particle nearest target_diameter by ratio
    # (:func:`~fewpick.geometry.nearest_binning`). Training stores the factor it used in the model.
    bin_factor: int | None = None
    box: int = 64  # training subtomogram side (binned voxels)
    depth: int = 5  # training subtomogram depth (binned sections)
    width: int = 16
    blocks: int = 4
    batch: int = 8
    epochs: int = EPOCHS
    steps_per_epoch: int = 30
    lr: float = 1e-3
    loss: str = "pu-focal"
    gamma: float = 2.0
    contrast: str = "debiased"
    # contrast weights against the heat-map loss per positive voxel: the paper's 0.1, 0.5, 0.1 (1:5:1) ×16, the
    # scale chosen on a validation split of the benchmark's training tomograms (×1, ×4, ×16, ×64 tried)
    lambdas: tuple[float, float, float] = (1.6, 8.0, 1.6)
    expected_particles: float | None = None  # per tomogram; default: twice the labels, or fewer (prior_epochs)
    # epochs of a quick labeled-against-unlabeled classifier trained on half the labels, whose scores of the other
    # half cap the assumed count where labels already cover most particles (:func:`estimate_particles`); 0: off
    prior_epochs: int = 3
    # the last epochs train on the labels and the model's confident picks on the training tomograms, picked again at
    # the start of each (:mod:`~fewpick.pickers.tomo.selftrain`); 0: off. Default: :meth:`for_labels`. Not for
    # filaments.
    self_training: int | None = None
    label_link: float = 3.0  # filaments: labels closer than this many diameters are on one filament and joined
    seed: int = 0
    threads: int = 2

    def for_labels(self, labels: int) -> TomoSettings:
        """These settings with self-training filled in for ``labels`` labels, where not set: the last 2 epochs
        with fewer than :data:`SELF_TRAINING_BELOW` particle labels (the prior cannot be estimated from so few,
        and self-training finds the particles it would count), else none."""
        few = labels < SELF_TRAINING_BELOW and not self.filament
        return replace(self, self_training=(self.self_training if self.self_training is not None
                                            else FEW_LABEL_SELF_TRAINING if few else 0))

    def self_training_steps(self) -> int:
        """Steps trained with the confident picks as labels: the last ``self_training`` epochs (none for
        filaments, and none when that leaves no epoch before them)."""
        n = self.self_training or 0
        if self.filament or n <= 0 or n >= self.epochs:
            return 0
        return n * self.steps_per_epoch

    @property
    def bin(self) -> int:
        return int(self.geometry().factor)

    def geometry(self) -> Geometry:
        """Block binning by ``bin_factor``, by default the one that brings the particle nearest
        ``target_diameter`` voxels."""
        return Geometry.nearest(self.diameter, self.target_diameter, self.bin_factor, block=True)

    def check(self) -> None:
        if not self.diameter > 0:
            raise InputError(None, f"the particle diameter must be positive, got {self.diameter:g}")
        if self.loss not in LOSSES:
            raise InputError(None, f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.contrast not in CONTRASTS:
            raise InputError(None, f"unknown contrast {self.contrast!r}; choose one of {', '.join(CONTRASTS)}")
        if self.bin_factor is not None and not (isinstance(self.bin_factor, int) and self.bin_factor >= 1):
            raise InputError(None, f"the binning factor must be a whole number of at least 1, got {self.bin_factor}")
        if self.box % 2 ** (self.blocks - 1):
            raise InputError(None, f"the box ({self.box}) must be a multiple of {2 ** (self.blocks - 1)} for "
                                   f"{self.blocks} encoder blocks")
