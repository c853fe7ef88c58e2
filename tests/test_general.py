"""The general particle model shipped with fewpick: it loads without network access, picks a realistic simulated
micrograph it never saw with no label at all, serves ``fewpick pick`` without a model, and starts PU training."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fewpick.cli import app
from fewpick.errors import InputError
from fewpick.evaluate import evaluate
from fewpick.io import Image, read_picks, write_mrc, write_picks
from fewpick.pickers import pu
from fewpick.pickers.classic import ClassicPicker, ClassicSettings
from fewpick.pickers.pu.general import GENERAL_MODEL, general_model
from fewpick.pickers.pu.settings import FINE_TUNING_RATE
from fewpick.pickers.threshold import SPLIT_RANGE, Count
from fewpick.simulate.micrograph import PRESETS, simulate_micrograph
from fewpick.simulate.species import load_species

DIAMETER = 48.0  # px: CCT at the pixel size below


@pytest.fixture(scope="module")
def realistic():
    """A micrograph of CCT in the simulator's hard conditions (thick ice, close to focus, low dose, carbon,
    contamination and aggregates; a seed far from the general model's training seeds)."""
    px = load_species("cct").diameter / DIAMETER
    preset = replace(PRESETS["hard"], pixel_size=px, species=("cct",))
    sim = simulate_micrograph((768, 768), 120, preset, seed=987_654)
    truth = sim.truth[sim.truth.species == "cct"].assign(micrograph="mic")
    return Image(sim.image, px, Path("mic.mrc")), truth


def test_the_shipped_file_is_small_and_loads_for_any_diameter():
    assert GENERAL_MODEL.stat().st_size <= 10 * 2**20
    for d, factor in ((36.0, 3), (68.0, 5), (150.0, 10)):
        m = general_model(d)
        assert m.factor == factor and m.settings.diameter == d and m.calibrated_threshold() is None
        assert m.expected_count() is None and m.default_threshold().__class__.__name__ == "Auto"
    assert general_model(40.0, expected_particles=25).expected_count() == 25


def test_picks_a_realistic_micrograph_it_never_saw_with_no_label(realistic):
    image, truth = realistic
    general = general_model(DIAMETER).pick_images([image], -1e9)
    dog = ClassicPicker(ClassicSettings(diameter=DIAMETER)).pick_images([image], -1e9)
    ours = evaluate(general, truth, radius=DIAMETER / 2)["auprc"]
    theirs = evaluate(dog, truth, radius=DIAMETER / 2)["auprc"]
    assert ours >= 0.8 and ours >= theirs + 0.3, (ours, theirs)


def test_pick_without_a_model_uses_it(realistic, tmp_path):
    image, truth = realistic
    write_mrc(tmp_path / "mic.mrc", image.data, image.pixel_size)
    run = CliRunner().invoke
    r = run(app, ["pick", str(tmp_path / "mic.mrc"), "-d", str(DIAMETER), "-n", "40", "--out", str(tmp_path / "n.star")])
    assert r.exit_code == 0, r.output
    assert "general particle model" in r.output
    counted = read_picks(tmp_path / "n.star")  # the expected count guides: that many, or a gap in the scores near it
    assert 40 / SPLIT_RANGE <= len(counted) <= 40 * SPLIT_RANGE, len(counted)
    assert evaluate(counted, truth, radius=DIAMETER / 4)["all_picks"]["precision"] >= 0.9
    r = run(app, ["pick", str(tmp_path / "mic.mrc"), "-d", str(DIAMETER), "--out", str(tmp_path / "auto.star")])
    assert r.exit_code == 0, r.output
    auto = read_picks(tmp_path / "auto.star")
    assert evaluate(auto, truth, radius=DIAMETER / 2)["all_picks"]["f1"] >= 0.5
    r = run(app, ["pick", str(tmp_path / "mic.mrc"), "-d", "48", "--method", "dog", "-n", "40", "--out",
                  str(tmp_path / "dog.star")])
    assert r.exit_code == 2 and "--expected-particles goes with --method general" in r.output
    r = run(app, ["pick", str(tmp_path / "mic.mrc"), "-d", "48", "--border", "20", "--out", str(tmp_path / "b.star")])
    assert r.exit_code == 2 and "--border goes with --method dog" in r.output  # not silently ignored
    assert not (tmp_path / "b.star").exists()
    r = run(app, ["pick", str(tmp_path / "mic.mrc"), "-d", "48", "-t", "calibrated", "--out", str(tmp_path / "c.star")])
    assert r.exit_code == 2 and "no calibrated threshold" in r.output


