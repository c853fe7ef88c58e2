"""Realistic single-particle micrographs with exact ground truth.

Image formation, in order:

1. **Particles**: real atomic models at uniformly random orientations and
   non-overlapping positions. Their projected Coulomb potential is built in Fourier
   space: atoms of each element group are splatted (bilinear, then corrected for the
   splat's own transfer) onto the micrograph grid, and multiplied by the group's
   electron scattering factor (Peng 1996) plus implicit hydrogens, minus the
   potential of the solvent each atom displaces (solvent exclusion; proteins in ice
   have a third of their contrast in vacuum).
2. **Ice** of varying thickness: its mean potential, and structured noise from the
   random positions of water molecules with the structure factor of vitreous water.
   Optionally a **carbon** film with an edge, **ice contamination** (crystalline ice
   balls on the surface) and **aggregates** (clumps of protein, not in the truth).
3. **Optics**: weak-phase image through the CTF (300 kV, Cs, amplitude contrast,
   per-micrograph defocus and astigmatism, B-factor envelope); zero-loss attenuation
   ``exp(−t/λ_in)`` by the local thickness.
4. **Detector**: Poisson counts for the dose (as noisy as ``dose × DQE``), then the
   counting detector's MTF.

Coordinates in the truth are pixels (x = column, y = row, origin at the first pixel's
centre). Orientations are ZYZ Euler angles (degrees) of the rotation ``R`` applied
to the model before projecting along z: ``Rotation.from_euler("ZYZ", [rot, tilt, psi],
degrees=True)`` rebuilds ``R``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.fft
from scipy.spatial.transform import Rotation
from scipy.special import expit

from fewpick.errors import InputError
from fewpick.simulate import physics
from fewpick.simulate.species import Species, load_species

_WORKERS = 2
DEFAULT_SPECIES = ("ribosome", "cct", "mtor", "ruvab", "enolase")


@dataclass
class MicrographPreset:
    """Every setting of the micrograph simulator (lengths in Å unless stated)."""

    name: str = "realistic"
    pixel_size: float = 1.2  # Å/px
    voltage: float = 300e3
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    defocus: tuple[float, float] = (8000.0, 30000.0)  # 0.8–3 µm underfocus
    astigmatism: float = 600.0  # max |Δf_u − Δf_v|
    b_factor: tuple[float, float] = (90.0, 170.0)
    dose: float = 40.0  # e/Å² (frame-averaged)
    dqe: float = 0.5  # detective quantum efficiency: counts are as noisy as dose × dqe
    ice_thickness: tuple[float, float] = (350.0, 700.0)  # mean thickness range; varies within the image
    ice_variation: float = 0.15  # relative low-frequency variation of thickness
    inelastic_mfp: float = 3200.0  # zero-loss mean free path in ice at 300 kV
    carbon_probability: float = 0.3
    carbon_thickness: float = 120.0
    contamination: tuple[int, int] = (0, 2)  # ice balls per micrograph (min, max)
    aggregates: tuple[int, int] = (0, 3)  # protein clumps per micrograph
    species: tuple[str, ...] = DEFAULT_SPECIES
    weights: tuple[float, ...] | None = None  # relative abundance, default equal


PRESETS = {
    "easy": MicrographPreset(name="easy", defocus=(15000.0, 30000.0), astigmatism=200.0, b_factor=(30.0, 60.0),
                             dose=60.0, ice_thickness=(200.0, 300.0), ice_variation=0.05, carbon_probability=0.0,
                             contamination=(0, 0), aggregates=(0, 0)),
    "realistic": MicrographPreset(),
    "hard": MicrographPreset(name="hard", defocus=(6000.0, 18000.0), astigmatism=1200.0, b_factor=(120.0, 200.0),
                             dose=25.0, ice_thickness=(500.0, 900.0), ice_variation=0.25, carbon_probability=0.6,
                             contamination=(1, 4), aggregates=(2, 8)),
}


@dataclass
class SimulatedMicrograph:
    """Result of :func:`simulate_micrograph`."""

    image: np.ndarray  # counts per pixel, float32 (rows, cols)
    truth: pd.DataFrame  # micrograph, x, y, species, angles, defocus
    pixel_size: float
    params: dict = field(default_factory=dict)
    clean: np.ndarray | None = None  # noise-free image (expected counts, through the MTF)
    signal: np.ndarray | None = None  # the particles' part of ``clean`` (for SNR)


# ---------------------------------------------------------------- geometry


def _place(rng, shape, radii_px, forbidden, margin_frac=0.5, max_tries=60):
    """Dart-throwing: centres (x, y) for discs of the given radii, not overlapping each
    other nor the forbidden discs (x, y, r). Returns the indices placed and their centres."""
    h, w = shape
    placed_xy = np.zeros((0, 2))
    placed_r = np.zeros(0)
    if len(forbidden):
        placed_xy = np.asarray(forbidden)[:, :2]
        placed_r = np.asarray(forbidden)[:, 2]
    keep, centres = [], []
    for i, r in enumerate(radii_px):
        m = r * margin_frac
        for _ in range(max_tries):
            p = rng.uniform([m, m], [w - 1 - m, h - 1 - m])
            if len(placed_r) == 0 or np.all(np.hypot(*(placed_xy - p).T) >= placed_r + r):
                placed_xy = np.vstack([placed_xy, p])
                placed_r = np.append(placed_r, r)
                keep.append(i)
                centres.append(p)
                break
    return np.asarray(keep, int), np.asarray(centres).reshape(-1, 2)


def _smooth_field(rng, shape, scale_px, amplitude):
    """A smooth random field (Gaussian spectrum, correlation length ~``scale_px``) with the given std."""
    white = rng.standard_normal(shape).astype(np.float32)
    fy = np.fft.fftfreq(shape[0])[:, None].astype(np.float32)
    fx = np.fft.rfftfreq(shape[1])[None, :].astype(np.float32)
    spectrum = scipy.fft.rfft2(white, workers=_WORKERS) * np.exp(-2 * np.pi**2 * (scale_px / 4) ** 2 * (fx**2 + fy**2))
    out = scipy.fft.irfft2(spectrum, s=shape, workers=_WORKERS)
    return ((out - out.mean()) / (out.std() + 1e-12) * amplitude).astype(np.float32)


# ---------------------------------------------------------------- potential


def splat_bilinear(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Sum point weights onto a ``(rows, cols)`` grid with bilinear interpolation (one bincount per corner).

    ``x`` is the column and ``y`` the row coordinate in pixels; points off the grid are dropped.
    """
    h, w = shape
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx = (x - x0).astype(np.float32)
    fy = (y - y0).astype(np.float32)
    out = np.zeros(h * w, np.float64)
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        wgt = (fy if dy else 1 - fy) * (fx if dx else 1 - fx)
        if weights is not None:
            wgt = wgt * weights
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        out += np.bincount(yy[ok] * w + xx[ok], weights=wgt[ok], minlength=h * w)
    return out.reshape(h, w).astype(np.float32)


