"""Few-shot tomogram localization: losses, targets, augmentation, training on a simulated tomogram, errors."""

from __future__ import annotations

from dataclasses import replace

import mrcfile
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from fewpick.cli import app
from fewpick.errors import InputError
from fewpick.evaluate import evaluate
from fewpick.io import make_picks, read_picks, read_volume, write_mrc, write_picks
from fewpick.losses.tomo import bce_loss, pu_focal_loss, voxel_contrast
from fewpick.ops.thresholds import auto_threshold
from fewpick.pickers import tomo as T
from fewpick.simulate.tomogram import TOMO_PRESETS, simulate_tomogram


@pytest.fixture(scope="module")
def sim():
    preset = replace(TOMO_PRESETS["easy"], shape=(64, 192, 192), n_particles=28, n_filaments=(0, 0),
                     species=("ribosome", "cct"))
    return simulate_tomogram(preset, seed=7, name="t0")


def _truth(sim, species="ribosome"):
    t = sim.truth[sim.truth.species == species]
    return make_picks("t0", t.x, t.y, t.z), float(t.diameter_px.iloc[0])


def test_pu_focal_loss_known_values():
    z = torch.tensor([-0.5, -1.0, 0.5, -3.0])
    t = torch.tensor([1.0, 0.0, 0.0, 0.0])
    p = torch.sigmoid(z)
    l_pos = -((1 - p) ** 2) * torch.log(p)
    l_neg = -(p**2) * torch.log(1 - p)
    pi = 0.1
    # the nnPU risk divided by π (a loss per positive voxel)
    expect = l_pos[0] + (l_neg[1:].mean() - pi * l_neg[0]) / pi
    assert float(l_neg[1:].mean() - pi * l_neg[0]) > 0
    assert float(pu_focal_loss(z, t, pi)) == pytest.approx(float(expect), rel=1e-5)
    # a confident positive that the unlabeled voxels cannot balance: the negative risk goes below 0 and the
    # nnPU step minimises its negative instead (a non-negative value)
    z2 = torch.tensor([5.0, -6.0, -6.0])
    t2 = torch.tensor([1.0, 0.0, 0.0])
    p2 = torch.sigmoid(z2)
    neg = float((-(p2[1:] ** 2) * torch.log(1 - p2[1:])).mean() - 0.45 * (-(p2[0] ** 2) * torch.log(1 - p2[0])))
    assert neg < 0 and float(pu_focal_loss(z2, t2, 0.45)) == pytest.approx(-neg / 0.45, rel=1e-5)
    # the unlabeled voxels' own positive fraction π_U corrects their negative risk; π weighs the positives
    expect_u = l_pos[0] + (l_neg[1:].mean() - 0.02 * l_neg[0]) / pi
    assert float(pu_focal_loss(z, t, pi, pi_unlabeled=0.02)) == pytest.approx(float(expect_u), rel=1e-5)
    # gradient: raising a labeled centre's logit lowers the loss
    zz = torch.tensor([0.0, 0.0, 0.0], requires_grad=True)
    pu_focal_loss(zz, torch.tensor([1.0, 0.0, 0.0]), 0.05).backward()
    assert zz.grad[0] < 0 and zz.grad[1] > 0


def test_class_prior_counts_only_unlabeled_particles_in_the_unlabeled_voxels():
    vol = np.zeros((10, 40, 40), np.float32)
    centres = np.array([[5.0, 10, 10], [5, 30, 30]])
    tgt = T.targets(vol.shape, centres, 2.0)
    item = T.TrainingItem(vol, tgt, centres)
    per = tgt.sum() / 2
    pi, pi_u = T.class_prior([item], T.TomoSettings(diameter=12))  # default: twice the labels, 4 particles
    assert pi == pytest.approx(4 * per / tgt.size) and pi_u == pytest.approx(2 * per / (tgt.size - tgt.sum()))
    pi, pi_u = T.class_prior([item], T.TomoSettings(diameter=12, expected_particles=2))  # every one labeled
    assert pi == pytest.approx(2 * per / tgt.size) and pi_u == 0