def test_pu_training_starts_from_it(realistic, tmp_path):
    """``init="general"``: the network starts from the general model's weights (a learning rate of ~0 leaves
    them there), with or without a decoder, and the model file says so; a network of another width starts from
    random weights; the CLI's ``--init general`` trains."""
    image, truth = realistic
    # a count over half the general model's (99 here: aggregates look like particles too), so that it serves
    s = pu.PUSettings(diameter=DIAMETER, expected_particles=60, steps=10, steps_per_epoch=10, lr=1e-12)
    start = general_model(DIAMETER)
    for settings in (s, replace(s, autoencoder=0.1)):
        model = pu.train([image], truth.iloc[:10], settings, tmp_path / "m.pt", init="general")
        for k, v in start.net.state_dict().items():
            if v.dtype.is_floating_point and "running" not in k:
                torch.testing.assert_close(model.net.state_dict()[k], v, rtol=1e-5, atol=1e-6)
        assert model.settings.start == "general" and not model.uses_general and model.counts_with_general
    # another network than the general model's: "general" starts it from random weights, its file refuses
    assert pu.train([image], truth.iloc[:10], replace(s, width=24), tmp_path / "w.pt").settings.start == "none"
    with pytest.raises(InputError, match="network differs"):
        pu.train([image], truth.iloc[:10], replace(s, width=24), tmp_path / "w.pt", init=GENERAL_MODEL)
    assert pu.load_model(tmp_path / "m.pt").settings.start == "general"
    write_mrc(tmp_path / "mic.mrc", image.data, image.pixel_size)
    write_picks(truth.iloc[:10], tmp_path / "labels.star")
    r = CliRunner().invoke(app, ["train", str(tmp_path / "mic.mrc"), "--labels", str(tmp_path / "labels.star"), "-d",
                                 "48", "-n", "40", "--steps", "10", "--init", "general", "--out", str(tmp_path / "p.pt")])
    assert r.exit_code == 0, r.output
    assert np.isfinite(pu.load_model(tmp_path / "p.pt").threshold)


def test_pu_training_without_a_count_counts_with_it(tmp_path):
    """No --expected-particles: the general model counts the particles on the training micrographs (the median
    over them, scaled by the share of the labels it finds: within 20 % of the truth on two micrographs of the
    simulator's realistic conditions), π follows from that count, the model file keeps it; never fewer than the
    labels on one micrograph."""
    from fewpick.pickers.pu.general import estimate_particles
    from fewpick.pickers.pu.train import counted_particles

    px = load_species("cct").diameter / DIAMETER
    preset = replace(PRESETS["realistic"], pixel_size=px, species=("cct",))
    sims = [simulate_micrograph((768, 768), 60, preset, seed=seed) for seed in (1, 2)]
    images = [Image(sim.image, px, Path(f"m{i}.mrc")) for i, sim in enumerate(sims)]
    assert [len(sim.truth) for sim in sims] == [60, 60]
    truth = sims[0].truth.assign(micrograph="m0")
    alone = estimate_particles(images, DIAMETER)
    found = estimate_particles(images, DIAMETER, {"m0": truth.iloc[:10]})
    assert 0.8 * 60 <= alone <= found <= 1.2 * 60, (alone, found)
    # labels it misses scale its count up: here half of them, moved off their particles
    off = truth.iloc[:10].assign(x=lambda t: t.x + np.where(np.arange(10) < 5, 3 * DIAMETER, 0.0))
    assert estimate_particles(images, DIAMETER, {"m0": off}) == pytest.approx(2 * alone, rel=0.25)
    s = pu.PUSettings(diameter=DIAMETER, steps=10, steps_per_epoch=10)
    assert counted_particles(images, {"m0": truth.iloc[:10]}, s) == found
    many = truth.sample(int(found) + 5, replace=True, random_state=0)
    assert counted_particles(images, {"m0": many}, s) == len(many)
    model = pu.train(images, truth.iloc[:10], s, tmp_path / "m.pt")
    assert model.estimated_particles == found and model.settings.expected_particles is None
    given = pu.train(images, truth.iloc[:10], replace(s, expected_particles=found), tmp_path / "n.pt")
    assert model.pi == given.pi and given.estimated_particles is None
    assert pu.load_model(tmp_path / "m.pt").estimated_particles == found
    # its default cut: the calibrated one, or the gap between two clear groups of scores near the count
    assert model.default_threshold() == Count(found, split=True, otherwise=model.threshold)
    assert given.default_threshold() == Count(found, split=True)
    for im in images:
        write_mrc(tmp_path / f"{im.name}.mrc", im.data, im.pixel_size)
    write_picks(truth.iloc[:10], tmp_path / "labels.star")
    r = CliRunner().invoke(app, ["train", str(tmp_path / "m0.mrc"), str(tmp_path / "m1.mrc"), "--labels",
                                 str(tmp_path / "labels.star"), "-d", "48", "--steps", "10", "--out",
                                 str(tmp_path / "p.pt")])
    assert r.exit_code == 0, r.output
    assert f"about {found:.0f} particles per micrograph, counted by the general" in " ".join(r.output.split())
    # picking says which cut it took: the gap near the count, or the model's own where the scores show none
    r = CliRunner().invoke(app, ["pick", str(tmp_path / "m1.mrc"), "--model", str(tmp_path / "p.pt"), "--out",
                                 str(tmp_path / "picks.star")])
    said, picked = " ".join(r.output.split()), read_picks(tmp_path / "picks.star")
    trained = pu.load_model(tmp_path / "p.pt")
    assert r.exit_code == 0, r.output
    if "the gap in their scores" in said:
        assert f"about {len(picked)} picks per micrograph ({found:.0f} counted)" in said, said
    else:
        assert f"threshold {trained.threshold:.3g}, the model's own" in said, said
        assert picked.score.min() >= trained.threshold


