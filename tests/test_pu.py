"""The positive-unlabeled picker: losses, class prior, training, model files, resume, bad input."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fewpick.cli import app
from fewpick.errors import InputError
from fewpick.evaluate import evaluate
from fewpick.io import Image, make_picks, read_picks, write_mrc, write_picks
from fewpick.losses import ge_binomial_penalty, pu_loss
from fewpick.nn.dense import dense_logits
from fewpick.ops.peaks import auto_min_distance, nms, rank_close_last
from fewpick.pickers import pu
from fewpick.pickers.pu import correlation as pu_correlation, model as pu_model
from fewpick.pickers.threshold import Count
from fewpick.simulate import SimpleMicrographConfig, simulate_simple_micrograph


def test_pn_upu_nnpu_hand_computed():
    z_pos = torch.tensor([0.0, 0.0])  # L(g,1) = L(g,0) = log 2
    z_unl = torch.tensor([0.0, 0.0, 0.0])
    ln2 = math.log(2)
    assert pu_loss(z_pos, z_unl, 0.2, "pn").item() == pytest.approx(0.2 * ln2 + 0.8 * ln2)
    assert pu_loss(z_pos, z_unl, 0.2, "upu").item() == pytest.approx(0.2 * ln2 - 0.2 * ln2 + ln2)
    # positives scored high, unlabeled scored low (over-fitting): the estimated negative risk
    # E_U[L(g,0)] - pi E_P[L(g,0)] goes below zero; uPU follows it, nnPU clamps it at 0
    z_pos, z_unl = torch.tensor([8.0]), torch.tensor([-8.0] * 4)
    small = math.log1p(math.exp(-8))
    upu = pu_loss(z_pos, z_unl, 0.4, "upu").item()
    nnpu = pu_loss(z_pos, z_unl, 0.4, "nnpu").item()
    assert upu == pytest.approx(0.4 * small - 0.4 * (8 + small) + small, rel=1e-4) and upu < -3
    assert nnpu == pytest.approx(0.4 * small, rel=1e-4)
    assert pu_loss(z_pos, z_unl, 0.4, "nnpu", slack=1.0).item() == pytest.approx(0.4 * small - 1.0, rel=1e-4)
    with pytest.raises(ValueError):
        pu_loss(z_pos, z_unl, 0.4, "magic")


def test_ge_criteria_prefer_mean_prediction_equal_to_pi():
    pi = 0.08
    logit = math.log(pi / (1 - pi))
    kl_at = pu_loss(torch.tensor([10.0]), torch.full((500,), logit), pi, "ge-kl").item()
    assert kl_at == pytest.approx(math.log1p(math.exp(-10)), abs=1e-5)  # KL term vanishes
    values = {s: ge_binomial_penalty(torch.full((2000,), logit + s), pi).item() for s in (-1.0, -0.3, 0.0, 0.3, 1.0)}
    assert min(values, key=values.get) == 0.0
    assert values[-1.0] > values[-0.3] > values[0.0] < values[0.3] < values[1.0]


def test_class_prior_counts_a_disk_in_2d():
    # radius 3 px disk = 29 px; 100 particles on 200x250 binned px
    assert pu.class_prior(100, 3.0, [(200, 250)]) == pytest.approx(100 * 29 / 50000)


@pytest.fixture(scope="module")
def sim_set():
    cfg = SimpleMicrographConfig(size=(512, 512), diameter=40, n_particles=40, snr=0.005)
    ims, truths = [], []
    for i in range(3):
        img, c, _ = simulate_simple_micrograph(cfg, seed=200 + i)
        ims.append(Image(img, 2.0, Path(f"m{i}.mrc")))
        truths.append(make_picks(f"m{i}", c[:, 0], c[:, 1]))
    return ims, truths


@pytest.fixture(scope="module")
def trained(sim_set, tmp_path_factory):
    ims, truths = sim_set
    out = tmp_path_factory.mktemp("model") / "picker.pt"
    settings = pu.PUSettings(diameter=40, expected_particles=40, steps=240, steps_per_epoch=80, method="ge-kl")
    # from random weights: on these synthetic blobs the general model counts 65–87 of their 40, and it starts a
    # network where it ranks them (test_general.py covers that start)
    model = pu.train(ims[:2], truths[0].iloc[:20], settings, out, val_images=ims[2:], val_labels=truths[2], init="none")
    return model, out


def test_training_from_20_labels_learns_to_pick(sim_set, trained):
    ims, truths = sim_set
    model, _ = trained
    picks = pu.pick_images(model, ims[2:], threshold=-1e9)
    r = evaluate(picks, truths[2], radius=20)
    assert r["auprc"] >= 0.75, r["auprc"]
    assert len(model.history) == 3 and "val_auprc" in model.history[-1]
    assert model.history[-1]["loss"] < model.history[0]["loss"]


def test_model_file_round_trip_and_version_check(sim_set, trained, tmp_path):
    ims, _ = sim_set
    model, path = trained
    loaded = pu.load_model(path)
    a = pu.pick_images(model, ims[2:], threshold=-1e9)
    b = pu.pick_images(loaded, ims[2:], threshold=-1e9)
    np.testing.assert_allclose(a[["x", "y", "score"]].to_numpy(), b[["x", "y", "score"]].to_numpy(), rtol=1e-5)
    assert loaded.settings.diameter == 40 and loaded.pi == pytest.approx(model.pi)
    bundle = torch.load(path, weights_only=True)
    bundle["format_version"] = 99
    torch.save(bundle, tmp_path / "future.pt")
    with pytest.raises(InputError, match=r"future\.pt: PU picker model file format 99 .* train it again"):
        pu.load_model(tmp_path / "future.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match=r"junk\.pt: not a fewpick PU picker model file"):
        pu.load_model(tmp_path / "junk.pt")


def test_resume_continues_from_the_checkpoint(sim_set, tmp_path):
    ims, truths = sim_set
    settings = pu.PUSettings(diameter=40, expected_particles=40, steps_per_epoch=20, method="nnpu", seed=3, steps=40)
    straight = pu.train(ims[:1], truths[0].iloc[:10], settings, tmp_path / "a.pt")

    def interrupt(entry):
        if entry["step"] == 20:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C after the first checkpoint

    with pytest.raises(KeyboardInterrupt):
        pu.train(ims[:1], truths[0].iloc[:10], settings, tmp_path / "b.pt", progress=interrupt)
    assert (tmp_path / "b.pt.ckpt").exists() and not (tmp_path / "b.pt").exists()
    resumed = pu.train(ims[:1], truths[0].iloc[:10], settings, tmp_path / "b.pt", resume=True)
    assert [h["step"] for h in resumed.history] == [20, 40]
    for k, v in straight.net.state_dict().items():
        torch.testing.assert_close(v, resumed.net.state_dict()[k], rtol=1e-4, atol=1e-5)
    assert not (tmp_path / "b.pt.ckpt").exists()  # the model is written: its checkpoint is no longer needed
    with pytest.raises(InputError, match="no checkpoint"):
        pu.train(ims[:1], truths[0].iloc[:10], settings, tmp_path / "d.pt", resume=True)
    with pytest.raises(KeyboardInterrupt):
        pu.train(ims[:1], truths[0].iloc[:10], settings, tmp_path / "c.pt", progress=interrupt)
    other = pu.PUSettings(**{**settings.__dict__, "method": "pn"})
    with pytest.raises(InputError, match="other settings"):
        pu.train(ims[:1], truths[0].iloc[:10], other, tmp_path / "c.pt", resume=True)


def test_training_can_start_from_another_models_weights(sim_set, tmp_path):
    """``init``: the network starts from a trained model's weights (a learning rate of ~0 leaves them there);
    a different network is refused; other widths and block layouts build and save."""
    ims, truths = sim_set
    s = pu.PUSettings(diameter=40, expected_particles=40, steps=20, steps_per_epoch=20, seed=2)
    first = pu.train(ims[:1], truths[0].iloc[:10], s, tmp_path / "a.pt")
    still = pu.train(ims[1:2], truths[1].iloc[:5], replace(s, lr=1e-12, seed=5), tmp_path / "b.pt",
                     init=tmp_path / "a.pt")
    for k, v in first.net.state_dict().items():
        if v.dtype.is_floating_point and "running" not in k:  # batch-norm statistics follow the new data
            torch.testing.assert_close(still.net.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    other = replace(s, width=24, dilations=(1, 2, 4), binned_diameter=12.0)
    with pytest.raises(InputError, match="network differs"):
        pu.train(ims[:1], truths[0].iloc[:10], other, tmp_path / "c.pt", init=first)
    small = pu.train(ims[:1], truths[0].iloc[:10], other, tmp_path / "c.pt")
    assert small.net.receptive_field == 5 + 4 * 7 and small.factor == 4  # 40 px → at most 12 px: ×4 (10 px)
    assert first.factor == 3 and first.settings.bin_factor == 3  # the default: at most 16 px (13.3), stored
    assert pu.load_model(tmp_path / "c.pt").net.receptive_field == small.net.receptive_field


def test_bad_training_input(sim_set, tmp_path):
    ims, truths = sim_set
    s = pu.PUSettings(diameter=40, expected_particles=40, steps=1)
    with pytest.raises(InputError, match=r"labels\.star: x=600 .* lies outside"):
        pu.train(ims[:1], make_picks("m0", [600.0], [10.0]), s, tmp_path / "m.pt", labels_source="labels.star")
    with pytest.raises(InputError, match=r"labels name micrograph 'other', which is not among the images given"):
        pu.train(ims[:1], make_picks("other", [10.0], [10.0]), s, tmp_path / "m.pt")
    with pytest.raises(InputError, match=r"outside \(0, 0.5\)"):
        pu.train(ims[:1], truths[0], pu.PUSettings(diameter=40, expected_particles=20000, steps=1), tmp_path / "m.pt")
    with pytest.raises(InputError, match="larger than the smallest micrograph"):
        pu.train(ims[:1], truths[0], pu.PUSettings(diameter=600, expected_particles=5, steps=1), tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_cli_train_and_pick_with_model(sim_set, tmp_path):
    ims, truths = sim_set
    for im in ims:
        write_mrc(tmp_path / f"{im.name}.mrc", im.data, 2.0)
    write_picks(truths[0].iloc[:15], tmp_path / "labels.star")
    runner = CliRunner()
    r = runner.invoke(app, ["train", str(tmp_path / "m0.mrc"), str(tmp_path / "m1.mrc"), "--labels",
                            str(tmp_path / "labels.star"), "-d", "40", "-n", "40", "--steps", "60", "--out",
                            str(tmp_path / "picker.pt"), "--method", "ge-kl"])
    assert r.exit_code == 0, r.output
    # the model is written; its checkpoint, which only serves --resume of an interrupted run, is gone
    assert (tmp_path / "picker.pt").exists() and not (tmp_path / "picker.pt.ckpt").exists()
    assert pu.load_model(tmp_path / "picker.pt", "cpu").agreement is not None  # the rotational average was tested
    r = runner.invoke(app, ["train", str(tmp_path / "m0.mrc"), "--labels", str(tmp_path / "labels.star"), "-d", "40",
                            "-n", "40", "--steps", "10", "--no-correlation", "--edge-margin", "0.5", "--out",
                            str(tmp_path / "plain.pt")])
    assert r.exit_code == 0, r.output
    assert "no picks within 20 px of the edge" in " ".join(r.output.split())  # half of 40 px, said in the summary
    plain = pu.load_model(tmp_path / "plain.pt", "cpu")
    assert plain.agreement is None and not plain.uses_correlation and not plain.settings.correlation
    assert plain.settings.edge_margin == 0.5
    r = runner.invoke(app, ["pick", str(tmp_path / "m2.mrc"), "--model", str(tmp_path / "picker.pt"), "-t", "-1e9",
                            "--out", str(tmp_path / "picks.star")])
    assert r.exit_code == 0, r.output
    assert len(read_picks(tmp_path / "picks.star")) > 20
    r = runner.invoke(app, ["train", str(tmp_path / "m0.mrc"), "--labels", str(tmp_path / "labels.star"), "-d", "40",
                            "--pi", "0.7", "--out", str(tmp_path / "bad.pt")])
    assert r.exit_code == 2 and "outside (0, 0.5)" in r.output and not (tmp_path / "bad.pt").exists()


def test_a_count_too_large_for_the_micrographs_names_its_source(tmp_path, monkeypatch):
    """Where the general model's count (no --expected-particles) leaves no room, the error says who counted and
    what to give instead of the class prior's bounds."""
    import importlib

    pu_train = importlib.import_module("fewpick.pickers.pu.train")  # the module (the package exports its function)

    cfg = SimpleMicrographConfig(size=(256, 256), diameter=40.0, n_particles=10, snr=0.5)
    image, centres, _ = simulate_simple_micrograph(cfg, seed=3)
    labels = make_picks("m", centres[:5, 0], centres[:5, 1])
    monkeypatch.setattr(pu_train, "counted_particles", lambda *a, **k: 5000.0)
    with pytest.raises(InputError, match="general particle model counted about 5000 particles per micrograph"):
        pu.train([Image(image.astype(np.float32), 1.0, Path("m.mrc"))], labels, pu.PUSettings(diameter=40.0, steps=1),
                 tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_minimum_distance_follows_how_crowded_the_micrographs_are():
    # 544 particles of radius 9 binned px on 512² (a crowded real set): random spacing 11 px < 1.5 r
    assert auto_min_distance(544, 512 * 512, 9.0) == 0.5
    # 83 particles of radius 8.2 on 455² (sparse): spacing 25 px, 3 radii
    assert auto_min_distance(83, 455 * 455, 8.2) == 1.0
    # in between it moves linearly with the spacing: spacing 1.75 r gives 0.75
    assert auto_min_distance(100, (2 * 1.75 * 10) ** 2 * 100, 10.0) == pytest.approx(0.75)
    assert auto_min_distance(0, 100.0, 1.0) == 1.0
    # a lower floor (the PU picker's: its label radius) reaches further only on crowded micrographs
    assert auto_min_distance(544, 512 * 512, 9.0, floor=0.3) == pytest.approx(0.3)
    assert auto_min_distance(100, (2 * 1.4 * 10) ** 2 * 100, 10.0, floor=0.3) == pytest.approx(0.4)
    assert auto_min_distance(83, 455 * 455, 8.2, floor=0.3) == 1.0
    # the PU picker's floor is its label radius: 544 particles of 36 px on a 1024² micrograph binned by 3
    s = pu.PUSettings(diameter=36.0)
    assert s.crowded_min_distance(544, 341 * 341) == pytest.approx(s.label_radius() / s.geometry().radius()) == 0.3
    assert s.crowded_min_distance(20, 341 * 341) == 1.0


def test_two_picks_never_share_a_particle_and_touching_ones_are_both_picked(trained, monkeypatch):
    """Two score peaks 0.45 diameters apart are one pick by default (picks lie at least a radius apart); when
    picks may lie half a radius apart, the second is ranked after every other (closer than two thirds of a
    diameter to a better one), so that only a very low cut keeps it; peaks a diameter apart (touching particles) are two picks, even where
    the stronger one's flank rises above the weaker one's centre."""
    model, _ = trained
    assert model.settings.min_distance == 1.0  # 40 particles on 512² are sparse
    f = model.factor
    yy, xx = np.mgrid[:128, :128].astype(np.float32)
    sep = 0.45 * model.settings.diameter / f  # binned px
    peaks = [(64.0, 50.0), (64.0, 50.0 + sep)]
    fake = sum(np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0) for y, x in peaks).astype(np.float32) * 5 - 2
    monkeypatch.setattr(pu_model, "dense_logits", lambda net, binned, amp=False: fake[: binned.shape[0], : binned.shape[1]])
    data = np.random.default_rng(0).standard_normal((128 * f, 128 * f)).astype(np.float32)
    monkeypatch.setattr(model, "template", None)  # the peaks as the network gives them, not centred on particles
    try:
        model.settings.min_distance = 0.5
        assert len(pu.pick_micrograph(model, data, "m", threshold=0.0)) == 1  # the default spacing: a radius
        model.settings.spacing = 0.5  # picks may lie half a radius apart, but one so close to a better one is
        assert len(pu.pick_micrograph(model, data, "m", threshold=0.0)) == 1  # ranked after every other pick
        picks = pu.pick_micrograph(model, data, "m", threshold=-1e9)
        picks = picks[(abs(picks.y / f - 64) < 2) & (abs(picks.x / f - 50 - sep / 2) < sep)]  # the two bumps
        assert len(picks) == 2 and picks.score.iloc[1] < 0 < picks.score.iloc[0]  # below the background's -2 + 1
        np.testing.assert_allclose(sorted(picks.x / f), [50.0, 50.0 + sep], atol=0.6)
        model.settings.spacing = 1.0
        d = model.settings.diameter / f  # touching: a strong particle and a weak one a diameter apart
        touching = (np.exp(-((yy - 64) ** 2 + (xx - 40) ** 2) / (0.5 * d * d)) * 8
                    + np.exp(-((yy - 64) ** 2 + (xx - 40 - d) ** 2) / 8.0) * 3 - 2).astype(np.float32)
        fake[...] = touching
        picks = pu.pick_micrograph(model, data, "m", threshold=0.0)
        assert len(picks) == 2
        np.testing.assert_allclose(sorted(picks.x / f), [40.0, 40.0 + d], atol=1.0)
        model.settings.min_distance = 1.0  # local maxima over a whole radius: the weak one is no peak at all
        assert len(pu.pick_micrograph(model, data, "m", threshold=0.0)) == 1
    finally:
        model.settings.min_distance, model.settings.spacing = 1.0, 1.0