class _Splatter:
    """Collects atom positions per element group, to splat each group once."""

    def __init__(self, shape):
        self.shape = shape
        self.chunks: list[list[np.ndarray]] = [[] for _ in physics.GROUPS]

    def add(self, xy_px: np.ndarray, group: np.ndarray):
        order = np.argsort(group, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(group, minlength=len(physics.GROUPS)))])
        for g in range(len(physics.GROUPS)):
            if starts[g + 1] > starts[g]:
                self.chunks[g].append(xy_px[order[starts[g] : starts[g + 1]]])

    def grid(self, g: int) -> np.ndarray | None:
        if not self.chunks[g]:
            return None
        xy = np.concatenate(self.chunks[g])
        self.chunks[g] = []
        return splat_bilinear(xy[:, 0], xy[:, 1], None, self.shape)


@functools.lru_cache(maxsize=4)
def _atom_transfer(shape, pixel_size, voltage) -> list[np.ndarray]:
    """Per element group: phase per atom in Fourier space (scattering − displaced solvent)."""
    sigma = physics.interaction_constant(voltage)
    water_potential = physics.POTENTIAL_PER_SCATTERING * physics.water_scattering(0.0) * physics.WATER_DENSITY
    # bilinear splatting multiplies the spectrum by sinc^2 per axis: divide it out
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    splat = (np.sinc(fy) ** 2 * np.sinc(fx) ** 2).astype(np.float32)
    out = []
    for name in physics.GROUPS:
        v = physics.EXCLUDED_VOLUME[name]

        def per_atom(g, name=name, v=v):
            f = physics.scattering_factor(name, g) + physics.IMPLICIT_H[name] * physics.scattering_factor("H", g)
            solvent = water_potential * v * np.exp(-np.pi * v ** (2 / 3) * g**2)
            return sigma * (physics.POTENTIAL_PER_SCATTERING * f - solvent) / pixel_size**2

        out.append(physics.radial(per_atom, shape, pixel_size) / splat)
    return out


