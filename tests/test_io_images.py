from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from fewpick.errors import InputError
from fewpick.io import (
    list_images,
    match_names,
    micrograph_key,
    pair_names,
    read_image,
    read_micrograph,
    read_tilt_angles,
    read_volume,
    write_image,
    write_mrc,
    write_tilt_angles,
)


def test_mrc_2d_round_trip_keeps_data_and_pixel_size(tmp_path):
    data = np.random.default_rng(0).normal(size=(40, 56)).astype(np.float32)
    write_mrc(tmp_path / "a.mrc", data, pixel_size=1.34)
    img = read_micrograph(tmp_path / "a.mrc")
    assert img.shape == (40, 56)
    np.testing.assert_array_equal(img.data, data)
    assert img.pixel_size == pytest.approx(1.34, abs=1e-4)
    assert img.name == "a"


def test_mrc_header_without_pixel_size_gives_none_and_override_wins(tmp_path):
    with mrcfile.new(tmp_path / "b.mrc") as m:
        m.set_data(np.ones((8, 8), np.float32))
    assert read_image(tmp_path / "b.mrc").pixel_size is None
    assert read_image(tmp_path / "b.mrc", pixel_size=2.5).pixel_size == 2.5


def test_mrc_volume_is_memory_mapped_and_stack_flag_set(tmp_path):
    vol = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    write_mrc(tmp_path / "t.rec", vol, pixel_size=10.0)
    img = read_volume(tmp_path / "t.rec")
    assert isinstance(img.data, np.memmap)
    np.testing.assert_array_equal(np.asarray(img.data), vol)
    write_mrc(tmp_path / "s.mrcs", vol)
    with mrcfile.open(tmp_path / "s.mrcs") as m:
        assert m.is_image_stack()
    assert read_image(tmp_path / "s.mrcs", ndim=3).shape == (4, 6, 8)


def test_single_section_mrc_reads_as_2d(tmp_path):
    write_mrc(tmp_path / "one.mrc", np.ones((1, 10, 12), np.float32) * np.arange(12))
    assert read_micrograph(tmp_path / "one.mrc").shape == (10, 12)


def test_3d_file_where_2d_expected_is_a_clear_error(tmp_path):
    write_mrc(tmp_path / "vol.mrc", np.zeros((3, 10, 12), np.float32))
    with pytest.raises(InputError, match=r"vol\.mrc.*3 dimensions \(12x10x3 px\), expected a 2D micrograph"):
        read_micrograph(tmp_path / "vol.mrc")


def test_truncated_mrc_names_file_and_problem(tmp_path):
    write_mrc(tmp_path / "cut.mrc", np.ones((64, 64), np.float32))
    raw = (tmp_path / "cut.mrc").read_bytes()
    (tmp_path / "cut.mrc").write_bytes(raw[: len(raw) - 5000])
    with pytest.raises(InputError, match=r"cut\.mrc: truncated MRC file"):
        read_micrograph(tmp_path / "cut.mrc")
    with pytest.raises(InputError, match=r"cut\.mrc: truncated"):
        read_image(tmp_path / "cut.mrc", mmap=True)


def test_garbage_file_is_not_an_mrc(tmp_path):
    (tmp_path / "junk.mrc").write_bytes(b"hello" * 300)
    with pytest.raises(InputError, match=r"junk\.mrc: (not a readable|truncated) MRC"):
        read_micrograph(tmp_path / "junk.mrc")


def test_nan_and_constant_images_are_refused(tmp_path):
    data = np.ones((20, 20), np.float32)
    write_mrc(tmp_path / "flat.mrc", data)
    with pytest.raises(InputError, match="constant"):
        read_micrograph(tmp_path / "flat.mrc")
    data = np.random.default_rng(1).normal(size=(20, 20)).astype(np.float32)
    data[5, 7] = np.nan
    data[6, 7] = np.inf
    write_mrc(tmp_path / "nan.mrc", data)
    with pytest.raises(InputError, match=r"nan\.mrc: 2 pixels are NaN or infinite \(first at x=7, y=5\)"):
        read_micrograph(tmp_path / "nan.mrc")
    vol = np.zeros((40, 4, 4), np.float32)
    vol[33, 1, 2] = np.nan
    write_mrc(tmp_path / "nanvol.mrc", vol)
    with pytest.raises(InputError, match=r"x=2, y=1, z=33"):
        read_volume(tmp_path / "nanvol.mrc")


