"""Physics of image formation: electron wavelength, interaction constant, scattering
factors, the contrast transfer function, detector MTF and dose weighting.

Units: lengths in Å, spatial frequencies ``g`` in 1/Å, potentials in volts, voltage in
volts, spherical aberration in mm (converted internally), defocus in Å (positive =
underfocus), B-factors in Å².
"""

from __future__ import annotations

import numpy as np

# h^2 / (2 pi m0 e): the 3D Fourier transform of an atom's potential is this times its
# electron scattering factor f (Å), in V·Å³ (Kirkland, "Advanced Computing in Electron Microscopy").
POTENTIAL_PER_SCATTERING = 47.878

# Peng, Ren, Dudarev & Whelan (1996), Acta Cryst. A52, 257: elastic electron scattering
# factors f(s) = sum a_i exp(-b_i s^2), s = sin(theta)/lambda = g/2, for 0 < s < 2 1/Å
# (International Tables for Crystallography Vol. C, table 4.3.2.2). f in Å.
PENG_1996 = {
    "H": ((0.0349, 0.1201, 0.1970, 0.0573, 0.1195), (0.5347, 3.5867, 12.3471, 18.9525, 38.6269)),
    "C": ((0.0893, 0.2563, 0.7570, 1.0487, 0.3575), (0.2465, 1.7100, 6.4094, 18.6113, 50.2523)),
    "N": ((0.1022, 0.3219, 0.7982, 0.8197, 0.1715), (0.2451, 1.7481, 6.1925, 17.3894, 48.1431)),
    "O": ((0.0974, 0.2921, 0.6910, 0.6990, 0.2039), (0.2067, 1.3815, 4.6943, 12.7105, 32.4726)),
    "P": ((0.2548, 0.6106, 1.4541, 2.3204, 0.8477), (0.2908, 1.8740, 8.5176, 24.3434, 63.2996)),
    "S": ((0.2497, 0.5628, 1.3899, 2.1865, 0.7715), (0.2681, 1.6711, 7.0267, 19.5377, 50.3888)),
}

# Element groups used by the simulator; heavier ions (Mg, Zn, ...) are rare in the
# models and are scattered as sulphur ("X").
GROUPS = ("C", "N", "O", "P", "S", "X")
GROUP_OF_Z = {6: 0, 7: 1, 8: 2, 15: 3, 16: 4}
# Hydrogens are absent from the models: each heavy atom carries its typical number
# of bonded hydrogens in proteins and nucleic acids.
IMPLICIT_H = {"C": 1.3, "N": 1.0, "O": 0.4, "P": 0.0, "S": 0.5, "X": 0.0}
# Volume of solvent each heavy atom (with its hydrogens) displaces, Å^3; weighted over
# a protein's composition these give ~18.7 Å^3 per atom, i.e. a density of ~0.8 Da/Å^3.
EXCLUDED_VOLUME = {"C": 20.6, "N": 14.8, "O": 15.4, "P": 17.0, "S": 28.0, "X": 15.0}

WATER_DENSITY = 0.0314  # molecules / Å^3 (vitreous ice, 0.94 g/cm^3)
CARBON_DENSITY = 0.100  # atoms / Å^3 (amorphous carbon, 2.0 g/cm^3)


def scattering_factor(element: str, g: np.ndarray) -> np.ndarray:
    """Electron scattering factor f (Å) of ``element`` at spatial frequency ``g`` (1/Å)."""
    a, b = PENG_1996["S" if element == "X" else element]
    g = np.asarray(g)
    s2 = (g.astype(np.float32 if g.dtype == np.float32 else np.float64) / 2) ** 2
    out = np.zeros_like(s2)
    for ai, bi in zip(a, b):
        out += ai * np.exp(-bi * s2)
    return out


def water_scattering(g: np.ndarray) -> np.ndarray:
    """Scattering factor of one water molecule (O + 2 H, independent-atom model), Å."""
    return scattering_factor("O", g) + 2 * scattering_factor("H", g)


def water_structure_factor(g: np.ndarray) -> np.ndarray:
    """Structure factor S(g) of liquid-like (vitreous) water.

    Low at small g (ice is nearly incompressible: S(0) ≈ 0.06), a main peak near
    g = 0.32 1/Å (q = 2 1/Å, the O–O nearest-neighbour distance), 1 beyond.
    """
    g = np.asarray(g, dtype=np.float64)
    rise = 0.06 + 0.94 / (1 + np.exp(-(g - 0.22) / 0.025))
    peak = 1.3 * np.exp(-((g - 0.32) ** 2) / (2 * 0.035**2))
    return rise + peak


def radial(func, shape: tuple[int, int], pixel_size: float, samples: int = 4096) -> np.ndarray:
    """Evaluate a function of |g| on the rFFT grid through a 1D lookup table (fast for big grids)."""
    gy, gx = frequency_grid(shape, pixel_size)
    g = np.sqrt(gx**2 + gy**2)
    table_g = np.linspace(0, float(g.max()) * 1.0001, samples)
    table = np.asarray(func(table_g), dtype=np.float64)
    return np.interp(g.ravel(), table_g, table).reshape(g.shape).astype(np.float32)


