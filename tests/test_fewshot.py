"""The few-shot (cryoMAE-class) picker: loss, shared sliding features, threshold, training, files, bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch
from scipy.spatial import cKDTree
from typer.testing import CliRunner

from fewpick.cli import app
from fewpick.errors import FewpickWarning, InputError
from fewpick.evaluate import evaluate
from fewpick.geometry import Geometry
from fewpick.io import Image, make_picks, read_picks, write_mrc, write_picks
from fewpick.losses.fewshot import scs_loss
from fewpick.nn.vit import MaskedAutoencoder, sincos_positions
from fewpick.ops.peaks import refine_peaks
from fewpick.ops.templates import draw_profile, ring_profile
from fewpick.ops.thresholds import threshold_knn_density
from fewpick.pickers import fewshot as fs
from fewpick.pickers.base import CLOSE_PICKS
from fewpick.pickers.threshold import Count
from fewpick.simulate import SimpleMicrographConfig, simulate_simple_micrograph


def test_scs_loss_hand_computed():
    # exemplars all along e0; unlabeled: one along e0 (a hidden particle), one along e1
    f_l = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    f_u = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    m, n, pi, alpha = 2, 2, 0.25, 0.5
    s_ll, s_lu, s_uu = 4.0, 2.0, 2.0  # sums of cosine similarities (diagonals included)
    plain = 1 + alpha * s_lu / (m * n) - (1 - alpha) * s_ll / m**2
    assert scs_loss(f_l, f_u, "unadjusted", pi, alpha).item() == pytest.approx(plain)
    s_self = (s_ll + 2 * pi * s_lu + pi**2 * s_uu) / (m + n) ** 2
    s_cross = ((1 - pi) * s_lu + pi * (1 - pi) * s_uu) / ((m + n) * n)
    assert scs_loss(f_l, f_u, "adjusted", pi, alpha).item() == pytest.approx(1 + alpha * s_cross - (1 - alpha) * s_self)
    assert scs_loss(f_l, f_u, "adjusted", pi, alpha, tau=5.0).item() == pytest.approx(5.0)  # the floor τ
    assert scs_loss(f_l, f_u, "none").item() == 0.0
    # well separated features score lower than mixed ones
    sep = scs_loss(f_l, torch.tensor([[0.0, 1.0], [0.0, 2.0]]), "adjusted", 0.0)
    mixed = scs_loss(f_l, torch.tensor([[1.0, 0.1], [1.0, -0.1]]), "adjusted", 0.0)
    assert sep < mixed


def test_positions_are_distinct_and_bounded():
    pos = sincos_positions(32, 4)
    assert pos.shape == (16, 32) and pos.abs().max() <= 1
    assert torch.cdist(pos, pos).fill_diagonal_(9).min() > 0.1


@pytest.mark.parametrize("norm", ["meanstd", "mean"])
def test_sliding_features_equal_cropped_windows(norm):
    torch.manual_seed(0)
    net = MaskedAutoencoder(size=12, patch=4, dim=32, depth=2, heads=4, norm=norm).eval()
    img = np.random.default_rng(1).normal(size=(40, 33)).astype(np.float32) * 3 + 1
    chunks = list(net.sliding_features(img, stride=2, rows_per_chunk=3))
    maps = np.concatenate([c.numpy() for _, c in chunks])
    ny, nx = (40 - 12) // 2 + 1, (33 - 12) // 2 + 1
    assert maps.shape == (ny, nx, 32) and [r for r, _ in chunks] == list(range(0, ny, 3))
    windows = np.stack([img[i * 2 : i * 2 + 12, j * 2 : j * 2 + 12] for i in range(ny) for j in range(nx)])
    with torch.no_grad():
        ref = net.features(torch.from_numpy(windows)[:, None]).numpy().reshape(ny, nx, 32)
    np.testing.assert_allclose(maps, ref, atol=2e-4)


def test_masked_forward_reconstructs_only_masked_patches():
    torch.manual_seed(0)
    net = MaskedAutoencoder(size=12, patch=4, dim=32, depth=1, heads=2)
    x = torch.randn(5, 1, 12, 12)
    mse, feats = net(x, 0.75, torch.Generator().manual_seed(0))
    assert feats.shape == (5, 32) and mse.ndim == 0 and mse.item() > 0
    mse.backward()
    assert net.embed.weight.grad is not None and net.dec_pred.weight.grad.abs().sum() > 0


def test_density_threshold_cuts_between_the_modes():
    rng = np.random.default_rng(0)
    particles = rng.normal(0.9, 0.03, 60)
    background = rng.normal(-0.5, 0.05, 400)
    cut = threshold_knn_density(np.concatenate([particles, background]), k=5)
    assert background.max() < cut <= particles.min() + 1e-9
    assert threshold_knn_density(np.array([0.1, 0.3])) == pytest.approx(0.2)  # too few: the median


def test_crowded_micrographs_narrow_the_suppression():
    s = fs.FewShotSettings(diameter=36)  # window 43 px -> 24 px: 1.8 original px per resampled px
    assert fs.crowded_suppress(s, (571, 571)) == 0.75  # no count: unchanged
    crowded = fs.FewShotSettings(diameter=36, expected_particles=544)  # a crowded 1024² micrograph
    assert fs.crowded_suppress(crowded, (571, 571)) == pytest.approx(0.375)
    sparse = fs.FewShotSettings(diameter=36, expected_particles=40)
    assert fs.crowded_suppress(sparse, (571, 571)) == 0.75


def test_refine_peaks_finds_the_parabola_vertex():
    yy, xx = np.mgrid[0:9, 0:9]
    scores = -((yy - 4.3) ** 2) - (xx - 3.8) ** 2
    out = refine_peaks(scores, np.array([[4, 4]]))
    np.testing.assert_allclose(out, [[4.3, 3.8]], atol=1e-9)


@pytest.fixture(scope="module")
def sim():
    cfg = SimpleMicrographConfig(size=(480, 480), diameter=32, n_particles=45, snr=0.05)
    ims, truths = [], []
    for i in range(2):
        img, c, _ = simulate_simple_micrograph(cfg, seed=300 + i)
        ims.append(Image(img, 2.0, Path(f"s{i}.mrc")))
        truths.append(make_picks(f"s{i}", c[:, 0], c[:, 1]))
    return ims, truths


def _inner(truth: pd.DataFrame, shape, margin: float) -> pd.DataFrame:
    keep = (truth.x > margin) & (truth.y > margin) & (truth.x < shape[1] - margin) & (truth.y < shape[0] - margin)
    return truth[keep]


def test_blob_centres_are_the_particles(sim):
    ims, truths = sim
    s = fs.FewShotSettings(diameter=32)
    img = fs.prepare(ims[0], s.scale)
    centres = fs.blob_centres(img, s)
    yx = s.geometry().to_original(centres, Geometry.scale(ims[0].shape, img.shape))
    r = evaluate(make_picks("s0", yx[:, 1], yx[:, 0]), truths[0], radius=16)["all_picks"]
    inner = _inner(truths[0], ims[0].shape, s.window / 2 + 2)  # blobs whose window leaves the image are dropped
    assert r["precision"] >= 0.9 and r["tp"] >= 0.85 * len(inner), (r, len(inner))
    assert centres.min() >= s.size / 2 and (centres < np.array(img.shape) - s.size / 2).all()


@pytest.fixture(scope="module")
def trained(sim, tmp_path_factory):
    ims, truths = sim
    # with the count, as a user who knows it: without one, the general particle model would count these
    # Gaussian blobs in white noise, which are nothing like a micrograph (it counts about twice as many)
    settings = fs.FewShotSettings(diameter=32, pretrain_steps=600, pretrain_batch=64, finetune_steps=120, seed=0,
                                  distill_steps=150, expected_particles=len(truths[0]))
    ex = _inner(truths[0], ims[0].shape, settings.window / 2 + 2).iloc[:10]
    out = tmp_path_factory.mktemp("fewshot") / "fewshot.pt"
    model = fs.train(ims[0], ex, settings, out, pretrain_images=ims)
    return model, out


def test_few_shot_picker_learns_from_10_exemplars(sim, trained):
    ims, truths = sim
    model, _ = trained
    every = fs.pick_images(model, ims[1:], threshold=-1e9)
    r = evaluate(every, truths[1], radius=16)
    assert r["auprc"] >= 0.75, r["auprc"]
    auto = fs.pick_images(model, ims[1:], threshold="auto")
    a = evaluate(auto, truths[1], radius=16)["all_picks"]
    assert a["f1"] >= 0.7, a
    assert model.history[-1]["stage"] == "finetune" and model.pretrained["steps"] == model.settings.pretrain_steps
    assert model.history[-1]["scs"] < model.history[0]["scs"]
    # the calibrated cut is set on the micrograph fine-tuning did not learn from: it keeps the count there
    calibrated = fs.pick_images(model, ims[1:], threshold="calibrated")
    assert len(calibrated) == pytest.approx(model.expected_count(), abs=1)


def test_a_second_pick_on_a_particle_follows_every_other(sim, trained):
    """Every pick closer than two thirds of a diameter to a better one is ranked after all the others; the picks
    in front lie at least that far apart; the automatic cut keeps none of those behind."""
    ims, _ = sim
    trained_model, _ = trained  # suppression within a quarter diameter leaves close peaks
    model = fs.FewShotModel(trained_model.net, replace(trained_model.settings, suppress=0.25), trained_model.exemplars,
                            trained_model.pixel_size)
    every = fs.pick_images(model, ims[1:2], threshold=-1e9)
    xy = every[["x", "y"]].to_numpy()
    reach = CLOSE_PICKS * model.settings.diameter
    # each pick's distance to the nearest pick ranked above it (1 % slack: the grid's x and y scales differ a hair)
    d = np.array([cKDTree(xy[:i]).query(xy[i])[0] if i else np.inf for i in range(len(xy))])
    front = int(np.argmax(d < 0.99 * reach))  # the first pick close to a better one: from there on, all are
    assert 0 < front < len(every) and (d[front:] < 1.01 * reach).all() and (d[:front] >= 0.99 * reach).all()
    assert every.score.iloc[front:].max() < every.score.iloc[:front].min()  # after every pick in front
    auto = fs.pick_images(model, ims[1:2], threshold="auto")
    assert 0 < len(auto) <= front and auto.score.min() > every.score.iloc[front:].max()


def test_centring_puts_picks_on_the_particle_centres(sim, trained):
    ims, truths = sim
    model, _ = trained

    def median_offset(centre: float) -> float:
        m = fs.FewShotModel(model.net, replace(model.settings, centre=centre), model.exemplars, model.pixel_size)
        picks = fs.pick_images(m, ims[1:], threshold=-1e9).iloc[:40]
        d, _ = cKDTree(truths[1][["x", "y"]].to_numpy()).query(picks[["x", "y"]].to_numpy())
        return float(np.median(d))

    centred, plain = median_offset(0.5), median_offset(0.0)
    assert centred <= 2.0 and centred < 0.8 * plain, (centred, plain)  # 1.7 against 2.25 px (D = 32 px)


def test_model_file_round_trip_cli_and_version_check(sim, trained, tmp_path):
    ims, truths = sim
    model, path = trained
    loaded = fs.load_model(path)
    a = fs.pick_images(model, ims[1:], threshold=-1e9)
    b = fs.pick_images(loaded, ims[1:], threshold=-1e9)
    np.testing.assert_allclose(a[["x", "y", "score"]].to_numpy(), b[["x", "y", "score"]].to_numpy(), atol=1e-5)
    write_mrc(tmp_path / "s1.mrc", ims[1].data, 2.0)
    runner = CliRunner()
    res = runner.invoke(app, ["fewshot", "pick", str(tmp_path / "s1.mrc"), "--model", str(path), "--out",
                              str(tmp_path / "p.star"), "--score-maps", str(tmp_path / "maps")])
    assert res.exit_code == 0, res.output
    cli = read_picks(tmp_path / "p.star")
    assert evaluate(cli, truths[1], radius=16)["all_picks"]["f1"] >= 0.7
    assert (tmp_path / "maps" / "s1_scores.mrc").exists()
    png = plt.imread(tmp_path / "maps" / "s1_scores.png")  # readable: ~1,200 px wide, the micrograph's aspect
    h, w = ims[1].shape
    assert png.shape[1] >= 1000 and abs(png.shape[0] / png.shape[1] - 0.9 * h / w) < 0.25
    # the colour bar: columns right of the map holding viridis' both ends (the map's own end before 0.84 of the width)
    low = (np.abs(png[..., :3] - np.array([0.267, 0.005, 0.329])).sum(-1) < 0.1).any(axis=0)
    high = (np.abs(png[..., :3] - np.array([0.993, 0.906, 0.144])).sum(-1) < 0.1).any(axis=0)
    assert np.flatnonzero(low & high).max() > 0.84 * png.shape[1]
    # the plain verb hands a few-shot model over
    res = runner.invoke(app, ["pick", str(tmp_path / "s1.mrc"), "--model", str(path), "--out", str(tmp_path / "q.star")])
    assert res.exit_code == 0, res.output
    assert len(read_picks(tmp_path / "q.star")) == len(cli)
    # --min-distance (a fraction of the particle radius) overrides the model's suppression radius
    counts = {}
    for md in ("0.2", "3"):
        res = runner.invoke(app, ["fewshot", "pick", str(tmp_path / "s1.mrc"), "--model", str(path), "-t", "-1e9",
                                  "--min-distance", md, "--out", str(tmp_path / f"md{md}.star")])
        assert res.exit_code == 0, res.output
        counts[md] = len(read_picks(tmp_path / f"md{md}.star"))
    assert counts["0.2"] > 2 * counts["3"], counts
    bundle = torch.load(path, weights_only=True)
    bundle["format_version"] = 7
    torch.save(bundle, tmp_path / "old.pt")
    with pytest.raises(InputError, match=r"old\.pt: few-shot picker model file format 7 .* train it again"):
        fs.load_model(tmp_path / "old.pt")
    with pytest.raises(InputError, match=r"pretrained encoder|pre-trained encoder file"):
        fs.load_pretrained(path)


def test_cli_pretrain_then_train_with_it(sim, tmp_path):
    ims, truths = sim
    for im in ims:
        write_mrc(tmp_path / f"{im.name}.mrc", im.data, 2.0)
    write_picks(_inner(truths[0], ims[0].shape, 30).iloc[:6], tmp_path / "ex.star")
    runner = CliRunner()
    res = runner.invoke(app, ["fewshot", "pretrain", str(tmp_path / "s0.mrc"), str(tmp_path / "s1.mrc"), "-d", "32",
                              "--steps", "20", "--out", str(tmp_path / "enc.pt")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["fewshot", "train", str(tmp_path / "s0.mrc"), "--exemplars", str(tmp_path / "ex.star"),
                              "-d", "32", "--pretrained", str(tmp_path / "enc.pt"), "--steps", "10", "--scs", "unadjusted", "--blobs", "0.25",
                              "--exemplar-count", "4", "-n", "30", "--distill-steps", "0", "--out", str(tmp_path / "m.pt")])
    assert res.exit_code == 0, res.output
    m = fs.load_model(tmp_path / "m.pt")
    assert len(m.exemplars) == 4 and m.settings.scs == "unadjusted" and m.settings.blobs == 0.25 and m.pretrained["steps"] == 20
    assert m.fast_net is None and not m.uses_fast()  # --distill-steps 0: the encoder scores every window
    assert m.pretrained["file"].endswith("enc.pt")
    # with an expected count the model stores its cut: the reference's k-th best pick, k the count given (30) or the
    # general model's where clearly larger: it counts the 45 particles of these sparse micrographs
    assert 40 <= m.general_count <= 50 and m.expected_count() == m.general_count
    ref_scores = fs.pick_images(m, ims[:1], threshold=-1e9).score.to_numpy()
    assert m.threshold == pytest.approx(ref_scores[int(round(m.general_count)) - 1], abs=1e-6)
    calibrated = fs.pick_images(m, ims[1:], threshold="calibrated")
    assert len(calibrated) == (fs.pick_images(m, ims[1:], threshold=-1e9).score >= m.threshold).sum() > 0
    assert calibrated.score.min() >= m.threshold
    # its default: the expected count on the micrographs picked (one image alone: its best k), a guide: where the
    # scores fall into two clear groups, the gap between them, which here finds the particles better than the
    # count given short of them
    default = fs.pick_images(m, ims[1:2])
    quota = fs.pick_images(m, ims[1:2], Count(30))
    assert len(quota) == 30 and 20 <= len(default) <= 45
    present = len(truths[1])
    assert abs(len(default) - present) <= abs(30 - present), (len(default), present)
    res = runner.invoke(app, ["fewshot", "pick", str(tmp_path / "s1.mrc"), "--model", str(tmp_path / "m.pt"),
                              "--out", str(tmp_path / "p.star")])
    said = " ".join(res.output.split())  # the cut says which it is
    assert res.exit_code == 0 and (f"the gap in their scores between particles and background, about {len(default)} "
                                   f"picks per micrograph ({m.expected_count():.0f} expected)") in said, res.output
    assert len(read_picks(tmp_path / "p.star")) == len(default)
    # a count three times short of the particles leaves the gap aside, and the sentence says where it lies
    from fewpick.batch import threshold_for_batch

    short = len(default) / 3
    far, said = threshold_for_batch(m, Count(short, split=True), ["s1"], lambda _: ims[1])
    assert len(fs.pick_images(m, ims[1:2], far)) == round(short), said
    assert (f"about {len(default)} picks per micrograph, too far from the {short:.0f} expected to be taken"
            in said), said
    assert len(fs.pick_images(m, ims[1:2], float(said.rsplit("pick with the threshold ", 1)[1]))) == len(default)


def _disk_window(size: int, cy: float, cx: float, radius: float, rng, noise: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    ring = np.exp(-((np.hypot(yy - cy, xx - cx) - radius) ** 2) / 2.0)  # a hollow particle: a ring
    return (ring + noise * rng.normal(size=(size, size))).astype(np.float32)


def test_exemplar_template_is_the_centred_particle():
    s = fs.FewShotSettings(diameter=20, window_ratio=1.2, size=24)  # particle 20 px across in 24 px windows
    rng = np.random.default_rng(0)
    c = 11.5
    offsets = rng.uniform(-2, 2, size=(15, 2))  # clicks up to 2 px off the centre
    ex = np.stack([_disk_window(24, c + dy, c + dx, 7.0, rng, 0.3) for dy, dx in offsets])
    template, mask_radius = fs.exemplar_template(ex, s)
    assert template.shape == (25, 25) and mask_radius == pytest.approx(12.0)
    truth = _disk_window(25, 12, 12, 7.0, rng, 0.0)
    np.testing.assert_allclose(template, template.T, atol=1e-6)  # rotationally symmetric
    np.testing.assert_allclose(template, template[::-1], atol=1e-6)
    corr = lambda a: np.corrcoef(a.ravel(), truth.ravel())[0, 1]  # noqa: E731
    # the exemplars' plain average about the window centres, for comparison: the centring sharpens the ring
    radii = np.arange(0.0, 19)
    plain = draw_profile(np.mean([ring_profile(w, (c, c), radii) for w in ex], 0), radii, 25)
    assert corr(template) >= 0.97 and corr(template) > corr(plain) + 0.02, (corr(template), corr(plain))


def test_centre_peaks_moves_picks_onto_the_particles():
    s = fs.FewShotSettings(diameter=20, window_ratio=1.2, size=24, suppress=0.375)
    stride, off = 3, 11.5
    yy, xx = np.mgrid[:120, :120]
    centres = np.array([[40.3, 50.6], [80.0, 70.2]])
    match = np.zeros((120, 120), np.float32)
    for cy, cx in centres:
        match = np.maximum(match, 0.8 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0))
    # peaks 6–8 px off the particles (within half a diameter, 10 px), two of them on the first particle
    at = np.array([[46.0, 50.0], [40.0, 43.0], [80.0, 77.0]])
    ij, values = fs.centre_peaks((at - off) / stride, np.array([0.5, 0.6, 0.4]), match, stride, s)
    moved = ij * stride + off
    assert len(moved) == 2  # the two peaks that moved onto one particle are one pick
    np.testing.assert_allclose(moved, centres, atol=0.25)
    # scored by the mean with the correlation at the best pixel; of the two on one particle the better kept
    np.testing.assert_allclose(values, [(0.6 + match[40, 51]) / 2, (0.4 + match[80, 70]) / 2], atol=1e-6)
    # a particle further than half a diameter away is not reached
    far, _ = fs.centre_peaks((np.array([[40.0, 64.0]]) - off) / stride, np.array([0.5]), match, stride, s)
    assert np.hypot(*(far[0] * stride + off - centres[0])) > 3


def test_bad_input(sim, tmp_path):
    ims, truths = sim
    s = fs.FewShotSettings(diameter=32, pretrain_steps=1, finetune_steps=1, distill_steps=0)
    inner = _inner(truths[0], ims[0].shape, s.window / 2 + 2)
    with pytest.raises(InputError, match=r"ex\.star: 1 exemplar\(s\) on s0: .* at least 2"):
        fs.train(ims[0], inner.iloc[:1], s, tmp_path / "m.pt", exemplars_source="ex.star")
    # an exemplar whose window does not fit is left out with a warning; too few left is an error
    edge = make_picks("s0", [inner.x.iloc[0], 5.0], [inner.y.iloc[0], 200.0])
    with pytest.warns(FewpickWarning, match=rf"1 of 2 exemplars on s0 lie within {s.window / 2:.0f} px of the border"), \
            pytest.raises(InputError, match=r"1 exemplar\(s\) on s0 \(1 more too close to the border\)"):
        fs.train(ims[0], edge, s, tmp_path / "m.pt")
    three = make_picks("s0", [*inner.x.iloc[:2], 5.0], [*inner.y.iloc[:2], 200.0])
    with pytest.warns(FewpickWarning, match="1 of 3 exemplars"):
        kept = fs.train(ims[0], three, s, tmp_path / "edge.pt", no_pretrain=True, distill=False)
    assert len(kept.exemplars) == 2
    with pytest.raises(InputError, match="no exemplar names the reference micrograph s0"):
        fs.train(ims[0], inner.assign(micrograph="other").iloc[:3], s, tmp_path / "m.pt")
    zero = Image(np.zeros((200, 200), np.float32), 2.0, Path("zero.mrc"))
    with pytest.raises(InputError, match=r"zero\.mrc: image is constant"):
        fs.train(zero, make_picks("zero", [100, 120], [100, 100]), s, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()
    model = fs.train(ims[0], inner.iloc[:3], fs.FewShotSettings(diameter=32, finetune_steps=1, distill_steps=0), tmp_path / "m.pt",
                     no_pretrain=True)
    other = Image(ims[1].data, 3.0, Path("coarse.mrc"))
    with pytest.raises(InputError, match=r"coarse\.mrc: pixel size 3 Å differs from the reference micrograph's 2 Å"):
        fs.pick_micrograph(model, other)
    with pytest.raises(InputError, match="unknown SCS mode"):
        fs.FewShotSettings(diameter=32, scs="magic").check()
    with pytest.raises(InputError, match=r"shifted \(0.25\) and blob \(0.9\) windows .* at most 1"):
        fs.FewShotSettings(diameter=32, blobs=0.9).check()


def test_rescaled_template_is_the_same_profile_on_a_coarser_grid():
    from fewpick.ops.templates import draw_profile, rescaled_template

    radii = np.arange(0.0, 40.0)
    sigma = 4.0
    fine = draw_profile(np.exp(-(radii**2) / (2 * sigma**2)), radii, 25)
    coarse = rescaled_template(fine, 0.5)
    assert coarse.shape == (13, 13)
    yy, xx = np.mgrid[:13, :13]
    expected = np.exp(-(np.hypot(yy - 6, xx - 6) ** 2) / (2 * (sigma / 2) ** 2))
    np.testing.assert_allclose(coarse, expected, atol=0.03)
    np.testing.assert_allclose(rescaled_template(fine, 1.0), fine, atol=0.02)


def _teacher_set(rng, smooth: bool) -> list[dict]:
    """Binned micrographs with blobs; a teacher grid (spacing 2.4 px) that is a smooth function of the image, or
    noise."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    data = []
    for _ in range(2):
        img = np.zeros((200, 200), np.float32)
        for cy, cx in rng.uniform(10, 190, (60, 2)):
            yy, xx = np.mgrid[:200, :200]
            img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0**2)).astype(np.float32)
        img = (img + 0.2 * rng.normal(size=img.shape)).astype(np.float32)
        rows = cols = 6.0 + 2.4 * np.arange(78)
        yy, xx = np.meshgrid(rows, cols, indexing="ij")
        if smooth:
            teacher = 0.5 + 0.4 * map_coordinates(gaussian_filter(img, 2.0), [yy, xx], order=1)
        else:
            teacher = rng.uniform(0.3, 1.0, yy.shape)
        data.append({"binned": (img - img.mean()) / img.std(), "teacher": teacher.astype(np.float32),
                     "rows": rows, "cols": cols})
    return data


