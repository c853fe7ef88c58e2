"""Picks in other programs' layouts: RELION (2D, coordinate-file index, RELION 5 tomography), cryoSPARC .cs,
crYOLO .cbox, IMOD .mod. Each is checked by a round trip and by reading a file written in that program's own
layout from its documented format (not by our writer)."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fewpick.cli import app
from fewpick.errors import InputError
from fewpick.io import image_info, make_picks, read_picks, write_mrc, write_picks

runner = CliRunner()


@pytest.fixture()
def mics(tmp_path):
    """Two 2D micrographs (100 rows × 120 columns, 1.5 Å/px) and one tomogram (40 × 100 × 120, 10 Å/px)."""
    for name in ("a", "b"):
        write_mrc(tmp_path / "mics" / f"{name}.mrc", np.zeros((100, 120), np.float32), 1.5)
    write_mrc(tmp_path / "tomos" / "TS_01.mrc", np.zeros((40, 100, 120), np.float32), 10.0)
    return tmp_path


def _picks():
    return make_picks(["a", "a", "b"], [10.25, 20.5, 119.0], [5.0, 99.0, 7.0], score=[0.5, 0.25, 1.0])


def _infos(*paths):
    return {i.name: i for i in map(image_info, paths)}


def _close(a: pd.DataFrame, b: pd.DataFrame, cols=("x", "y"), tol=1e-3):
    for c in cols:
        assert np.allclose(a[c].to_numpy(float), b[c].to_numpy(float), atol=tol), c


# ---------------------------------------------------------------- RELION


def test_relion_star_names_micrographs_by_their_path_or_a_project_prefix(mics):
    imgs = _infos(mics / "mics" / "a.mrc", mics / "mics" / "b.mrc")
    write_picks(_picks(), mics / "p.star", images=imgs)
    back = read_picks(mics / "p.star")
    assert list(back["micrograph"]) == [str(mics / "mics" / "a.mrc")] * 2 + [str(mics / "mics" / "b.mrc")]
    _close(back, _picks(), ("x", "y", "score"))
    write_picks(_picks(), mics / "q.star", images=imgs, micrograph_prefix="MotionCorr/job002/Movies/")
    assert set(read_picks(mics / "q.star")["micrograph"]) == {"MotionCorr/job002/Movies/a.mrc",
                                                             "MotionCorr/job002/Movies/b.mrc"}
    assert "data_particles" in (mics / "q.star").read_text()


def test_relion_per_micrograph_files_follow_the_import_layout(mics):
    written = write_picks(_picks(), mics / "coords/")
    assert sorted(p.name for p in written) == ["a_pick.star", "b_pick.star"]
    back = read_picks(mics / "coords")
    assert sorted(back["micrograph"]) == ["a", "a", "b"]


def test_relion_autopick_index_and_its_coordinate_files_are_read(tmp_path, monkeypatch):
    # a RELION project as AutoPick writes it: autopick.star lists each micrograph's coordinate file, both paths
    # relative to the project folder
    job = tmp_path / "project" / "AutoPick" / "job007"
    (job / "Movies").mkdir(parents=True)
    (job / "autopick.star").write_text(
        "\n# version 30001\n\ndata_coordinate_files\n\nloop_\n_rlnMicrographName #1\n_rlnMicrographCoordinates #2\n"
        "MotionCorr/job002/Movies/mic_1.mrc AutoPick/job007/Movies/mic_1_autopick.star\n"
        "MotionCorr/job002/Movies/mic_2.mrc AutoPick/job007/Movies/mic_2_autopick.star\n")
    head = "\n# version 30001\n\ndata_\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n" \
           "_rlnClassNumber #3\n_rlnAutopickFigureOfMerit #4\n_rlnAnglePsi #5\n"
    (job / "Movies" / "mic_1_autopick.star").write_text(head + "100.0 200.0 1 2.5 -999.0\n300.0 50.0 1 1.5 -999.0\n")
    (job / "Movies" / "mic_2_autopick.star").write_text(head + "12.0 34.0 1 0.5 -999.0\n")
    monkeypatch.chdir(tmp_path)  # not the project folder: the index's own folders are searched
    picks = read_picks(job / "autopick.star")
    assert list(picks["micrograph"]) == ["MotionCorr/job002/Movies/mic_1.mrc"] * 2 + ["MotionCorr/job002/Movies/mic_2.mrc"]
    assert list(picks["x"]) == [100.0, 300.0, 12.0] and list(picks["score"]) == [2.5, 1.5, 0.5]
    # the folder of per-micrograph files reads the same picks (the index is skipped, not read twice)
    assert len(read_picks(job / "Movies")) == 3
    (job / "Movies" / "mic_2_autopick.star").unlink()
    with pytest.raises(InputError, match="mic_2_autopick.star"):
        read_picks(job / "autopick.star")


def test_relion5_tomogram_picks_in_centred_angstroms(mics):
    info = _infos(mics / "tomos" / "TS_01.mrc")
    # a RELION 5 particle file: rlnTomoName and centred ångströms, no voxel coordinates. Centre = size / 2
    # (RELION 5, ParticleSet::getParticleCoordDecenteredPixel): 120 × 100 × 40 voxels of 10 Å
    (mics / "r5.star").write_text(
        "\n# version 50001\n\ndata_particles\n\nloop_\n_rlnTomoName #1\n_rlnCenteredCoordinateXAngst #2\n"
        "_rlnCenteredCoordinateYAngst #3\n_rlnCenteredCoordinateZAngst #4\n"
        "TS_01 0.0 0.0 0.0\nTS_01 -500.0 250.0 -195.0\n")
    picks = read_picks(mics / "r5.star", images=info)
    assert list(picks["micrograph"]) == ["TS_01", "TS_01"]
    assert np.allclose(picks[["x", "y", "z"]].to_numpy(), [[60, 50, 20], [10, 75, 0.5]])
    with pytest.raises(InputError, match="--images"):
        read_picks(mics / "r5.star")
    # written: rlnTomoName, voxels (RELION 4) and centred ångströms (RELION 5), which read back the same
    write_picks(picks, mics / "out.star", images=info)
    text = (mics / "out.star").read_text()
    assert "_rlnTomoName" in text and "_rlnCenteredCoordinateZAngst" in text and "_rlnCoordinateZ" in text
    for images in (info, None):
        _close(read_picks(mics / "out.star", images=images), picks, ("x", "y", "z"))


# ---------------------------------------------------------------- cryoSPARC


def test_cryosparc_cs_round_trip_needs_the_micrographs(mics):
    with pytest.raises(InputError, match="--images"):
        write_picks(_picks(), mics / "p.cs")
    assert not (mics / "p.cs").exists()
    imgs = _infos(mics / "mics" / "a.mrc", mics / "mics" / "b.mrc")
    write_picks(_picks(), mics / "p.cs", images=imgs, micrograph_prefix="J3/imported/")
    back = read_picks(mics / "p.cs")
    assert list(back["micrograph"]) == ["J3/imported/a.mrc"] * 2 + ["J3/imported/b.mrc"]
    _close(back, _picks(), ("x", "y", "score"))


def test_cryosparc_cs_in_cryosparcs_own_layout(tmp_path):
    # cryoSPARC's .cs file: a NumPy structured array, fixed-width byte strings for paths
    dtype = [("uid", "<u8"), ("location/micrograph_uid", "<u8"), ("location/exp_group_id", "<u4"),
             ("location/micrograph_path", "S40"), ("location/micrograph_shape", "<u4", (2,)),
             ("location/micrograph_psize_A", "<f4"), ("location/center_x_frac", "<f4"),
             ("location/center_y_frac", "<f4"), ("pick_stats/ncc_score", "<f4"), ("pick_stats/power", "<f4")]
    a = np.zeros(2, dtype=dtype)
    a["uid"] = [11, 12]
    a["location/micrograph_path"] = [b"J2/motioncorrected/m1.mrc", b"J2/motioncorrected/m2.mrc"]
    a["location/micrograph_shape"] = [[3000, 4000], [3000, 4000]]
    a["location/center_x_frac"] = [0.25, 0.5]
    a["location/center_y_frac"] = [0.5, 0.1]
    a["pick_stats/ncc_score"] = [0.7, 0.3]
    with open(tmp_path / "picked.cs", "wb") as f:
        np.save(f, a)
    picks = read_picks(tmp_path / "picked.cs")
    assert list(picks["micrograph"]) == ["J2/motioncorrected/m1.mrc", "J2/motioncorrected/m2.mrc"]
    assert np.allclose(picks["x"], [1000, 2000]) and np.allclose(picks["y"], [1500, 300])
    assert np.allclose(picks["score"], [0.7, 0.3])


# ---------------------------------------------------------------- crYOLO


def test_cryolo_cbox_round_trips_in_2d_and_3d(tmp_path):
    one = _picks()[lambda d: d.micrograph == "a"]
    write_picks(one, tmp_path / "a.cbox", box_size=32)
    back = read_picks(tmp_path / "a.cbox")
    _close(back, one, ("x", "y", "score"))
    assert "z" not in back.columns and list(back["box"]) == [32.0, 32.0]
    t = make_picks("TS_01", [10, 60], [20, 50], z=[5, 20], score=[0.9, 0.8])
    write_picks(t, tmp_path / "TS_01.cbox", box_size=20)
    _close(read_picks(tmp_path / "TS_01.cbox"), t, ("x", "y", "z", "score"))
    with pytest.raises(InputError, match="box size"):
        write_picks(one, tmp_path / "nobox.cbox")
    with pytest.raises(InputError, match="one micrograph"):
        write_picks(_picks(), tmp_path / "two.cbox", box_size=32)


def test_cryolo_cbox_in_cryolos_own_layout(tmp_path):
    # crYOLO writes the box's corner (centre - size / 2) and, in 3D, the centre slice
    (tmp_path / "mic_7.cbox").write_text(
        "\ndata_global\n\n_version 1.0\n\ndata_cryolo\n\nloop_\n_CoordinateX #1\n_CoordinateY #2\n_CoordinateZ #3\n"
        "_Width #4\n_Height #5\n_Depth #6\n_EstWidth #7\n_EstHeight #8\n_Confidence #9\n_NumBoxes #10\n_Angle #11\n"
        "100.0 200.0 <NA> 64 64 <NA> 60 60 0.91 <NA> <NA>\n10.0 20.0 <NA> 64 64 <NA> 58 61 0.42 <NA> <NA>\n")
    picks = read_picks(tmp_path / "mic_7.cbox")
    assert list(picks["micrograph"]) == ["mic_7", "mic_7"]
    assert list(picks["x"]) == [132.0, 42.0] and list(picks["y"]) == [232.0, 52.0]
    assert list(picks["score"]) == [0.91, 0.42] and "z" not in picks.columns
    (tmp_path / "tomo_3.cbox").write_text(
        "data_global\n\n_version 1.0\n\ndata_cryolo\n\nloop_\n_CoordinateX\n_CoordinateY\n_CoordinateZ\n_Width\n"
        "_Height\n_Depth\n_Confidence\n40 50 12 20 20 20 0.8\n")
    t = read_picks(tmp_path / "tomo_3.cbox")
    assert (t["x"][0], t["y"][0], t["z"][0]) == (50.0, 60.0, 12.0)


# ---------------------------------------------------------------- IMOD


def _imod_model(points: np.ndarray, shape: tuple[int, int, int]) -> bytes:
    """An IMOD model file written by hand from IMOD's binary specification (binspec.html): big-endian,
    model header, one scattered-point object holding one contour."""
    nz, ny, nx = shape
    head = b"IMODV1.2" + b"test".ljust(128, b"\0")
    head += struct.pack(">3i i I 4i 3f 3f 5i f i i 3f", nx, ny, nz, 1, 0, 1, 2, 0, 255, 0, 0, 0, 1, 1, 1,
                        0, 0, -1, 3, 128, 1.0, 0, 0, 0.0, 0.0, 0.0)
    obj = b"OBJT" + b"particles".ljust(64, b"\0") + struct.pack(">16I", *[0] * 16)
    obj += struct.pack(">i I i i 3f i 8B i i", 1, 1 << 9, 0, 1, 0.0, 1.0, 0.0, 0, 0, 3, 0, 1, 0, 0, 0, 0, 0, 0)
    cont = b"CONT" + struct.pack(">i I i i", len(points), 0, 0, 0) + struct.pack(f">{points.size}f", *points.ravel())
    return head + obj + cont + b"IEOF"


def test_imod_model_round_trips_and_reads_imods_own_layout(tmp_path, mics):
    t = make_picks("TS_01", [10, 60], [20, 50], z=[5, 20])
    write_picks(t, tmp_path / "TS_01.mod", images=_infos(mics / "tomos" / "TS_01.mrc"))
    back = read_picks(tmp_path / "TS_01.mod")
    _close(back, t, ("x", "y", "z"))
    one = _picks()[lambda d: d.micrograph == "a"]
    write_picks(one, tmp_path / "a.mod")
    back = read_picks(tmp_path / "a.mod")
    _close(back, one)
    assert "z" not in back.columns  # a micrograph's model lies on section 0
    # IMOD puts the first pixel's centre at 0.5 in x and y, and the first section at z = 0
    (tmp_path / "hand.mod").write_bytes(_imod_model(np.array([[10.5, 20.5, 3.0], [0.5, 0.5, 0.0]], ">f4"), (40, 100, 120)))
    hand = read_picks(tmp_path / "hand.mod")
    assert np.allclose(hand[["x", "y", "z"]].to_numpy(), [[10, 20, 3], [0, 0, 0]])


# ---------------------------------------------------------------- the command line


def test_convert_between_the_formats_and_pick_writes_them(mics, tmp_path):
    write_picks(_picks(), mics / "p.star")
    r = runner.invoke(app, ["convert", str(mics / "p.star"), str(mics / "p.cs")])
    assert r.exit_code == 2 and "--images" in r.output and not (mics / "p.cs").exists()
    r = runner.invoke(app, ["convert", str(mics / "p.star"), str(mics / "p.cs"), "--images", str(mics / "mics"),
                            "--micrograph-prefix", "MotionCorr/job002/Movies/"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["convert", str(mics / "p.cs"), str(mics / "boxes/"), "--to", "cbox", "--box-size", "40"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (mics / "boxes").iterdir()) == ["a.cbox", "b.cbox"]
    r = runner.invoke(app, ["convert", str(mics / "boxes"), str(mics / "models/"), "--to", "mod"])
    assert r.exit_code == 0, r.output
    back = read_picks(mics / "models")
    _close(back.sort_values(["micrograph", "x"]), _picks().sort_values(["micrograph", "x"]))
    # pick writes cryoSPARC directly: the micrographs it picks give their sizes
    img = np.random.default_rng(0).normal(size=(100, 120)).astype(np.float32)
    img[40:56, 50:66] -= 4
    write_mrc(tmp_path / "m" / "c.mrc", img, 1.5)
    r = runner.invoke(app, ["pick", str(tmp_path / "m"), "-d", "16", "--out", str(tmp_path / "c.cs")])
    assert r.exit_code == 0, r.output
    cs = read_picks(tmp_path / "c.cs")
    assert set(cs["micrograph"]) == {str(tmp_path / "m" / "c.mrc")}
    assert ((cs["x"] - 57.5).abs() < 4).any() and ((cs["y"] - 47.5).abs() < 4).any()