def test_the_general_models_peaks_follow_how_crowded_the_micrograph_is():
    """Its local maxima: over half a radius where the count given makes the micrograph crowded (544 particles of
    36 px on 1024², binned ×3), a whole radius where it makes it sparse (20); without a count, from the peaks a
    whole radius apart that its automatic cut keeps (two clear groups of score bumps: 20 strong ones)."""
    from fewpick.pickers.pu.general import general_model
    from fewpick.pickers.pu.model import local_maxima_radius

    flat = np.zeros((341, 341), np.float32)
    crowded, sparse = general_model(36.0, 544), general_model(36.0, 20)
    r = crowded.settings.geometry().radius()
    assert local_maxima_radius(crowded, flat) == pytest.approx(0.5 * r)
    assert local_maxima_radius(sparse, flat) == pytest.approx(r)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:341, :341]
    bumps = rng.normal(0, 0.3, flat.shape).astype(np.float32) - 3
    for y, x in rng.uniform(20, 320, (20, 2)):
        bumps += 6 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 2.0**2)).astype(np.float32)
    alone = general_model(36.0)
    assert local_maxima_radius(alone, bumps) == pytest.approx(r)


def test_on_crowded_micrographs_a_particle_on_a_brighter_neighbours_flank_stays_a_peak():
    """A crowded score map (544 particles of 36 px given for 1024², binned ×3: a radius of 6 binned px): strong
    spots on a grid, and beside 20 of them a weak spot 7 px away, where a pixel of the strong spot's slope within
    half a radius outscores the weak spot's centre. Over one pixel the weak spot is a peak of the general model;
    over half a radius it was none. Its automatic cut keeps the peaks over half a radius, whose scores it splits."""
    from fewpick.ops.thresholds import threshold_logits
    from fewpick.pickers.base import ScoreMap
    from fewpick.pickers.pu.model import all_peaks
    from fewpick.pickers.threshold import Auto, Fixed

    model = general_model(36.0, 544)
    yy, xx = np.mgrid[:341, :341]
    z = np.random.default_rng(0).normal(-3.0, 0.02, yy.shape).astype(np.float32)

    def spot(y, x, height):
        return (height * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 2.0**2))).astype(np.float32)

    strong = [(y, x) for y in range(20, 330, 24) for x in range(20, 330, 24)]
    weak = [(y + 7, x) for y, x in strong[::8][:20]]
    z += sum(spot(y, x, 12.0) for y, x in strong) + sum(spot(y, x, 1.5) for y, x in weak)
    smap = ScoreMap(z, lambda c: c)

    def found(coords):
        return sum(bool(len(coords)) and np.min(np.hypot(*(coords - [y, x]).T)) <= 1.0 for y, x in weak)

    every, _ = model.peaks(smap, Fixed(-np.inf))  # those ranked last for closeness too
    assert found(every) == 20 and found(all_peaks(model, z)[0]) == 0  # over half a radius: none of them
    auto, _ = model.peaks(smap, Auto())  # the peaks over half a radius its cut splits, as before
    half, half_score = all_peaks(model, z)
    assert np.array_equal(auto, half[half_score >= threshold_logits(half_score)])
    assert len(every) > len(half) > len(auto) > len(strong) / 2


