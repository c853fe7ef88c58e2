"""The staged progress shared by the command line and the labelling page, and the label → train workflows."""

from __future__ import annotations

from dataclasses import replace

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


def test_the_pu_workflow_without_an_expected_count_has_the_general_model_count(tmp_path):
    """The labelling page's PU training with no count typed in: the general model counts the particles on the
    labelled micrograph (within 20 % of the truth here) and says so before the training steps."""
    from pathlib import Path

    from fewpick.io import Image
    from fewpick.simulate.micrograph import PRESETS, simulate_micrograph
    from fewpick.simulate.species import load_species

    px = load_species("cct").diameter / 48
    sim = simulate_micrograph((768, 768), 60, replace(PRESETS["realistic"], pixel_size=px, species=("cct",)), seed=1)
    said = []
    model = LABEL_TRAINERS["pu"]({"m0": Image(sim.image, px, Path("m0.mrc"))}, sim.truth.assign(micrograph="m0")[:10],
                                 diameter=48, expected=None, options={"steps": 5}, out=tmp_path / "m.pt",
                                 progress=lambda fraction, text, eta: said.append(text))
    assert 0.8 * 60 <= model.estimated_particles <= 1.2 * 60
    assert said[0] == f"about {model.estimated_particles:.0f} particles per micrograph, counted by the general particle model"
    assert said[-1].startswith("training the PU picker: step 5/5")
