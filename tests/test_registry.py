"""The picker registry: a new picker is one module and one ``register`` call, and is then opened by
``load_picker`` and picked with by ``fewpick pick --model``."""

from __future__ import annotations

import sys
import textwrap

import pytest
from typer.testing import CliRunner

from fewpick import modelfile
from fewpick.cli import app
from fewpick.evaluate import evaluate
from fewpick.io import read_picks, write_mrc
from fewpick.pickers import load_picker, registry

TOY = '''
"""A toy picker: difference-of-Gaussians scores, a fixed default cut, stored in a model file of its own kind."""
from dataclasses import dataclass

import numpy as np

from fewpick import modelfile
from fewpick.geometry import Geometry
from fewpick.ops.filters import dog_score_map
from fewpick.ops.peaks import nms
from fewpick.ops.resample import bin_image
from fewpick.ops.thresholds import threshold_gmm
from fewpick.pickers.base import PickerBase, ScoreMap
from fewpick.pickers.threshold import Fixed

MODEL_FORMAT = "fewpick-toy-model"


@dataclass
class ToySettings:
    diameter: float
    threshold: float = 3.0
    threads: int = 2


@dataclass
class ToyModel(PickerBase):
    settings: ToySettings

    def score_map(self, image):
        geo = Geometry.binned(self.settings.diameter)
        binned = bin_image(image.data, geo.factor)
        return ScoreMap(dog_score_map(binned, geo.working_diameter / 2), lambda rc: rc * Geometry.scale(image.data.shape, binned.shape))

    auto_rule = staticmethod(threshold_gmm)

    def default_threshold(self):
        return Fixed(self.settings.threshold)

    def peaks(self, smap, threshold=None, max_picks=None):
        radius = Geometry.binned(self.settings.diameter).working_diameter / 2
        coords, scores = nms(smap.scores, radius, -np.inf)
        return self.select(coords, scores, self.resolve_threshold(threshold), max_picks)


def save_model(model, path):
    return modelfile.save(path, MODEL_FORMAT, 1, model.settings)


def load_model(path, device="auto"):
    bundle = modelfile.load(path, MODEL_FORMAT, 1, "toy model")
    return ToyModel(modelfile.settings_from(ToySettings, bundle["settings"], path, "toy model"))


def model_summary(model):
    return f"toy picker: particle {model.settings.diameter:g} px"
'''


@pytest.fixture
def toy_kind(tmp_path, monkeypatch):
    (tmp_path / "toy_picker.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    kind = registry.register(registry.PickerKind("toy", "fewpick-toy-model", "toy_picker", "toy picker"))
    yield kind
    registry.unregister("toy")
    sys.modules.pop("toy_picker", None)


def test_a_registered_picker_is_opened_and_picks_from_the_command_line(toy_kind, sim_micrograph, tmp_path):
    image, truth, _, cfg = sim_micrograph
    toy = toy_kind.load_module()
    path = toy.save_model(toy.ToyModel(toy.ToySettings(diameter=cfg.diameter)), tmp_path / "toy.pt")
    assert registry.kind_of(path) is toy_kind
    picker = load_picker(path)
    assert isinstance(picker, toy.ToyModel)
    mrc = tmp_path / "sim.mrc"
    write_mrc(mrc, image)
    result = CliRunner().invoke(app, ["pick", str(mrc), "--model", str(path), "--out", str(tmp_path / "p.star")])
    assert result.exit_code == 0, result.output
    assert "toy picker: particle 40 px" in result.output
    picks = read_picks(tmp_path / "p.star").assign(micrograph="sim")
    assert evaluate(picks, truth, radius=cfg.diameter / 2)["all_picks"]["f1"] >= 0.9  # measured 0.98


def test_the_registry_refuses_a_taken_name_and_knows_the_built_in_pickers(toy_kind, tmp_path):
    with pytest.raises(ValueError):
        registry.register(registry.PickerKind("toy", "another-format", "toy_picker", "again"))
    with pytest.raises(ValueError):
        registry.unregister("pu")
    assert [k.name for k in registry.kinds()][:3] == ["pu", "fewshot", "tomo"]
    other = tmp_path / "other.pt"
    modelfile.save(other, "someone-elses-model", 1, None)
    assert registry.kind_of(other) is None and registry.kind_of(tmp_path / "missing.pt") is None


def test_a_tomogram_model_given_to_the_2d_verb_is_sent_to_its_own(tmp_path):
    path = tmp_path / "tomo.pt"
    modelfile.save(path, registry.get("tomo").model_format, 1, None)
    result = CliRunner().invoke(app, ["pick", str(tmp_path), "--model", str(path), "--out", str(tmp_path / "p.star")])
    assert result.exit_code == 2 and "fewpick tomo pick" in result.output
