"""Dense inference of a fully convolutional network over a whole micrograph: batch normalisation folded into the
convolutions, bands of rows with a receptive-field margin."""

from __future__ import annotations

import numpy as np
import torch

from fewpick.device import CPU_PASS_VALUES, mixed_precision, module_device
from fewpick.nn.cnn import PickerCNN
from fewpick.nn.fusion import inference_copy


def inference_net(net: PickerCNN) -> torch.nn.Module:
    """The network for scoring: batch normalisation folded into the convolutions, channels-last memory (about twice
    as fast on a CPU as the network as trained; the same logits to float rounding). Kept while the weights and
    statistics are unchanged (:func:`~fewpick.nn.fusion.inference_copy`)."""
    return inference_copy(net, lambda n: n.fused().to(memory_format=torch.channels_last))


def band_rows(width: int, channels: int, device: torch.device) -> int:
    """Rows per band of :func:`dense_logits` for a padded micrograph ``width`` px wide and a network of
    ``channels`` hidden channels: :data:`~fewpick.device.CPU_PASS_VALUES` per activation on a CPU (at least 32
    rows); a GPU takes 4096 rows (a micrograph at once)."""
    if device.type != "cpu":
        return 4096
    return max(32, CPU_PASS_VALUES // max(1, width * channels))


#: how :func:`dense_logits` fills the margin beyond a micrograph's edges by default: its edge pixels repeated
#: outwards (docs/decisions.md, "Beyond the micrograph's edge")
EDGE_PAD = "edge"


@torch.inference_mode()
def dense_logits(net: PickerCNN, binned: np.ndarray, amp: bool = False, pad: str = EDGE_PAD) -> np.ndarray:
    """Apply the network to a whole prepared micrograph, in bands of rows (:func:`band_rows`) with a
    receptive-field margin, on the device the network is on (``amp``: bfloat16 there if it is a GPU).

    The micrograph is padded first (``pad``: a mode of :func:`numpy.pad`), so that at its edges the network sees
    image-like context, not zeros (which make spurious peaks). A network that only ever scored tile interiors in
    training is best served by its edge pixels repeated: streaks, which look like no particle. Mirrored, anything
    cut by the edge becomes a whole, symmetric blob there (half a particle, a patch of ice), and the network finds
    particles on the edge that are not there. A network taught on maps of micrographs padded some way is scored
    with the same padding.
    """
    channels = net.width
    net = inference_net(net)
    dev = module_device(net)
    half = net.receptive_field // 2
    padded = np.pad(binned, half, mode=pad)
    h, w = binned.shape
    rows = band_rows(padded.shape[1], channels, dev)
    out = np.empty((h, w), np.float32)
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        band = torch.from_numpy(np.ascontiguousarray(padded[y0 : y1 + 2 * half]))[None, None].to(dev).contiguous(
            memory_format=torch.channels_last)
        with mixed_precision(dev, amp):
            z = net(band)[0, 0]
        out[y0:y1] = z.float().cpu().contiguous().numpy()[half : half + (y1 - y0), half : half + w]
    return out