def test_estimated_count_caps_the_prior_where_labels_cover_the_particles(tmp_path):
    preset = replace(TOMO_PRESETS["easy"], shape=(64, 256, 256), n_particles=64, n_filaments=(0, 0),
                     species=("ribosome",))
    sim = simulate_tomogram(preset, seed=7, name="t0")
    truth, diameter = _truth(sim)
    write_mrc(tmp_path / "t0.mrc", sim.tomogram, sim.voxel_size)
    im = read_volume(tmp_path / "t0.mrc")
    s = T.TomoSettings(diameter=diameter, epochs=10, steps_per_epoch=10, batch=4, seed=0)
    items = T.training_items([im], truth, s, None)  # every ribosome labeled: none left for the unlabeled voxels
    seen = []
    (est,) = T.estimate_particles(items, s, progress=seen.append)
    assert [r["epoch"] for r in seen if r.get("stage") == "prior" and "epoch" in r] == [1, 2, 3]
    assert [(r["tomogram"], r["tomograms"]) for r in seen if r.get("stage") == "prior-scoring"] == [(1, 1)]
    n = len(truth)
    # an upper bound (half of the held-out 29 score above their median, less a 90 % margin), below twice the labels
    assert n > 40 and n <= est <= 1.5 * n, (est, n)
    pi, pi_u = T.class_prior(items, s, [est])
    pi2, pi_u2 = T.class_prior(items, s)
    assert pi < pi2 and pi_u < 0.5 * pi_u2
    assert T.estimate_particles(T.training_items([im], truth.iloc[:11], s, None), s) is None  # too few to hold out
    assert T.estimate_particles(items, replace(s, prior_epochs=0)) is None


def test_the_estimate_scores_a_sample_of_large_tomograms_within_its_budget():
    """Beyond its budget the estimate scores every block holding a held-out label and a random sample of the
    others, weighted so that the counts stand for the whole tomogram; its classifier trains at most a third of
    the epochs."""
    from fewpick.pickers.tomo import prior
    from fewpick.pickers.tomo.model import block_index, heat_map_blocks

    rng = np.random.default_rng(0)
    shapes = [(64, 600, 600), (40, 500, 700)]
    items = [T.TrainingItem(np.zeros(sh, np.float32), np.zeros(sh, np.float32),
                            rng.uniform(0, 1, (12, 3)) * (np.array(sh) - 1)) for sh in shapes]
    held = [np.arange(12) % 2 == 0 for _ in items]
    grids = [heat_map_blocks(sh) for sh in shapes]
    budget = 0.3 * sum(np.prod(sh) for sh in shapes)
    chosen, weights = prior.scored_blocks(items, held, budget, np.random.default_rng(1))
    for it, h, grid, c, w in zip(items, held, grids, chosen, weights):
        assert set(block_index(it.centres[h], it.volume.shape).tolist()) <= c  # labels
        assert len(c) < len(grid) and sum(w[b] for b in c) == pytest.approx(len(grid))  # the sample stands for all
    scored = sum(np.prod([s.stop - s.start for s in g[b]]) for g, c in zip(grids, chosen) for b in c)
    assert scored <= 1.5 * budget
    everything, _ = prior.scored_blocks(items, held, 1e12, np.random.default_rng(1))
    assert everything == [None, None]
    assert prior.prior_epochs(T.TomoSettings(diameter=20)) == 2  # a third of the default 6 epochs
    assert prior.prior_epochs(T.TomoSettings(diameter=20, epochs=12)) == 3  # at most the 3 set
    few = T.TomoSettings(diameter=20).for_labels(11)  # too few labels to estimate: the last 2 epochs self-train
    assert (few.epochs, few.self_training, prior.prior_epochs(few)) == (6, 2, 2)
    import inspect

    from fewpick.cli.tomo import tomo_train
    from fewpick.pickers.tomo.settings import EPOCHS

    assert inspect.signature(tomo_train).parameters["epochs"].default.default == EPOCHS  # as the library
    assert T.TomoSettings(diameter=20).for_labels(12).self_training == 0
    many = T.TomoSettings(diameter=20, self_training=1, epochs=9).for_labels(12)
    assert (many.epochs, many.self_training) == (9, 1)  # what a user sets stays
    assert T.TomoSettings(diameter=20).epochs == EPOCHS == 6
    assert T.TomoSettings(diameter=20, filament=True).for_labels(5).self_training == 0
    assert prior.prior_epochs(T.TomoSettings(diameter=20, epochs=3)) == 1


