"""The one training loop behind every trainer (PU, few-shot pre-training and fine-tuning, tomogram, SimSiam).

A trainer sets up its network, optimiser and random generators (:func:`seeded`), then hands :func:`fit` a
``step(i)`` function that draws batch ``i`` and returns its losses (``{"loss": tensor, ...}``; ``"loss"`` is
the one back-propagated). :func:`fit` does the rest the same way for all of them:

- zero the gradients, back-propagate, step the optimiser and the learning-rate schedule;
- every ``every`` steps (an epoch), add a history entry (the losses averaged over the epoch, or the last
  ones; the seconds so far; what ``validate`` returns) and report it to ``progress`` with the time left;
- with ``checkpoint``, save the network, optimiser, schedule, history and generator states after every epoch
  (atomically), and resume from there: ``resume=True`` requires a checkpoint of the same settings,
  ``resume="auto"`` takes one when it matches and starts afresh otherwise.

Losses are summed on the device and read back once per epoch, so a GPU is not stalled after every step.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from fewpick.device import cpu_state
from fewpick.errors import InputError, first_line
from fewpick.outputs import atomic_path

Generators = Sequence[np.random.Generator | torch.Generator]


def seeded(seed: int) -> tuple[np.random.Generator, torch.Generator]:
    """Seed torch's global generator (network initialisation) and return a NumPy and a torch CPU generator
    for the draws (batches, masks, augmentations), all from ``seed``."""
    torch.manual_seed(seed)
    return np.random.default_rng(seed), torch.Generator().manual_seed(seed)


def _gen_state(g):
    return g.bit_generator.state if isinstance(g, np.random.Generator) else g.get_state()


def _set_gen_state(g, state) -> None:
    if isinstance(g, np.random.Generator):
        g.bit_generator.state = state
    else:
        g.set_state(state)


def fit(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    step: Callable[[int], Mapping[str, torch.Tensor]],
    *,
    steps: int,
    every: int,
    sched=None,
    generators: Generators = (),
    checkpoint: str | os.PathLike | None = None,
    resume: bool | str = False,
    config: dict | None = None,
    reduce: str = "mean",
    index: str = "step",
    extra: dict | None = None,
    validate: Callable[[], dict] | None = None,
    progress: Callable[[dict], None] | None = None,
    ping_first: bool = False,
) -> list[dict]:
    """Run ``steps`` optimisation steps of ``step`` (see the module); returns the history (one entry per epoch).

    Parameters
    ----------
    every
        Steps per epoch: one history entry, progress report and checkpoint each (and one after the last step).
    generators
        The random generators ``step`` draws from: their states go into the checkpoint.
    config
        What must match for a checkpoint to be resumed (the settings, without run-time knobs).
    reduce
        ``mean`` (losses averaged over the epoch) or ``last`` (the epoch's last step).
    index
        The entry's counter: ``step`` (steps done) or ``epoch`` (epochs done).
    extra
        Fields every entry carries (e.g. ``{"stage": "pretrain"}``).
    validate
        Called (network in eval mode) at every entry; its dict is added to the entry.
    ping_first
        Also call ``progress`` after the first step (``{"first_step": True, "seconds", "eta_s"}`` and ``extra``),
        so that a long first epoch does not leave the user without news.
    """
    if reduce not in ("mean", "last"):
        raise ValueError(f"reduce must be 'mean' or 'last', not {reduce!r}")
    ckpt = Path(checkpoint) if checkpoint is not None else None
    start, history = 0, []
    if ckpt is not None and resume:
        state = _load(ckpt, config, required=resume is True)
        if state is not None:
            net.load_state_dict(state["net"])
            opt.load_state_dict(state["opt"])
            if sched is not None and state.get("sched") is not None:
                sched.load_state_dict(state["sched"])
            for g, s in zip(generators, state["generators"]):
                _set_gen_state(g, s)
            start, history = int(state["step"]), list(state["history"])
    net.train()
    t0 = time.perf_counter()
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for i in range(start, steps):
        losses = step(i)
        loss = losses["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        count += 1
        if ping_first and progress and i == start and steps - i > 1:
            sec = time.perf_counter() - t0
            progress({**(extra or {}), "first_step": True, "seconds": sec, "eta_s": sec * (steps - i - 1)})
        for k, v in losses.items():
            v = v.detach()
            sums[k] = v if (reduce == "last" or k not in sums) else sums[k] + v
        if (i + 1) % every and i + 1 != steps:
            continue
        n = count if reduce == "mean" else 1
        entry = {index: (i + 1) if index == "step" else -(-(i + 1) // every), **(extra or {})}
        entry.update({k: float(v) / n for k, v in sums.items()})
        entry["seconds"] = time.perf_counter() - t0
        sums, count = {}, 0
        if validate is not None:
            net.eval()
            entry.update(validate())
            net.train()
        history.append(entry)
        if ckpt is not None:
            with atomic_path(ckpt) as tmp:
                torch.save({"config": config, "net": cpu_state(net), "opt": opt.state_dict(),
                            "sched": sched.state_dict() if sched is not None else None, "step": i + 1,
                            "history": history, "generators": [_gen_state(g) for g in generators]}, tmp)
        if progress:
            done = i + 1 - start
            progress({**entry, "eta_s": entry["seconds"] / done * (steps - i - 1)})
    net.eval()
    return history


def _load(ckpt: Path, config: dict | None, required: bool) -> dict | None:
    """The checkpoint's state when it exists and was written with ``config``; else an error (``required``)
    or None."""
    if not ckpt.is_file():
        if required:
            raise InputError(ckpt, "no checkpoint to resume from")
        return None
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as exc:
        if required:
            raise InputError(ckpt, f"checkpoint cannot be read ({first_line(exc)}); "
                                   "start again without --resume") from None
        return None
    if not isinstance(state, dict) or state.get("config") != config or "generators" not in state:
        if required:
            raise InputError(ckpt, "checkpoint was written with other settings; start again without --resume")
        return None
    return state


def drop_checkpoints(*paths: str | os.PathLike | None) -> None:
    """Remove the checkpoints of a training that has written its model: they only serve ``--resume`` of an
    interrupted run."""
    for path in paths:
        if path is not None:
            Path(path).unlink(missing_ok=True)