def test_on_sparse_micrographs_the_general_model_counts_the_particles_not_the_noise():
    """Twenty ribosomes on a 1024² micrograph: the general model's peaks are the local maxima over a whole radius
    there (a sparse micrograph), so its automatic cut splits the few particles from the noise's peaks and counts
    them within a fifth (with labels, scaled up by the share of them its cut misses: within 30 %). Over half a
    radius, as on crowded micrographs, the noise's peaks outnumbered the particles and the count was over ten
    times theirs."""
    from fewpick.pickers.pu.general import estimate_particles

    diameter = 60.0
    px = load_species("ribosome").diameter / diameter
    preset = replace(PRESETS["realistic"], pixel_size=px, species=("ribosome",))
    sims = [simulate_micrograph((1024, 1024), 20, preset, seed=seed) for seed in (21, 22)]
    images = [Image(sim.image, px, Path(f"m{i}.mrc")) for i, sim in enumerate(sims)]
    assert [len(sim.truth) for sim in sims] == [20, 20]
    alone = estimate_particles(images, diameter)
    labelled = estimate_particles(images, diameter, {"m0": sims[0].truth.iloc[:8]})
    assert 0.8 * 20 <= alone <= 1.2 * 20 and 0.8 * 20 <= labelled <= 1.3 * 20, (alone, labelled)


def test_the_labelling_page_offers_its_picks_to_click_on(realistic, tmp_path):
    from fewpick.web.label import LabelSession, LabelSettings

    image, truth = realistic
    write_mrc(tmp_path / "mic.mrc", image.data, image.pixel_size)
    session = LabelSession([tmp_path / "mic.mrc"], tmp_path / "labels.star", LabelSettings(diameter=DIAMETER,
                                                                                             expected_particles=40))
    points = np.asarray(session.candidates(0))
    assert 40 / SPLIT_RANGE <= len(points) <= 40 * SPLIT_RANGE  # the count given, as picking uses it
    d = np.hypot(*(points[:, None, :] - truth[["x", "y"]].to_numpy()[None]).transpose(2, 0, 1)).min(axis=1)
    assert np.mean(d < DIAMETER / 4) >= 0.9  # nine in ten on a particle