def test_heat_map_blocks_cover_each_voxel_once_and_whole_axes_that_fit_a_tile():
    from fewpick.pickers.tomo.model import block_index, heat_map_blocks

    rng = np.random.default_rng(0)
    for shape in [(40, 256, 256), (33, 600, 200), (16, 257, 90)]:
        blocks = heat_map_blocks(shape)
        seen = np.zeros(shape, np.int8)
        for b in blocks:
            seen[b] += 1
        assert (seen == 1).all()  # a partition of the volume
        pts = rng.uniform(0, 1, (200, 3)) * (np.array(shape) - 1)
        for p, i in zip(pts, block_index(pts, shape)):
            assert all(s.start <= round(c) < s.stop for s, c in zip(blocks[i], p))
        for axis, n in ((1, shape[1]), (2, shape[2])):  # an axis within one 256-voxel tile is one block
            extents = {b[axis].stop - b[axis].start for b in blocks}
            assert (extents == {n}) if n <= 256 else (max(extents) == 256 - 32)


def test_heat_map_scores_with_batchnorm_folded_and_follows_the_training():
    """The heat map's network (batch normalisation folded into the convolutions) gives the trained network's
    probabilities to float rounding, and is made again once a training step has changed the weights; the U-Net
    run on a few slices at a time gives the same features as on all at once."""
    from fewpick.nn.unet import SliceUNet3D

    torch.manual_seed(0)
    net = SliceUNet3D(8, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    x = torch.randn(4, 1, 5, 32, 32)
    v = np.random.default_rng(0).normal(size=(12, 40, 48)).astype(np.float32)

    def plain():
        net.eval()
        with torch.no_grad():
            z = net(torch.from_numpy(v)[None, None], with_projection=False)[0]
        return torch.sigmoid(z[0]).numpy()

    for _ in range(2):  # moves the weights and the batch statistics away from their start
        net.train()
        logits, proj = net(x)
        (logits.mean() + proj.mean()).backward()
        opt.step()
        opt.zero_grad()
        heat = T.prepared_heat_map(net, v, views=1)
        assert not net.training  # left in eval mode, as before
        assert np.abs(heat - plain()).max() < 1e-5
    with torch.no_grad():  # the slices in passes of 3 (the last one short): the same feature map
        assert torch.allclose(net.features(x, slices_per_pass=3), net.features(x), atol=1e-6)


def test_bce_loss_is_per_positive_mass():
    z = torch.tensor([2.0, -1.0, 0.5, -3.0])
    t = torch.tensor([1.0, 0.5, 0.0, 0.0])
    each = -(t * torch.nn.functional.logsigmoid(z) + (1 - t) * torch.nn.functional.logsigmoid(-z))
    assert float(bce_loss(z, t)) == pytest.approx(float(each.sum() / 1.5), rel=1e-5)


def test_voxel_contrast_rewards_aligned_views():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(1, 8, 2, 8, 8, generator=g)
    target = torch.zeros(1, 2, 8, 8)
    target[0, 1, 3:5, 3:5] = 1.0
    prob = torch.full((1, 2, 8, 8), 0.1)
    aligned = voxel_contrast(f, f, target, prob, 0.05, generator=torch.Generator().manual_seed(1))
    shuffled = voxel_contrast(f, f[..., torch.randperm(8, generator=g)], target, prob, 0.05,
                              generator=torch.Generator().manual_seed(1))
    assert float(aligned) < float(shuffled)
    biased = voxel_contrast(f, f, target, prob, 0.05, biased=True, generator=torch.Generator().manual_seed(1))
    assert float(biased) != pytest.approx(float(aligned))
    assert float(voxel_contrast(f, f, target, prob, 0.05, weights=(0, 0, 0))) == 0.0


def test_targets_peak_at_the_labels():
    t = T.targets((10, 20, 20), np.array([[5.0, 10.0, 10.0], [0.0, 0.0, 19.0]]), radius=3.0)
    assert t[5, 10, 10] == 1.0 and t[0, 0, 19] == 1.0
    assert t.max() == 1.0 and t[(t > 0)].min() >= 0.1
    assert t[5, 10, 12] == pytest.approx(t[5, 10, 8]) and t[5, 10, 12] < 1
    assert t[5, 10, 17] == 0.0  # beyond the splat


def test_augment_inverse_realigns_the_view():
    x = torch.randn(2, 1, 3, 16, 16)
    for seed in range(6):
        view, inverse = T.augment(x, torch.Generator().manual_seed(seed))
        back = inverse(view)
        r = np.corrcoef(back.numpy().ravel(), x.numpy().ravel())[0, 1]
        assert r > 0.95


def test_auto_threshold_splits_particles_from_background_peaks():
    rng = np.random.default_rng(0)
    # as in a heat map's NMS peaks: a mass of weak background peaks, other species in the middle, the particles
    background, others = rng.uniform(0.05, 0.1, 880), rng.uniform(0.1, 0.25, 120)
    particles = rng.uniform(0.45, 0.85, 60)
    scores = np.concatenate([background, others, particles, rng.uniform(0.0, 0.05, 500)])
    t = auto_threshold(scores)
    assert (particles >= t).all() and (background < t).all() and (others >= t).mean() < 0.1, t
    assert auto_threshold(scores[-509:]) == 0.5  # 9 peaks above the floor: too few to split


def test_auto_threshold_moves_above_lookalikes_but_keeps_a_broad_class_whole():
    rng = np.random.default_rng(1)
    background = rng.uniform(0.05, 0.1, 2000)
    # lookalike species score in a middle band, the target above: the cut goes between them
    others, target = rng.normal(0.38, 0.06, 200).clip(0.1, 1), rng.normal(0.7, 0.06, 60).clip(0, 1)
    t = auto_threshold(np.concatenate([background, others, target]))
    assert (target >= t).mean() > 0.95 and (others >= t).mean() < 0.05, t
    # without them, a broad particle class (0.3-0.8) is not cut in two
    broad = rng.uniform(0.3, 0.8, 80)
    t = auto_threshold(np.concatenate([background[:300], broad]))
    assert (broad >= t).mean() > 0.95 and (background[:300] < t).all(), t
    # nor a confident model's particles, piled against 1 with a tail below: a mixture fits them better than one
    # Gaussian, but its components overlap (without the separation test the cut went to 0.92, keeping 83 %)
    rng = np.random.default_rng(2)
    background = rng.uniform(0.05, 0.1, 600)
    piled = np.concatenate([rng.normal(0.97, 0.015, 50), rng.uniform(0.75, 0.93, 10)]).clip(0, 1)
    others = rng.uniform(0.1, 0.4, 60)
    t = auto_threshold(np.concatenate([background, others, piled]))
    assert (piled >= t).all() and (others >= t).mean() < 0.05, t


def test_a_weak_particle_touching_a_strong_one_keeps_its_peak():
    """A weak particle 1.5 radii from a stronger one lies within the cube around its own centre but outside the
    sphere: its peak must top the sphere only, so both are picked (the cube's corner held the stronger centre)."""
    from fewpick.pickers.base import ScoreMap
    from fewpick.pickers.threshold import Fixed

    model = T.TomoModel(net=None, settings=T.TomoSettings(diameter=12.0), pi=0.01, voxel_size=None)
    r = model.settings.geometry().radius()
    assert model.settings.bin == 1 and r == pytest.approx(6.0)
    z, y, x = np.mgrid[:64, :64, :64].astype(np.float32)
    strong, weak = np.array([32.0, 32.0, 32.0]), np.array([32.0, 32.0, 32.0]) + 1.5 * r / np.sqrt(3)
    heat = sum(a * np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * 2.0**2))
               for a, c in ((1.0, strong), (0.5, weak)))
    zyx, score = model.peaks(ScoreMap(heat.astype(np.float32), lambda c: c), Fixed(0.05))
    assert len(zyx) == 2
    assert np.abs(zyx[0] - strong).max() <= 1 and np.abs(zyx[1] - weak).max() <= 1
    assert score[0] == pytest.approx(1.0, abs=0.01) and score[1] == pytest.approx(0.5, abs=0.05)