def test_distilled_network_follows_a_smooth_teacher_and_refuses_noise():
    from types import SimpleNamespace

    from fewpick.pickers.fewshot import distill as fd, fast as ff

    rng = np.random.default_rng(0)
    fake = SimpleNamespace(settings=fs.FewShotSettings(diameter=36, distill_steps=150, train_threads=2))
    net, info = fd.distill(fake, [], data=_teacher_set(rng, smooth=True), device="cpu")
    assert info["agreement"] >= 0.8 and info["use"] and info["factor"] == 3, info["agreement"]
    assert info["scoring"] == "fast"
    net, info = fd.distill(fake, [], data=_teacher_set(rng, smooth=False), device="cpu")
    assert info["agreement"] < ff.MIN_AGREEMENT and not info["use"], info["agreement"]
    # a teacher that is noise from one window to the next: nothing to follow, so picking leaves the encoder out
    assert info["agreement"] < ff.NOISE_AGREEMENT and info["scoring"] == "correlation", info["agreement"]


def test_scoring_follows_the_agreement_and_older_files_keep_theirs():
    from fewpick.pickers.fewshot import fast as ff

    assert [ff.chosen_scoring(a) for a in (0.95, 0.8, 0.79, 0.5, 0.2, 0.19, 0.01, -0.03)] == [
        "fast", "fast", "gated", "gated", "gated", "correlation", "correlation", "correlation"]
    # files written before the correlation scoring existed (format 1): their fast network where it was used, else
    # the encoder, whatever the agreement
    from fewpick.pickers.fewshot.files import from_version_1

    def old(info):
        return ff.stored_scoring(from_version_1({"fast_state": {}, "fast_info": info})["fast_info"])

    assert old({"agreement": 0.01, "use": False}) == "encoder"
    assert old({"agreement": 0.9, "use": True}) == "fast"
    assert old({"agreement": 0.01, "use": False, "scoring": "correlation"}) == "correlation"


