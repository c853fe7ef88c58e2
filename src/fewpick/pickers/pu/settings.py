"""The PU picker's settings and its file format's name."""

from __future__ import annotations

from dataclasses import dataclass

from fewpick.geometry import WORKING_DIAMETER, Geometry
from fewpick.ops.peaks import auto_min_distance, ball

MODEL_FORMAT = "fewpick-pu-model"


MODEL_FORMAT_VERSION = 2  # 2: every setting stored explicitly (files.from_version_1)


AGREEMENT = 0.9  # the share of the network's best training peaks the correlation must also rank best


CENTRE = 0.25  # picks move to the best correlation within this many diameters


# a user who expects fewer than this share of the particles the general model finds wants only some of them (one
# complex among others of its size): its score, which favours every particle, is then left out
SUBSET = 0.5


def only_some_wanted(expected: float, counted: float) -> bool:
    """Whether a user expecting ``expected`` particles per micrograph, where the general model counts ``counted``,
    wants only some of them (under :data:`SUBSET` of its count): one complex among others of its size, or the
    particles apart from clumps and other matter it also picks."""
    return expected < SUBSET * counted


EDGE_EXPECTED = 3.0  # labels an empty edge band must have been expected to hold (chance of none: e^-3 ≈ 5 %)


LEARNING_RATE = 1e-3  # from random weights


# from a starting model's weights (the general model): ten times lower keeps what it knows (measured on the real sets:
# docs/benchmarks.md, "The general particle model")
FINE_TUNING_RATE = 1e-4


@dataclass
class PUSettings:
    """Everything that defines a PU picker; stored in the model file.

    Lengths are original pixels unless named ``binned``.
    """

    diameter: float
    method: str = "ge-binomial"
    pi: float | None = None
    expected_particles: float | None = None
    label_radius_binned: float | None = None  # default: 15 % of the binned diameter, at least 1.5 px
    bin_factor: int | None = None
    ge_weight: float = 1.0  # λ of GE-KL / GE-binomial
    slack: float = 0.0  # β of nnPU
    autoencoder: float = 0.0  # a: weight of the reconstruction error (0 = classifier only)
    width: int = 16  # channels of the network
    dilations: tuple[int, ...] = (1, 2, 3)  # one residual block per entry (see PickerCNN)
    binned_diameter: float = WORKING_DIAMETER  # the particle's largest diameter after binning (see finest_binning)
    steps: int = 1500
    steps_per_epoch: int = 100
    batch: int = 8
    tile: int = 64
    lr: float | None = None  # Adam's; None: LEARNING_RATE from random weights, FINE_TUNING_RATE from a starting model
    weight_decay: float = 1e-5
    unlabeled_per_tile: int = 256  # unlabeled pixels drawn from each tile for the loss
    # peaks are the local maxima within this fraction of the particle radius; None: from how crowded the micrographs
    # are (crowded_min_distance: on crowded micrographs down to the label radius, the spot the network learns to
    # mark on a centre, so that a weak particle on the slope of a strong one stays a peak; the spacing below still
    # keeps picks apart), set at training from the expected count, and on each micrograph for the general model
    min_distance: float | None = None
    # of the peaks, the best are kept and suppress every other within this fraction of the radius: never two
    # picks on one particle, while touching particles (a diameter apart) both stay
    spacing: float = 1.0
    # after training, test the labelled particles' rotational average; centre and rescore picks on it where
    # it agrees with the network (see the module)
    correlation: bool = True
    # after training, add the general particle model's score to the network's, unless the expected count says the
    # user wants only some of the particles it finds (fewpick.pickers.pu.general.fit_general)
    general_score: bool = True
    # where the network's training started: "general" (the general particle model's weights), "none" (random
    # weights) or "model" (another model file's); set by training (fewpick.pickers.pu.train.train's ``init``)
    start: str = "none"
    # picks closer than this many particle diameters to the micrograph edge are dropped; None: from the labels at
    # training (see the module)
    edge_margin: float | None = None
    seed: int = 0
    threads: int = 2

    def geometry(self) -> Geometry:
        """Fourier binning by ``bin_factor``, else the finest that brings the particle to at most ``binned_diameter``
        binned px and at least 3/4 of that where an integer factor allows (:meth:`Geometry.finest`)."""
        return Geometry.finest(self.diameter, self.binned_diameter, self.bin_factor)

    def factor(self) -> int:
        return self.geometry().factor

    def label_radius(self) -> float:
        return self.label_radius_binned or self.geometry().radius(0.3, minimum=1.5)

    def particles_in(self, pi: float, binned_area: float) -> float:
        """Particles expected on a micrograph of this binned area: ``--expected-particles``, else from π
        (each particle's label disk covers the fraction π of the unlabeled pixels)."""
        if self.expected_particles:
            return float(self.expected_particles)
        return pi * binned_area / float(ball(self.label_radius(), 2).sum())

    def edge_band(self) -> float:
        """Width (binned px) of the band along the edges where picks are dropped."""
        return (self.edge_margin or 0.0) * self.geometry().working_diameter

    def crowded_min_distance(self, particles: float, binned_area: float) -> float:
        """The ``min_distance`` for micrographs of this binned area holding ``particles`` each
        (:func:`~fewpick.ops.peaks.auto_min_distance`): a whole radius on sparse micrographs, down to the label
        radius on crowded ones."""
        radius = self.geometry().radius()
        return auto_min_distance(particles, binned_area, radius, floor=self.label_radius() / radius)

    def suppression_radius(self) -> float:
        """Radius of the local maxima that make the peaks, binned px (at least 1)."""
        return self.geometry().radius(1.0 if self.min_distance is None else self.min_distance, minimum=1.0)