def test_trains_and_finds_ribosomes(sim, tmp_path):
    truth, diameter = _truth(sim)
    vol = tmp_path / "t0.mrc"
    write_mrc(vol, sim.tomogram, sim.voxel_size)
    im = read_volume(vol)
    labels = truth.iloc[:8]
    # subtomograms of 48 binned voxels, not the whole 64 of this small tomogram: half the time a step
    s = T.TomoSettings(diameter=diameter, epochs=6, steps_per_epoch=10, batch=4, box=48, seed=0)
    model = T.train([im], labels, s)
    assert s.bin == 3 and 0 < model.pi < 0.5 and len(model.history) == 6
    # a short training: the heat map is not yet confident, but its peaks rank the ribosomes first
    picks = T.pick_tomogram(model, im, 0.05)
    r = evaluate(picks, truth, radius=diameter / 2)["best"]
    assert r["f1"] >= 0.8, r
    # the model's own pick takes the tomogram options (a suppression radius) as pick_tomogram does
    wide = model.pick(im, 0.05, radius=2 * diameter)
    pd.testing.assert_frame_equal(wide, T.pick_tomogram(model, im, 0.05, radius=2 * diameter))
    assert 0 < len(wide) < len(picks)
    path = T.save_model(model, tmp_path / "m.pt")
    again = T.load_model(path)
    np.testing.assert_allclose(T.heat_map(again, im.data), T.heat_map(model, im.data), atol=1e-6)
    assert again.settings.bin_factor == 3  # the model keeps the binning it was trained at
    # the picking heat map averages the tomogram and its 180° turn about z, so it turns exactly with the tomogram,
    # and the second view changes it
    two = T.heat_map(model, im.data)
    turned = T.heat_map(model, np.ascontiguousarray(np.asarray(im.data)[:, ::-1, ::-1]))
    np.testing.assert_allclose(turned[:, ::-1, ::-1], two, atol=1e-5)
    assert np.abs(two - T.heat_map(model, im.data, views=1)).max() > 1e-3
    # a file from before the factor was stored: binned as it was trained, by the rounded quotient (17.75 / 12: 1),
    # where the default now bins such a particle by 2
    bundle = torch.load(path, map_location="cpu", weights_only=False)
    del bundle["settings"]["bin_factor"]
    bundle["settings"]["diameter"] = 17.75
    torch.save(bundle, tmp_path / "old.pt")
    assert T.load_model(tmp_path / "old.pt").settings.bin == 1 and T.TomoSettings(diameter=17.75).bin == 2


