"""Inference copies of the networks: each batch normalisation folded into the convolution before it (eval
statistics), made once and kept while the network's weights and statistics stay as they are.

A folded convolution gives the same numbers to float rounding at the cost of the convolution alone; on a CPU the
scoring of a whole micrograph or tomogram runs markedly faster (bench/results/heat_map_speed.md).
"""

from __future__ import annotations

import weakref
from typing import Callable, TypeVar

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from fewpick.device import module_device

N = TypeVar("N", bound=nn.Module)
M = TypeVar("M", bound=nn.Module)

_COPIES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple | None, nn.Module]] = weakref.WeakKeyDictionary()

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def fold_batchnorm(seq: nn.Sequential) -> nn.Sequential:
    """``seq`` with every convolution directly followed by a batch normalisation replaced by one convolution
    that does both (eval statistics); the other layers as they are. Call on a network in eval mode."""
    layers = list(seq)
    out: list[nn.Module] = []
    i = 0
    while i < len(layers):
        conv, norm = layers[i], layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(conv, _CONV) and isinstance(norm, _NORM):
            out.append(fuse_conv_bn_eval(conv, norm))
            i += 2
        else:
            out.append(layers[i])
            i += 1
    return nn.Sequential(*out)


def inference_copy(net: N, build: Callable[[N], M]) -> M:
    """``build(net)`` (the network's inference copy), made again only once ``net``'s weights, statistics or
    device have changed since the last call (a network in training gets a fresh copy after each step)."""
    try:
        stamp: tuple | None = tuple(t._version for t in (*net.parameters(), *net.buffers())) + (
            str(module_device(net)),)
    except RuntimeError:  # tensors made under inference mode keep no version: build every time
        stamp = None
    cached = _COPIES.get(net)
    if cached is None or stamp is None or cached[0] != stamp:
        cached = (stamp, build(net))
        _COPIES[net] = cached
    return cached[1]  # type: ignore[return-value]  # what build made for this network