def test_fast_network_picks_like_the_encoder(sim, trained, tmp_path):
    from fewpick.pickers.fewshot import fast as ff

    ims, truths = sim
    trained_model, _ = trained
    info = trained_model.fast_info
    assert trained_model.fast_net is not None and info["factor"] == 2  # 32 px: binned by 2
    # it learned the encoder's scores on rows it never saw; whether picking uses it follows the bar
    assert info["agreement"] >= 0.5 and info["use"] == (info["agreement"] >= ff.MIN_AGREEMENT), info["agreement"]
    assert info["scoring"] == ff.chosen_scoring(info["agreement"]) == trained_model.scoring()
    assert info["history"][-1]["loss"] < info["history"][0]["loss"]
    model = replace(trained_model, fast_info={**info, "use": True, "scoring": "fast"})  # whatever the bar said
    assert model.uses_fast() and not model.uses_fast(stride=2) and not model.uses_fast(match="mean")
    fast = fs.pick_images(model, ims[1:], threshold=-1e9)
    model.exact = True
    exact = fs.pick_images(model, ims[1:], threshold=-1e9)
    model.exact = False
    for picks in (fast, exact):
        assert evaluate(picks, truths[1], radius=16)["auprc"] >= 0.75
    # the fast map lies on the binned grid: picks on the same particles, within a few pixels
    d, _ = cKDTree(exact[["x", "y"]].to_numpy()).query(fast.iloc[:20][["x", "y"]].to_numpy())
    assert np.median(d) <= 3.0, d
    # the file keeps the fast network; --exact on the command line scores with the encoder
    path = fs.save_model(model, tmp_path / "fast.pt")
    loaded = fs.load_model(path)
    assert loaded.fast_info["agreement"] == pytest.approx(info["agreement"]) and loaded.uses_fast()
    again = fs.pick_images(loaded, ims[1:], threshold=-1e9)
    np.testing.assert_allclose(again[["x", "y", "score"]].to_numpy(), fast[["x", "y", "score"]].to_numpy(), atol=1e-4)
    write_mrc(tmp_path / "s1.mrc", ims[1].data, 2.0)
    res = CliRunner().invoke(app, ["fewshot", "pick", str(tmp_path / "s1.mrc"), "--model", str(path), "-t", "-1e9",
                                   "--exact", "--out", str(tmp_path / "e.star")])
    assert res.exit_code == 0, res.output
    cli = read_picks(tmp_path / "e.star")
    np.testing.assert_allclose(cli[["x", "y"]].to_numpy(), exact[["x", "y"]].to_numpy(), atol=0.01)
    # a file written before the fast network existed: the encoder scores every window
    bundle = torch.load(path, weights_only=True)
    del bundle["fast_state"], bundle["fast_info"]
    torch.save(bundle, tmp_path / "before.pt")
    old = fs.load_model(tmp_path / "before.pt")
    assert old.fast_net is None and not old.uses_fast()
    again = fs.pick_images(old, ims[1:], threshold=-1e9)
    np.testing.assert_allclose(again[["x", "y"]].to_numpy(), exact[["x", "y"]].to_numpy(), atol=1e-3)


