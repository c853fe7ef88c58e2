"""3D template matching: the optimistic baseline of the tomogram localization benchmark (issue 7).

The template is the true species map (the simulator's own pseudo-atom model of the species), rotated over a
grid of orientations and passed through what the tomogram's reconstruction did to every particle:

- the CTF of the tilt series' mean defocus with the simulation's B-factor (each tilt image carries a CTF of
  its 2D spatial frequency; a 3D frequency on a tilt's central slice has the same magnitude, so the
  weighted back-projection is the map filtered by the CTF of |k|);
- the missing wedge of the ±60° tilt range about y (a frequency is measured when ``|kz| ≤ tan 60° · |kx|``).

Matching is the fast local normalised cross-correlation (FLCF, Roseman 2003): the rotated template is
normalised to zero mean and unit norm inside a spherical mask, correlated with the binned tomogram by FFT,
and divided by the tomogram's standard deviation under the mask; the best score over all orientations is kept
per voxel and 3D NMS with the particle's radius gives the picks. It is "optimistic" because it knows the exact
structure, the defocus, and the wedge.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.fft
import scipy.special
from scipy.spatial.transform import Rotation

from fewpick.ops.peaks import ball, nms
from fewpick.ops.resample import block_bin
from fewpick.simulate import physics
from fewpick.simulate.species import load_species

WORKERS = 2


def orientations(step_deg: float) -> Rotation:
    """A near-uniform grid of rotations: Fibonacci-sphere directions ~``step`` apart, times in-plane angles
    ``step`` apart (ZYZ Euler angles)."""
    step = np.deg2rad(step_deg)
    n_dir = max(1, int(round(4 * np.pi / step**2)))
    k = np.arange(n_dir) + 0.5
    theta = np.arccos(1 - 2 * k / n_dir)
    phi = np.mod(np.pi * (1 + 5**0.5) * k, 2 * np.pi)
    psi = np.arange(0, 2 * np.pi, step)
    eul = np.array([(p, t, s) for p, t in zip(phi, theta) for s in psi])
    return Rotation.from_euler("ZYZ", eul)


def _splat(xyz: np.ndarray, w: np.ndarray, box: int) -> np.ndarray:
    """Trilinear splat of points ``(x, y, z)`` in voxels (0 = box centre) onto a ``(z, y, x)`` box."""
    p = xyz[:, ::-1] + box // 2
    i0 = np.floor(p).astype(int)
    f = p - i0
    out = np.zeros((box,) * 3, np.float64)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                idx = i0 + [dz, dy, dx]
                ww = w * np.abs(1 - dz - f[:, 0]) * np.abs(1 - dy - f[:, 1]) * np.abs(1 - dx - f[:, 2])
                ok = ((idx >= 0) & (idx < box)).all(1)
                np.add.at(out, tuple(idx[ok].T), ww[ok])
    return out


def reconstruction_filter(box: int, voxel: float, defocus: float, b_factor: float, tilt_range: float = 60.0,
                          voltage: float = 300e3, cs_mm: float = 2.7, amplitude_contrast: float = 0.07) -> np.ndarray:
    """CTF(|k|) × missing wedge on the rFFT grid of a ``box³`` volume with ``voxel`` Å voxels."""
    kz = np.fft.fftfreq(box, voxel)[:, None, None]
    ky = np.fft.fftfreq(box, voxel)[None, :, None]
    kx = np.fft.rfftfreq(box, voxel)[None, None, :]
    g2 = kx**2 + ky**2 + kz**2
    lam = physics.wavelength(voltage)
    chi = np.pi * lam * defocus * g2 - 0.5 * np.pi * cs_mm * 1e7 * lam**3 * g2**2
    w = amplitude_contrast
    ctf = -(np.sqrt(1 - w**2) * np.sin(chi) + w * np.cos(chi)) * np.exp(-b_factor * g2 / 4)
    wedge = np.abs(kz) <= np.tan(np.deg2rad(tilt_range)) * np.abs(kx) + 1e-12
    return ctf * wedge


def match(volume: np.ndarray, species: str, voxel_size: float, defocus: float, b_factor: float, *, bin: int,
          step_deg: float = 20.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Template matching of ``species`` in a tomogram (``(z, y, x)``, ``voxel_size`` Å).

    Returns the picks ``(z, y, x)`` in the tomogram's voxels (all NMS peaks, best first), their scores, and
    facts: orientations, binning, seconds, and the automatic score threshold (one expected false peak)."""
    t0 = time.perf_counter()
    v = block_bin(volume, bin).astype(np.float32)
    v -= v.mean()
    v /= v.std()
    vox = voxel_size * bin
    sp = load_species(species)
    r = sp.radius / vox  # particle radius, binned voxels
    box = int(2 * np.ceil(1.25 * r + 2)) + 1  # odd: the centre is a voxel
    beads, counts = sp.pseudo_atoms(voxel_size)
    beads = beads.astype(np.float64) / vox
    filt = reconstruction_filter(box, vox, defocus, b_factor)
    mask = ball(r + 0.5, 3)
    pad = (box - mask.shape[0]) // 2
    mask = np.pad(mask, pad).astype(np.float64)
    n_in = mask.sum()

    shape = v.shape
    vf = scipy.fft.rfftn(v, workers=WORKERS)

    def placed(t: np.ndarray) -> np.ndarray:  # box → volume grid with the box centre at the origin
        full = np.zeros(shape, np.float32)
        full[:box, :box, :box] = t
        return np.roll(full, (-(box // 2),) * 3, axis=(0, 1, 2))

    mf = scipy.fft.rfftn(placed(mask), workers=WORKERS)
    s1 = scipy.fft.irfftn(vf * np.conj(mf), s=shape, workers=WORKERS)
    s2 = scipy.fft.irfftn(scipy.fft.rfftn(v * v, workers=WORKERS) * np.conj(mf), s=shape, workers=WORKERS)
    sd = np.sqrt(np.maximum(s2 - s1 * s1 / n_in, 1e-6)).astype(np.float32)
    del s1, s2
    best = np.full(shape, -np.inf, np.float32)
    rots = orientations(step_deg)
    sds = []
    for rot in rots:
        t = _splat(beads @ rot.as_matrix().T, counts, box)
        t = scipy.fft.irfftn(scipy.fft.rfftn(t) * filt, s=t.shape)
        t = np.where(mask > 0, t - t[mask > 0].mean(), 0.0)
        t /= np.sqrt((t * t).sum()) + 1e-12
        cc = scipy.fft.irfftn(vf * np.conj(scipy.fft.rfftn(placed(t), workers=WORKERS)), s=shape, workers=WORKERS)
        cc = cc.astype(np.float32) / sd
        sds.append(float(cc.std()))
        np.maximum(best, cc, out=best)
    zyx, score = nms(best, max(1.0, r), -np.inf, footprint="box", border=1)
    zyx = zyx * bin + (bin - 1) / 2
    # pytom-match-pick's automatic cut (Chaillet et al. 2023): scores of a Gaussian null over every voxel and
    # orientation, at the level where one false peak is expected
    n = best.size * len(rots)
    threshold = float(np.mean(sds) * np.sqrt(2) * scipy.special.erfcinv(2.0 / n))
    info = {"orientations": len(rots), "angular_step_deg": step_deg, "bin": bin, "template_box": box,
            "threshold": threshold, "seconds": time.perf_counter() - t0}
    return zyx, score, info
