"""Where the networks run: the CPU, or a CUDA GPU when PyTorch sees one.

Every function that trains or applies a network takes ``device``: ``"auto"`` (the default: the first CUDA
GPU when this PyTorch has CUDA and sees one, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. The device
is a run-time choice: model files always hold CPU tensors and load anywhere.

Random draws (training batches, masks, augmentations) are made on the CPU with seeded generators and then
moved, so a seeded run draws the same windows on either device; the results differ only by floating point.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from fewpick.errors import InputError

DEVICE_HELP = ("where the network runs: auto (a CUDA GPU when PyTorch sees one, else the CPU), cpu, cuda or "
               "cuda:N")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device for ``device`` (see the module); one clear error for a GPU that is not there."""
    if isinstance(device, torch.device):
        spec = str(device)
    else:
        spec = (device or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        index = spec[5:] if spec.startswith("cuda:") else "0"
        if not index.isdigit():
            raise InputError(None, f"device {spec!r}: the GPU index must be a number, e.g. cuda:0")
        if not torch.cuda.is_available():
            why = ("this PyTorch was built without CUDA" if torch.version.cuda is None
                   else "PyTorch sees no CUDA GPU (check the driver and CUDA_VISIBLE_DEVICES)")
            raise InputError(None, f"device {spec!r} asked for, but {why}; use --device cpu")
        count = torch.cuda.device_count()
        if int(index) >= count:
            raise InputError(None, f"device {spec!r} asked for, but PyTorch sees {count} GPU(s): cuda:0 to "
                                   f"cuda:{count - 1}")
        return torch.device(f"cuda:{int(index)}")
    raise InputError(None, f"unknown device {spec!r}; choose auto, cpu, cuda or cuda:N")


def device_name(device: torch.device) -> str:
    """A readable name: ``cpu`` or the GPU's model."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"


def module_device(module: torch.nn.Module) -> torch.device:
    """The device a network's weights live on."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


#: float32 values in the largest activation a network computes at once when it scores a whole micrograph or
#: tomogram on a CPU (12 MiB): passes that small keep their activations in the processor's cache and score faster
#: than whole blocks, with the same scores to float rounding (measured: bench/results/dense_bands.md,
#: bench/results/heat_map_speed.md)
CPU_PASS_VALUES = 3 * 2**20


def cpu_state(module: torch.nn.Module) -> dict:
    """The network's state dict with every tensor on the CPU (what model files hold)."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


@contextlib.contextmanager
def mixed_precision(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """bfloat16 autocast on a CUDA GPU (convolutions and matrix products in bf16, reductions in fp32); a
    no-op on the CPU, where bf16 is slower than fp32 on most processors. The pickers leave it off by default
    (``model.mixed_precision``): their networks are small, and picking time goes to reading and binning."""
    if enabled and device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield
