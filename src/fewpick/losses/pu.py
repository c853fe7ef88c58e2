"""Positive-unlabeled objectives (as in Topaz).

All take classifier logits ``z`` (``g = sigmoid(z)``) of labeled positive regions
``z_pos`` and of unlabeled regions ``z_unl``, and the class prior ``pi`` (fraction of
unlabeled regions that are positive). ``L`` is the binary cross-entropy:
``L(g, 1) = softplus(−z)``, ``L(g, 0) = softplus(z)``.

- ``pn``:  π E_P[L(g,1)] + (1−π) E_U[L(g,0)]  (treats unlabeled as negative)
- ``upu``: π E_P[L(g,1)] − π E_P[L(g,0)] + E_U[L(g,0)]  (du Plessis 2016, unbiased)
- ``nnpu``: π E_P[L(g,1)] + max{−β, E_U[L(g,0)] − π E_P[L(g,0)]}  (Kiryo 2017; β = ``slack``, 0 by default)
- ``ge-kl``: E_P[L(g,1)] + λ KL(π ‖ E_U[g])  (Mann & McCallum 2010)
- ``ge-binomial``: E_P[L(g,1)] − λ Σ_k q_k log p_k  (Bepler): ``p_k`` = Binomial(N, π), ``q_k`` the
  normal approximation N(Σg, Σg(1−g)) of the predicted number of positives among the N
  unlabeled regions, discretised.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PU_METHODS = ("pn", "upu", "nnpu", "ge-kl", "ge-binomial")


def ge_binomial_penalty(z_unl: torch.Tensor, pi: float) -> torch.Tensor:
    """−Σ_k q_k log p_k for the N unlabeled logits ``z_unl`` (a cross-entropy, ≥ 0)."""
    g = torch.sigmoid(z_unl.float().reshape(-1))
    n = g.numel()
    mu = g.sum()
    var = (g * (1 - g)).sum().clamp_min(1e-6)
    sd = var.sqrt()
    k = torch.arange(n + 1, dtype=torch.float32, device=g.device)
    # log p_k of Binomial(n, pi)
    log_p = (math.lgamma(n + 1.0) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
             + k * math.log(pi) + (n - k) * math.log1p(-pi))
    # q_k: the normal N(mu, var) integrated over [k - 1/2, k + 1/2]
    normal = torch.distributions.Normal(mu, sd)
    q = (normal.cdf(k + 0.5) - normal.cdf(k - 0.5)).clamp_min(0)
    q = q / q.sum().clamp_min(1e-12)
    return -(q * log_p).sum()


def pu_loss(z_pos: torch.Tensor, z_unl: torch.Tensor, pi: float, method: str = "ge-binomial",
            ge_weight: float = 1.0, slack: float = 0.0) -> torch.Tensor:
    """The PU objective ``method`` for positive and unlabeled logits.

    Parameters
    ----------
    z_pos, z_unl
        Logits of labeled positive and of unlabeled regions (any shape).
    pi
        Positive fraction among unlabeled regions, 0 < π < 0.5.
    ge_weight
        λ for the GE criteria.
    slack
        β of nnPU: how far below zero the estimated negative risk may go.
    """
    if method not in PU_METHODS:
        raise ValueError(f"unknown PU method {method!r}; choose one of {', '.join(PU_METHODS)}")
    if not 0 < pi < 1:
        raise ValueError(f"pi must lie in (0, 1), got {pi}")
    z_pos = z_pos.reshape(-1)
    z_unl = z_unl.reshape(-1)
    pos_as_pos = F.softplus(-z_pos).mean() if z_pos.numel() else z_unl.new_zeros(())
    if method == "pn":
        return pi * pos_as_pos + (1 - pi) * F.softplus(z_unl).mean()
    if method in ("upu", "nnpu"):
        pos_as_neg = F.softplus(z_pos).mean() if z_pos.numel() else z_unl.new_zeros(())
        negative_risk = F.softplus(z_unl).mean() - pi * pos_as_neg
        if method == "nnpu":
            negative_risk = torch.clamp(negative_risk, min=-slack)
        return pi * pos_as_pos + negative_risk
    if method == "ge-kl":
        q = torch.sigmoid(z_unl).mean().clamp(1e-6, 1 - 1e-6)
        kl = pi * torch.log(pi / q) + (1 - pi) * torch.log((1 - pi) / (1 - q))
        return pos_as_pos + ge_weight * kl
    # per unlabeled region, so that λ does not have to shrink as the minibatch grows
    return pos_as_pos + ge_weight * ge_binomial_penalty(z_unl, pi) / z_unl.numel()
