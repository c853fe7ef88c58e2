"""A ResNet-18-class 2D encoder for small single-channel images, and the SimSiam heads.

The layout of ResNet-18 (four stages of two basic blocks, widths w, 2w, 4w, 8w, stride 2 from the
second stage on) with a 3×3 stem and no max-pool, as for 32 px inputs; ``width`` 16 keeps it fast on
a CPU (the original has 64). Built from a config dict so a saved model can be rebuilt.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class ResNetEncoder(nn.Module):
    """``(B, 1, H, W)`` → ``(B, 8·width)`` features (global average pool after four stages)."""

    def __init__(self, width: int = 16, blocks: tuple[int, ...] = (2, 2, 2, 2), in_channels: int = 1):
        super().__init__()
        self.config = {"width": width, "blocks": list(blocks), "in_channels": in_channels}
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x)).mean(dim=(2, 3))


class SimSiam(nn.Module):
    """Encoder + projector (3 layers, output ``dim``) + predictor bottleneck (Chen & He 2021).

    ``embed(x)`` is the projector's output: the representation used downstream."""

    def __init__(self, width: int = 16, dim: int = 128, pred_dim: int = 64):
        super().__init__()
        self.config = {"width": width, "dim": dim, "pred_dim": pred_dim}
        self.encoder = ResNetEncoder(width)
        e, h = self.encoder.out_dim, 2 * dim
        self.projector = nn.Sequential(
            nn.Linear(e, h, bias=False), nn.BatchNorm1d(h), nn.ReLU(),
            nn.Linear(h, h, bias=False), nn.BatchNorm1d(h), nn.ReLU(),
            nn.Linear(h, dim, bias=False), nn.BatchNorm1d(dim, affine=False))
        self.predictor = nn.Sequential(nn.Linear(dim, pred_dim, bias=False), nn.BatchNorm1d(pred_dim), nn.ReLU(),
                                       nn.Linear(pred_dim, dim))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(x))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor):
        z1, z2 = self.embed(x1), self.embed(x2)
        return self.predictor(z1), self.predictor(z2), z1.detach(), z2.detach()
