"""Few-shot picker with a masked autoencoder (cryoMAE-class).

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
   they are matched at picking (``scs_view="masked"``: of the masked views, as in cryoMAE).
3. **Picking**: the encoder slides over each micrograph (stride ``size/6``) with no masking; a
   window's score is its max (or mean) cosine similarity to the exemplars' features; non-maximum
   suppression within 0.75 × the diameter gives one pick per particle (narrowed down to half of that
   when an expected particle count says the micrographs are crowded). The similarity finds particles but
   is nearly flat across each one, so every peak then moves to the best correlation, within half a
   diameter, with the exemplars' rotational average (centred exemplars, orientation-free), and scores the
   mean of the two. The default cut is calibrated at training: the score of the k-th best pick of the
   pre-training micrographs, which fine-tuning did not learn from (of the reference where there are none, or
   where k counts the exemplars' kind on it), k the expected particle count; with ``auto``, each micrograph is
   cut at the deepest valley of the density of its sorted peak scores (k = 5 nearest neighbours;
   :func:`fewpick.ops.thresholds.threshold_knn_density`).
4. **Faster scoring**, chosen at training (:mod:`fewpick.pickers.fewshot.fast`): a small network distilled from
   the encoder replaces it where it follows the encoder's scores; where nothing can (its agreement stays near 0:
   the encoder's score is noise at the particle's scale, as on noisy, crowded micrographs), each window scores
   its correlation with the exemplars' rotational average alone (:func:`correlation_score_map`), and the encoder
   is not run; in between, the encoder scores only the half of the windows the network ranks higher.

Coordinates in and out are original pixels.

The package's modules, one stage each: :mod:`~fewpick.pickers.fewshot.settings` (what a user can set),
:mod:`~fewpick.pickers.fewshot.windows` (resampling and the windows the encoder sees),
:mod:`~fewpick.pickers.fewshot.model` (the trained model and how it scores a micrograph),
:mod:`~fewpick.pickers.fewshot.fast` (the fast scoring network), :mod:`~fewpick.pickers.fewshot.train`
(pre-training, fine-tuning, calibration), :mod:`~fewpick.pickers.fewshot.distill` (fitting the fast network to
the encoder) and :mod:`~fewpick.pickers.fewshot.files` (model files).
"""

from __future__ import annotations

from fewpick.pickers.fewshot.files import (
    load_model,
    load_pretrained,
    save_model,
    save_pretrained,
    write_score_map,
)
from fewpick.pickers.fewshot.model import (
    FewShotModel,
    calibrate_threshold,
    centre_peaks,
    check_pixel_size,
    correlation_score_map,
    encoder_scores,
    exemplar_template,
    fast_score_map,
    fast_summary,
    grid_to_original,
    model_summary,
    pick_images,
    pick_micrograph,
    score_map,
)
from fewpick.pickers.fewshot.settings import (
    ARCH_FIELDS,
    MATCH_MODES,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    PRETRAINED_FORMAT,
    SCS_MODES,
    FewShotSettings,
)
from fewpick.pickers.fewshot.train import crowded_suppress, finetune, pretrain, refit, train
from fewpick.pickers.fewshot.windows import (
    blob_centres,
    blob_windows,
    dihedral,
    exemplar_windows,
    exemplars_on,
    jittered,
    prepare,
    random_windows,
    resampled,
    shifted_windows,
    window_at,
    window_grid,
)

__all__ = ["ARCH_FIELDS", "FewShotModel", "FewShotSettings", "MATCH_MODES", "MODEL_FORMAT", "MODEL_FORMAT_VERSION", "PRETRAINED_FORMAT", "SCS_MODES", "blob_centres", "blob_windows", "calibrate_threshold", "centre_peaks", "check_pixel_size", "correlation_score_map", "crowded_suppress", "dihedral", "encoder_scores", "exemplar_template", "exemplar_windows", "exemplars_on", "fast_score_map", "fast_summary", "finetune", "grid_to_original", "jittered", "load_model", "load_pretrained", "model_summary", "pick_images", "pick_micrograph", "prepare", "pretrain", "random_windows", "refit", "resampled", "save_model", "save_pretrained", "score_map", "shifted_windows", "train", "window_at", "window_grid", "write_score_map"]
