"""Few-shot particle localization in tomograms (MiLoPYP's localization module).

From a few labeled centres, a :class:`~fewpick.nn.unet.SliceUNet3D` learns a per-voxel centre heat map:

- the tomogram is block-binned by the whole factor that brings the particle nearest ``target_diameter``
  voxels by ratio (the model keeps it), denoised with a Gaussian, and standardised;
- training draws small subtomograms (``box × box × depth``, 64 × 64 × 5 by default; half of them around
  a label), so its cost does not grow with the tomogram;
- targets are Gaussians splatted on the labels (the centre voxel is the true positive, the voxels around
  it soft positives, the rest unlabeled), scored by the PU focal loss (or BCE for the ablation);
- each subtomogram and an augmented copy (90° rotation / flip in xy, intensity jitter, noise) form the
  Siamese pair; the copy's outputs are mapped back so both views align voxel by voxel, and the debiased
  voxel contrast (λ1, λ2, λ3) ties their projections;
- Adam, lr 1e-3, ×0.1 every 5 epochs;
- self-training: for the last epochs the model's confident picks on its training tomograms (above each one's
  automatic cut) join the labels, picked again at the start of each of those epochs.

Picking runs the network over the whole tomogram in overlapping tiles (bounded memory), then 3D
max-pool NMS on the heat map with a kernel of the particle's size and a threshold. Coordinates are in
voxels of the tomogram as given.

The package's modules: :mod:`~fewpick.pickers.tomo.settings` (what a user can set),
:mod:`~fewpick.pickers.tomo.data` (tomograms, targets and training batches), :mod:`~fewpick.pickers.tomo.prior`
(the class prior), :mod:`~fewpick.pickers.tomo.selftrain` (the confident picks that join the labels),
:mod:`~fewpick.pickers.tomo.model` (the trained model and how it picks),
:mod:`~fewpick.pickers.tomo.train` and :mod:`~fewpick.pickers.tomo.files`.
"""

from __future__ import annotations

from fewpick.pickers.tomo.data import (
    TrainingItem,
    augment,
    check_isotropic,
    prepare,
    sample_batch,
    targets,
    training_items,
)
from fewpick.pickers.tomo.files import (
    load_model,
    model_summary,
    save_model,
)
from fewpick.pickers.tomo.model import (
    TomoModel,
    heat_map,
    pick_tomogram,
    prepared_heat_map,
)
from fewpick.pickers.tomo.prior import (
    assumed_particles,
    class_prior,
    estimate_particles,
    prior_estimate,
)
from fewpick.pickers.tomo.settings import (
    CONTRASTS,
    LOSSES,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    TomoSettings,
)
from fewpick.pickers.tomo.train import (
    calibrate_threshold,
    train,
)

__all__ = ["CONTRASTS", "LOSSES", "MODEL_FORMAT", "MODEL_FORMAT_VERSION", "TomoModel", "TomoSettings", "TrainingItem", "assumed_particles", "augment", "calibrate_threshold", "check_isotropic", "class_prior", "estimate_particles", "heat_map", "load_model", "model_summary", "pick_tomogram", "prepare", "prepared_heat_map", "prior_estimate", "sample_batch", "save_model", "targets", "train", "training_items"]
