from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fewpick.errors import InputError
from fewpick.io import check_inside, make_picks, read_picks, transform_picks, write_picks


def _table(n=5, z=False, seed=0, name="mic_a"):
    r = np.random.default_rng(seed)
    return make_picks(name, r.uniform(0, 500, n).round(2), r.uniform(0, 400, n).round(2),
                      z=r.uniform(0, 90, n).round(2) if z else None, score=r.normal(size=n).round(4))


def _same(a, b, cols=("x", "y"), tol=1e-3):
    assert len(a) == len(b)
    for c in cols:
        np.testing.assert_allclose(a[c].to_numpy(float), b[c].to_numpy(float), atol=tol)


@pytest.mark.parametrize("suffix", [".star", ".tsv", ".csv", ".box"])
def test_2d_round_trip_with_scores(tmp_path, suffix):
    t = _table()
    write_picks(t, tmp_path / f"mic_a{suffix}", box_size=64)
    back = read_picks(tmp_path / f"mic_a{suffix}")
    _same(t, back, ("x", "y", "score"))
    assert set(back["micrograph"]) == {"mic_a"}
    assert list(back.columns[:4]) == ["micrograph", "x", "y", "score"]


def test_coords_round_trip_2d_and_3d(tmp_path):
    t = _table()
    write_picks(t, tmp_path / "mic_a.coords")
    back = read_picks(tmp_path / "mic_a.coords")
    _same(t, back)
    assert back["score"].isna().all() and back["micrograph"].iloc[0] == "mic_a"
    t3 = _table(z=True)
    write_picks(t3, tmp_path / "tomo.coords")
    _same(t3, read_picks(tmp_path / "tomo.coords"), ("x", "y", "z"))


@pytest.mark.parametrize("suffix", [".star", ".tsv", ".csv"])
def test_3d_round_trip_many_micrographs(tmp_path, suffix):
    t = pd.concat([_table(4, z=True, seed=1, name="tomo1"), _table(3, z=True, seed=2, name="tomo2")], ignore_index=True)
    t["label"] = [1, 2, 1, 1, 3, 3, 2]
    write_picks(t, tmp_path / f"all{suffix}")
    back = read_picks(tmp_path / f"all{suffix}")
    _same(t, back, ("x", "y", "z", "score"))
    assert list(back["micrograph"]) == list(t["micrograph"])
    assert list(back["label"]) == list(t["label"])


def test_star_file_text_uses_relion_names(tmp_path):
    write_picks(_table(2), tmp_path / "p.star")
    text = (tmp_path / "p.star").read_text()
    for label in ("data_particles", "_rlnMicrographName", "_rlnCoordinateX", "_rlnCoordinateY", "_rlnAutopickFigureOfMerit"):
        assert label in text
    write_picks(_table(2, z=True), tmp_path / "t.star")  # tomograms: RELION's rlnTomoName
    text = (tmp_path / "t.star").read_text()
    for label in ("_rlnTomoName", "_rlnCoordinateX", "_rlnCoordinateY", "_rlnCoordinateZ", "_rlnAutopickFigureOfMerit"):
        assert label in text


def test_extra_columns_survive_star_and_csv(tmp_path):
    t = _table(3)
    t["rlnAngleRot"] = [10.0, 20.0, 30.0]
    t["species"] = ["ribosome", "cct", "ribosome"]
    write_picks(t, tmp_path / "x.star")
    back = read_picks(tmp_path / "x.star")
    assert list(back["rlnAngleRot"]) == [10.0, 20.0, 30.0]
    assert list(back["species"]) == ["ribosome", "cct", "ribosome"]
    write_picks(back, tmp_path / "x.csv")
    assert list(read_picks(tmp_path / "x.csv")["species"]) == ["ribosome", "cct", "ribosome"]


def test_relion_multi_block_star_and_plain_coordinates(tmp_path):
    (tmp_path / "run.star").write_text(
        "data_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnImagePixelSize #2\n1 1.5\n\n"
        "data_particles\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n_rlnMicrographName #3\n_rlnAngleTilt #4\n"
        "10.5 20 MotionCorr/job1/m1.mrc 90\n30 40 MotionCorr/job1/m2.mrc 45\n")
    t = read_picks(tmp_path / "run.star")
    assert list(t["x"]) == [10.5, 30.0]
    assert list(t["micrograph"]) == ["MotionCorr/job1/m1.mrc", "MotionCorr/job1/m2.mrc"]
    assert list(t["rlnAngleTilt"]) == [90, 45]
    (tmp_path / "m7_autopick.star").write_text("data_\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n1 2\n")
    assert read_picks(tmp_path / "m7_autopick.star")["micrograph"].iloc[0] == "m7"


