"""Model files: one writer and reader for every model; run-time knobs are not stored; newer files refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fewpick import modelfile
from fewpick.errors import InputError
from fewpick.io import Image, make_picks
from fewpick.pickers import fewshot, pu, tomo
from fewpick.simulate import SimpleMicrographConfig, simulate_simple_micrograph


def test_settings_round_trip_without_run_time_knobs(tmp_path):
    s = pu.PUSettings(diameter=40, threads=7, min_distance=0.5)
    stored = modelfile.settings_dict(s)
    assert "threads" not in stored and stored["min_distance"] == 0.5
    back = modelfile.settings_from(pu.PUSettings, stored, tmp_path / "m.pt", "PU picker model", threads=3)
    assert back.threads == 3 and back.diameter == 40 and back.min_distance == 0.5
    # an older file that stored the knob loads (the knob is dropped: this machine's value or the default)
    old = {**stored, "threads": 16}
    assert modelfile.settings_from(pu.PUSettings, old, tmp_path / "m.pt", "PU picker model").threads == 2
    for cls, what in ((pu.PUSettings, "PU picker model"), (fewshot.FewShotSettings, "few-shot picker model"),
                      (tomo.TomoSettings, "tomogram localization model")):
        with pytest.raises(InputError, match=r"m\.pt: .* does not know \(from_the_future\).*newer fewpick"):
            modelfile.settings_from(cls, {"diameter": 40.0, "from_the_future": 1}, tmp_path / "m.pt", what)


def test_every_picker_writes_the_same_kind_of_file(tmp_path):
    cfg = SimpleMicrographConfig(size=(256, 256), diameter=30, n_particles=12, snr=0.05)
    image, centres, _ = simulate_simple_micrograph(cfg, seed=3)
    im = Image(image.astype(np.float32), None, "m0")
    labels = make_picks("m0", centres[:6, 0], centres[:6, 1])
    pu.train([im], labels, pu.PUSettings(diameter=30, expected_particles=12, steps=5, threads=1), tmp_path / "pu.pt")
    inside = labels[labels.x.between(25, 230) & labels.y.between(25, 230)]
    fewshot.train(im, inside, fewshot.FewShotSettings(diameter=30, pretrain_steps=2, finetune_steps=2, distill_steps=5,
                                                      pretrain_batch=8, unlabeled=8, train_threads=1), tmp_path / "fs.pt")
    for name, fmt in (("pu.pt", pu.MODEL_FORMAT), ("fs.pt", fewshot.MODEL_FORMAT)):
        bundle = torch.load(tmp_path / name, weights_only=True)
        assert bundle["format"] == fmt and "fewpick_version" in bundle and "format_version" in bundle
        assert not {"threads", "train_threads"} & set(bundle["settings"])
        assert all(v.device.type == "cpu" for v in bundle["state_dict"].values())
        assert all(v.device.type == "cpu" for v in (bundle.get("fast_state") or {}).values())
    assert pu.load_model(tmp_path / "pu.pt", "cpu").settings.threads == 2  # this machine's default
    with pytest.raises(InputError, match="not a fewpick PU picker model file .*fewshot-model"):
        pu.load_model(tmp_path / "fs.pt")


def test_older_files_are_brought_forward_one_version_at_a_time(tmp_path):
    path = tmp_path / "old.pt"
    modelfile.save(path, "fewpick-toy", 1, None, value=1)
    steps = {1: lambda b: {**b, "value": b["value"] * 10}, 2: lambda b: {**b, "value": b["value"] + 3}}
    bundle = modelfile.load(path, "fewpick-toy", 3, "toy model", steps)
    assert bundle["value"] == 13 and bundle["format_version"] == 3
    with pytest.raises(InputError, match=r"old\.pt: toy model file format 1 .* reads format 3"):
        modelfile.load(path, "fewpick-toy", 3, "toy model", {1: steps[1]})  # no way from 2 to 3
    newer = tmp_path / "newer.pt"
    modelfile.save(newer, "fewpick-toy", 4, None, value=1)
    with pytest.raises(InputError, match="file format 4"):
        modelfile.load(newer, "fewpick-toy", 3, "toy model", steps)


def test_a_first_version_pu_file_keeps_the_settings_it_was_used_with():
    from fewpick.pickers.pu.files import from_version_1

    old = {"format_version": 1, "settings": {"diameter": 36.0}}  # before the finest binning and the edge band
    s = from_version_1(old)["settings"]
    assert s["bin_factor"] == 2 and s["min_distance"] == 1.0 and s["edge_margin"] == 0.0  # 36 / 16 rounds to 2
    newer = {"format_version": 1, "settings": {"diameter": 36.0, "edge_margin": 0.2, "min_distance": 0.5}}
    s = from_version_1(newer)["settings"]
    assert s.get("bin_factor") is None and s["min_distance"] == 0.5 and s["edge_margin"] == 0.2
    assert pu.PUSettings(**s).geometry().factor == 3  # the finest binning: 36 px to 12 px