def test_edge_band_comes_from_labels_that_leave_the_edges_empty():
    """Labels that keep 60 px from the edges of 1000² micrographs (D = 40): particles spread evenly would put 15 % of
    them within 40 px, so 200 such labels ask for a band of 60 − 20 px = half a diameter (at most one diameter less a
    radius); 15 labels say nothing; a label at the edge asks for nothing."""
    rng = np.random.default_rng(0)
    shapes = {"a": (1000, 1000), "b": (1000, 1000)}

    def labels(n, lo, name):
        xy = rng.uniform(lo, 999 - lo, (n, 2))
        return make_picks(name, xy[:, 0], xy[:, 1])

    many = {"a": labels(100, 60, "a"), "b": labels(100, 60, "b")}
    dmin = min(float(np.minimum.reduce([t.x, t.y, 999 - t.x, 999 - t.y]).min()) for t in many.values())
    assert pu.label_edge_margin(many, shapes, 40.0) == pytest.approx(0.5)  # dmin ≥ 60 > D: capped at D − r
    near = {"a": labels(100, 30, "a"), "b": labels(100, 30, "b")}
    dnear = min(float(np.minimum.reduce([t.x, t.y, 999 - t.x, 999 - t.y]).min()) for t in near.values())
    assert pu.label_edge_margin(near, shapes, 40.0) == pytest.approx((dnear - 20) / 40)
    assert dmin >= 60 and 30 <= dnear < 40
    assert pu.label_edge_margin({"a": labels(15, 60, "a")}, shapes, 40.0) == 0.0  # 2.3 expected in the band
    edge = {"a": labels(200, 60, "a")}
    edge["a"].loc[0, ["x", "y"]] = [3.0, 500.0]
    assert pu.label_edge_margin(edge, shapes, 40.0) == 0.0