def test_topaz_and_field_csv_spellings(tmp_path):
    (tmp_path / "t.txt").write_text("image_name\tx_coord\ty_coord\tscore\nm1\t10\t20\t-1.5\nm2\t30\t40\t2.5\n")
    t = read_picks(tmp_path / "t.txt")
    assert list(t["micrograph"]) == ["m1", "m2"] and list(t["score"]) == [-1.5, 2.5]
    (tmp_path / "mic9.csv").write_text("X-Coordinate,Y-Coordinate,Diameter\n361.0,22.2,68.0\n444.9,25.7,68.0\n")
    c = read_picks(tmp_path / "mic9.csv")
    assert list(c["micrograph"]) == ["mic9", "mic9"]
    assert list(c["x"]) == [361.0, 444.9] and list(c["Diameter"]) == [68.0, 68.0]


def test_real_labels_read(real_data):
    t = read_picks(real_data / "labels" / "May08_03.13.02.csv", require_rows=True)
    assert len(t) == 160 and t["micrograph"].iloc[0] == "May08_03.13.02"
    assert t["x"].between(0, 1240).all() and t["y"].between(0, 1200).all()


def test_box_reads_eman_corner_convention_and_optional_score(tmp_path):
    (tmp_path / "m.box").write_text("100\t200\t64\t64\n0 0 32 32 0.75\n")
    t = read_picks(tmp_path / "m.box")
    assert list(t["x"]) == [132.0, 16.0] and list(t["y"]) == [232.0, 16.0]
    assert list(t["box"]) == [64.0, 32.0]


@pytest.mark.parametrize("suffix", [".star", ".tsv", ".csv", ".box", ".coords"])
def test_empty_tables_round_trip(tmp_path, suffix):
    empty = make_picks("m", [], [])
    write_picks(empty, tmp_path / f"m{suffix}", box_size=10)
    back = read_picks(tmp_path / f"m{suffix}")
    assert len(back) == 0 and {"micrograph", "x", "y", "score"} <= set(back.columns)
    with pytest.raises(InputError, match=rf"m\{suffix}: holds no particle coordinates"):
        read_picks(tmp_path / f"m{suffix}", require_rows=True)


def test_per_micrograph_folder_round_trip(tmp_path):
    t = pd.concat([_table(3, seed=1, name="m1"), _table(2, seed=2, name="m2")], ignore_index=True)
    files = write_picks(t, f"{tmp_path}/out/", "box", box_size=50, micrographs=["m1", "m2", "m3"])
    assert sorted(f.name for f in files) == ["m1.box", "m2.box", "m3.box"]
    back = read_picks(tmp_path / "out")
    assert sorted(back["micrograph"].unique()) == ["m1", "m2"]
    _same(t.sort_values(["micrograph", "x"]), back.sort_values(["micrograph", "x"]), ("x", "y", "score"))
    write_picks(t, tmp_path / "stars")  # no suffix: a folder
    assert len(read_picks(tmp_path / "stars")) == 5