@functools.lru_cache(maxsize=8)
def _medium_amplitude(shape, pixel_size, voltage, kind) -> np.ndarray:
    """Fourier amplitude of one molecule (water) or atom (carbon) of a random medium, with its structure factor."""
    sigma = physics.interaction_constant(voltage)

    def amp(g):
        if kind == "water":
            a = physics.water_scattering(g) * np.sqrt(physics.water_structure_factor(g))
        else:  # amorphous carbon: short-range order, suppressed at low g
            sf = 0.1 + 0.9 / (1 + np.exp(-(g - 0.25) / 0.03)) + 0.6 * np.exp(-((g - 0.45) ** 2) / (2 * 0.05**2))
            a = physics.scattering_factor("C", g) * np.sqrt(sf)
        return sigma * physics.POTENTIAL_PER_SCATTERING * a / pixel_size**2

    return physics.radial(amp, shape, pixel_size)


def medium_noise(rng, shape, pixel_size, voltage, count_per_px: np.ndarray, kind: str) -> np.ndarray:
    """Fourier-space phase noise of randomly placed water molecules or carbon atoms."""
    white = rng.standard_normal(shape).astype(np.float32) * np.sqrt(np.maximum(count_per_px, 0)).astype(np.float32)
    spec = scipy.fft.rfft2(white, workers=_WORKERS)
    spec *= _medium_amplitude(tuple(shape), float(pixel_size), float(voltage), kind)
    return spec


# ---------------------------------------------------------------- main entry