def test_picks_in_the_edge_band_are_dropped(trained, monkeypatch):
    """Score peaks 2 binned px and half a diameter + 5 px from the left edge: with a band of half a diameter the
    inner one stays."""
    model, _ = trained
    f = model.factor
    band = 0.5 * model.settings.diameter / f
    yy, xx = np.mgrid[:128, :128].astype(np.float32)
    peaks = [(64.0, 2.0), (64.0, band + 5.0), (30.0, 64.0)]  # farther apart than the suppression radius
    fake = sum(np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 4.0) for y, x in peaks).astype(np.float32) * 5 - 2
    monkeypatch.setattr(pu_model, "dense_logits", lambda net, binned, amp=False: fake[: binned.shape[0], : binned.shape[1]])
    monkeypatch.setattr(model, "template", None)
    data = np.random.default_rng(0).standard_normal((128 * f, 128 * f)).astype(np.float32)
    monkeypatch.setattr(model.settings, "edge_margin", 0.0)
    assert len(pu.pick_micrograph(model, data, "m", threshold=0.0)) == 3
    monkeypatch.setattr(model.settings, "edge_margin", 0.5)
    picks = pu.pick_micrograph(model, data, "m", threshold=0.0)
    assert len(picks) == 2 and picks.x.min() / f > band
    assert "no picks within 20 px of the edge" in pu.model_summary(model)


