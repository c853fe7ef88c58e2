"""Tomogram exploration: candidates, projection geometry, augmentations, clustering, the run folder."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from typer.testing import CliRunner

from fewpick.cli import app
from fewpick.errors import InputError
from fewpick.evaluate import evaluate
from fewpick.explore import candidates as cand
from fewpick.explore.cluster import overcluster
from fewpick.explore.embed import augment
from fewpick.explore.run import ExploreSettings, Run, explore
from fewpick.io import make_picks, read_picks, write_mrc, write_tilt_angles
from fewpick.ops.peaks import nms
from fewpick.ops.resample import block_bin
from fewpick.simulate.tomogram import TOMO_PRESETS, simulate_tomogram


@pytest.fixture(scope="module")
def tomo():
    preset = replace(TOMO_PRESETS["easy"], shape=(80, 192, 192), n_particles=30, n_filaments=(0, 0),
                     species=("ribosome", "cct"))
    return simulate_tomogram(preset, seed=3, name="t0")


def test_candidates_find_the_particles(tomo):
    xyz, score = cand.find_candidates(tomo.tomogram, radius=6)
    assert np.all(np.diff(score) <= 0)
    picks = make_picks("t0", xyz[:, 0], xyz[:, 1], xyz[:, 2], score=score)
    truth = tomo.truth
    r = evaluate(picks, truth, radius=float(truth.diameter_px.min()) / 2)["all_picks"]
    assert r["recall"] >= 0.85, r
    # the background cut (from the phase-scrambled copy) leaves most candidates on a particle
    d = np.min(np.linalg.norm(xyz[:, None, :] - truth[["x", "y", "z"]].to_numpy(float)[None], axis=2), axis=1)
    assert np.mean(d <= float(truth.diameter_px.max()) / 2) >= 0.6, np.mean(d <= float(truth.diameter_px.max()) / 2)
    # and keeping every peak gives many more, most of them on background
    every, _ = cand.find_candidates(tomo.tomogram, radius=6, background=None)
    assert len(every) > 3 * len(xyz)
    peaks, values, cut = cand.candidate_peaks(tomo.tomogram, radius=6)  # one pass: every peak and the cut
    assert np.array_equal(peaks, every) and np.array_equal(peaks[values >= cut], xyz)


def test_a_small_complex_touching_a_larger_one_keeps_its_candidate():
    # a complex of radius 4 voxels beside one of radius 6, 14 voxels apart on the diagonal: its energy peak is
    # weaker and the larger one's reaches towards it. Suppression within a sphere of the radius keeps its peak;
    # a cube of the same half-width, whose corners reach 1.7 radii, took it.
    z, y, x = np.mgrid[:48, :96, :96]
    v = np.random.default_rng(0).normal(scale=0.3, size=z.shape).astype(np.float32)
    big, small = (40, 40, 24), (50, 50, 24)  # (x, y, z)
    for (cx, cy, cz), rad in [(big, 6), (small, 4)]:
        v[(z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= rad**2] -= 2.0  # dense matter is dark

    def nearest(xyz, c):
        return float(np.min(np.linalg.norm(xyz - np.array(c, float), axis=1)))

    xyz, _, _ = cand.candidate_peaks(v, 6, background=None)
    assert nearest(xyz, big) <= 2 and nearest(xyz, small) <= 2
    b = cand.candidate_binning(6)
    binned, r = block_bin(v, b), 6 / b
    binned = (binned - binned.mean()) / binned.std()
    zyx, _ = nms(cand.energy_response(binned, r), r, footprint="box", border=r)
    assert nearest(zyx[:, ::-1] * b + (b - 1) / 2, small) > 6


def test_noise_alone_gives_almost_no_candidates():
    rng = np.random.default_rng(5)
    noise = ndi.gaussian_filter(rng.normal(size=(80, 192, 192)), (2.5, 1.0, 1.0)).astype(np.float32)  # wedge-like
    every, _ = cand.find_candidates(noise, 6, background=None)
    kept, _ = cand.find_candidates(noise, 6)
    assert len(every) > 200 and len(kept) <= 0.03 * len(every), (len(every), len(kept))


def test_a_tomogram_of_noise_is_refused_with_a_message(tmp_path):
    rng = np.random.default_rng(5)
    noise = ndi.gaussian_filter(rng.normal(size=(80, 192, 192)), (2.5, 1.0, 1.0)).astype(np.float32)
    write_mrc(tmp_path / "noise.mrc", noise, 10.0)
    with pytest.raises(InputError, match=r"only \d candidate\(s\) in 1 tomogram\(s\), too few.*smaller --radius"):
        explore([tmp_path / "noise.mrc"], tmp_path / "run", ExploreSettings(radius=6, mode="3d"))
    assert not (tmp_path / "run" / "candidates.star").exists()


def test_background_cut_counts_null_peaks_against_kept_peaks():
    scores = np.array([10.0, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    null = np.array([6.5, 4.5, 3.5, 2.5, 1.5, 0.5])
    # at t = 5: 6 kept, 1 null above → 1/6 ≤ 0.2; at t = 4: 7 kept, 2 null → 0.29 > 0.2; t = 2: 9 kept, 4 null
    assert cand.background_cut(scores, null, 0.2) == 5.0
    assert cand.background_cut(scores, null, 0.45) == 2.0
    assert cand.background_cut(scores, np.array([11.0, 10.5]), 0.1) == 10.0  # none qualifies: only the best


def test_scrambled_copy_keeps_the_power_spectrum_and_loses_the_particles(tomo):
    v = block_bin(tomo.tomogram, 2)
    c = cand.scrambled_copy(v, seed=1)
    a, b = np.abs(np.fft.rfftn(v)), np.abs(np.fft.rfftn(c))
    assert np.allclose(a[1:, 1:, 1:], b[1:, 1:, 1:], rtol=1e-3, atol=1e-3 * a.max())
    assert abs(np.corrcoef(v.ravel(), c.ravel())[0, 1]) < 0.05


def test_no_candidates_is_a_clear_error():
    flat = np.zeros((40, 64, 64), np.float32)
    with pytest.raises(InputError, match=r"flat\.mrc: no blob-like peaks"):
        cand.find_candidates(flat, 4, source="flat.mrc")


def test_projection_matches_the_reconstruction_geometry(tomo):
    # particles are dark in the tilt images where the geometry puts them; the mirrored tilt does not
    xyz = tomo.truth[["x", "y", "z"]].to_numpy(float)
    far = np.abs(xyz[:, 2] - (tomo.tomogram.shape[0] - 1) / 2) > 10
    xyz = xyz[far]
    order = np.argsort(tomo.angles)
    series, angles = tomo.tilt_series[order], tomo.angles[order]

    def darkness(a):
        crops = cand.tilt_inputs(series, a, xyz, tomo.tomogram.shape, 48, 24, max_tilt=60)
        return float((crops.mean((1, 2)) - crops[:, 9:15, 9:15].mean((1, 2))).mean() / crops.std())

    assert darkness(angles) > 2 * darkness(-angles) and darkness(angles) > 0.5
    with pytest.raises(InputError, match=r"ts\.st: tilt series has 61 images but its \.tlt file lists 60"):
        cand.tilt_inputs(series, angles[:60], xyz, tomo.tomogram.shape, 48, 24, source="ts.st")


def test_slab_inputs_see_only_their_own_sections():
    vol = np.zeros((30, 48, 64), np.float32)
    vol[8:13, 18:23, 28:33] = -1.0  # a dark cube centred at x=30, y=20, z=10
    xyz = np.array([[30.0, 20.0, 10.0], [30.0, 20.0, 22.0], [12.0, 20.0, 10.0]])
    img = cand.slab_inputs(vol, xyz, box=16, size=16, half_thickness=2)
    assert img.shape == (3, 16, 16)
    assert img[0].min() == pytest.approx(-1.0)
    assert np.allclose(np.argwhere(img[0] < -0.5).mean(0), [7.5, 7.5])  # centred on the candidate
    assert img[1].min() == 0.0  # 12 sections away in z: the slab does not reach the cube
    assert img[2].min() == 0.0  # 18 voxels away in x, outside the 16-voxel box


def test_augment_without_crop_or_jitter_is_a_dihedral_transform():
    x = torch.randn(16, 1, 12, 12)
    out = augment(x, torch.Generator().manual_seed(0), min_area=1.0, max_aspect=1.0, jitter=0.0, corner_p=0.0)
    for a, b in zip(x[:, 0], out[:, 0]):
        views = [torch.rot90(v, k) for v in (a, a.flip(0)) for k in range(4)]
        assert min(float((v - b).abs().max()) for v in views) < 1e-4
    full = augment(x, torch.Generator().manual_seed(1), corner_p=1.0)
    corners = torch.stack([full[:, 0, :2, :2], full[:, 0, :2, -2:], full[:, 0, -2:, :2], full[:, 0, -2:, -2:]], 1)
    assert bool(((corners == 0).flatten(2).all(-1)).any(1).all())  # every view lost one corner


def test_pca_features_separate_discs_from_rings():
    from fewpick.explore.cluster import pca_features

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:24, :24] - 11.5
    r = np.hypot(yy, xx)
    disc, ring = (r < 5).astype(np.float32), ((r > 6) & (r < 9)).astype(np.float32)
    imgs = np.stack([disc] * 30 + [ring] * 30) + rng.normal(0, 0.7, (60, 24, 24)).astype(np.float32)
    f = pca_features(cand.normalize_inputs(-imgs), 8)
    assert f.shape == (60, 8 + 16) and np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)
    sim = f @ f.T
    same = np.mean([sim[i, j] for i in range(60) for j in range(60) if i != j and (i < 30) == (j < 30)])
    other = np.mean([sim[i, j] for i in range(30) for j in range(30, 60)])
    assert same > 0.5 and other < 0.0, (same, other)
    classes, _ = overcluster(f, 2, 6)
    assert len(set(classes[:30])) == 1 and len(set(classes[30:])) == 1 and classes[0] != classes[-1]


def test_radial_profiles_ignore_the_orientation():
    from fewpick.explore.cluster import radial_profiles

    rng = np.random.default_rng(1)
    imgs = rng.normal(size=(5, 24, 24)).astype(np.float32)
    imgs[:, 8:16, 4:20] += 3  # a bar across the centre
    p = radial_profiles(imgs)
    assert p.shape == (5, 16)
    assert np.allclose(p, radial_profiles(np.rot90(imgs, axes=(1, 2)).copy()), atol=1e-5)
    assert np.allclose(p, radial_profiles(imgs[:, :, ::-1].copy()), atol=1e-5)
    yy, xx = np.mgrid[:24, :24] - 11.5
    disc = (np.hypot(yy, xx) < 6).astype(np.float32)[None]
    q = radial_profiles(disc)[0]
    assert np.all(q[:7] > 0.95) and np.all(q[9:] < 0.05)


def test_score_feature_is_standardised_per_tomogram_and_separates_strong_from_weak():
    from fewpick.explore.cluster import pca_features, strength

    # two tomograms of different contrast: within each, half the candidates are 4x stronger
    scores = np.r_[np.full(20, 1.0), np.full(20, 4.0), np.full(20, 10.0), np.full(20, 40.0)]
    groups = np.repeat(["a", "b"], 40)
    z = strength(scores, groups)
    assert np.allclose(z[:20], z[40:60]) and np.allclose(z[20:40], z[60:])  # the same within either tomogram
    assert np.allclose(z[:40].mean(), 0, atol=1e-6) and np.all(z[20:40] > z[:20])
    rng = np.random.default_rng(0)
    imgs = rng.normal(size=(80, 16, 16)).astype(np.float32)  # images alone tell nothing
    f = pca_features(imgs, 8, scores=z)
    assert f.shape == (80, 8 + 16 + 1) and np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)
    strong = np.r_[20:40, 60:80]
    classes, _ = overcluster(f[:, -1:], 2, 4)  # the score column alone splits them
    assert len(set(classes[strong])) == 1 and classes[0] != classes[strong[0]]


def test_context_profiles_tell_a_large_ball_from_a_small_one_whatever_the_orientation():
    rng = np.random.default_rng(2)
    vol = rng.normal(0, 0.3, (48, 96, 96)).astype(np.float32)
    zz, yy, xx = np.mgrid[:48, :96, :96]
    centres = [(24, 24, 24), (72, 72, 24)]  # (x, y, z): a ball of radius 12 and one of radius 5
    for (x, y, z), rad in zip(centres, (12, 5)):
        vol[np.hypot(np.hypot(xx - x, yy - y), zz - z) <= rad] += 2.0
    xyz = np.array(centres, float)
    energy, density = cand.context_profiles(vol, xyz, radius=6)
    assert energy.shape == density.shape == (2, len(cand.SHELLS))
    # density: the large ball stays dense out to its 12-voxel edge (2 radii), the small one is gone by then
    at = {float(s): j for j, s in enumerate(cand.SHELLS)}
    assert density[0, at[1.5]] > 1.0 and density[1, at[1.5]] < 0.3
    # energy: the edge's detail lies farther out for the large ball
    assert np.argmax(energy[0]) > np.argmax(energy[1])
    # the same numbers when the tomogram is turned 90° about z (x, y swapped and x mirrored)
    turned = np.rot90(vol, axes=(1, 2)).copy()  # new[z, y', x'] = vol[z, x', 95 - y']
    xyz_t = np.stack([xyz[:, 1], 95 - xyz[:, 0], xyz[:, 2]], axis=1)
    e2, d2 = cand.context_profiles(turned, xyz_t, radius=6)
    assert np.allclose(e2, energy, atol=0.15) and np.allclose(d2, density, atol=0.05)


def test_context_profiles_separate_candidates_whose_images_look_alike():
    from fewpick.explore.cluster import pca_features

    rng = np.random.default_rng(3)
    imgs = rng.normal(size=(60, 16, 16)).astype(np.float32)  # images tell nothing
    small = np.tile(np.exp(-cand.SHELLS), (30, 1))
    large = np.tile(np.exp(-cand.SHELLS / 3), (30, 1))
    prof = np.vstack([small, large]) + rng.normal(0, 0.02, (60, len(cand.SHELLS)))
    f = pca_features(imgs, 8, context=(prof,))
    assert f.shape == (60, 8 + 16 + len(cand.SHELLS)) and np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)
    classes, _ = overcluster(f[:, -len(cand.SHELLS):], 2, 4)
    assert len(set(classes[:30])) == 1 and len(set(classes[30:])) == 1 and classes[0] != classes[-1]
    sim = f @ f.T
    assert sim[:30, :30].mean() > sim[:30, 30:].mean() + 0.3


def test_classes_follow_the_number_of_candidates():
    from fewpick.explore.run import classes_for

    assert classes_for(331) == 55 and classes_for(30) == 8 and classes_for(5000) == 60
    assert classes_for(5) == 5 and classes_for(331, 12) == 12  # never more than the candidates; the user's h wins


def test_overcluster_recovers_separated_groups():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10]], float)
    truth = np.repeat(np.arange(3), [200, 120, 60])
    pts = centres[truth] + rng.normal(scale=1.0, size=(len(truth), 2))
    classes, over = overcluster(pts, 3, 30)
    assert over.max() == 29 and sorted(np.bincount(classes)[1:]) == [60, 120, 200]
    for t in range(3):  # each true group is one class, the largest class is number 1
        assert len(np.unique(classes[truth == t])) == 1
    assert np.all(classes[truth == 0] == 1)


def _write(tomo, folder):
    write_mrc(folder / "t0.mrc", tomo.tomogram, 10.0)
    order = np.argsort(tomo.angles)
    write_mrc(folder / "t0.st", tomo.tilt_series[order], 10.0)
    write_tilt_angles(folder / "t0.tlt", tomo.angles[order])


def test_cli_contract_form(tomo, tmp_path):
    _write(tomo, tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["explore", str(tmp_path / "t0.mrc"), "--tilt-series", str(tmp_path / "t0.st"),
                              "--tilt-angles", str(tmp_path / "t0.tlt"), "--out", str(tmp_path / "run"),
                              "--epochs", "1"])
    assert res.exit_code == 0, res.output
    # each stage says what it starts (UMAP included) before it says how long it took
    for stage in ("candidates", "inputs", "embed", "map", "classes", "gallery"):
        assert res.output.index(f"{stage}: ") < res.output.index(f"{stage}: ", res.output.index(f"{stage}: ") + 1)
    assert "UMAP" in res.output and "tomogram 1/1 (t0)" in res.output
    table = read_picks(tmp_path / "run" / "candidates.star")
    from fewpick.explore.run import classes_for

    h = classes_for(len(table))  # the default: the number of classes follows the number of candidates
    assert {"x", "y", "z", "label"} <= set(table.columns) and set(table.label) == set(range(1, h + 1))
    assert f"{h} classes ->" in res.output
    m = Run(tmp_path / "run").load()
    assert m["settings"]["radius"] == 6  # 60 Å at 10 Å per voxel
    # the command and the library keep the same share of background candidates
    assert m["settings"]["background"] == cand.BACKGROUND == ExploreSettings(radius=6).background
    assert m["settings"]["classes"] is None
    assert m["settings"]["features"] == "pca" and "train" not in m["stages"]  # the default needs no training
    assert not (tmp_path / "run" / "encoder.pt").exists()
    (tmp_path / "short.tlt").write_text("0\n")
    res = runner.invoke(app, ["explore", str(tmp_path / "t0.mrc"), "--tilt-series", str(tmp_path / "t0.st"),
                              "--tilt-angles", str(tmp_path / "short.tlt"), "--out", str(tmp_path / "run2")])
    assert res.exit_code == 2 and "has 61 tilt images but" in res.output and "lists 1 angles" in res.output
    assert not (tmp_path / "run2").exists()  # refused before anything was written


def test_run_folder_resumes_and_refuses_other_versions(tomo, tmp_path):
    _write(tomo, tmp_path)
    s = ExploreSettings(radius=6, features="simsiam", epochs=2, classes=3, size=24, width=8)
    run = explore([tmp_path / "t0.mrc"], tmp_path / "run", s, tilt_series=[tmp_path / "t0.st"],
                  tilt_angles=[tmp_path / "t0.tlt"])
    m = run.load()
    assert list(m["stages"]) == ["candidates", "inputs", "train", "embed", "map", "classes", "gallery"]
    table = read_picks(run.path("candidates.star"))
    assert set(table.label) <= {1, 2, 3} and len(table) == m["stages"]["candidates"]["count"]
    assert np.load(run.path("embeddings.npy")).shape == (len(table), s.dim)
    assert run.path("gallery.png").stat().st_size > 0 and run.path("thumbs.png").stat().st_size > 0
    # a second start with the same settings does nothing again
    stamp = run.path("embeddings.npy").stat().st_mtime_ns
    explore([tmp_path / "t0.mrc"], tmp_path / "run", s, tilt_series=[tmp_path / "t0.st"], tilt_angles=[tmp_path / "t0.tlt"])
    assert run.path("embeddings.npy").stat().st_mtime_ns == stamp
    with pytest.raises(InputError, match="holds a run with other settings"):
        explore([tmp_path / "t0.mrc"], tmp_path / "run", replace(s, classes=4), tilt_series=[tmp_path / "t0.st"],
                tilt_angles=[tmp_path / "t0.tlt"])
    m["version"] = 99
    (tmp_path / "run" / "run.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match=r"run\.json: run folder format version 99 .* new folder"):
        Run(tmp_path / "run").load()
    bad = tmp_path / "bad.tlt"
    bad.write_text("".join(f"{a}\n" for a in tomo.angles[:-1]))
    with pytest.raises(InputError, match=r"t0\.st: has 61 tilt images but .*bad\.tlt lists 60 angles"):
        explore([tmp_path / "t0.mrc"], tmp_path / "run2", s, tilt_series=[tmp_path / "t0.st"], tilt_angles=[bad])
    assert math.isfinite(m["stages"]["train"]["final_loss"])
