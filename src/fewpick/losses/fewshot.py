"""The few-shot picker's self-cross similarity (SCS) loss, plain and positive-unlabeled adjusted."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def scs_loss(f_l: torch.Tensor, f_u: torch.Tensor, mode: str = "adjusted", pi: float = 0.05, alpha: float = 0.5,
             tau: float = 0.0) -> torch.Tensor:
    """Self-cross similarity loss ``max(τ, 1 + α·S_cross − (1−α)·S_self)`` on features of exemplars ``f_l`` (m, d)
    and unlabeled windows ``f_u`` (n, d).

    ``unadjusted``: S_self = mean cosine similarity among exemplars, S_cross = mean exemplar×unlabeled.
    ``adjusted`` (PU): with sums S_ll, S_lu, S_uu, Ŝ_self = (S_ll + 2π̂ S_lu + π̂² S_uu)/(m+n)²,
    Ŝ_cross = ((1−π̂) S_lu + π̂(1−π̂) S_uu)/((m+n)·n). ``none``: zero.
    """
    if mode == "none":
        return f_l.new_zeros(())
    a, b = F.normalize(f_l, dim=1), F.normalize(f_u, dim=1)
    m, n = a.shape[0], b.shape[0]
    s_ll = (a @ a.T).sum()
    s_lu = (a @ b.T).sum()
    if mode == "unadjusted":
        s_self, s_cross = s_ll / m**2, s_lu / (m * n)
    elif mode == "adjusted":
        s_uu = (b @ b.T).sum()
        s_self = (s_ll + 2 * pi * s_lu + pi**2 * s_uu) / (m + n) ** 2
        s_cross = ((1 - pi) * s_lu + pi * (1 - pi) * s_uu) / ((m + n) * n)
    else:
        raise ValueError(f"unknown SCS mode {mode!r}")
    return torch.clamp(1 + alpha * s_cross - (1 - alpha) * s_self, min=tau)
