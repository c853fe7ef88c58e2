"""The staged progress shared by the command line and the labelling page, and the label → train workflows."""

from __future__ import annotations

import pytest

from fewpick.pickers import registry
from fewpick.pickers.fewshot import FewShotSettings
from fewpick.workflows import LABEL_TRAINERS, Stage, StagedProgress, fewshot_stages


def test_staged_progress_runs_once_from_empty_to_full_across_the_stages():
    s = FewShotSettings(diameter=40, pretrain_steps=600, finetune_steps=300, distill_steps=100)
    staged = StagedProgress(fewshot_stages(s))
    assert staged.total == 1000
    assert staged.done({"stage": "pretrain", "step": 0}) == 0
    assert staged.done({"stage": "finetune", "step": 30}) == 630
    assert staged.fraction({"stage": "distill", "step": 100}) == 1.0
    assert staged.done({"stage": "distill", "step": 500}) == 1000  # a step past its stage stays within it
    # with an encoder given there is no pre-training: fine-tuning starts the bar
    without = StagedProgress(fewshot_stages(s, pretrain=False))
    assert without.total == 400 and without.done({"stage": "finetune", "step": 100}) == 100
    assert without.stage({"step": 3}).name == "finetune"  # a record without a stage belongs to the first
    assert StagedProgress([Stage("a", 0, "x"), Stage("b", 5, "y")]).done({"stage": "b", "step": 5}) == 5


def test_every_label_trainer_is_a_registered_picker():
    assert list(LABEL_TRAINERS)[0] == "fewshot"
    for name in LABEL_TRAINERS:
        assert registry.get(name).name == name


def test_the_pu_workflow_refuses_to_train_without_an_expected_count():
    from fewpick.errors import InputError

    with pytest.raises(InputError, match="expected number of particles"):
        LABEL_TRAINERS["pu"]({}, None, diameter=40, expected=None, options={}, out="m.pt", progress=print)