def test_self_training_adds_confident_picks_that_are_particles(sim, tmp_path):
    """The last epochs learn from the labels and the model's confident picks on its training tomogram, picked
    again at the start of each: the picks are ribosomes the labels did not name, the prior counts them twice,
    and a resumed run reads them back."""
    import json

    from scipy.spatial import cKDTree

    from fewpick.nn.unet import SliceUNet3D
    from fewpick.pickers.tomo.selftrain import self_training_counts, self_training_picks

    truth, diameter = _truth(sim)
    write_mrc(tmp_path / "t0.mrc", sim.tomogram, sim.voxel_size)
    im = read_volume(tmp_path / "t0.mrc")
    labels = truth.iloc[:4]
    s = T.TomoSettings(diameter=diameter, epochs=6, steps_per_epoch=10, batch=4, box=48, seed=0, self_training=2)
    seen, ckpt = [], tmp_path / "m.pt.ckpt"
    model = T.train([im], labels, s, progress=seen.append, checkpoint=ckpt)
    recs = [r for r in seen if r.get("stage") == "self-training"]
    assert [(r["round"], r["rounds"]) for r in recs] == [(1, 2), (2, 2)]  # picked at the start of each epoch
    assert (tmp_path / "m.pt.ckpt.picks.1.json").is_file()
    rec, saved = recs[-1], tmp_path / "m.pt.ckpt.picks.2.json"
    (picks,) = [np.asarray(p) for p in json.loads(saved.read_text())]
    assert rec["labels"] == 4 and rec["picks"] == len(picks) >= 3, rec
    assert model.particles == [4 + 2 * len(picks)] and rec["particles"] == model.particles[0]
    geo = s.geometry()
    d, i = cKDTree(geo.to_working(truth[["z", "y", "x"]].to_numpy(float))).query(picks)
    assert np.mean(d <= geo.radius()) >= 0.8  # particles
    assert not set(i[d <= geo.radius()]) & set(range(4))  # none of them labelled already
    (item,) = T.training_items([im], labels, s, None)
    (again,) = self_training_picks(SliceUNet3D(s.width, s.blocks), [item], s, saved)  # read back, not recomputed
    np.testing.assert_allclose(again, picks)
    assert self_training_counts([item], [picks], [100.0]) == [100.0]  # never below the count assumed before
    short = T.train([im], labels, replace(s, epochs=2, steps_per_epoch=2, self_training=0), checkpoint=ckpt,
                    out=tmp_path / "m.pt")
    assert short.particles == [8.0]  # without self-training: twice the labels
    assert not list(tmp_path.glob("m.pt.ckpt*"))  # the side files go with the checkpoint


