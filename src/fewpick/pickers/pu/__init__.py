"""Positive-unlabeled CNN picker (Topaz-class).

Training reads micrographs and a few labeled particle centres. Each micrograph is
Fourier-binned (:meth:`fewpick.geometry.Geometry.finest`) and robustly normalised; pixels within
``label_radius`` (binned px) of a labeled centre are positives, all others unlabeled.
A small dilated residual CNN (receptive field ≈ the particle) is trained on random
tiles — half of them around labeled particles — with 90° rotations and flips (Adam, cosine
learning-rate decay), on a PU
objective (:mod:`fewpick.losses.pu`) over the tiles' interior pixels, optionally plus
the autoencoder term ``a·‖x − x'‖²``. Picking applies the CNN to whole binned
micrographs and extracts peaks by non-maximum suppression with the particle radius.
Scores are logits (log-odds); higher is more particle-like; 0 means probability ½.

Round particles: after training, the labelled particles' rotational average is matched (local normalised
correlation) on the training micrographs. Where the network's best peaks there are nearly the same as the
correlation's (at least ``AGREEMENT`` of the expected count in common: the rotational average describes the
particle, as for apoferritin), each pick moves to the best correlation within a quarter diameter and scores
its logit plus the correlation, weighted so that both spread alike over the best training peaks. Elsewhere
(particles that are not round, other complexes of their size around) the correlation is left out.

Micrograph edges: where the labels leave a band along the edges empty although particles spread evenly would
put at least ``EDGE_EXPECTED`` labels there (the user does not pick particles cut by the edge), picks lying more
than a particle radius closer to the edge than the closest label are dropped (at most a radius from the edge).
With a few labels the band says nothing and every pick is kept; ``edge_margin`` sets the band instead.

The class prior π is the fraction of unlabeled pixels that are positive: the expected
number of particles per micrograph × the area of a label **disk** (2D: π r², not a
ball) ÷ the binned micrograph's area.

The package's modules: :mod:`~fewpick.pickers.pu.settings` (what a user can set),
:mod:`~fewpick.pickers.pu.data` (labels, binned micrographs and the class prior),
:mod:`~fewpick.pickers.pu.correlation` (the labels' rotational average and the test of whether picks use it),
:mod:`~fewpick.pickers.pu.model` (the trained model and how it picks), :mod:`~fewpick.pickers.pu.train`,
:mod:`~fewpick.pickers.pu.files` and :mod:`~fewpick.pickers.pu.general` (the general particle model shipped with
fewpick: picks with no label, and training can start from it).
"""

from __future__ import annotations

from fewpick.pickers.pu.correlation import (
    centred_on_correlation,
    correlation_map,
    correlation_radius,
    fit_correlation,
    label_template,
    rescored_peaks,
)
from fewpick.pickers.pu.data import (
    TrainingItem,
    class_prior,
    label_edge_margin,
    labels_by_micrograph,
    prepare,
    training_items,
)
from fewpick.pickers.pu.files import build_network, load_model, save_model
from fewpick.pickers.pu.general import GENERAL_MODEL, general_model, general_summary
from fewpick.pickers.pu.model import (
    PUModel,
    all_peaks,
    binned_for_network,
    model_summary,
    pick_images,
    pick_micrograph,
    score_map,
)
from fewpick.pickers.pu.settings import AGREEMENT, CENTRE, EDGE_EXPECTED, MODEL_FORMAT, MODEL_FORMAT_VERSION, PUSettings
from fewpick.pickers.pu.train import calibrate_threshold, finish_training, refit, train

__all__ = ["AGREEMENT", "CENTRE", "EDGE_EXPECTED", "GENERAL_MODEL", "MODEL_FORMAT", "MODEL_FORMAT_VERSION", "PUModel", "PUSettings", "TrainingItem", "all_peaks", "binned_for_network", "build_network", "calibrate_threshold", "centred_on_correlation", "class_prior", "correlation_map", "correlation_radius", "finish_training", "fit_correlation", "general_model", "general_summary", "label_edge_margin", "label_template", "labels_by_micrograph", "load_model", "model_summary", "pick_images", "pick_micrograph", "prepare", "refit", "rescored_peaks", "save_model", "score_map", "train", "training_items"]
