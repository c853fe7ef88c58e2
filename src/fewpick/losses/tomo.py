"""Losses of the few-shot tomogram localization (as in MiLoPYP).

**PU focal loss.** Voxels with a target ``t > 0`` (the labeled centres, ``t = 1``, and the soft positives
around them, ``0 < t < 1``) are positive with weight ``t``; all others are unlabeled. With the focal
losses ``ℓ⁺ = −(1 − p)^γ log p`` and ``ℓ⁻ = −p^γ log(1 − p)``, the positive fraction π of all voxels and
the positive fraction π_U of the unlabeled ones (the particles nobody labeled), the non-negative PU risk
(Kiryo et al. 2017) is ``π E_P[ℓ⁺] + max(0, E_U[ℓ⁻] − π_U E_P[ℓ⁻])``; when the bracket goes negative, its
negative is minimised instead (the nnPU correction step). The unlabeled voxels here exclude the labeled
ones, so the correction takes π_U, not π: with π there, the labeled particles were counted again as hidden
ones in the unlabeled voxels, and lookalike species were pushed up to fill them.

The risk is divided by π: the size of a loss per positive voxel, as CenterNet's focal loss is divided by
the number of objects. Undivided, it is of the order of π (≈ 1e-3) and the contrastive terms, of order 1,
outweighed it a thousandfold, so the heat map was shaped by the regulariser alone (docs/decisions.md).

**Debiased voxel contrast.** On unit-norm projections of two aligned views ``F, F'``:

- ``λ1`` annotated term: each annotated voxel's positives are the other annotated voxels of both views
  (supervised contrast), its negatives the pseudo-negative voxels;
- ``λ2`` unlabeled term: an unlabeled voxel's only known positive is its own copy in the other view; its
  negatives are the other unlabeled voxels, some of which are unlabeled positives, so the negative term is
  debiased with the prior τ⁺ = π (Chuang et al. 2020):
  ``N_g = max((Σ_neg e^{s/τ} − N τ⁺ e^{s⁺/τ}) / (1 − τ⁺), N e^{−1/τ})``;
- ``λ3`` pseudo-label term: unlabeled voxels the heat map calls positive (p > 0.9) are pulled to the
  annotated voxels and pushed from the pseudo-negatives (p < 0.3); neutral voxels take no part.

``biased=True`` drops the debiasing (plain InfoNCE), for the ablation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def pu_focal_loss(logits: torch.Tensor, target: torch.Tensor, pi: float, gamma: float = 2.0,
                  nonnegative: bool = True, pi_unlabeled: float | None = None) -> torch.Tensor:
    """Non-negative PU risk with focal weighting, divided by ``pi``; ``target`` in [0, 1] (> 0: positive with
    that weight). ``pi_unlabeled`` (default ``pi``): the positive fraction of the unlabeled voxels."""
    pu = pi if pi_unlabeled is None else pi_unlabeled
    z = logits.reshape(-1).float()
    t = target.reshape(-1).float()
    p = torch.sigmoid(z)
    l_pos = -((1 - p) ** gamma) * F.logsigmoid(z)
    l_neg = -(p ** gamma) * F.logsigmoid(-z)
    pos = t > 0
    unl = ~pos
    w = t[pos]
    if w.numel() == 0:
        return l_neg[unl].mean() / pi
    ws = w.sum()
    r_pos = (w * l_pos[pos]).sum() / ws
    r_pos_neg = (w * l_neg[pos]).sum() / ws
    neg = l_neg[unl].mean() - pu * r_pos_neg
    if nonnegative and neg.item() < 0:
        return -neg / pi  # the nnPU step: push the estimated negative risk back up
    return r_pos + neg / pi


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Plain binary cross-entropy with the soft targets (unlabeled = negative): the ablation's baseline. Summed
    over voxels and divided by the positive target mass, the same scale as :func:`pu_focal_loss`."""
    t = target.float()
    return F.binary_cross_entropy_with_logits(logits.float(), t, reduction="sum") / t.sum().clamp(min=1.0)