def test_only_picks_shaped_like_the_labels_join_them():
    """Balls of two sizes: picks on the labelled size join (most of them), a voxel or two off their centre;
    picks on the smaller balls (a lookalike) do not; with fewer than three labels none joins."""
    from fewpick.pickers.tomo.selftrain import centred, like_the_labels

    rng = np.random.default_rng(0)
    shape = (40, 120, 120)
    z, y, x = np.indices(shape)
    big = [(12, 20, 20), (12, 20, 60), (12, 20, 100), (28, 60, 20), (28, 60, 60), (28, 60, 100), (12, 100, 40)]
    small = [(28, 100, 80), (12, 60, 40), (28, 100, 100), (28, 20, 40)]
    vol = 0.5 * rng.standard_normal(shape)
    for centres, r in ((big, 6.0), (small, 3.0)):  # particles that differ a little in size and density
        for c in centres:
            ri, amp = r * rng.uniform(0.9, 1.1), rng.uniform(0.8, 1.2)
            vol[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= ri * ri] += amp
    vol = T.prepare(-vol, 1)  # smoothed, standardised; dense matter bright
    item = T.TrainingItem(vol, np.zeros(shape, np.float32), np.array(big[:4], float))
    off = np.array(big[4:], float) + np.array([[1, -2, 1], [0, 2, -1], [-1, 1, 2]])
    before = np.linalg.norm(off - np.array(big[4:]), axis=1)
    after = np.linalg.norm(centred(vol, off, 6.0) - np.array(big[4:]), axis=1)
    assert (after < 0.5 * before).all(), (before, after)  # back towards the middle
    picks = np.concatenate([off, np.array(small, float)])
    s = T.TomoSettings(diameter=12.0, target_diameter=12.0)
    (kept,) = like_the_labels([item], [picks], s)
    # the rule is strict (as strict as the least typical label): most of the labelled size, no lookalike
    assert len(kept) >= 2 and {tuple(k) for k in kept} <= {tuple(o) for o in off}, kept
    few = T.TrainingItem(vol, item.target, item.centres[:2])
    assert len(like_the_labels([few], [picks], s)[0]) == 0


def test_bad_inputs_are_clear_errors(sim, tmp_path):
    truth, diameter = _truth(sim)
    write_mrc(tmp_path / "t0.mrc", sim.tomogram, sim.voxel_size)
    im = read_volume(tmp_path / "t0.mrc")
    s = T.TomoSettings(diameter=diameter, epochs=1, steps_per_epoch=1, batch=2)
    outside = truth.iloc[:3].copy()
    outside.loc[outside.index[1], "z"] = 500.0
    with pytest.raises(InputError, match=r"labels\.star: label 2 at .*z=500 lies outside t0"):
        T.train([im], outside, s, source="labels.star")
    flat = truth.iloc[:3].drop(columns=["z"])
    with pytest.raises(InputError, match="no z coordinates"):
        T.train([im], flat, s, source="labels.star")
    with pytest.raises(InputError, match="smaller than the training box"):
        T.train([im], truth.iloc[:3], replace(s, box=128))
    aniso = tmp_path / "aniso.mrc"
    write_mrc(aniso, sim.tomogram[:, :96, :96], 10.0)
    with mrcfile.open(aniso, mode="r+") as m:
        m.voxel_size = (10.0, 10.0, 14.0)
    with pytest.raises(InputError, match=r"aniso\.mrc: anisotropic voxels \(10 × 10 × 14"):
        T.check_isotropic(aniso)
    other = tmp_path / "old.pt"
    torch.save({"format": T.MODEL_FORMAT, "format_version": 0, "fewpick_version": "0.0.1"}, other)
    with pytest.raises(InputError, match=r"old\.pt: tomogram localization model file format 0 .* train it again"):
        T.load_model(other)


def test_labels_on_one_particle_become_one_label_at_their_mean(sim, tmp_path):
    truth, diameter = _truth(sim)
    write_mrc(tmp_path / "t0.mrc", sim.tomogram, sim.voxel_size)
    im = read_volume(tmp_path / "t0.mrc")
    first = truth.iloc[:1]
    near = first.assign(x=first.x + 0.4 * diameter)  # within a radius: the same particle
    labels = pd.concat([first, near, truth.iloc[1:4]], ignore_index=True)
    s = T.TomoSettings(diameter=diameter)
    (item,) = T.training_items([im], labels, s, None)
    middle = pd.concat([first.assign(x=first.x + 0.2 * diameter), truth.iloc[1:4]], ignore_index=True)
    (expected,) = T.training_items([im], middle, s, None)
    assert len(item.centres) == 4  # the two became one, at their mean; the other three stay
    assert np.allclose(item.centres, expected.centres) and np.array_equal(item.target, expected.target)
    # points clicked along a filament lie closer than that, and stay
    (fil,) = T.training_items([im], labels, replace(s, filament=True), None)
    assert len(fil.centres) == 5


