"""The shared training loop (fewpick.training), the geometry object and the picker contract."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fewpick.errors import InputError
from fewpick.geometry import Geometry, choose_binning
from fewpick.io import Image, make_picks, read_volume, write_mrc
from fewpick.pickers import ClassicPicker, ClassicSettings, Picker, pick_micrograph, registry
from fewpick.pickers.threshold import Auto, Calibrated, Count, Fixed
from fewpick.simulate import SimpleMicrographConfig, simulate_simple_micrograph
from fewpick.training import fit, seeded


def _problem(seed: int = 0):
    """A noisy linear regression: the loop must drive its loss down; the draws come from the generators."""
    rng, gen = seeded(seed)
    net = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    w = torch.tensor([[1.0, -2.0, 0.5, 3.0]])

    def step(_):
        x = torch.from_numpy(rng.normal(size=(16, 4)).astype(np.float32))
        noise = 0.01 * torch.randn(16, 1, generator=gen)
        err = net(x) - (x @ w.T + noise)
        return {"loss": (err**2).mean(), "abs": err.abs().mean()}

    return net, opt, sched, rng, gen, step


def _tiny_tomogram(folder: Path, seed: int):
    """A small simulated tomogram (read back from its MRC file), 4 of its ribosomes as labels, their diameter."""
    from fewpick.simulate.tomogram import TOMO_PRESETS, simulate_tomogram

    preset = replace(TOMO_PRESETS["easy"], shape=(40, 96, 96), n_particles=6, n_filaments=(0, 0),
                     species=("ribosome",))
    sim = simulate_tomogram(preset, seed=seed, name="t0")
    write_mrc(folder / "t0.mrc", sim.tomogram, sim.voxel_size)
    t = sim.truth
    return read_volume(folder / "t0.mrc"), make_picks("t0", t.x, t.y, t.z).iloc[:4], float(t.diameter_px.iloc[0])


def test_fit_learns_and_reports_each_epoch():
    net, opt, sched, rng, gen, step = _problem()
    seen = []
    history = fit(net, opt, step, steps=50, every=20, sched=sched, generators=(rng, gen), extra={"stage": "x"},
                  progress=seen.append, validate=lambda: {"w0": float(net.weight[0, 0].detach())})
    assert [h["step"] for h in history] == [20, 40, 50]  # and one after the last step
    assert history[-1]["loss"] < 0.1 * history[0]["loss"] and history[-1]["stage"] == "x"
    assert abs(history[-1]["w0"] - 1.0) < 0.1 and not net.training
    assert [s["eta_s"] for s in seen][-1] == 0 and seen[0]["eta_s"] > 0
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**5)


def test_fit_mean_and_last_and_epoch_index():
    losses = iter(torch.arange(1.0, 7.0, requires_grad=True))  # 1 … 6

    def step(_):
        v = next(losses)
        return {"loss": v * 1.0}

    net = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    assert [h["loss"] for h in fit(net, opt, step, steps=6, every=3)] == [2.0, 5.0]
    losses = iter(torch.arange(1.0, 7.0, requires_grad=True))
    h = fit(net, opt, step, steps=6, every=3, reduce="last", index="epoch")
    assert [(e["epoch"], e["loss"]) for e in h] == [(1, 3.0), (2, 6.0)]


def test_interrupted_fit_resumes_to_the_uninterrupted_weights(tmp_path):
    net, opt, sched, rng, gen, step = _problem()
    straight = fit(net, opt, step, steps=60, every=20, sched=sched, generators=(rng, gen))
    reference = {k: v.clone() for k, v in net.state_dict().items()}

    net, opt, sched, rng, gen, step = _problem()

    def stop(entry):
        if entry["step"] == 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(net, opt, step, steps=60, every=20, sched=sched, generators=(rng, gen), checkpoint=tmp_path / "c",
            config={"a": 1}, progress=stop)
    net, opt, sched, rng, gen, step = _problem(seed=5)  # other weights and draws: all come from the checkpoint
    resumed = fit(net, opt, step, steps=60, every=20, sched=sched, generators=(rng, gen), checkpoint=tmp_path / "c",
                  resume=True, config={"a": 1})
    assert [h["step"] for h in resumed] == [20, 40, 60]
    assert resumed[-1]["loss"] == pytest.approx(straight[-1]["loss"], rel=1e-5)
    for k, v in reference.items():
        torch.testing.assert_close(net.state_dict()[k], v)
    # another configuration: refused when asked for, ignored (a fresh start) with "auto"
    with pytest.raises(InputError, match="other settings"):
        fit(*_problem()[:2], _problem()[5], steps=60, every=20, checkpoint=tmp_path / "c", resume=True, config={"a": 2})
    net, opt, sched, rng, gen, step = _problem()
    fresh = fit(net, opt, step, steps=20, every=20, checkpoint=tmp_path / "c", resume="auto", config={"a": 2})
    assert [h["step"] for h in fresh] == [20]
    with pytest.raises(InputError, match="no checkpoint"):
        fit(net, opt, step, steps=20, every=20, checkpoint=tmp_path / "none", resume=True)


def test_geometry_conversions_and_radii():
    assert choose_binning(68) == 4 and Geometry.binned(68).factor == 4 and Geometry.binned(68, factor=2).factor == 2
    geo = Geometry.binned(64)
    assert geo.radius() == 8.0 and geo.radius(0.3, minimum=1.5) == pytest.approx(2.4) and geo.working_diameter == 16
    assert geo.radius(0.1, minimum=1.5) == 1.5 and geo.length(20.0) == 5.0
    scale = Geometry.scale((4000, 4100), (1000, 1025))
    yx = np.array([[10.0, 20.0], [999.0, 1024.0]])
    assert np.allclose(geo.to_working(geo.to_original(yx, scale), scale), yx)
    assert np.allclose(geo.to_original(yx, scale), yx * [4.0, 4.0])
    # block binning: a binned voxel stands for its block's centre
    block = Geometry.binned(30, 10, block=True)
    assert block.factor == 3 and np.allclose(block.to_original([[0, 0, 0], [2, 1, 0]]), [[1, 1, 1], [7, 4, 1]])
    assert np.allclose(block.to_working(block.to_original([[5.0, 6.0, 7.0]])), [[5, 6, 7]])
    few = Geometry.resampled(100, 1.2, 40)
    assert few.factor == pytest.approx(3.0) and Geometry.resampled(10, 1.2, 40).factor == 1.0
    assert few.shape((3000, 2999)) == (1000, 1000)


def check_threshold_contract(picker, image, calibrated, close_pick_free: bool = False):
    """One meaning of the threshold for every picker: a fixed score keeps peaks at or above it, ``auto`` is the
    picker's own rule on this image's peaks, ``calibrated`` the model's stored cut, None the model's default, and
    ``max_picks`` the best of what the cut keeps."""
    smap = picker.score_map(image)
    every_coords, every = picker.peaks(smap, -np.inf)
    assert len(every) > 5 and np.all(np.diff(every) <= 1e-6)  # best first
    middle = float(np.median(every))
    _, fixed = picker.peaks(smap, Fixed(middle))
    assert len(fixed) and (fixed >= middle).all() and np.allclose(fixed, every[every >= middle])
    _, same = picker.peaks(smap, str(middle))  # the plain spelling means the same
    assert np.array_equal(same, fixed)
    auto_coords, auto = picker.peaks(smap, "auto")
    # the rule is fitted to the peaks as they scored, before picks close to better ones were ranked last: what
    # it keeps is the best of the ranked list
    assert np.array_equal(auto, every[: len(auto)])
    if close_pick_free:  # nothing ranked last (classic and tomogram pickers): the rule on these peaks
        assert np.array_equal(auto, every[every >= picker.auto_rule(every)])
    capped_coords, capped = picker.peaks(smap, Auto(), max_picks=3)
    assert np.array_equal(capped, auto[:3]) and np.array_equal(capped_coords, auto_coords[:3])
    # count: on one image its best peaks; over images picked together, one score where the pooled peaks give it
    _, best = picker.peaks(smap, Count(4))
    assert np.array_equal(best, every[:4])
    assert picker.count_cut([image, image], 4) == pytest.approx(every[3])
    if calibrated is None:
        with pytest.raises(InputError, match="no calibrated threshold"):
            picker.peaks(smap, "calibrated")
    else:
        assert picker.calibrated_threshold() == pytest.approx(calibrated)
        _, cal = picker.peaks(smap, Calibrated())
        assert np.array_equal(cal, every[every >= calibrated])
    _, default = picker.peaks(smap)
    _, explicit = picker.peaks(smap, picker.default_threshold())
    assert np.array_equal(default, explicit)
    with pytest.raises(InputError, match="threshold"):
        picker.peaks(smap, "most")


def check_reloads(picker, path, image, kind):
    """A saved model is found by the registry from its file and picks exactly as before."""
    assert registry.kind_of(path).name == kind
    again = registry.load(path, "cpu")
    assert type(again) is type(picker) and again.default_threshold() == picker.default_threshold()
    a, b = picker.pick(image, -np.inf), again.pick(image, -np.inf)
    assert len(a) == len(b) and np.allclose(a[["x", "y"]].to_numpy(), b[["x", "y"]].to_numpy())
    assert np.allclose(a.score, b.score, atol=1e-5)


def test_every_picker_follows_the_contract(tmp_path):
    """Classic, PU, few-shot and tomogram models are Pickers: pick = score map → peaks → table, one threshold
    vocabulary with max_picks after the cut, and a saved model reloads through the registry to the same picks."""
    from fewpick.pickers import fewshot as fs, pu, tomo as T

    cfg = SimpleMicrographConfig(size=(320, 320), diameter=32, n_particles=20, snr=0.05)
    data, centres, _ = simulate_simple_micrograph(cfg, seed=11)
    image = Image(data, 2.0, Path("c0.mrc"))
    truth = make_picks("c0", centres[:, 0], centres[:, 1])
    inner = truth[truth.x.between(24, 296) & truth.y.between(24, 296)]
    classic = ClassicPicker(ClassicSettings(diameter=32))
    pu_model = pu.train([image], truth.iloc[:8], pu.PUSettings(diameter=32, expected_particles=20, steps=20,
                                                                steps_per_epoch=10), tmp_path / "pu.pt")
    fs_model = fs.train(image, inner.iloc[:8], fs.FewShotSettings(diameter=32, pretrain_steps=10, pretrain_batch=8,
                                                                   finetune_steps=10, distill_steps=0), tmp_path / "fs.pt")
    for picker in (classic, pu_model, fs_model):
        assert isinstance(picker, Picker)
        smap = picker.score_map(image)
        coords, scores = picker.peaks(smap, -1e9)
        picks = picker.pick(image, -1e9)
        assert len(picks) == len(scores) > 5 and (picks.micrograph == "c0").all()
        assert np.allclose(picks[["y", "x"]].to_numpy(), smap.to_original(coords))
        assert (picks.x.between(0, 320) & picks.y.between(0, 320)).all()
        check_threshold_contract(picker, image, picker.calibrated_threshold(), picker is classic)
    assert classic.calibrated_threshold() is None and classic.default_threshold() == Auto()
    # the expected count on the images picked for a model trained with one, as a guide (the gap between two clear
    # groups of scores near it); a few-shot model trained without one counted with the general model: its
    # calibrated cut, or the gap near that count; auto for a model with no count at all (a file from before the
    # count)
    assert pu_model.default_threshold() == Count(20.0, split=True)
    assert pu_model.resolve_threshold("count") == Count(20.0, split=True)
    assert fs_model.estimated_particles and fs_model.default_threshold() == Count(
        fs_model.estimated_particles, split=True, otherwise=fs_model.threshold)
    assert fs_model.resolve_threshold("count") == Count(fs_model.estimated_particles, split=True)
    uncounted = replace(fs_model, estimated_particles=None, threshold=None)
    assert uncounted.default_threshold() == Auto()
    with pytest.raises(InputError, match="without an expected particle count"):
        uncounted.resolve_threshold("count")
    check_reloads(pu_model, tmp_path / "pu.pt", image, "pu")
    check_reloads(fs_model, tmp_path / "fs.pt", image, "fewshot")
    pd_classic = pick_micrograph(data, ClassicSettings(diameter=32), "c0")
    assert np.allclose(pd_classic[["x", "y"]].to_numpy(), classic.pick(image)[["x", "y"]].to_numpy())
    assert np.allclose(pu.pick_micrograph(pu_model, data, "c0", -1e9).score, pu_model.pick(image, -1e9).score)
    assert len(pu_model.pick(image, -1e9, max_picks=3)) == 3

    vol, labels, diameter = _tiny_tomogram(tmp_path, seed=3)
    model = T.train([vol], labels, T.TomoSettings(diameter=diameter, epochs=1, steps_per_epoch=2, batch=2, box=24,
                                                  prior_epochs=0), out=tmp_path / "tomo.pt")
    assert isinstance(model, Picker)
    smap = model.score_map(vol)
    zyx, scores = model.peaks(smap, 0.0, max_picks=5)
    picks = model.pick(vol, 0.0, max_picks=5)
    assert len(picks) == len(scores) == 5 and "z" in picks
    assert np.allclose(picks[["z", "y", "x"]].to_numpy(), smap.to_original(zyx))
    check_threshold_contract(model, vol, model.calibrated_threshold(), close_pick_free=True)
    assert model.default_threshold() == Auto()  # trained without an expected count: 0.5 is no calibration
    check_reloads(model, tmp_path / "tomo.pt", vol, "tomo")


def test_tomogram_training_resumes_from_its_checkpoint(tmp_path):
    from fewpick.pickers import tomo as T

    vol, labels, diameter = _tiny_tomogram(tmp_path, seed=4)
    s = T.TomoSettings(diameter=diameter, epochs=2, steps_per_epoch=2, batch=2, prior_epochs=0, box=24, threads=1)
    straight = T.train([vol], labels, s)

    def stop(entry):
        if entry.get("epoch") == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        T.train([vol], labels, s, checkpoint=tmp_path / "m.ckpt", progress=stop)
    resumed = T.train([vol], labels, s, checkpoint=tmp_path / "m.ckpt", resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    for k, v in straight.net.state_dict().items():
        torch.testing.assert_close(resumed.net.state_dict()[k], v, rtol=1e-4, atol=1e-5)
    with pytest.raises(InputError, match="no checkpoint"):
        T.train([vol], labels, s, checkpoint=tmp_path / "other.ckpt", resume=True)


def test_tomogram_training_reports_from_its_first_step_and_resumes_after_the_prior(tmp_path, monkeypatch):
    """With the particle-count estimate on (12+ labels), progress starts at the estimate's first step with a time
    left for the whole run; a run killed after the estimate resumes without estimating again, to the same model."""
    from fewpick.pickers import tomo as T
    from fewpick.simulate.tomogram import TOMO_PRESETS, simulate_tomogram

    preset = replace(TOMO_PRESETS["easy"], shape=(40, 128, 128), n_particles=16, n_filaments=(0, 0),
                     species=("ribosome",))
    sim = simulate_tomogram(preset, seed=2, name="t0")
    write_mrc(tmp_path / "t0.mrc", sim.tomogram, sim.voxel_size)
    vol, t = read_volume(tmp_path / "t0.mrc"), sim.truth
    labels = make_picks("t0", t.x, t.y, t.z)
    assert len(labels) >= 12
    s = T.TomoSettings(diameter=float(t.diameter_px.iloc[0]), epochs=2, steps_per_epoch=2, batch=2, prior_epochs=1,
                       box=24, threads=1)
    seen = []
    straight = T.train([vol], labels, s, progress=seen.append)
    assert seen[0].get("first_step") and seen[0]["stage"] == "prior" and seen[0]["eta_s"] > 0
    assert [r.get("stage") for r in seen if "epoch" in r][:1] == ["prior"]
    assert any(r.get("first_step") and r.get("stage") is None for r in seen)  # the training's own first step

    def stop(entry):
        if entry.get("epoch") == 1 and entry.get("stage") is None:
            raise KeyboardInterrupt

    ckpt = tmp_path / "m.ckpt"
    with pytest.raises(KeyboardInterrupt):
        T.train([vol], labels, s, checkpoint=ckpt, progress=stop)
    assert Path(str(ckpt) + ".prior.json").is_file()

    def no_second_estimate(*a, **k):
        raise AssertionError("the estimate ran again on resume")

    monkeypatch.setattr(T.prior, "estimate_particles", no_second_estimate)
    resumed = T.train([vol], labels, s, checkpoint=ckpt, resume=True)
    assert resumed.particles == straight.particles and resumed.pi == pytest.approx(straight.pi)
    for k, v in straight.net.state_dict().items():
        torch.testing.assert_close(resumed.net.state_dict()[k], v, rtol=1e-4, atol=1e-5)


def test_load_picker_reads_any_model_file(tmp_path):
    from fewpick.pickers import load_picker, pu

    cfg = SimpleMicrographConfig(size=(256, 256), diameter=32, n_particles=12, snr=0.05)
    data, centres, _ = simulate_simple_micrograph(cfg, seed=2)
    image = Image(data, 2.0, Path("l0.mrc"))
    model = pu.train([image], make_picks("l0", centres[:, 0], centres[:, 1]).iloc[:6],
                     pu.PUSettings(diameter=32, expected_particles=12, steps=10, steps_per_epoch=10), tmp_path / "m.pt")
    again = load_picker(tmp_path / "m.pt", "cpu")
    assert isinstance(again, pu.PUModel) and np.allclose(again.pick(image).score, model.pick(image).score)
    (tmp_path / "junk.pt").write_text("not a model")
    with pytest.raises(InputError, match=r"junk\.pt: not a fewpick"):
        load_picker(tmp_path / "junk.pt")


def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    import re

    from fewpick.io import read_picks
    from fewpick.pickers import pu

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"### From Python.*?```python\n(.*?)```", text, re.S).group(1)
    cfg = SimpleMicrographConfig(size=(256, 256), diameter=32, n_particles=12, snr=0.05)
    (tmp_path / "mics").mkdir()
    for i in range(2):
        data, centres, _ = simulate_simple_micrograph(cfg, seed=20 + i)
        write_mrc(tmp_path / "mics" / f"mic_00{i + 1}.mrc", data, 2.0)
    image = Image(data, 2.0, Path("mic_002.mrc"))
    pu.train([image], make_picks("mic_002", centres[:, 0], centres[:, 1]).iloc[:6],
             pu.PUSettings(diameter=32, expected_particles=12, steps=10, steps_per_epoch=10), tmp_path / "picker.pt")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    one, every = read_picks(tmp_path / "mic_001.star"), read_picks(tmp_path / "picks.star")
    assert len(one) > 0 and set(every.micrograph) == {"mics/mic_001.mrc", "mics/mic_002.mrc"}  # paths, as RELION
    assert (tmp_path / "picks_micrographs" / "mic_002_pick.star").is_file()


def test_few_shot_training_resumes_and_the_cli_refuses_a_missing_checkpoint(tmp_path):
    from typer.testing import CliRunner

    from fewpick.cli import app
    from fewpick.io import write_picks
    from fewpick.pickers import fewshot as fs

    cfg = SimpleMicrographConfig(size=(288, 288), diameter=32, n_particles=16, snr=0.05)
    data, centres, _ = simulate_simple_micrograph(cfg, seed=5)
    write_mrc(tmp_path / "r0.mrc", data, 2.0)
    image = Image(data, 2.0, tmp_path / "r0.mrc")
    truth = make_picks("r0", centres[:, 0], centres[:, 1])
    ex = truth[truth.x.between(24, 264) & truth.y.between(24, 264)].iloc[:6]
    s = fs.FewShotSettings(diameter=32, pretrain_steps=100, pretrain_batch=8, finetune_steps=50, train_threads=1,
                           distill_steps=0)
    straight = fs.train(image, ex, s, tmp_path / "a.pt")

    def stop(entry):
        if entry["stage"] == "finetune" and entry["step"] == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fs.train(image, ex, s, tmp_path / "b.pt", progress=stop)
    assert (tmp_path / "b.pt.pretrain.ckpt").is_file() and (tmp_path / "b.pt.ckpt").is_file()
    resumed = fs.train(image, ex, s, tmp_path / "b.pt", resume=True)
    assert [h["step"] for h in resumed.history] == [25, 50]
    for k, v in straight.net.state_dict().items():
        torch.testing.assert_close(resumed.net.state_dict()[k], v, rtol=1e-4, atol=1e-5)

    write_picks(ex, tmp_path / "ex.star")
    runner = CliRunner()
    r = runner.invoke(app, ["fewshot", "train", str(tmp_path / "r0.mrc"), "--exemplars", str(tmp_path / "ex.star"),
                            "-d", "32", "--out", str(tmp_path / "c.pt"), "--resume"])
    assert r.exit_code == 2 and "c.pt.ckpt: no checkpoint to resume from" in " ".join(r.output.split())
    assert not (tmp_path / "c.pt").exists()
    for verb in (["train"], ["fewshot", "pretrain"], ["fewshot", "train"], ["tomo", "train"]):
        assert "--resume" in runner.invoke(app, [*verb, "--help"]).output
