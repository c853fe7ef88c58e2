"""Realistic cryo-ET tilt series and tomograms with exact ground truth.

A slab of vitreous ice holds particles of several species (real atomic models,
coarse-grained into pseudo-atoms a voxel apart), microtubule-like filaments (13
protofilaments, 25 nm across, tubulin every 4 nm, 3-start helical lattice) and
optionally a membrane vesicle (a bilayer, two head-group leaflets 4 nm apart).
For every tilt (±60°, dose-symmetric order) the pseudo-atoms are projected along the
tilted beam and the image is formed as for micrographs: scattering with solvent
exclusion, ice of thickness ``t / cos θ``, a per-tilt CTF with radiation damage from
the dose accumulated so far, Poisson noise and the detector MTF; each tilt is also off
by a small residual alignment error, which blurs the tomogram as in real data. The tomogram is
reconstructed from the tilt series by weighted back-projection, so the missing wedge
and its artefacts are real.

Coordinates: the tomogram is ``(z, y, x)``; truth positions are voxels (x = column,
y = row, z = section, origin at the first voxel's centre). The tilt axis is y; tilt
images are ``(y, x)`` with the volume centre at the image centre. In a tomogram,
proteins are dark (as in the images).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.fft
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from fewpick.errors import InputError
from fewpick.simulate import physics
from fewpick.simulate.micrograph import medium_noise, splat_bilinear
from fewpick.simulate.reconstruct import weighted_back_projection
from fewpick.simulate.species import load_species

_WORKERS = 2
# composition of an average protein, by heavy atoms (C, N, O, P, S, X)
_PROTEIN = np.array([0.63, 0.17, 0.19, 0.0, 0.01, 0.0])


@dataclass
class TomogramPreset:
    """Settings of the tomogram simulator (lengths in Å unless stated)."""

    name: str = "realistic"
    shape: tuple[int, int, int] = (200, 512, 512)  # (z, y, x) voxels
    voxel_size: float = 10.0
    tilt_range: float = 60.0
    tilt_step: float = 2.0
    total_dose: float = 120.0  # e/Å² over the whole series
    defocus: tuple[float, float] = (30000.0, 50000.0)
    defocus_jitter: float = 500.0  # per tilt
    alignment_error: float = 0.7  # residual tilt-series misalignment, voxels (std of x and y shifts)
    b_factor: float = 200.0
    dqe: float = 0.5
    voltage: float = 300e3
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    slab_fraction: float = 0.75  # ice thickness as a fraction of the volume's depth
    inelastic_mfp: float = 3200.0
    species: tuple[str, ...] = ("ribosome", "cct", "mtor", "ruvab")
    n_particles: int = 260
    n_filaments: tuple[int, int] = (1, 3)
    membrane_probability: float = 0.5


TOMO_PRESETS = {
    "easy": TomogramPreset(name="easy", total_dose=160.0, b_factor=120.0, n_particles=150, membrane_probability=0.0),
    "realistic": TomogramPreset(),
    "hard": TomogramPreset(name="hard", total_dose=80.0, b_factor=300.0, n_particles=380, n_filaments=(2, 5),
                           membrane_probability=1.0, tilt_step=3.0),
}


@dataclass
class SimulatedTomogram:
    tomogram: np.ndarray  # (z, y, x) float32
    tilt_series: np.ndarray  # (n_tilts, y, x) float32, in acquisition order
    angles: np.ndarray  # degrees, in acquisition order
    truth: pd.DataFrame  # micrograph, x, y, z, species, angles, rlnHelicalTubeID (filament points)
    voxel_size: float
    params: dict = field(default_factory=dict)
    phantom: np.ndarray | None = None  # noise-free projected model, reconstructed without noise (optional)


def dose_symmetric_order(tilt_range: float, step: float) -> np.ndarray:
    """Hagen's dose-symmetric scheme: 0, then groups of two on alternating sides (0, +s, +2s, −s, −2s, +3s, ...)."""
    n = int(round(tilt_range / step))
    order = [0.0]
    pos, neg = 1, 1
    side = 1
    while pos <= n or neg <= n:
        for _ in range(2):
            if side > 0 and pos <= n:
                order.append(pos * step)
                pos += 1
            elif side < 0 and neg <= n:
                order.append(-neg * step)
                neg += 1
        side = -side
    return np.asarray(order)