def simulate_micrograph(
    shape: tuple[int, int] = (1024, 1024),
    n_particles: int = 60,
    preset: MicrographPreset | str = "realistic",
    seed: int = 0,
    name: str = "micrograph",
    keep_clean: bool = False,
) -> SimulatedMicrograph:
    """Simulate one micrograph.

    Parameters
    ----------
    shape
        (rows, columns) in pixels.
    n_particles
        Particles to place (fewer if they do not fit).
    preset
        ``"easy"``, ``"realistic"``, ``"hard"`` or a :class:`MicrographPreset`.
    seed
        Random seed: the same seed gives the same micrograph, bit for bit.
    keep_clean
        Also return the noise-free image and the particles' signal.
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise InputError(None, f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    rng = np.random.default_rng(seed)
    a = preset.pixel_size
    h0, w0 = shape
    # Fourier optics are periodic: simulate on a grid padded by the CTF's delocalisation
    # (lambda * defocus * g_max) and crop, so nothing wraps around the edges.
    pad = int(np.ceil(physics.wavelength(preset.voltage) * max(preset.defocus) * 0.5 / a / a)) + 16
    h, w = h0 + 2 * pad, w0 + 2 * pad
    shape = (h, w)
    species = [load_species(k) for k in preset.species]
    weights = np.ones(len(species)) if preset.weights is None else np.asarray(preset.weights, float)
    weights = weights / weights.sum()

    # per-micrograph optics
    df_mean = rng.uniform(*preset.defocus)
    astig = rng.uniform(0, preset.astigmatism)
    df_u, df_v = df_mean + astig / 2, df_mean - astig / 2
    astig_angle = rng.uniform(-90, 90)
    b_factor = rng.uniform(*preset.b_factor)

    # ice thickness map, carbon, contamination
    t_mean = rng.uniform(*preset.ice_thickness)
    ice = t_mean * (1 + _smooth_field(rng, shape, max(h, w) / 3, preset.ice_variation))
    ice = np.clip(ice, 0.3 * t_mean, None).astype(np.float32)
    carbon = np.zeros(shape, np.float32)
    if rng.random() < preset.carbon_probability:
        # the edge of a large circular hole crosses the image: carbon outside the hole
        ang = rng.uniform(0, 2 * np.pi)
        r_hole = rng.uniform(1.5, 4.0) * max(h0, w0)
        depth = rng.uniform(0.15, 0.4) * min(h0, w0)
        cx = w / 2 + np.cos(ang) * (r_hole + min(h0, w0) / 2 - depth)
        cy = h / 2 + np.sin(ang) * (r_hole + min(h0, w0) / 2 - depth)
        yy, xx = np.ogrid[:h, :w]
        edge = np.hypot(xx - cx, yy - cy) - r_hole
        carbon = (preset.carbon_thickness * expit(edge / 1.5)).astype(np.float32)
    balls = []
    # the preset's counts are per 4096^2 micrograph at 1.2 A/px; scale by the field's area
    area_ratio = (h0 * w0 * a * a) / (4096.0 * 4096.0 * 1.2 * 1.2)
    lo, hi = preset.contamination
    n_balls = rng.poisson(area_ratio * (lo + hi) / 2) if hi else 0
    if lo and area_ratio >= 0.5:
        n_balls = max(n_balls, lo)
    contamination = np.zeros(shape, np.float32)
    for _ in range(n_balls):
        r = rng.uniform(150, 600) / a
        bx, by = rng.uniform(pad, pad + w0), rng.uniform(pad, pad + h0)
        y0, y1 = int(max(0, by - r)), int(min(h, by + r + 1))
        x0, x1 = int(max(0, bx - r)), int(min(w, bx + r + 1))
        yy, xx = np.ogrid[y0:y1, x0:x1]
        contamination[y0:y1, x0:x1] += (2 * a * np.sqrt(np.clip(r**2 - (xx - bx) ** 2 - (yy - by) ** 2, 0, None)))
        balls.append((bx - pad, by - pad, r))

    # particles
    choice = rng.choice(len(species), size=n_particles, p=weights)
    radii = np.array([species[c].radius * 0.85 / a for c in choice])
    order = np.argsort(-radii, kind="stable")  # big ones first pack better
    keep, centres = _place(rng, (h0, w0), radii[order], balls)
    idx = order[keep]
    cyx = (np.clip(centres[:, 1].astype(int) + pad, 0, h - 1), np.clip(centres[:, 0].astype(int) + pad, 0, w - 1))
    on_carbon = carbon[cyx] > 0.5 * preset.carbon_thickness if len(centres) else np.zeros(0, bool)
    drop = on_carbon & (rng.random(len(centres)) < 0.7)  # particles avoid the carbon
    idx, centres = idx[~drop], centres[~drop]
    rotations = Rotation.random(len(idx), random_state=rng.integers(2**31)) if len(idx) else None

    splat = _Splatter(shape)
    rows = []
    for k, (i, (x, y)) in enumerate(zip(idx, centres)):
        sp: Species = species[choice[i]]
        rot = rotations[k] if len(idx) > 1 else rotations
        m = rot.as_matrix().reshape(3, 3).astype(np.float32)
        xyz = sp.xyz @ m.T
        splat.add(np.stack([pad + x + xyz[:, 0] / a, pad + y + xyz[:, 1] / a], axis=1), sp.group)
        angles = rot.as_euler("ZYZ", degrees=True).ravel()
        rows.append((sp.key, x, y, *angles))

    # aggregates: several overlapping copies of random species, not part of the truth
    lo, hi = preset.aggregates
    n_agg = rng.poisson(area_ratio * (lo + hi) / 2) if hi else 0
    for _ in range(n_agg):
        ax, ay = rng.uniform(pad, pad + w0), rng.uniform(pad, pad + h0)
        for _ in range(rng.integers(3, 8)):
            sp = species[rng.integers(len(species))]
            m = Rotation.random(random_state=rng.integers(2**31)).as_matrix().astype(np.float32)
            off = rng.normal(scale=sp.radius * 0.8, size=2)
            xyz = sp.xyz @ m.T
            splat.add(np.stack([ax + (off[0] + xyz[:, 0]) / a, ay + (off[1] + xyz[:, 1]) / a], axis=1), sp.group)

    transfer = _atom_transfer(tuple(shape), float(a), float(preset.voltage))
    phase_particles = None
    for g in range(len(physics.GROUPS)):
        grid = splat.grid(g)
        if grid is None:
            continue
        term = scipy.fft.rfft2(grid, workers=_WORKERS) * transfer[g]
        phase_particles = term if phase_particles is None else phase_particles + term
    if phase_particles is None:
        phase_particles = np.zeros((h, w // 2 + 1), np.complex64)

    # media: mean potential and structured noise of ice and carbon
    sigma = physics.interaction_constant(preset.voltage)
    water_v = physics.POTENTIAL_PER_SCATTERING * physics.water_scattering(0.0) * physics.WATER_DENSITY
    carbon_v = physics.POTENTIAL_PER_SCATTERING * physics.scattering_factor("C", 0.0) * physics.CARBON_DENSITY
    thickness_ice = ice + contamination
    mean_phase = sigma * (water_v * thickness_ice + carbon_v * carbon)
    phase_media = scipy.fft.rfft2((mean_phase - mean_phase.mean()).astype(np.float32), workers=_WORKERS)
    phase_media += medium_noise(rng, shape, a, preset.voltage, physics.WATER_DENSITY * thickness_ice * a * a, "water")
    if carbon.any():
        phase_media += medium_noise(rng, shape, a, preset.voltage, physics.CARBON_DENSITY * carbon * a * a, "carbon")

    transfer_ctf = 2 * physics.ctf(shape, a, df_u, df_v, astig_angle, preset.voltage, preset.cs_mm,
                                   preset.amplitude_contrast, b_factor)
    attenuation = np.exp(-ice / preset.inelastic_mfp - contamination / (0.4 * preset.inelastic_mfp)
                         - carbon / (0.5 * preset.inelastic_mfp)).astype(np.float32)
    counts_per_px = preset.dose * a * a
    mtf = physics.detector_mtf(shape)

    def to_image(phase_spectrum, with_mean=True):
        contrast = scipy.fft.irfft2(phase_spectrum * transfer_ctf, s=shape, workers=_WORKERS)
        return ((1.0 if with_mean else 0.0) + contrast) * attenuation * counts_per_px

    crop = (slice(pad, pad + h0), slice(pad, pad + w0))

    def detect(x):
        return scipy.fft.irfft2(scipy.fft.rfft2(x, workers=_WORKERS) * mtf, s=shape,
                                workers=_WORKERS)[crop].astype(np.float32)

    expected = np.clip(to_image(phase_particles + phase_media), 0, None).astype(np.float32)
    image = detect(rng.poisson(expected * preset.dqe).astype(np.float32) / preset.dqe)
    clean = signal = None
    if keep_clean:
        clean = detect(expected)
        signal = detect(to_image(phase_particles, with_mean=False).astype(np.float32))

    truth = pd.DataFrame(rows, columns=["species", "x", "y", "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"])
    truth.insert(0, "micrograph", name)
    truth["rlnDefocusU"] = df_u
    truth["rlnDefocusV"] = df_v
    truth["rlnDefocusAngle"] = astig_angle
    truth["diameter_px"] = [load_species(s).diameter / a for s in truth["species"]]
    params = {"preset": preset.name, "pixel_size": a, "defocus_u": df_u, "defocus_v": df_v,
              "astigmatism_angle": astig_angle, "b_factor": b_factor, "dose": preset.dose, "dqe": preset.dqe,
              "ice_thickness_mean": float(ice[crop].mean()), "carbon": bool(carbon.any()), "contamination_balls": len(balls),
              "aggregates": int(n_agg), "voltage": preset.voltage, "cs_mm": preset.cs_mm,
              "amplitude_contrast": preset.amplitude_contrast}
    return SimulatedMicrograph(image, truth, a, params, clean, signal)


def particle_snr(sim: SimulatedMicrograph) -> pd.DataFrame:
    """Per-particle SNR: variance of the particle's signal over the variance of everything
    else (shot noise, ice and carbon structure, neighbours), inside a disc of the
    particle's radius. Needs ``keep_clean=True``. Returns the truth with an ``snr`` column."""
    if sim.signal is None:
        raise ValueError("simulate with keep_clean=True to measure the SNR")
    noise = sim.image - sim.signal
    out = sim.truth.copy()
    snrs = []
    h, w = sim.image.shape
    for _, row in sim.truth.iterrows():
        r = row["diameter_px"] / 2
        x0, x1 = int(max(0, row.x - r)), int(min(w, row.x + r + 1))
        y0, y1 = int(max(0, row.y - r)), int(min(h, row.y + r + 1))
        yy, xx = np.ogrid[y0:y1, x0:x1]
        disc = (xx - row.x) ** 2 + (yy - row.y) ** 2 <= r * r
        s = sim.signal[y0:y1, x0:x1][disc]
        n = noise[y0:y1, x0:x1][disc]
        snrs.append(float(s.var() / n.var()))
    out["snr"] = snrs
    return out