def test_cli_contract_form(sim, tmp_path):
    truth, diameter = _truth(sim)
    write_mrc(tmp_path / "t0.mrc", sim.tomogram, sim.voxel_size)
    # two of the particles labelled twice, 3 voxels apart (two candidates on one particle, exported together)
    twice = truth.iloc[:2].assign(x=truth.iloc[:2].x + 3.0)
    write_picks(pd.concat([truth.iloc[:6], twice], ignore_index=True), tmp_path / "labels.star")
    runner = CliRunner()
    res = runner.invoke(app, ["tomo", "train", str(tmp_path / "t0.mrc"), "--labels", str(tmp_path / "labels.star"),
                              "--particle-diameter", f"{diameter:g}", "--out", str(tmp_path / "m.pt"), "--epochs", "1",
                              "--steps-per-epoch", "2"])
    assert res.exit_code == 0, res.output
    assert "8 labels mark 6 particles" in " ".join(res.output.split()), res.output
    res = runner.invoke(app, ["tomo", "pick", str(tmp_path / "t0.mrc"), "--model", str(tmp_path / "m.pt"),
                              "--out", str(tmp_path / "picks.star"), "--threshold", "0.01"])
    assert res.exit_code == 0, res.output
    picks = read_picks(tmp_path / "picks.star")
    assert {"x", "y", "z", "score"} <= set(picks.columns) and len(picks) > 0
    assert picks.z.between(0, 63).all() and picks.x.between(0, 191).all()


def test_tubular_post_processing_traces_a_curved_filament():
    from fewpick.pickers.filament import trace_filaments

    rng = np.random.default_rng(0)
    y = np.arange(10, 190, 3.0)
    x = 60 + 0.002 * (y - 100) ** 2  # gently curved, along y
    z = 30 + 0.05 * y
    line = np.stack([x, y, z], 1) + rng.normal(0, 0.5, (len(y), 3))
    across = np.stack([np.arange(20, 180, 3.0), np.full(54, 150.0), np.full(54, 20.0)], 1)  # a second one, along x
    junk = rng.uniform([0, 0, 0], [190, 190, 60], (15, 3))
    pts = np.concatenate([line, across, junk])
    picks = make_picks("t0", pts[:, 0], pts[:, 1], pts[:, 2], score=np.ones(len(pts)))
    out = trace_filaments(picks, link=6.0)
    assert sorted(out["rlnHelicalTubeID"].unique()) == [1, 2]
    first = out[out.rlnHelicalTubeID == 1].to_numpy()  # the longer one: along y
    f = out[out.rlnHelicalTubeID == 1]
    assert len(first) == pytest.approx((y.max() - y.min()) / 2, abs=3)  # resampled with step 2 along the axis
    np.testing.assert_allclose(f.x, 60 + 0.002 * (f.y - 100) ** 2, atol=1.5)
    np.testing.assert_allclose(f.z, 30 + 0.05 * f.y, atol=1.5)
    g = out[out.rlnHelicalTubeID == 2]
    np.testing.assert_allclose(g.y, 150, atol=1) and np.testing.assert_allclose(g.z, 20, atol=1)
    # a tight kink exceeds the curvature limit
    kink = make_picks("t0", 60 + 0.2 * (y - 100) ** 2 / 10, y, np.full(len(y), 30.0), score=np.ones(len(y)))
    assert len(trace_filaments(kink, link=12.0, max_curvature=0.01)) == 0