def _microtubule(rng, start, direction, length, spacing=40.0, radius=115.0, n_pf=13):
    """Pseudo-atom cloud of a 13-protofilament microtubule, and its centre-line points."""
    direction = direction / np.linalg.norm(direction)
    # orthonormal frame around the axis
    a = np.array([1.0, 0, 0]) if abs(direction[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(direction, a)
    u /= np.linalg.norm(u)
    v = np.cross(direction, u)
    n_rings = int(length / spacing)
    rise = 3 * spacing / n_pf  # 3-start helix: each protofilament is offset by 3/13 of a monomer
    pts = []
    for k in range(n_rings):
        for p in range(n_pf):
            phi = 2 * np.pi * p / n_pf
            centre = start + direction * (k * spacing + p * rise) + radius * (np.cos(phi) * u + np.sin(phi) * v)
            pts.append(centre + rng.normal(scale=12.0, size=(6, 3)))  # a monomer: 6 beads over ~2.5 nm
    line = start + direction[None, :] * np.arange(0, n_rings * spacing, 20.0)[:, None]
    beads = np.concatenate(pts)
    return beads, np.full(len(beads), 3600.0 / 6), line


def _vesicle(rng, centre, radius, spacing=12.0):
    """Two leaflets of head groups (±20 Å from the mid-plane) on a sphere."""
    beads = []
    for r in (radius - 20.0, radius + 20.0):
        n = int(4 * np.pi * r * r / spacing**2)
        k = np.arange(n) + 0.5
        zc = 1 - 2 * k / n
        phi = np.pi * (1 + 5**0.5) * k
        rr = np.sqrt(1 - zc**2)
        beads.append(centre + r * np.stack([rr * np.cos(phi), rr * np.sin(phi), zc], axis=1))
    beads = np.concatenate(beads)
    return beads, np.full(len(beads), 6.0)  # ~6 heavy atoms of head-group per 12 Å patch


def simulate_tomogram(preset: TomogramPreset | str = "realistic", seed: int = 0, name: str = "tomo",
                      keep_phantom: bool = False) -> SimulatedTomogram:
    """Simulate a tilt series and reconstruct it (see the module docstring)."""
    if isinstance(preset, str):
        if preset not in TOMO_PRESETS:
            raise InputError(None, f"unknown preset {preset!r}; choose one of {', '.join(TOMO_PRESETS)}")
        preset = TOMO_PRESETS[preset]
    rng = np.random.default_rng(seed)
    nz, ny, nx = preset.shape
    a = preset.voxel_size
    centre = np.array([(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2])  # x, y, z in voxels
    slab = preset.slab_fraction * nz * a  # ice thickness, Å
    z_half = slab / 2
    largest = max(load_species(k).radius for k in preset.species) * 0.85
    if slab < 2 * largest + 1 or min(nx, ny) * a < 2 * largest:
        depth = int(np.ceil((2 * largest + 1) / (preset.slab_fraction * a)))
        side = int(np.ceil(2 * largest / a))
        raise InputError(None, f"a tomogram of {nx}×{ny}×{nz} voxels is too small for this preset's particles "
                               f"(up to {2 * largest / 10:.0f} nm): give a size of at least {side} and a depth of at "
                               f"least {depth} voxels")

    beads, counts, truth_rows = [], [], []
    obstacles = []  # (points Å, radius Å): filament axes and membrane beads to avoid

    # filaments lying roughly in the slab plane
    n_fil = rng.integers(preset.n_filaments[0], preset.n_filaments[1] + 1)
    for f in range(n_fil):
        ang = rng.uniform(0, np.pi)
        d = np.array([np.cos(ang), np.sin(ang), rng.normal(scale=0.08)])
        length = rng.uniform(0.6, 1.0) * min(nx, ny) * a
        mid = (rng.uniform([0.25, 0.25], [0.75, 0.75]) * np.array([nx, ny]) - centre[:2]) * a
        start = np.array([*mid, rng.uniform(-0.5, 0.5) * (z_half - 200)]) - d / np.linalg.norm(d) * length / 2
        fb, fc, line = _microtubule(rng, start, d, length)
        beads.append(fb)
        counts.append(fc)
        obstacles.append((line, 140.0))
        for p in line:
            vox = p / a + centre
            if 0 <= vox[0] < nx and 0 <= vox[1] < ny and 0 <= vox[2] < nz:
                truth_rows.append(("microtubule", *vox, 0.0, 0.0, 0.0, f + 1))
    # a vesicle
    has_membrane = rng.random() < preset.membrane_probability
    if has_membrane:
        r = rng.uniform(400, 900)
        c = np.array([*(rng.uniform(0.2, 0.8, 2) * np.array([nx, ny]) - centre[:2]) * a, 0.0])
        vb, vc = _vesicle(rng, c, r)
        beads.append(vb)
        counts.append(vc)
        obstacles.append((c[None, :], r + 40))

    # particles: non-overlapping balls in the slab, away from filaments and the vesicle
    species = [load_species(k) for k in preset.species]
    models = [s.pseudo_atoms(a) for s in species]
    placed_c, placed_r = [], []
    fil_tree = [(cKDTree(p), r) for p, r in obstacles]
    choice = rng.integers(len(species), size=preset.n_particles)
    order = np.argsort([-species[c].radius for c in choice], kind="stable")
    for i in order:
        sp = species[choice[i]]
        r = sp.radius * 0.85
        for _ in range(40):
            p = np.array([rng.uniform(-nx / 2 * a + r * 0.5, nx / 2 * a - r * 0.5),
                          rng.uniform(-ny / 2 * a + r * 0.5, ny / 2 * a - r * 0.5),
                          rng.uniform(-z_half + r, z_half - r)])
            if placed_c and np.any(np.linalg.norm(np.asarray(placed_c) - p, axis=1) < np.asarray(placed_r) + r):
                continue
            if any(tree.query(p)[0] < rad + r for tree, rad in fil_tree):
                continue
            placed_c.append(p)
            placed_r.append(r)
            rot = Rotation.random(random_state=rng.integers(2**31))
            xyz, cnt = models[choice[i]]
            beads.append(xyz @ rot.as_matrix().T.astype(np.float32) + p.astype(np.float32))
            counts.append(cnt)
            vox = p / a + centre
            truth_rows.append((sp.key, *vox, *rot.as_euler("ZYZ", degrees=True), 0))
            break
    pos = np.concatenate(beads).astype(np.float64) if beads else np.zeros((0, 3))
    cnt = np.concatenate(counts).astype(np.float64) if counts else np.zeros(0)

    # acquisition
    angles = dose_symmetric_order(preset.tilt_range, preset.tilt_step)
    dose_per_tilt = preset.total_dose / len(angles)
    base_defocus = rng.uniform(*preset.defocus)
    shape2 = (ny, nx)
    gy, gx = physics.frequency_grid(shape2, a)
    g = np.sqrt(gx**2 + gy**2)
    sigma = physics.interaction_constant(preset.voltage)
    water_v = physics.POTENTIAL_PER_SCATTERING * physics.water_scattering(0.0) * physics.WATER_DENSITY
    transfer = np.zeros_like(g)
    for frac, el in zip(_PROTEIN, physics.GROUPS):
        if frac:
            f = physics.scattering_factor(el, g) + physics.IMPLICIT_H[el] * physics.scattering_factor("H", g)
            v = physics.EXCLUDED_VOLUME[el]
            transfer += frac * (physics.POTENTIAL_PER_SCATTERING * f - water_v * v * np.exp(-np.pi * v ** (2 / 3) * g**2))
    transfer = (sigma * transfer / a**2 / (np.sinc(np.fft.fftfreq(ny))[:, None] ** 2
                                          * np.sinc(np.fft.rfftfreq(nx))[None, :] ** 2)).astype(np.float32)
    mtf = physics.detector_mtf(shape2)
    tilts = np.empty((len(angles), ny, nx), np.float32)
    clean_tilts = np.empty_like(tilts) if keep_phantom else None
    accumulated = 0.0
    defoci = []
    for k, th in enumerate(angles):
        t = np.deg2rad(th)
        shift = rng.normal(scale=preset.alignment_error, size=2) if k else np.zeros(2)
        xp = (pos[:, 0] * np.cos(t) + pos[:, 2] * np.sin(t)) / a + centre[0] + shift[0]
        yp = pos[:, 1] / a + centre[1] + shift[1]
        grid = splat_bilinear(xp, yp, cnt, shape2)
        phase = scipy.fft.rfft2(grid, workers=_WORKERS) * transfer
        path = slab / np.cos(t)
        phase += medium_noise(rng, shape2, a, preset.voltage, np.full(shape2, physics.WATER_DENSITY * path * a * a,
                                                                        np.float32), "water")
        df = base_defocus + rng.normal(scale=preset.defocus_jitter)
        defoci.append(df)
        damage = physics.dose_filter(shape2, a, accumulated + dose_per_tilt / 2)
        ctf = 2 * physics.ctf(shape2, a, df, df, 0.0, preset.voltage, preset.cs_mm, preset.amplitude_contrast,
                              preset.b_factor) * damage
        contrast = scipy.fft.irfft2(phase * ctf, s=shape2, workers=_WORKERS)
        expected = np.clip((1 + contrast) * np.exp(-path / preset.inelastic_mfp) * dose_per_tilt * a * a, 0, None)
        noisy = rng.poisson(expected * preset.dqe).astype(np.float32) / preset.dqe
        tilts[k] = scipy.fft.irfft2(scipy.fft.rfft2(noisy, workers=_WORKERS) * mtf, s=shape2, workers=_WORKERS)
        if keep_phantom:
            clean = scipy.fft.irfft2(scipy.fft.rfft2(grid, workers=_WORKERS) * transfer, s=shape2, workers=_WORKERS)
            clean_tilts[k] = clean
        accumulated += dose_per_tilt

    # reconstruct from images normalised to contrast (I - <I>) / <I>, sorted by angle
    norm = tilts / tilts.mean(axis=(1, 2), keepdims=True) - 1
    by_angle = np.argsort(angles)
    tomogram = weighted_back_projection(norm[by_angle], angles[by_angle], nz)
    phantom = None
    if keep_phantom:
        phantom = weighted_back_projection(clean_tilts[by_angle], angles[by_angle], nz)

    truth = pd.DataFrame(truth_rows, columns=["species", "x", "y", "z", "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi",
                                              "rlnHelicalTubeID"])
    truth.insert(0, "micrograph", name)
    truth["diameter_px"] = [load_species(s).diameter / a if s != "microtubule" else 250.0 / a for s in truth["species"]]
    params = {"preset": preset.name, "voxel_size": a, "shape_zyx": list(preset.shape), "n_tilts": int(len(angles)),
              "tilt_range": preset.tilt_range, "tilt_step": preset.tilt_step, "total_dose": preset.total_dose,
              "defocus_mean": float(np.mean(defoci)), "b_factor": preset.b_factor, "ice_thickness": slab,
              "membrane": bool(has_membrane), "filaments": int(n_fil)}
    return SimulatedTomogram(tomogram, tilts, angles, truth, a, params, phantom)