def wavelength(voltage: float = 300e3) -> float:
    """Relativistic electron wavelength in Å for an accelerating voltage in volts."""
    h, m0, e, c = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 2.99792458e8
    return h / np.sqrt(2 * m0 * e * voltage * (1 + e * voltage / (2 * m0 * c**2))) * 1e10


def interaction_constant(voltage: float = 300e3) -> float:
    """sigma_e in rad / (V·Å): phase shift per projected potential (0.000653 at 300 kV)."""
    mc2 = 510998.95  # electron rest energy, eV
    lam = wavelength(voltage)
    return 2 * np.pi / (lam * voltage) * (mc2 + voltage) / (2 * mc2 + voltage)


def frequency_grid(shape: tuple[int, int], pixel_size: float, rfft: bool = True):
    """Spatial frequencies (gy, gx) in 1/Å of a 2D (r)FFT of an image of ``shape``."""
    gy = np.fft.fftfreq(shape[0], d=pixel_size)
    gx = np.fft.rfftfreq(shape[1], d=pixel_size) if rfft else np.fft.fftfreq(shape[1], d=pixel_size)
    return gy[:, None].astype(np.float32), gx[None, :].astype(np.float32)


def ctf(
    shape: tuple[int, int],
    pixel_size: float,
    defocus_u: float,
    defocus_v: float | None = None,
    astigmatism_angle: float = 0.0,
    voltage: float = 300e3,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    b_factor: float = 0.0,
    phase_shift: float = 0.0,
    rfft: bool = True,
) -> np.ndarray:
    """Contrast transfer function on the (r)FFT grid of an image.

    ``CTF(g) = −[√(1−w²) sin χ(g) + w cos χ(g)] · exp(−B g²/4)`` with the wave
    aberration ``χ(g) = π λ Δf(θ) g² − (π/2) Cs λ³ g⁴ + phase_shift`` and the
    astigmatic defocus ``Δf(θ) = ½[Δf_u + Δf_v + (Δf_u − Δf_v) cos 2(θ − θ_ast)]``.
    With this sign the image of a weak phase object ``φ`` is
    ``I(g) = δ(g) + 2 CTF(g) Φ(g)``: particles (positive potential) look dark
    at underfocus, as in cryo-EM micrographs.

    Parameters
    ----------
    defocus_u, defocus_v
        Defocus along and across the astigmatism axis, Å, positive = underfocus.
    astigmatism_angle
        Angle of the ``u`` axis from x, degrees.
    b_factor
        Gaussian envelope (drift, partial coherence, detector), Å².
    """
    lam = wavelength(voltage)
    cs = cs_mm * 1e7
    defocus_v = defocus_u if defocus_v is None else defocus_v
    gy, gx = frequency_grid(shape, pixel_size, rfft)
    g2 = gx**2 + gy**2
    theta = np.arctan2(gy, gx)
    df = 0.5 * (defocus_u + defocus_v + (defocus_u - defocus_v) * np.cos(2 * (theta - np.deg2rad(astigmatism_angle))))
    chi = np.pi * lam * df * g2 - 0.5 * np.pi * cs * lam**3 * g2**2 + phase_shift
    w = amplitude_contrast
    out = -(np.sqrt(1 - w**2) * np.sin(chi) + w * np.cos(chi))
    if b_factor:
        out = out * np.exp(-b_factor * g2 / 4)
    return out.astype(np.float32)


def ctf_zeros(defocus: float, n: int = 5, voltage: float = 300e3, cs_mm: float = 2.7,
              amplitude_contrast: float = 0.07) -> np.ndarray:
    """Spatial frequencies (1/Å) of the first ``n`` zeros of a non-astigmatic CTF."""
    lam = wavelength(voltage)
    cs = cs_mm * 1e7
    w = amplitude_contrast
    offset = np.arctan2(w, np.sqrt(1 - w**2))
    zeros = []
    k = 1
    while len(zeros) < n:
        # pi lam df g^2 - pi/2 cs lam^3 g^4 + offset = k pi, solved for u = g^2
        a, b, c = -0.5 * np.pi * cs * lam**3, np.pi * lam * defocus, offset - k * np.pi
        u = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a) if a else -c / b
        zeros.append(np.sqrt(u))
        k += 1
    return np.asarray(zeros)


def detector_mtf(shape: tuple[int, int], rfft: bool = True) -> np.ndarray:
    """MTF of a counting detector: sinc(π g/2) in units of Nyquist (0.64 at Nyquist)."""
    gy, gx = frequency_grid(shape, 1.0, rfft)
    return (np.sinc(gx) * np.sinc(gy)).astype(np.float32)


def dose_filter(shape: tuple[int, int], pixel_size: float, dose: float, rfft: bool = True) -> np.ndarray:
    """Radiation damage after ``dose`` e/Å² (Grant & Grigorieff 2015 critical exposure).

    Amplitudes fall as ``exp(−dose / (2 N_e(g)))`` with
    ``N_e(g) = 0.245 g^−1.665 + 2.81`` e/Å² (g in 1/Å).
    """
    gy, gx = frequency_grid(shape, pixel_size, rfft)
    g = np.sqrt(gx**2 + gy**2)
    with np.errstate(divide="ignore"):
        crit = 0.245 * np.power(np.maximum(g, 1e-6), -1.665) + 2.81
    return np.exp(-dose / (2 * crit)).astype(np.float32)