def test_filament_labels_join_along_each_filament_only():
    from fewpick.pickers.filament import label_segments, rasterise

    # clicks every 8 voxels along two parallel filaments 12 voxels apart, in shuffled order
    y = np.arange(0, 80, 8.0)
    pts = np.concatenate([np.stack([np.full(len(y), 20.0), y, np.full(len(y), 5.0)], 1),
                          np.stack([np.full(len(y), 32.0), y, np.full(len(y), 5.0)], 1)])
    pts = pts[np.random.default_rng(1).permutation(len(pts))]
    for link in (10.0, 30.0):  # the link reaches across to the other filament, yet the chains stay apart
        seg = label_segments(pts, link=link)
        assert len(seg) == 2 * (len(y) - 1) and np.all(seg[:, 0, 0] == seg[:, 1, 0])
        np.testing.assert_allclose(np.linalg.norm(seg[:, 0] - seg[:, 1], axis=1), 8.0)
    assert len(label_segments(pts, link=7.0)) == 0  # clicks farther apart than the link are not joined
    vox = rasterise(seg, (96, 96, 16))  # every voxel of both centre lines, nothing between
    assert set(map(int, vox[:, 0])) == {20, 32} and len(vox) == 2 * 73


def test_filament_model_traces_a_microtubule(tmp_path):
    from scipy.spatial import cKDTree

    preset = replace(TOMO_PRESETS["easy"], shape=(64, 192, 192), n_particles=10, n_filaments=(1, 1),
                     species=("cct",))
    sim = simulate_tomogram(preset, seed=2, name="f0")
    line = sim.truth[sim.truth.species == "microtubule"]
    write_mrc(tmp_path / "f0.mrc", sim.tomogram, sim.voxel_size)
    im = read_volume(tmp_path / "f0.mrc")
    labels = make_picks("f0", line.x.iloc[::8], line.y.iloc[::8], line.z.iloc[::8])
    true_xyz = line[["x", "y", "z"]].to_numpy(float)
    coverage = []
    # three training seeds: 60 steps on one small tomogram may trace only part of the line, so the bar is on the
    # median; every traced point must lie on the filament in every run. Subtomograms of 32 binned voxels (the
    # default 64 takes four times as long a step) still hold the filament across
    for seed in range(3):
        s = T.TomoSettings(diameter=25.0, filament=True, epochs=6, steps_per_epoch=10, batch=4, box=32, seed=seed)
        model = T.train([im], labels, s)
        out = T.pick_tomogram(model, im, "auto", filament={"max_residual": 4.0})  # link: the diameter
        assert len(out) and out["rlnHelicalTubeID"].min() == 1
        out_xyz = out[["x", "y", "z"]].to_numpy(float)
        d, _ = cKDTree(true_xyz).query(out_xyz)
        assert np.mean(d <= 6) >= 0.8, np.percentile(d, [50, 90])
        coverage.append(np.mean(cKDTree(out_xyz).query(true_xyz)[0] <= 6))  # the centre line found along it
    assert np.median(coverage) >= 0.6, coverage


def test_overlay_draws_every_true_particle_of_the_slab_on_a_simulated_tomogram(tmp_path):
    from PIL import Image as PILImage
    from typer.testing import CliRunner

    from fewpick.cli import app
    from fewpick.io import read_volume, write_picks
    from fewpick.report import overlay_volume_png
    from fewpick.simulate import write_tomograms

    truth = write_tomograms(tmp_path / "t", 1, "easy", seed=2, size=160, depth=80)
    ribo = truth[truth.species == "ribosome"].assign(micrograph="tomo_000")
    assert len(ribo) > 10
    vol = read_volume(tmp_path / "t" / "tomo_000.mrc")
    drawn = overlay_volume_png(vol, tmp_path / "look.png", picks=ribo, truth=ribo, diameter=26, z=35, slab=26)
    in_slab = ribo[(ribo.z - 35).abs() <= 13]
    assert 0 < len(in_slab) < len(ribo)  # a slab, not the whole tomogram
    assert sorted(drawn.index) == sorted(in_slab.index)  # every true particle of the slab circled, no other
    rgb = np.asarray(PILImage.open(tmp_path / "look.png").convert("RGB")).astype(int)
    cyan = (rgb[..., 0] < 80) & (rgb[..., 1] > 180) & (rgb[..., 2] > 200)
    assert cyan.sum() > 100 * (len(in_slab) + len(ribo))  # circles in the slab and over the projection
    write_picks(ribo, tmp_path / "ribo.star")
    res = CliRunner().invoke(app, ["overlay", str(tmp_path / "t" / "tomo_000.mrc"), "--picks", str(tmp_path / "ribo.star"),
                                   "-d", "26", "--z", "35", "--slab", "26", "--out", str(tmp_path / "cli.png")])
    assert res.exit_code == 0 and f"{len(in_slab)} picks drawn in the slab" in res.output, res.output
