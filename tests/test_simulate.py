"""The simulator: physics constants, Thon rings, SNR, contrast, WBP, determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage as ndi
from scipy.ndimage import uniform_filter1d
from scipy.signal import argrelmin

from fewpick.io import read_picks, read_tilt_angles, read_volume
from fewpick.ops.filters import gaussian_lowpass
from fewpick.simulate import (
    PRESETS,
    TOMO_PRESETS,
    particle_snr,
    physics,
    simulate_micrograph,
    simulate_tomogram,
    write_tomograms,
)
from fewpick.simulate.reconstruct import forward_project, weighted_back_projection
from fewpick.simulate.species import available_species, load_species
from fewpick.simulate.tomogram import dose_symmetric_order


def test_physical_constants():
    assert physics.wavelength(300e3) == pytest.approx(0.019687, rel=1e-4)
    assert physics.interaction_constant(300e3) == pytest.approx(6.526e-4, rel=1e-3)
    assert physics.scattering_factor("C", 0.0) == pytest.approx(2.509, abs=1e-3)
    water_potential = physics.POTENTIAL_PER_SCATTERING * physics.water_scattering(0.0) * physics.WATER_DENSITY
    assert 4.3 < water_potential < 4.9  # mean inner potential of vitreous ice, V


def test_species_models_are_real_structures():
    index = available_species()
    assert {"ribosome", "cct", "mtor", "ruvab", "glua3", "enolase", "dengue"} <= set(index)
    ribo = load_species("ribosome")
    assert index["ribosome"]["pdb_id"] == "6ZU5" and 2200 < ribo.mass_kda < 2400
    assert len(ribo.xyz) == 165175
    assert np.abs(ribo.xyz.mean(axis=0)).max() < 5  # centred
    dengue = load_species("dengue")
    assert len(dengue.xyz) == 60 * 16667  # assembled from 60 operators
    beads, counts = load_species("cct").pseudo_atoms(10.0)
    assert counts.sum() == len(load_species("cct").xyz) and len(beads) < len(load_species("cct").xyz) / 5


def _radial_power(image, pixel_size, nbins=400):
    img = image - image.mean()
    ps = np.abs(np.fft.fft2(img)) ** 2
    f = np.fft.fftfreq(img.shape[0], d=pixel_size)
    g = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    bins = np.linspace(0, 1 / (2 * pixel_size), nbins)
    idx = np.digitize(g.ravel(), bins)
    total = np.bincount(idx, weights=ps.ravel(), minlength=nbins + 1)[1:nbins]
    count = np.maximum(np.bincount(idx, minlength=nbins + 1)[1:nbins], 1)
    return (bins[:-1] + bins[1:]) / 2, total / count


def test_thon_ring_zeros_sit_at_the_predicted_ctf_zeros():
    preset = replace(PRESETS["easy"], astigmatism=0.0, defocus=(20000.0, 20000.0))
    sim = simulate_micrograph((1024, 1024), 0, preset, seed=3)
    g, power = _radial_power(sim.image, sim.pixel_size)
    minima = g[argrelmin(uniform_filter1d(np.log(power), 3), order=4)[0]]
    predicted = physics.ctf_zeros(sim.params["defocus_u"], 6)
    for z in predicted:  # measured: within 1.1 %
        assert np.min(np.abs(minima - z)) / z < 0.02, (z, minima)


@pytest.fixture(scope="module")
def realistic_pair():
    return [simulate_micrograph((1536, 1536), 60, "realistic", seed=s, keep_clean=True) for s in (11, 12)]


def test_realistic_snr_per_species_in_band(realistic_pair):
    snr = pd.concat([particle_snr(s) for s in realistic_pair])
    medians = snr.groupby("species")["snr"].median()
    assert len(medians) == 5
    for species, value in medians.items():
        assert 0.01 <= value <= 0.1, (species, value)
    assert medians["ribosome"] > 1.5 * medians["enolase"]  # big particles stand out more


def _local_contrast(img, xs, ys, r):
    """Mean of a disc (0.6 r) minus the mean of the surrounding annulus (1.05–1.5 r)."""
    h, w = img.shape
    big = int(1.6 * r) + 1
    yy, xx = np.mgrid[-big : big + 1, -big : big + 1]
    d = np.hypot(xx, yy)
    disc, ring = d <= 0.6 * r, (d >= 1.05 * r) & (d <= 1.5 * r)
    out = []
    for x, y in zip(xs, ys):
        xi, yi = int(round(x)), int(round(y))
        if big <= xi < w - big and big <= yi < h - big:
            patch = img[yi - big : yi + big + 1, xi - big : xi + big + 1]
            out.append(patch[disc].mean() - patch[ring].mean())
    return np.array(out)


def test_truth_positions_are_darker_than_their_surroundings_for_large_species():
    """Large particles are darker than the ice around them; random positions are not.

    Carbon and contamination are switched off: they change the background on purpose.
    Measured: z = 4–7 for ribosome and CCT over two 1536² micrographs.
    """
    preset = replace(PRESETS["realistic"], carbon_probability=0.0, contamination=(0, 0))
    sims = [simulate_micrograph((1536, 1536), 60, preset, seed=s) for s in (11, 13)]
    rng = np.random.default_rng(0)
    for species in ("ribosome", "cct"):
        at, rand = [], []
        for sim in sims:
            lp = gaussian_lowpass(sim.image, 4)
            t = sim.truth[sim.truth.species == species]
            r = load_species(species).diameter / sim.pixel_size / 2
            at.append(_local_contrast(lp, t.x, t.y, r))
            rand.append(_local_contrast(lp, rng.uniform(0, 1536, 300), rng.uniform(0, 1536, 300), r))
        at, rand = np.concatenate(at), np.concatenate(rand)
        z = (rand.mean() - at.mean()) / (rand.std() / np.sqrt(len(at)))
        assert len(at) >= 10 and z > 3.5, (species, len(at), z)


def test_same_seed_same_micrograph_and_truth():
    a = simulate_micrograph((256, 256), 6, "hard", seed=5)
    b = simulate_micrograph((256, 256), 6, "hard", seed=5)
    c = simulate_micrograph((256, 256), 6, "hard", seed=6)
    np.testing.assert_array_equal(a.image, b.image)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not np.array_equal(a.image, c.image)


def test_wbp_of_noise_free_phantom_correlates_with_phantom():
    nz, ny, nx = 80, 96, 128
    rng = np.random.default_rng(0)
    z, y, x = np.indices((nz, ny, nx))
    phantom = np.zeros((nz, ny, nx), np.float32)
    for _ in range(25):
        c = rng.uniform([15, 8, 8], [65, 88, 120])
        phantom += ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) < rng.uniform(3, 8) ** 2
    angles = np.arange(-60, 61, 2.0)
    # an independent projector: rotate the volume in the xz plane, sum along z
    tilts = np.stack([ndi.rotate(phantom, a, axes=(0, 2), reshape=False, order=1).sum(0) for a in angles])
    # same geometry as our projector (measured 0.95; the opposite tilt sign gives 0.34)
    assert np.corrcoef(tilts.ravel(), forward_project(phantom, angles).ravel())[0, 1] > 0.9
    rec = weighted_back_projection(tilts, angles, nz)
    # correlation in the band 0.02–0.25 cycles/voxel: measured 0.80 (±60°, 2° steps; the missing wedge limits it)
    f1, f2 = np.fft.fftn(rec), np.fft.fftn(phantom)
    g = np.sqrt(np.fft.fftfreq(nz)[:, None, None] ** 2 + np.fft.fftfreq(ny)[None, :, None] ** 2
                + np.fft.fftfreq(nx)[None, None, :] ** 2)
    band = (g >= 0.02) & (g < 0.25)
    cc = np.real((f1[band] * np.conj(f2[band])).sum()) / np.sqrt((abs(f1[band]) ** 2).sum() * (abs(f2[band]) ** 2).sum())
    assert cc > 0.7


def test_dose_symmetric_order():
    order = dose_symmetric_order(60, 3)
    assert order[0] == 0 and len(order) == 41 and sorted(order) == list(np.arange(-60, 61, 3.0))
    assert list(order[1:5]) == [3, 6, -3, -6]


def test_small_tomogram_truth_contrast_files_and_determinism(tmp_path):
    preset = replace(TOMO_PRESETS["realistic"], shape=(64, 160, 160), n_particles=40, n_filaments=(1, 1),
                     membrane_probability=0.0, tilt_step=3.0)
    sim = simulate_tomogram(preset, seed=4)
    again = simulate_tomogram(preset, seed=4)
    np.testing.assert_array_equal(sim.tomogram, again.tomogram)
    assert sim.tomogram.shape == (64, 160, 160) and len(sim.angles) == 41
    t = sim.truth
    assert {"microtubule"} < set(t.species) and t["rlnHelicalTubeID"].max() == 1
    for axis, n in (("x", 160), ("y", 160), ("z", 64)):
        assert t[axis].between(-0.5, n - 0.5).all()
    # particle centres differ from random positions in the low-passed tomogram
    lp = gaussian_lowpass(sim.tomogram, 1.5)
    parts = t[(t.species != "microtubule") & t.x.between(4, 155) & t.y.between(4, 155) & t.z.between(4, 59)]
    at = np.abs(lp[parts.z.round().astype(int), parts.y.round().astype(int), parts.x.round().astype(int)] - lp.mean())
    rng = np.random.default_rng(1)
    rand = np.abs(lp[rng.integers(4, 60, 500), rng.integers(4, 156, 500), rng.integers(4, 156, 500)] - lp.mean())
    assert np.median(at) > 2 * np.median(rand)


def test_write_tomograms_files(tmp_path):
    truth = write_tomograms(tmp_path, 1, "easy", seed=1, size=96, depth=40)
    vol = read_volume(tmp_path / "tomo_000.mrc")
    assert vol.shape == (40, 96, 96) and vol.pixel_size == pytest.approx(10.0)
    ts = read_volume(tmp_path / "tomo_000.st")
    angles = read_tilt_angles(tmp_path / "tomo_000.tlt")
    assert ts.shape[0] == len(angles) == 61 and np.all(np.diff(angles) > 0)
    back = read_picks(tmp_path / "tomo_000_truth.star")
    assert len(back) == len(truth) and "z" in back.columns and "species" in back.columns


def test_species_map_is_centred_sized_and_written_by_the_cli(tmp_path):
    from scipy import ndimage
    from typer.testing import CliRunner

    from fewpick.cli import app
    from fewpick.io import read_image
    from fewpick.simulate.species import load_species, species_map

    vol = species_map("enolase", 3.0)
    sp = load_species("enolase")
    assert vol.shape[0] == vol.shape[1] == vol.shape[2] >= 2 * sp.radius / 3.0
    com = np.array(ndimage.center_of_mass(vol))
    assert np.all(np.abs(com - vol.shape[0] / 2) < 1.0)  # the centre of mass sits at the box centre
    assert vol.min() >= 0 and vol.max() > 0
    r = CliRunner().invoke(app, ["simulate", "map", "--species", "enolase", "--pixel-size", "3", "--out",
                                 str(tmp_path / "eno.mrc")])
    assert r.exit_code == 0, r.output
    im = read_image(tmp_path / "eno.mrc")
    assert abs(im.pixel_size - 3.0) < 1e-4 and np.allclose(im.data, vol)