def test_scoring_network_has_the_trained_networks_logits_and_follows_its_weights():
    """Scoring folds each batch normalisation into its convolution: the same logits as the network as trained on
    the micrograph with its edge pixels repeated outwards (mirrored where asked), and a change of weights (further
    training) is seen at the next score map."""
    torch.manual_seed(0)
    net = pu.build_network(pu.PUSettings(diameter=36.0))
    for m in net.modules():  # statistics far from the identity, so that an unfolded one would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    img = np.random.default_rng(0).normal(size=(300, 420)).astype(np.float32)
    h = net.receptive_field // 2
    with torch.inference_mode():
        ref = net.eval()(torch.from_numpy(np.pad(img, h, mode="edge"))[None, None])[0, 0, h:-h, h:-h].numpy()
        mirrored = net(torch.from_numpy(np.pad(img, h, mode="reflect"))[None, None])[0, 0, h:-h, h:-h].numpy()
    out = dense_logits(net, img)
    assert np.abs(ref).max() > 1 and np.allclose(out, ref, atol=1e-4)
    assert np.allclose(dense_logits(net, img, pad="reflect"), mirrored, atol=1e-4)
    assert not np.allclose(out[:, :3], mirrored[:, :3], atol=1e-2)  # the two differ near the edges
    with torch.no_grad():
        net.head.bias += 1.0
    assert np.allclose(dense_logits(net, img), ref + 1.0, atol=1e-4)
    net.train()
    dense_logits(net, img)
    assert net.training and net.blocks[0].bn1.training  # scoring leaves the network's mode alone


