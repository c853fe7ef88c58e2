from __future__ import annotations

import numpy as np
import pytest

from fewpick.errors import InputError
from fewpick.geometry import choose_binning, nearest_binning, parse_length
from fewpick.ops.filters import difference_of_gaussians, gaussian_lowpass, histogram_equalize, normalize
from fewpick.ops.resample import bin_image, fourier_crop


def test_fourier_crop_preserves_mean_and_shape_2d_3d():
    r = np.random.default_rng(0)
    img = r.normal(3.0, 1.0, (200, 330)).astype(np.float32)
    out = fourier_crop(img, (50, 83))
    assert out.shape == (50, 83) and out.dtype == np.float32
    assert out.mean() == pytest.approx(img.mean(), abs=1e-4)
    vol = r.normal(-2.0, 1.0, (40, 64, 48)).astype(np.float32)
    b = bin_image(vol, 4)
    assert b.shape == (10, 16, 12)
    assert b.mean() == pytest.approx(vol.mean(), abs=1e-4)


def test_binning_keeps_low_frequencies_and_removes_high_ones():
    n = 256
    x = np.arange(n)
    low = np.cos(2 * np.pi * 10 * x / n)  # 10 cycles: below the new Nyquist (32 cycles) after binning by 4
    high = np.cos(2 * np.pi * 50 * x / n)  # 50 cycles: above it
    img_low = np.tile(low, (n, 1)).astype(np.float32)
    img_high = np.tile(high, (n, 1)).astype(np.float32)
    b_low = bin_image(img_low, 4)
    expected = np.cos(2 * np.pi * 10 * (np.arange(64) * 4) / n)  # sample j sits at original position 4j
    np.testing.assert_allclose(b_low[0], expected, atol=1e-4)
    assert np.abs(bin_image(img_high, 4)).max() < 1e-4  # aliasing-free: the high band is gone


def test_binning_coordinate_convention_blob_centre():
    yy, xx = np.mgrid[:240, :300]
    x0, y0 = 137.0, 81.0
    img = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 6.0**2)).astype(np.float32)
    b = bin_image(img, 3)
    scale = np.array(img.shape) / np.array(b.shape)
    w = np.clip(b, 0, None)
    by, bx = np.mgrid[: b.shape[0], : b.shape[1]]
    cy, cx = (w * by).sum() / w.sum(), (w * bx).sum() / w.sum()
    assert cx * scale[1] == pytest.approx(x0, abs=0.05)
    assert cy * scale[0] == pytest.approx(y0, abs=0.05)


def test_bin_factor_one_is_identity_and_bad_factor_refused():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(bin_image(a, 1), a)
    with pytest.raises(ValueError):
        bin_image(a, 0.5)


def test_choose_binning():
    assert choose_binning(68) == 4
    assert choose_binning(200) == 12
    assert choose_binning(10) == 1
    for d in (20, 33, 68, 150, 400):
        assert 10.5 <= d / choose_binning(d) <= 22


def test_nearest_binning_is_nearest_by_ratio():
    # mTOR at 10 A (17.75 voxels) and CCT (18.3) binned by 2 for a 12-voxel target; the ribosome (32) by 3
    cases = {10.0: 1, 16.9: 1, 17.0: 2, 17.75: 2, 18.28: 2, 29.3: 2, 29.5: 3, 31.96: 3}
    assert {d: nearest_binning(d, 12.0) for d in cases} == cases
    for d in np.linspace(5.0, 400.0, 200):  # no other integer factor brings d nearer 12 by ratio
        f = nearest_binning(d, 12.0)
        err = abs(np.log(d / f / 12.0))
        assert all(err <= abs(np.log(d / g / 12.0)) + 1e-12 for g in range(1, 40)), d
    with pytest.raises(InputError):
        nearest_binning(0.0, 12.0)


def test_normalize_robust_ignores_outliers():
    r = np.random.default_rng(1)
    img = r.normal(5.0, 2.0, (300, 300)).astype(np.float32)
    img[:10, :10] = 1e6  # a hot patch
    out = normalize(img)
    assert np.median(out) == pytest.approx(0, abs=0.02)
    assert out[20:, 20:].std() == pytest.approx(1.0, abs=0.03)
    plain = normalize(img, robust=False)
    assert plain[20:, 20:].std() < 0.01  # the plain std is ruined by the patch
    assert normalize(img, clip=3).max() == 3
    with pytest.raises(InputError):
        normalize(np.zeros((5, 5)))


def test_gaussian_lowpass_reduces_white_noise_by_theory():
    r = np.random.default_rng(2)
    noise = r.normal(size=(512, 512)).astype(np.float32)
    sigma = 2.0
    out = gaussian_lowpass(noise, sigma)
    # variance of white noise after a normalised Gaussian: 1 / (4 pi sigma^2)
    assert out.var() == pytest.approx(1 / (4 * np.pi * sigma**2), rel=0.08)
    assert out.sum() == pytest.approx(noise.sum(), rel=1e-3, abs=1.0)


def test_difference_of_gaussians_peaks_on_blob_of_matching_size():
    yy, xx = np.mgrid[:128, :128]
    img = ((xx - 64) ** 2 + (yy - 40) ** 2 <= 8**2).astype(np.float32)
    r = 8
    dog = difference_of_gaussians(img, r / np.sqrt(2) / 1.25, 1.6 * r / np.sqrt(2) / 1.25)
    assert np.unravel_index(np.argmax(dog), dog.shape) == (40, 64)
    with pytest.raises(ValueError):
        difference_of_gaussians(img, 3, 2)


def test_histogram_equalize_flattens_distribution():
    r = np.random.default_rng(3)
    img = r.exponential(size=(200, 200)).astype(np.float32)
    out = histogram_equalize(img)
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(np.quantile(out, [0.1, 0.5, 0.9]), [0.1, 0.5, 0.9], atol=0.02)
    assert np.all(np.diff(out.ravel()[np.argsort(img.ravel())]) >= -1e-6)  # order preserved


def test_parse_length_units():
    assert parse_length("68") == 68
    assert parse_length("68px") == 68
    assert parse_length(" 120 A", pixel_size=1.5) == pytest.approx(80)
    assert parse_length("120Å", pixel_size=2.0) == pytest.approx(60)
    assert parse_length("12nm", pixel_size=2.0) == pytest.approx(60)
    with pytest.raises(InputError, match="pixel size is unknown"):
        parse_length("120A")
    with pytest.raises(InputError, match="cannot read"):
        parse_length("big")
    with pytest.raises(InputError, match="positive"):
        parse_length("0")
