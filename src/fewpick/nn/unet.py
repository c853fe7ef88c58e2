"""The tomogram localization network: a 2D U-Net on every xy slice, fused across slices in 3D.

``(B, 1, D, H, W)`` subtomograms → the U-Net sees ``B·D`` slices ``(1, H, W)`` (xy holds most of the
information in a tomogram), its ``C``-channel outputs are stacked back into ``(B, C, D, H, W)`` and a
3D convolution (``fuse`` slices deep) mixes neighbouring slices into the feature map ``M``. Two 1×1×1 heads
read ``M``: the centre heat map (one logit per voxel) and the projection ``F`` for the contrastive terms.
H and W must be multiples of ``2**(blocks − 1)``.

Weights and activations are kept channels-last (``torch.channels_last`` for the slices, ``channels_last_3d`` for
the fusion and the heads): the CPU convolutions, the 1×1×1 heads most of all, are much faster that way than on
the default layout (docs/decisions.md), and the numbers agree with the default layout to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewpick.device import CPU_PASS_VALUES
from fewpick.nn.fusion import fold_batchnorm


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SliceUNet3D(nn.Module):
    def __init__(self, width: int = 16, blocks: int = 4, fuse: int = 3, proj_dim: int = 32):
        super().__init__()
        if blocks < 2:
            raise ValueError("the U-Net needs at least 2 encoder blocks")
        self.config = {"width": width, "blocks": blocks, "fuse": fuse, "proj_dim": proj_dim}
        chans = [width * 2 ** min(i, 3) for i in range(blocks)]
        self.down = nn.ModuleList([_block(1 if i == 0 else chans[i - 1], c) for i, c in enumerate(chans)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i], chans[i - 1], 2, stride=2)
                                 for i in range(blocks - 1, 0, -1)])
        self.dec = nn.ModuleList([_block(2 * chans[i - 1], chans[i - 1]) for i in range(blocks - 1, 0, -1)])
        c = chans[0]
        self.fuse = nn.Sequential(nn.Conv3d(c, c, (fuse, 3, 3), padding=(fuse // 2, 1, 1), bias=False),
                                  nn.BatchNorm3d(c), nn.ReLU(inplace=True))
        self.heat = nn.Conv3d(c, 1, 1)
        self.proj = nn.Sequential(nn.Conv3d(c, c, 1), nn.ReLU(inplace=True), nn.Conv3d(c, proj_dim, 1))
        nn.init.constant_(self.heat.bias, -4.0)  # start near "nothing here": most voxels are background
        self._channels_last()

    def _channels_last(self) -> None:
        """The layout of the weights (load_state_dict and .to(device) keep it)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.to(memory_format=torch.channels_last)
            elif isinstance(m, nn.Conv3d):
                m.to(memory_format=torch.channels_last_3d)

    def fused(self) -> SliceUNet3D:
        """A copy for inference only, on the same device: each batch normalisation folded into its convolution
        (eval statistics; the same logits to float rounding, faster on a CPU), no gradients."""
        copy = SliceUNet3D(**self.config).to(next(self.parameters()).device)
        copy.load_state_dict(self.state_dict())
        copy.eval()
        copy.down = nn.ModuleList([fold_batchnorm(b) for b in copy.down])
        copy.dec = nn.ModuleList([fold_batchnorm(b) for b in copy.dec])
        copy.fuse = fold_batchnorm(copy.fuse)
        copy._channels_last()
        return copy.requires_grad_(False)

    @property
    def multiple(self) -> int:
        return 2 ** (len(self.down) - 1)

    def slice_features(self, y: torch.Tensor) -> torch.Tensor:
        """The 2D U-Net on slices ``(N, 1, H, W)``: ``(N, C, H, W)``."""
        skips = []
        for i, blk in enumerate(self.down):
            y = blk(y if i == 0 else F.max_pool2d(y, 2))
            skips.append(y)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips[:-1])):
            y = dec(torch.cat([up(y), skip], dim=1))
        return y

    def pass_slices(self, h: int, w: int) -> int:
        """Slices of ``h`` × ``w`` voxels whose largest activation (the decoder's last input, twice the width's
        channels) holds about :data:`~fewpick.device.CPU_PASS_VALUES` values; at least one."""
        return max(1, CPU_PASS_VALUES // (2 * self.config["width"] * h * w))

    def features(self, x: torch.Tensor, slices_per_pass: int | None = None) -> torch.Tensor:
        """The feature map ``M``; ``slices_per_pass``: the U-Net runs on that many slices at a time (the same
        numbers; smaller passes stay in a CPU's cache when scoring), else on all of them at once."""
        b, _, d, h, w = x.shape
        y = x.permute(0, 2, 1, 3, 4).reshape(b * d, 1, h, w).contiguous(memory_format=torch.channels_last)
        step = b * d if slices_per_pass is None else max(1, slices_per_pass)
        parts = [self.slice_features(y[i : i + step]) for i in range(0, b * d, step)]
        y = parts[0] if len(parts) == 1 else torch.cat(parts)
        # (B·D, C, H, W) channels-last is (B, D, H, W, C) in memory: (B, C, D, H, W) channels-last-3d, no copy
        y = y.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(b, d, h, w, -1)
        return self.fuse(y.permute(0, 4, 1, 2, 3))

    def forward(self, x: torch.Tensor, with_projection: bool = True, slices_per_pass: int | None = None):
        m = self.features(x, slices_per_pass)
        logits = self.heat(m)[:, 0]
        return (logits, self.proj(m)) if with_projection else (logits, None)