def test_pu_picker_scores_with_it_where_labels_are_few(tmp_path):
    """After training, the general model's score joins the network's: weighted to the network's spread times the
    share of particles left unlabelled, kept in the model file (which then picks alike without the shipped
    file), and ranking the particles of a micrograph neither saw at least as well as the network alone from ten
    labels. Where the count given is clearly short of the particles it counts, the default cut keeps its count.
    It is left out where the count asks for under half the particles it finds (one complex among
    others) and where the labels cover every particle."""
    from fewpick.pickers.pu.train import refit

    px = load_species("cct").diameter / DIAMETER
    preset = replace(PRESETS["realistic"], pixel_size=px, species=("cct",))
    sims = [simulate_micrograph((768, 768), 60, preset, seed=seed) for seed in (3, 4)]
    image, test = (Image(sim.image, px, Path(f"m{i}.mrc")) for i, sim in enumerate(sims))
    truth, test_truth = (sim.truth.assign(micrograph=f"m{i}") for i, sim in enumerate(sims))
    s = pu.PUSettings(diameter=DIAMETER, expected_particles=len(truth), steps=150, steps_per_epoch=150)
    model = pu.train([image], truth.iloc[:10], s, tmp_path / "m.pt", init=None)  # the network from random weights
    assert model.uses_general and 0.5 * len(truth) <= model.general_count <= 2 * len(truth)
    assert "scored together with the general particle model" in pu.model_summary(model)
    together = model.pick_images([test], -1e9)
    loaded = pu.load_model(tmp_path / "m.pt", "cpu")
    assert loaded.general_weight == model.general_weight
    np.testing.assert_allclose(loaded.pick_images([test], -1e9).score, together.score, rtol=1e-5)
    weight = model.general_weight
    alone = refit(replace(model, settings=replace(s, general_score=False)), [image], truth.iloc[:10])
    assert not alone.uses_general and alone.general_count is None
    ours = evaluate(together, test_truth, radius=DIAMETER / 2)["auprc"]
    theirs = evaluate(alone.pick_images([test], -1e9), test_truth, radius=DIAMETER / 2)["auprc"]
    assert ours >= theirs + 0.01 and ours >= 0.9, (ours, theirs)
    # a count given short of the particles: the default cut keeps the general model's clearly larger count
    n = 0.5 * len(truth)
    short = refit(replace(model, settings=replace(s, expected_particles=n)), [image], truth.iloc[:10])
    assert short.uses_general and short.expected_count() == short.general_count > n + 2 * np.sqrt(n)
    assert "the default threshold keeps that many" in " ".join(pu.model_summary(short).split())
    default = short.pick_images([test])
    assert abs(len(default) - short.general_count) <= 3, (len(default), short.general_count)
    # the cut stored at training keeps as many on the training micrograph
    assert abs(len(short.pick_images([image], "calibrated")) - short.general_count) <= 3
    ours = evaluate(default, test_truth, radius=DIAMETER / 2)["all_picks"]
    theirs = evaluate(short.pick_images([test], Count(n)), test_truth, radius=DIAMETER / 2)["all_picks"]
    assert ours["f1"] >= theirs["f1"] + 0.1 and ours["recall"] >= 0.5 and ours["precision"] >= 0.9, (ours, theirs)
    assert model.expected_count() == len(truth)  # a count the general model's does not clearly pass stands
    # labels covering more of the particles weigh it less
    more = refit(replace(model, settings=s), [image], truth.iloc[: len(truth) // 2])
    assert 0.3 * weight <= more.general_weight <= 0.7 * weight
    full = refit(replace(model, settings=s), [image], truth)
    assert not full.uses_general and "labels cover the particles" in pu.model_summary(full)
    few = refit(replace(model, settings=replace(s, expected_particles=0.3 * len(truth))), [image], truth.iloc[:10])
    assert not few.uses_general and "only some of them are wanted" in pu.model_summary(few)
    assert pu.load_model(pu.save_model(few, tmp_path / "few.pt")).general_net is None


def test_fewshot_default_count_takes_its_count_where_the_users_is_short(tmp_path):
    """A few-shot model trained with a count keeps the general model's count of its micrographs beside it (in the
    file too); a count given short of the particles is raised to it, one it does not clearly pass stands, and a
    count under half of it (one complex among others) leaves it out. Without a count, its estimate is the count."""
    from fewpick.pickers import fewshot as fs

    px = load_species("cct").diameter / DIAMETER
    preset = replace(PRESETS["realistic"], pixel_size=px, species=("cct",))
    sim = simulate_micrograph((768, 768), 60, preset, seed=1)
    image, truth = Image(sim.image, px, Path("m0.mrc")), sim.truth.assign(micrograph="m0")
    s = fs.FewShotSettings(diameter=DIAMETER, finetune_steps=1, distill_steps=0, expected_particles=36)
    inner = truth[(truth.x > 60) & (truth.y > 60) & (truth.x < 708) & (truth.y < 708)].iloc[:5]
    model = fs.train(image, inner, s, tmp_path / "m.pt", no_pretrain=True, distill=False)
    assert 0.8 * 60 <= model.general_count <= 1.2 * 60 and model.expected_count() == model.general_count
    assert "the default threshold keeps that many" in " ".join(fs.model_summary(model).split())
    assert len(fs.pick_images(model, [image], "calibrated")) == pytest.approx(model.general_count, abs=3)
    assert fs.load_model(tmp_path / "m.pt", "cpu").general_count == model.general_count
    assert replace(model, settings=replace(s, expected_particles=55)).expected_count() == 55
    few = fs.train(image, inner, replace(s, expected_particles=20), tmp_path / "f.pt", no_pretrain=True,
                   distill=False)
    assert few.general_count is None and few.expected_count() == 20
    # without a count, it estimates one (scaled by the share of the exemplars it finds): the default cut, set on
    # the reference to keep that many there, keeps about as many on it, and the model says so
    alone = fs.train(image, inner, replace(s, expected_particles=None), tmp_path / "a.pt", no_pretrain=True,
                     distill=False)
    assert 0.8 * 60 <= alone.estimated_particles <= 1.2 * 60 and alone.general_count is None
    assert alone.expected_count() == alone.estimated_particles and alone.threshold is not None
    assert "counted with the general particle model" in " ".join(fs.model_summary(alone).split())
    assert len(fs.pick_images(alone, [image])) == pytest.approx(alone.estimated_particles, abs=3)
    # where the model's own scores fall off within a third of the estimate, that count replaces it
    from fewpick.pickers.fewshot.train import count_like_exemplars, settle_count
    from fewpick.pickers.threshold import Auto

    own = len(alone.peaks(alone.score_map(image), Auto())[1])
    assert own > 0
    assert settle_count(replace(alone, estimated_particles=1.25 * own), [image], inner) == (own, False)
    assert settle_count(replace(alone, estimated_particles=0.8 * own), [image], inner) == (own, False)
    assert settle_count(replace(alone, estimated_particles=None), [image], inner) == (None, False)
    # the peaks scoring as the exemplars do count the particles too; an estimate far from where the scores fall off
    # stands unless it is more than twice that count (the general model counts other complexes with them)
    like = count_like_exemplars(alone, image, inner)
    assert 0.6 * 60 <= like <= 1.3 * 60
    far = 1.9 * like
    assert far > 4 / 3 * own  # not where the scores fall off
    assert settle_count(replace(alone, estimated_particles=far), [image], inner) == (far, False)
    assert settle_count(replace(alone, estimated_particles=2.5 * like), [image], inner) == (like, True)


def test_pu_training_starts_from_it_by_default_where_it_serves(tmp_path):
    """By default the PU network starts from the general model's weights where the general model would join its
    score: its score is then not added again, but its count still guides the default cut, and from ten labels
    the network ranks the particles of a micrograph it never saw (hard conditions) better than one from random
    weights with the general model's score added. Where the labels cover the particles, or the count asks for under half of the
    particles it finds (one complex among others), the network starts from random weights, as with ``init="none"``."""
    px = load_species("cct").diameter / DIAMETER
    preset = replace(PRESETS["hard"], pixel_size=px, species=("cct",))
    sims = [simulate_micrograph((768, 768), 60, preset, seed=seed) for seed in (3, 4)]
    image, test = (Image(sim.image, px, Path(f"m{i}.mrc")) for i, sim in enumerate(sims))
    truth, test_truth = (sim.truth[sim.truth.species == "cct"].assign(micrograph=f"m{i}") for i, sim in enumerate(sims))
    s = pu.PUSettings(diameter=DIAMETER, expected_particles=len(truth), steps=150, steps_per_epoch=150)
    model = pu.train([image], truth.iloc[:10], s, tmp_path / "m.pt")
    assert model.settings.start == "general" and model.settings.lr == FINE_TUNING_RATE
    assert not model.uses_general and model.counts_with_general and model.general_count is not None
    assert "started from the general particle model" in pu.model_summary(model)
    random = pu.train([image], truth.iloc[:10], s, tmp_path / "r.pt", init="none")
    assert random.settings.start == "none" and random.uses_general
    ours = evaluate(model.pick_images([test], -1e9), test_truth, radius=DIAMETER / 2)["auprc"]
    theirs = evaluate(random.pick_images([test], -1e9), test_truth, radius=DIAMETER / 2)["auprc"]
    assert ours >= theirs + 0.03 and ours >= 0.95, (ours, theirs)
    # a count given short of the particles the general model counts (aggregates too, in these conditions): the
    # default cut keeps its clearly larger count
    n = 0.75 * len(truth)
    short = pu.train([image], truth.iloc[:10], replace(s, expected_particles=n, steps=10), tmp_path / "s.pt")
    assert short.settings.start == "general" and short.expected_count() == short.general_count > n + 2 * np.sqrt(n)
    assert short.default_threshold() == Count(short.general_count, split=True)
    # started from it with a count under half of its own (it ranked the labels first): its count, which takes in
    # other matter then, does not replace the one given
    wide = replace(short, settings=replace(short.settings, expected_particles=0.4 * short.general_count))
    assert not wide.counts_with_general and wide.expected_count() == wide.settings.expected_particles
    assert "ranks the labelled ones first" in pu.model_summary(wide)
    # random weights where the labels cover the particles, or only some of the particles are wanted
    quick = replace(s, steps=10)
    full = pu.train([image], truth, quick, tmp_path / "f.pt")
    assert full.settings.start == "none"
    same = pu.train([image], truth, quick, tmp_path / "n.pt", init="none")  # the same, bit for bit
    for k, v in same.net.state_dict().items():
        assert torch.equal(full.net.state_dict()[k], v), k
    few = pu.train([image], truth.iloc[:10], replace(quick, expected_particles=0.3 * len(truth)), tmp_path / "w.pt")
    assert few.settings.start == "none" and not few.counts_with_general


def test_it_serves_as_start_beyond_twice_the_count_only_where_it_ranks_the_labels_first():
    """Where the general model finds over twice the particles expected, it still serves as the start if the labels lie
    among its best picks (what it finds beyond them, clumps or ice, it ranks lower), not if they are spread over all
    its picks as one complex among others of its size would be."""
    from fewpick.pickers.pu.data import TrainingItem
    from fewpick.pickers.pu.general import ranks_labels_first

    general = general_model(36.0)  # binned ×3: a radius of 6 binned px
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:300, :300]
    centres = np.array([(15 + 30 * i + rng.integers(-3, 4), 15 + 50 * j + rng.integers(-3, 4))
                        for i in range(10) for j in range(6)], float)  # 60 bumps (row, col)

    def logits(heights):
        m = rng.normal(-5, 0.1, yy.shape)
        for (cy, cx), h in zip(centres, heights):
            m += (h + 5) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8)
        return m.astype(np.float32)

    labelled = np.arange(60) % 6 == 0  # 10 labels
    item = TrainingItem("m", np.zeros(yy.shape, np.float32), np.zeros(yy.shape, bool), centres[labelled])
    # 20 particles expected; the labelled kind (20 bumps) scores above the 40 others
    wanted = np.arange(60) % 3 == 0
    assert ranks_labels_first(general, [item], [logits(np.where(wanted, 10.0, 6.0))], [20.0], 60.0)
    # the labels spread evenly over the ranks of all 60 (bump i ranks i-th): 4 of them in the best 20
    heights = 10.0 - 4.0 * np.arange(60) / 59
    assert sum(heights[labelled] >= np.sort(heights)[-20]) == 4
    assert not ranks_labels_first(general, [item], [logits(heights)], [20.0], 60.0)