def test_round_particles_are_centred_and_rescored_on_the_labels_rotational_average(sim_set, trained, tmp_path,
                                                                                     monkeypatch):
    """Where the network's best training peaks and the correlation's agree, the model keeps the labels'
    rotational average; picks then sit on the particles' centres; the file keeps it all."""
    ims, truths = sim_set
    model, path = trained
    assert 0.5 < model.agreement < 1.0  # measured on these (round) particles
    monkeypatch.setattr(pu_correlation, "AGREEMENT", 0.5)
    model = pu.refit(pu.load_model(path, "cpu"), ims[:2], truths[0].iloc[:20])
    assert model.uses_correlation and model.correlation_weight > 0
    assert model.template.shape[0] % 2 == 1 and model.template.shape[0] >= 1.2 * 40 / model.factor
    assert "rescored on the labels' rotational average" in pu.model_summary(model)
    picks = pu.pick_images(model, ims[2:], Count(40))  # the count given (the default may keep the general model's)
    r = evaluate(picks, truths[2], radius=20)
    assert r["all_picks"]["f1"] >= 0.8, r["all_picks"]
    # each pick sits on the best correlation near its network peak: the 40 best correlate better than the
    # network's own 40 best peaks do
    corr = pu.correlation_map(pu.prepare(ims[2].data, model.factor), model.template, model.settings)

    def correlation_at(table):
        yx = np.round(table.nlargest(40, "score")[["y", "x"]].to_numpy() / model.factor).astype(int)
        return corr[np.clip(yx[:, 0], 0, corr.shape[0] - 1), np.clip(yx[:, 1], 0, corr.shape[1] - 1)].mean()

    network_only = pu.pick_images(pu.load_model(path, "cpu"), ims[2:], threshold=-1e9)
    assert correlation_at(picks) > correlation_at(network_only) + 0.02, (correlation_at(picks),
                                                                        correlation_at(network_only))
    pu.save_model(model, tmp_path / "round.pt")
    loaded = pu.load_model(tmp_path / "round.pt", "cpu")
    np.testing.assert_array_equal(loaded.template, model.template)
    assert loaded.correlation_weight == pytest.approx(model.correlation_weight) and loaded.agreement == model.agreement
    again = pu.pick_images(loaded, ims[2:], Count(40))
    np.testing.assert_allclose(again[["x", "y", "score"]].to_numpy(), picks[["x", "y", "score"]].to_numpy(), rtol=1e-5)
    # a file from before (no template, weight, agreement or edge band; the binning then to the nearest 16 px)
    # picks with the network's peaks alone, everywhere, at its old binning
    bundle = torch.load(tmp_path / "round.pt", weights_only=True)
    for k in ("template", "correlation_weight", "agreement"):
        del bundle[k]
    del bundle["settings"]["edge_margin"]
    bundle["settings"]["bin_factor"] = None
    bundle["format_version"] = 1
    torch.save(bundle, tmp_path / "old.pt")
    old = pu.load_model(tmp_path / "old.pt", "cpu")
    assert not old.uses_correlation and old.agreement is None
    assert old.settings.edge_band() == 0 and old.factor == 2 != model.factor  # 40 px: ×2 (20 px), now ×3
    plain = pu.pick_images(old, ims[2:3], threshold=-1e9)
    coords, scores = nms(pu.score_map(old, ims[2].data)[0], old.settings.suppression_radius(), -np.inf)
    _, scores = rank_close_last(coords, scores, old.close_radius())
    assert len(plain) == len(scores) and np.allclose(np.sort(plain.score.to_numpy()), np.sort(scores), atol=1e-5)