def _info_nce(anchor: torch.Tensor, pos: torch.Tensor, negs: torch.Tensor, tau: float, tau_plus: float,
              biased: bool) -> torch.Tensor:
    """Mean over anchors of −log(e⁺ / (e⁺ + N_g)); ``pos`` (A, d) one positive per anchor, ``negs`` (N, d)."""
    e_pos = torch.exp((anchor * pos).sum(1) / tau)
    e_neg = torch.exp(anchor @ negs.T / tau)
    n = negs.shape[0]
    if biased or tau_plus <= 0:
        ng = e_neg.sum(1)
    else:
        ng = (e_neg.sum(1) - n * tau_plus * e_pos) / (1 - tau_plus)
        ng = torch.clamp(ng, min=n * math.exp(-1 / tau))
    return -torch.log(e_pos / (e_pos + ng)).mean()


def _sup_con(anchors: torch.Tensor, positives: torch.Tensor, negs: torch.Tensor, tau: float) -> torch.Tensor:
    """Every anchor against every positive (mean log-likelihood), negatives shared."""
    s_pos = anchors @ positives.T / tau  # (A, P)
    s_neg = torch.logsumexp(anchors @ negs.T / tau, dim=1, keepdim=True)  # (A, 1)
    return -(s_pos - torch.logaddexp(s_pos, s_neg)).mean()


def voxel_contrast(f1: torch.Tensor, f2: torch.Tensor, target: torch.Tensor, prob: torch.Tensor, pi: float, *,
                   weights: tuple[float, float, float] = (0.1, 0.5, 0.1), tau: float = 0.1, samples: int = 256,
                   biased: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """The three contrastive terms on aligned projections ``f1, f2`` ``(B, P, D, H, W)``.

    ``target`` (B, D, H, W): > 0 annotated; ``prob`` (B, D, H, W): the heat map's probabilities (no
    gradient), which sort unlabeled voxels into pseudo-positive (> 0.9), pseudo-negative (< 0.3) and neutral.
    ``samples`` voxels of each group are drawn at most.
    """
    p = f1.shape[1]
    a = F.normalize(f1.permute(0, 2, 3, 4, 1).reshape(-1, p), dim=1)
    b = F.normalize(f2.permute(0, 2, 3, 4, 1).reshape(-1, p), dim=1)
    t = target.reshape(-1)
    q = prob.reshape(-1)

    def draw(mask: torch.Tensor) -> torch.Tensor:
        idx = torch.nonzero(mask).reshape(-1)
        if idx.numel() > samples:
            # drawn on the CPU generator: the same voxels on any device
            idx = idx[torch.randperm(idx.numel(), generator=generator)[:samples].to(idx.device)]
        return idx

    ann = draw(t > 0)
    unl = draw(t <= 0)
    pseudo_pos = draw((t <= 0) & (q > 0.9))
    pseudo_neg = draw((t <= 0) & (q < 0.3))
    total = a.new_zeros(())
    l1, l2, l3 = weights
    if l1 and ann.numel() >= 2 and pseudo_neg.numel():
        anchors = torch.cat([a[ann], b[ann]])
        total = total + l1 * _sup_con(anchors, anchors, torch.cat([a[pseudo_neg], b[pseudo_neg]]), tau)
    if l2 and unl.numel() >= 2:
        total = total + l2 * 0.5 * (_info_nce(a[unl], b[unl], b[unl], tau, pi, biased)
                                    + _info_nce(b[unl], a[unl], a[unl], tau, pi, biased))
    if l3 and pseudo_pos.numel() and ann.numel() and pseudo_neg.numel():
        total = total + l3 * _sup_con(torch.cat([a[pseudo_pos], b[pseudo_pos]]), torch.cat([a[ann], b[ann]]),
                                      torch.cat([a[pseudo_neg], b[pseudo_neg]]), tau)
    return total