def test_with_no_label_and_no_count_it_picks_a_sparse_faint_small_particle_not_the_background():
    """Enolase (a 93 kDa dimer) at 40 px, a few dozen on a 768² micrograph: the general model's peaks are mostly
    background and form one population of scores. Read as log-odds, the median peak is background, so its
    automatic cut keeps about as many picks as there are particles, where a crowded reading of the same scores
    kept nearly every peak."""
    from fewpick.ops.thresholds import threshold_gmm
    from fewpick.pickers.pu.model import all_peaks

    d = 40.0
    px = load_species("enolase").diameter / d
    sim = simulate_micrograph((768, 768), 40, replace(PRESETS["realistic"], pixel_size=px, species=("enolase",)),
                              seed=12)
    image, truth = Image(sim.image, px, Path("m.mrc")), sim.truth.assign(micrograph="m")
    general = general_model(d)
    picks = general.pick_images([image])
    scored = evaluate(picks, truth, radius=d / 2)["all_picks"]
    assert 0.5 * len(truth) <= len(picks) <= 2 * len(truth) and scored["f1"] >= 0.6, (len(picks), len(truth), scored)
    _, scores = all_peaks(general, general.score_map(image).scores)  # its peaks as they scored
    assert np.sum(scores >= threshold_gmm(scores)) > 5 * len(truth)  # the crowded reading
