"""Label → train, with one progress report over every training stage: what the command line and the labelling page
both run.

A trainer reports records such as ``{"stage": "finetune", "step": 120, "eta_s": 31.0, "loss": 0.41}``; a
:class:`StagedProgress` turns them into steps done out of the whole run's, with words a user understands, so a
progress bar moves once from empty to full across pre-training, fine-tuning and the fast network.

:data:`LABEL_TRAINERS` holds the pickers that can be trained from clicked labels (the labelling page offers
these); each entry trains one from the labelled micrographs and the labels and returns the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from fewpick.io.images import Image


@dataclass(frozen=True)
class Stage:
    """One training stage: the name a trainer reports, its steps and how a user reads it."""

    name: str
    steps: int
    words: str


class StagedProgress:
    """Steps done out of the total over consecutive stages (a stage of no steps is left out)."""

    def __init__(self, stages: Sequence[Stage]):
        self.stages = [s for s in stages if s.steps > 0]
        self.before: dict[str, int] = {}
        done = 0
        for s in self.stages:
            self.before[s.name] = done
            done += s.steps
        self.total = done

    def stage(self, record: dict) -> Stage:
        """The record's stage (the first one when the record names none or an unknown one)."""
        name = record.get("stage")
        return next((s for s in self.stages if s.name == name), self.stages[0])

    def done(self, record: dict) -> int:
        """Steps of the whole run done at this record."""
        stage = self.stage(record)
        return self.before[stage.name] + min(int(record.get("step", 0)), stage.steps)

    def fraction(self, record: dict) -> float:
        return self.done(record) / max(self.total, 1)


def pu_stages(settings) -> list[Stage]:
    """The PU picker trains in one stage."""
    return [Stage("train", settings.steps, "on your labels")]


def fewshot_stages(settings, pretrain: bool = True) -> list[Stage]:
    """The few-shot picker's stages: pre-training (unless an encoder is given or none is wanted), fine-tuning on
    the exemplars, and fitting the fast scoring network."""
    return [Stage("pretrain", settings.pretrain_steps if pretrain else 0, "pre-training"),
            Stage("finetune", settings.finetune_steps, "on your labels"),
            Stage("distill", settings.distill_steps, "its fast scoring network")]


Progress = Callable[[float, str, "float | None"], None]  # fraction of the whole run, words, seconds left


def counted_words(record: dict) -> str:
    """What a trainer's ``{"stage": "count", "particles": N}`` record tells the user."""
    return f"about {record['particles']:.0f} particles per micrograph, counted by the general particle model"


def train_fewshot(images: Mapping[str, Image], labels: pd.DataFrame, *, diameter: float, expected: float | None,
                  options: dict, out: str | os.PathLike, progress: Progress, device: Any = "auto",
                  threads: int = 2) -> Any:
    """The few-shot picker from clicked labels: trained on the micrograph with the most labels and its labels.

    ``images``: the labelled micrographs by the names the labels use."""
    from fewpick.pickers import fewshot

    name = str(labels["micrograph"].value_counts().index[0])
    settings = fewshot.FewShotSettings(diameter=diameter, expected_particles=expected, **options)
    staged = StagedProgress(fewshot_stages(settings))

    def report(record: dict) -> None:
        if record.get("stage") == "count":
            progress(0.0, counted_words(record), None)
            return
        stage = staged.stage(record)
        progress(staged.fraction(record), f"training the few-shot picker ({stage.words}): step "
                                          f"{record.get('step', 0)}/{stage.steps}", record.get("eta_s"))

    return fewshot.train(images[name], labels[labels.micrograph == name], settings, out, progress=report,
                         device=device)


def train_pu(images: Mapping[str, Image], labels: pd.DataFrame, *, diameter: float, expected: float | None,
             options: dict, out: str | os.PathLike, progress: Progress, device: Any = "auto",
             threads: int = 2) -> Any:
    """The PU picker from clicked labels on the micrographs that hold them (without the expected count, the general
    model counts the particles there).

    ``images``: the labelled micrographs by the names the labels use."""
    from fewpick.pickers import pu

    settings = pu.PUSettings(diameter=diameter, expected_particles=float(expected) if expected else None,
                             threads=threads, **options)
    staged = StagedProgress(pu_stages(settings))
    labelled = set(labels["micrograph"])

    def report(record: dict) -> None:
        if record.get("stage") == "count":
            progress(0.0, counted_words(record), None)
            return
        progress(staged.fraction(record), f"training the PU picker: step {record.get('step', 0)}/{staged.total}, "
                                          f"loss {record.get('loss', float('nan')):.3f}", record.get("eta_s"))

    return pu.train([im for name, im in images.items() if name in labelled], labels, settings, out, progress=report,
                    device=device)


#: the pickers trained from clicked labels, by registry name (the labelling page offers these, the first one
#: by default)
LABEL_TRAINERS: dict[str, Callable[..., Any]] = {"fewshot": train_fewshot, "pu": train_pu}