def test_the_rotational_average_is_left_out_where_it_disagrees_with_the_network(sim_set, tmp_path, monkeypatch):
    """Below the agreement bar the model picks with the network's peaks and logits alone; without the test
    (``correlation=False``) nothing is measured."""
    ims, truths = sim_set
    base = dict(diameter=40, expected_particles=40, steps=30, steps_per_epoch=10)
    off = pu.train(ims[:1], truths[0].iloc[:10], pu.PUSettings(**base, correlation=False), tmp_path / "off.pt")
    assert off.agreement is None and not off.uses_correlation
    monkeypatch.setattr(pu_correlation, "AGREEMENT", 1.01)  # no agreement reaches it
    gated = pu.train(ims[:1], truths[0].iloc[:10], pu.PUSettings(**base), tmp_path / "gated.pt")
    assert gated.agreement is not None and not gated.uses_correlation and gated.template is None
    assert "rotational average not used" in pu.model_summary(gated)
    loaded = pu.load_model(tmp_path / "gated.pt", "cpu")
    picks = pu.pick_images(loaded, ims[2:3], threshold=-1e9)
    coords, scores = nms(pu.score_map(loaded, ims[2].data)[0], loaded.settings.suppression_radius(), -np.inf)
    coords, scores = rank_close_last(coords, scores, loaded.close_radius())
    np.testing.assert_allclose(picks.score.to_numpy(), scores, rtol=1e-5)
    np.testing.assert_allclose(picks[["y", "x"]].to_numpy() / loaded.factor, coords, atol=0.6)