def test_bad_picks_files(tmp_path):
    (tmp_path / "nocoords.star").write_text("data_\n\nloop_\n_rlnMicrographName #1\na.mrc\n")
    with pytest.raises(InputError, match=r"nocoords\.star: STAR file has no table with rlnCoordinateX"):
        read_picks(tmp_path / "nocoords.star")
    (tmp_path / "word.csv").write_text("x,y\n1,2\n3,abc\n")
    with pytest.raises(InputError, match=r"word\.csv: row 2: y is not a number"):
        read_picks(tmp_path / "word.csv")
    (tmp_path / "cols.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"cols\.csv: no x coordinate column"):
        read_picks(tmp_path / "cols.csv")
    (tmp_path / "short.box").write_text("1 2 3\n")
    with pytest.raises(InputError, match=r"short\.box: line 1 has 3 columns"):
        read_picks(tmp_path / "short.box")
    with pytest.raises(InputError, match="cannot tell the picks format"):
        read_picks(tmp_path / "short.xyz") if (tmp_path / "short.xyz").write_text("1") else None
    with pytest.raises(InputError, match="no such file"):
        read_picks(tmp_path / "absent.star")


def test_failed_write_leaves_existing_file_untouched(tmp_path):
    target = tmp_path / "keep.box"
    target.write_text("original\n")
    with pytest.raises(InputError, match="needs a box size"):
        write_picks(make_picks("m", [1.0], [2.0]), target)
    assert target.read_text() == "original\n"
    two = pd.concat([_table(1, name="a"), _table(1, name="b")])
    with pytest.raises(InputError, match="give a folder"):
        write_picks(two, target, box_size=10)
    assert target.read_text() == "original\n"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.box"]  # no temporary left behind


def test_transform_scale_and_flip():
    t = make_picks("m", [10.0, 0.0], [5.0, 99.0], z=[2.0, 3.0])
    s = transform_picks(t, scale=4)
    assert list(s["x"]) == [40.0, 0.0] and list(s["y"]) == [20.0, 396.0] and list(s["z"]) == [8.0, 12.0]
    f = transform_picks(t, flip_y_height=100)
    assert list(f["y"]) == [94.0, 0.0]
    # flipping twice is the identity
    assert list(transform_picks(f, flip_y_height=100)["y"]) == [5.0, 99.0]
    with pytest.raises(InputError):
        transform_picks(t, scale=0)


def test_check_inside():
    t = make_picks("m", [0.0, 99.4], [0.0, 49.0])
    check_inside(t, {"m": (50, 100)}, "labels.star")
    with pytest.raises(InputError, match=r"labels\.star: x=100\.5 \(row 2, micrograph 'm'\) lies outside"):
        check_inside(make_picks("m", [3.0, 100.5], [1.0, 1.0]), {"m": (50, 100)}, "labels.star")
    with pytest.raises(InputError, match="not among the images given"):
        check_inside(t, {"other": (50, 100)}, "labels.star")
    with pytest.raises(InputError, match="z=12"):
        check_inside(make_picks("m", [1.0], [1.0], z=[12.0]), {"m": (10, 50, 100)}, "l.star")


def test_written_files_get_normal_permissions(tmp_path):
    import os
    import stat

    write_picks(_table(2), tmp_path / "perm.star")
    mode = stat.S_IMODE(os.stat(tmp_path / "perm.star").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_select_picks_by_column_and_sample():
    from fewpick.io import select_picks

    t = make_picks("m", np.arange(10.0), np.arange(10.0))
    t["species"] = ["a", "b"] * 5
    t["label"] = [1, 2] * 5
    a = select_picks(t, ["species=a"])
    assert len(a) == 5 and set(a.species) == {"a"}
    assert len(select_picks(t, ["label=2"])) == 5
    s1 = select_picks(t, ["species=b"], sample=3, seed=1)
    assert len(s1) == 3 and set(s1.species) == {"b"}
    assert s1.equals(select_picks(t, ["species=b"], sample=3, seed=1))  # seeded
    with pytest.raises(InputError, match="no column 'kind'"):
        select_picks(t, ["kind=x"])
    with pytest.raises(InputError, match="only 5 rows"):
        select_picks(t, ["species=a"], sample=6)


def test_a_new_format_is_one_module_and_one_registration(tmp_path):
    """A toy format (semicolon-separated ``x;y``, one micrograph a file) registered from outside the package is
    read, written, recognised by its suffix, refused for several micrographs in one file and named in help."""
    from fewpick.io.picks import (
        PicksFormat,
        detect_format,
        formats_help,
        make_picks,
        read_picks,
        register_format,
        unregister_format,
        write_picks,
    )
    from fewpick.io.picks.table import finish, stem_name

    def read(path, images=None):
        rows = [line.split(";") for line in path.read_text().splitlines() if line]
        return finish(make_picks(stem_name(path), [float(r[0]) for r in rows], [float(r[1]) for r in rows]), path)

    def write(picks, tmp, to):
        tmp.write_text("".join(f"{x:g};{y:g}\n" for x, y in zip(picks["x"], picks["y"])))

    register_format(PicksFormat("semi", "Toy", (".semi",), read=read, write=write, one_per_image=True))
    try:
        with pytest.raises(ValueError):  # a suffix already taken
            register_format(PicksFormat("semi2", "", (".star",), read=read, write=write))
        picks = make_picks(["a", "a", "b"], [1.5, 20, 7], [2, 30.25, 8], score=[0.9, 0.5, 0.1])
        assert detect_format(tmp_path / "p.semi") == "semi" and "semi (Toy)" in formats_help()
        written = write_picks(picks, tmp_path / "parts/", fmt="semi")
        assert [p.name for p in written] == ["a.semi", "b.semi"]
        back = read_picks(tmp_path / "parts")
        assert back[["micrograph", "x", "y"]].values.tolist() == picks[["micrograph", "x", "y"]].values.tolist()
        with pytest.raises(InputError, match="holds one micrograph"):
            write_picks(picks, tmp_path / "all.semi")
    finally:
        unregister_format("semi")
    with pytest.raises(InputError, match="unknown picks format"):
        detect_format("x", "semi")