def test_teacher_windows_keep_to_the_budget(sim, trained):
    from fewpick.pickers.fewshot import distill as fd, fast as ff

    ims, _ = sim
    model, _ = trained
    s = model.settings
    h, w = fd.crop_budget((1000, 800), 2.0, 24, 4, 5000)  # 500 × 400 resampled px would give 120 × 95 windows
    cells = ((int(h / 2.0) - 24) // 4 + 1) * ((int(w / 2.0) - 24) // 4 + 1)
    assert 4500 <= cells <= 5000 and abs(h / w - 1.25) < 0.02, (h, w, cells)
    one = fd.teacher_data(model, ims, 10**9)[0]["teacher"].size  # a whole 480² micrograph: 70 × 70 windows
    assert one == ((int(round(480 / s.scale)) - 24) // 4 + 1) ** 2
    # what is left after the first micrograph: a centred crop of the second if it still holds 2·16 rows of cells,
    # else nothing
    data = fd.teacher_data(model, ims, one + 2500)
    assert len(data) == 2 and 2000 <= data[1]["teacher"].size <= 2500 and min(data[1]["teacher"].shape) >= 32
    assert len(fd.teacher_data(model, ims, one + 300)) == 1
    # the grid's centres on the binned grid: the windows' centres, original px / the binning
    d = data[0]
    centre = (s.size - 1) / 2 * s.scale / ff.binning(s.diameter)
    assert d["rows"][0] == pytest.approx(centre, rel=0.01) and d["binned"].shape == (240, 240)


def test_correlation_scoring_picks_without_the_encoder(sim, trained, tmp_path, monkeypatch):
    ims, truths = sim
    trained_model, _ = trained
    # as a model whose encoder learned nothing its fast network could follow stores it
    model = replace(trained_model, fast_info={**trained_model.fast_info, "use": False, "agreement": 0.01,
                                                 "scoring": "correlation"})
    assert model.scoring() == "correlation" and not model.uses_fast()
    assert model.scoring(stride=2) == "encoder" and replace(model, exact=True).scoring() == "encoder"
    with pytest.raises(ValueError):
        replace(model, scoring_override="fast", fast_net=None).scoring()
    assert "rotational average scores every window" in fs.model_summary(model)
    path = fs.save_model(model, tmp_path / "corr.pt")
    with monkeypatch.context() as mp:
        def no_encoder(*a, **k):
            raise AssertionError("the encoder ran")

        mp.setattr(fs, "encoder_scores", no_encoder)
        loaded = fs.load_model(path)
        assert loaded.scoring() == "correlation"
        kept = {}
        picks = fs.pick_micrograph(loaded, ims[1], threshold=-1e9, keep_map=kept)
        model.threshold = fs.calibrate_threshold(replace(model, settings=replace(
            model.settings, expected_particles=len(truths[0]))), [ims[0]])
    assert evaluate(picks, truths[1], radius=16)["auprc"] >= 0.75
    # the picks are the correlation map's peaks: each on the best correlation within its suppression disk
    match, scale = kept["match"], np.asarray(kept["scale"])
    yx = picks[["y", "x"]].to_numpy()[:30] / scale
    r = model.settings.geometry().radius(2 * model.settings.suppress)
    for y, x in yx:
        iy, ix = int(round(y)), int(round(x))
        disk = match[max(0, iy - int(r)) : iy + int(r) + 1, max(0, ix - int(r)) : ix + int(r) + 1]
        assert match[iy, ix] >= disk.max() - 0.05, (y, x)
    # its map is the correlation read at the windows' centres, and is written as such
    off, stride = int(kept["offset"]), kept["stride"]
    assert kept["scores"][3, 5] == pytest.approx(match[off + 3 * stride, off + 5 * stride])
    files = fs.write_score_map(kept, tmp_path / "maps", "s1")
    assert all(f.is_file() for f in files)
    # over the micrograph, with the picks circled in red: the picture a user checks the picks on
    from PIL import Image as PILImage

    def red(path):
        rgb = np.asarray(PILImage.open(path).convert("RGB")).astype(int)
        return int(((rgb[..., 0] > 200) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)).sum())

    plain = red(files[0])
    over = fs.write_score_map(kept, tmp_path / "over", "s1", image=ims[1].data, picks=picks,
                              diameter=model.settings.diameter)
    assert red(over[0]) > plain + 200 * min(len(picks), 30)
    # the calibrated cut keeps about the expected count on a micrograph like the reference
    auto = fs.pick_micrograph(model, ims[1])
    assert 0.7 * len(truths[1]) <= len(auto) <= 1.3 * len(truths[1]), len(auto)


def test_gated_scoring_runs_the_encoder_on_the_half_the_fast_network_ranks_higher(sim, trained):
    from fewpick.pickers.fewshot import fast as ff

    ims, truths = sim
    trained_model, _ = trained
    model = replace(trained_model, fast_info={**trained_model.fast_info, "use": False, "agreement": 0.5,
                                                 "scoring": "gated"})
    assert model.scoring() == "gated" and "50% of the windows" in fs.model_summary(model)
    gated, exact = {}, {}
    picks = fs.pick_micrograph(model, ims[1], threshold=-1e9, keep_map=gated)
    fs.pick_micrograph(replace(model, exact=True), ims[1], threshold=-1e9, keep_map=exact)
    a, b = gated["scores"], exact["scores"]
    assert a.shape == b.shape
    img = fs.prepare(ims[1], model.settings.scale)
    mask = ff.gate(model, ims[1].data, a.shape, Geometry.scale(ims[1].shape, img.shape))
    assert abs(mask.mean() - ff.ENCODER_SHARE) < 0.02
    # where the gate is open the encoder's own scores; elsewhere the lowest of them
    np.testing.assert_allclose(a[mask], b[mask], atol=1e-4)
    assert np.all(a[~mask] == a[mask].min())
    # the gate is the fast network's top half: it holds the particles, so the best picks are the encoder's own
    assert evaluate(picks, truths[1], radius=16)["auprc"] >= 0.75
    top = fs.pick_images(replace(model, exact=True), ims[1:], threshold=-1e9).iloc[:30]
    assert len(picks.merge(top, on=["x", "y"])) >= 25
