"""SimSiam's symmetric negative cosine similarity with stop-gradient (Chen & He 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``−mean cos(p, z)`` with no gradient through ``z`` (the stop-gradient)."""
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """``½ D(p1, sg(z2)) + ½ D(p2, sg(z1))``; −1 at best."""
    return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)
