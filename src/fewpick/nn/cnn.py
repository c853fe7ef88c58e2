"""A small fully convolutional residual CNN that scores every pixel of a binned micrograph.

Dilated 3×3 convolutions grow the receptive field to about the particle's binned
diameter without downsampling, so the score map keeps the input's sampling. An
optional decoder head reconstructs each pixel's ``k×k`` neighbourhood from the
classifier's features (Topaz's hybrid classifier + autoencoder).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


class _Block(nn.Module):
    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(width)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


class PickerCNN(nn.Module):
    """Per-pixel particle logits.

    Parameters
    ----------
    width
        Channels of the hidden layers.
    dilations
        One residual block (two 3×3 convolutions) per entry. The receptive field is
        ``5 + Σ 4·d``: (1, 2, 3) gives 29 px, enough for particles of ~12–24 binned px.
    decoder_patch
        If > 0, add the decoder that reconstructs the ``k×k`` input patch around each pixel.
    """

    def __init__(self, width: int = 24, dilations: tuple[int, ...] = (1, 2, 3), decoder_patch: int = 0):
        super().__init__()
        self.width, self.dilations = width, tuple(dilations)
        self.stem = nn.Sequential(nn.Conv2d(1, width, 5, padding=2), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(*[_Block(width, d) for d in dilations])
        self.head = nn.Conv2d(width, 1, 1)
        self.decoder_patch = decoder_patch
        self.decoder = (nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(), nn.Conv2d(width, decoder_patch**2, 1))
                        if decoder_patch else None)
        self.receptive_field = 5 + sum(4 * d for d in dilations)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1, H, W)`` for images ``(B, 1, H, W)``."""
        return self.head(self.features(x))

    def fused(self) -> FusedPickerCNN:
        """A copy for inference only: each batch normalisation folded into its convolution (the same logits to
        float rounding, about twice as fast on a CPU)."""
        return FusedPickerCNN(self)

    def forward_with_reconstruction(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        f = self.features(x)
        return self.head(f), (self.decoder(f) if self.decoder is not None else None)


class FusedPickerCNN(nn.Module):
    """:class:`PickerCNN`'s logits with batch normalisation folded into the convolutions (eval statistics)."""

    def __init__(self, net: PickerCNN):
        super().__init__()
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        was_training = net.training
        net.eval()
        self.stem = fuse_conv_bn_eval(net.stem[0], net.stem[1])
        self.convs = nn.ModuleList()
        for b in net.blocks:
            self.convs.append(fuse_conv_bn_eval(b.conv1, b.bn1))
            self.convs.append(fuse_conv_bn_eval(b.conv2, b.bn2))
        self.head = copy.deepcopy(net.head)
        self.receptive_field = net.receptive_field
        net.train(was_training)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x), inplace=True)
        for i in range(0, len(self.convs), 2):
            y = F.relu(self.convs[i](x), inplace=True)
            y = self.convs[i + 1](y)
            y += x  # the residual added in place: no new activation per block (the same sum)
            x = F.relu(y, inplace=True)
        return self.head(x)