def test_tiff_png_jpeg(tmp_path):
    f = np.random.default_rng(2).normal(size=(30, 20)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", f)
    np.testing.assert_array_equal(read_micrograph(tmp_path / "f.tif").data, f)
    u16 = (np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
    PILImage.fromarray(u16).save(tmp_path / "g16.png")
    img = read_micrograph(tmp_path / "g16.png")
    assert img.data.dtype == np.float32 and img.data.max() == 59900
    np.testing.assert_array_equal(img.data, u16.astype(np.float32))
    u8 = (np.arange(600).reshape(20, 30) % 256).astype(np.uint8)
    PILImage.fromarray(u8).save(tmp_path / "g8.png")
    np.testing.assert_array_equal(read_micrograph(tmp_path / "g8.png").data, u8)
    rgb = np.stack([u8, u8, u8], axis=-1)
    PILImage.fromarray(rgb).save(tmp_path / "rgb.png")
    assert read_micrograph(tmp_path / "rgb.png").shape == (20, 30)
    PILImage.fromarray(u8).save(tmp_path / "j.jpg", quality=95)
    assert read_micrograph(tmp_path / "j.jpg").shape == (20, 30)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match=r"bad\.png: not a readable PNG"):
        read_micrograph(tmp_path / "bad.png")


def test_write_image_png_and_tiff_round_trip(tmp_path):
    u16 = (np.arange(200, dtype=np.uint16).reshape(10, 20) * 300)
    write_image(tmp_path / "w.png", u16)
    np.testing.assert_array_equal(read_micrograph(tmp_path / "w.png").data, u16)
    f = np.linspace(-1, 1, 200, dtype=np.float32).reshape(10, 20)
    write_image(tmp_path / "w.tiff", f)
    np.testing.assert_allclose(read_micrograph(tmp_path / "w.tiff").data, f)


def test_real_16bit_png_micrograph(real_data):
    img = read_micrograph(real_data / "images" / "May08_03.13.02.bin_avg.png")
    assert img.shape == (1200, 1240)
    assert img.data.dtype == np.float32
    assert img.data.max() > 255  # 16-bit values survive
    assert img.name == "May08_03.13.02.bin_avg"


def test_tilt_angles(tmp_path):
    angles = np.arange(-60, 61, 3.0)
    write_tilt_angles(tmp_path / "ts.tlt", angles)
    np.testing.assert_allclose(read_tilt_angles(tmp_path / "ts.tlt"), angles)
    (tmp_path / "bad.tlt").write_text("-3.0\n\nabc\n")
    with pytest.raises(InputError, match=r"bad\.tlt: line 3 is not a tilt angle"):
        read_tilt_angles(tmp_path / "bad.tlt")
    (tmp_path / "empty.tlt").write_text("\n")
    with pytest.raises(InputError, match="holds no tilt angles"):
        read_tilt_angles(tmp_path / "empty.tlt")
    (tmp_path / "wild.tlt").write_text("120\n")
    with pytest.raises(InputError, match="outside"):
        read_tilt_angles(tmp_path / "wild.tlt")


def test_list_images_expands_folders_and_checks(tmp_path):
    for name in ("b.mrc", "a.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images([tmp_path])] == ["a.png", "b.mrc"]
    with pytest.raises(InputError, match="no such file"):
        list_images([tmp_path / "missing.mrc"])
    with pytest.raises(InputError, match="unsupported image type"):
        list_images([tmp_path / "notes.txt"])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.tif").write_bytes(b"x")
    with pytest.raises(InputError, match=r"b\.mrc: shares the name 'b' with .*sub/b\.tif"):
        list_images([tmp_path, tmp_path / "sub"])


def test_a_sample_spread_evenly_sees_the_whole_set():
    """The first and last always, evenly in between, in order, never one twice; everything where there are fewer."""
    from fewpick.io.images import evenly_spread

    assert evenly_spread(list("abcdefghij"), 4) == ["a", "d", "g", "j"]
    assert evenly_spread(list(range(100)), 3) == [0, 50, 99]
    assert evenly_spread([1, 2, 3], 8) == [1, 2, 3]
    assert evenly_spread(list(range(9)), 1) == [0] and evenly_spread(list(range(9)), 0) == []
    assert len(set(evenly_spread(list(range(41)), 40))) == 40


def test_tilt_series_beside_their_tomograms_are_told_apart(tmp_path):
    """The simulator and IMOD write tomo.mrc beside tomo.st: a folder given as --tilt-series means the .st."""
    from fewpick.io.images import tilt_series_files

    for name in ("t0.mrc", "t0.st", "t0.tlt", "t1.mrc", "t1.st"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in tilt_series_files([tmp_path])] == ["t0.st", "t1.st"]
    only = tmp_path / "only"
    only.mkdir()
    (only / "t0.mrc").write_bytes(b"x")
    assert [p.name for p in tilt_series_files([only])] == ["t0.mrc"]
    assert [p.name for p in tilt_series_files([tmp_path / "t1.mrc"])] == ["t1.mrc"]


def test_names_pair_by_stem_and_unique_prefix():
    assert micrograph_key("Movies/job/mic_001.mrc") == "mic_001"
    assert micrograph_key("May08_03.13.02.bin_avg.png") == "May08_03.13.02.bin_avg"
    pairs = match_names(["mic_001", "May08_03.13.02", "x"], ["a/mic_001.mrc", "May08_03.13.02.bin_avg.png", "x1", "x2"])
    assert pairs == {"mic_001": "a/mic_001.mrc", "May08_03.13.02": "May08_03.13.02.bin_avg.png"}
    # ambiguous prefixes pair with nothing
    assert match_names(["m"], ["m_a", "m_b"]) == {}
    # pair_names works either way round: truth "mic01" with picks "mic01.bin_avg", and back
    assert pair_names(["mic01", "x"], ["mic01.bin_avg.png"]) == {"mic01": "mic01.bin_avg.png"}
    assert pair_names(["mic01.bin_avg"], ["mic01", "zz"]) == {"mic01.bin_avg": "mic01"}
