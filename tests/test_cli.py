from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from fewpick.cli import app
from fewpick.io import make_picks, read_image, read_picks, write_mrc, write_picks

runner = CliRunner()
VERBS = ["simulate", "pick", "train", "fewshot", "evaluate", "convert", "overlay"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_help_lists_every_verb_and_each_has_an_example():
    r = run("--help")
    assert r.exit_code == 0
    for verb in VERBS:
        assert verb in r.output
    for verb in ["pick", "train", "evaluate", "convert", "overlay", "simulate micrographs", "fewshot pretrain",
                 "fewshot train", "fewshot pick"]:
        h = run(*verb.split(), "--help")
        assert h.exit_code == 0 and "Example" in h.output, verb
    assert "fewpick 0.1.0" in run("--version").output


def _all_commands(group, prefix=()):
    """Every command path of the CLI (typer's click group), e.g. ('fewshot', 'train')."""
    import typer
    import typer.main

    cmd = typer.main.get_command(group) if isinstance(group, typer.Typer) else group
    for name, sub in getattr(cmd, "commands", {}).items():
        yield (*prefix, name)
        yield from _all_commands(sub, (*prefix, name))


def test_no_internal_words_in_the_readme_or_any_help():
    """What users read speaks of their data, not of our documents, issues or folders."""
    import re
    from pathlib import Path

    internal = re.compile(r"seed 0\d\d|\bissues?\b|\.\./shared|SPEC\.md|source document", re.I)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert not internal.findall(readme)
    paths = list(_all_commands(app))
    assert ("fewshot", "train") in paths and ("tomo", "pick") in paths and len(paths) > 12
    for path in [(), *paths]:
        text = run(*path, "--help").output
        assert not internal.findall(text), (path, internal.findall(text))


@pytest.fixture(scope="module")
def simdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    r = run("simulate", "micrographs", "--out", d, "--count", 2, "--size", 384, "--seed", 3, "--preset", "simple",
            "--particle-diameter", 32, "--particles", 25)
    assert r.exit_code == 0, r.output
    return d


def test_simulate_is_deterministic(simdir, tmp_path):
    assert sorted(p.name for p in simdir.iterdir()) == ["sim_000.mrc", "sim_000_truth.star", "sim_001.mrc",
                                                       "sim_001_truth.star"]
    again = tmp_path / "again"
    run("simulate", "micrographs", "--out", again, "--count", 1, "--size", 384, "--seed", 3, "--preset", "simple",
        "--particle-diameter", 32, "--particles", 25)
    # same pixels and pixel size (the header's label holds mrcfile's creation time, so bytes may differ)
    a, b = read_image(again / "sim_000.mrc"), read_image(simdir / "sim_000.mrc")
    assert np.array_equal(a.data, b.data) and a.pixel_size == b.pixel_size
    assert len(read_picks(simdir / "sim_000_truth.star")) == 25


def test_pick_then_evaluate_end_to_end(simdir, tmp_path):
    picks = tmp_path / "picks.star"
    r = run("pick", simdir, "--method", "dog", "--particle-diameter", 32, "--out", picks)
    assert r.exit_code == 0, r.output
    # RELION pairs picks with micrographs by path: the path as given, extension kept
    assert set(read_picks(picks)["micrograph"]) == {str(simdir / "sim_000.mrc"), str(simdir / "sim_001.mrc")}
    r = run("evaluate", picks, simdir, "--radius", 16, "--box", 32, "--json", tmp_path / "m.json",
            "--plot", tmp_path / "pr.png", "--threshold", 0)
    assert r.exit_code == 0, r.output
    assert "AUPRC" in r.output and "box protocol" in r.output
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["n_true"] == 50 and report["all_picks"]["f1"] >= 0.9
    assert report["box_protocol"]["all_picks"]["f1"] >= 0.8
    assert (tmp_path / "pr.png").read_bytes()[:4] == b"\x89PNG"
    r = run("overlay", simdir / "sim_000.mrc", "--picks", picks, "--truth", simdir / "sim_000_truth.star",
            "--out", tmp_path / "o.png", "-d", 32)
    assert r.exit_code == 0 and (tmp_path / "o.png").stat().st_size > 10_000
    # the diameter in Å, like every other -d (the simulator writes 2 Å/px): the same circles
    r = run("overlay", simdir / "sim_000.mrc", "--picks", picks, "--truth", simdir / "sim_000_truth.star",
            "--out", tmp_path / "o_A.png", "-d", "64A")
    import matplotlib.image

    assert r.exit_code == 0, r.output
    assert np.array_equal(matplotlib.image.imread(tmp_path / "o.png"), matplotlib.image.imread(tmp_path / "o_A.png"))
    assert run("overlay", simdir / "sim_000.mrc", "-d", "big", "--out", tmp_path / "x.png").exit_code == 2


def test_pick_per_micrograph_box_output_and_physical_diameter(simdir, tmp_path):
    # the simulator writes 2 Å/px, so 64 Å is the 32 px particle
    r = run("pick", simdir / "sim_000.mrc", "--particle-diameter", "64A", "--out", f"{tmp_path}/boxes/")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "boxes" / "sim_000_pick.star").exists()
    r = run("pick", simdir / "sim_000.mrc", "-d", 32, "--out", tmp_path / "sim_000.box")
    assert r.exit_code == 0, r.output
    text = (tmp_path / "sim_000.box").read_text().splitlines()[0].split("\t")
    assert text[2] == "32" and text[3] == "32"


def test_convert_round_trip_with_scale_and_flip(tmp_path):
    t = make_picks("m1", [10.0, 20.0], [5.0, 50.0], score=[0.5, 0.25])
    write_picks(t, tmp_path / "in.star")
    r = run("convert", tmp_path / "in.star", tmp_path / "out.tsv", "--scale", 4, "--flip-y", 400)
    assert r.exit_code == 0, r.output
    back = read_picks(tmp_path / "out.tsv")
    assert list(back["x"]) == [40.0, 80.0] and list(back["y"]) == [379.0, 199.0]
    assert list(back["score"]) == [0.5, 0.25]
    r = run("convert", tmp_path / "out.tsv", f"{tmp_path}/boxes/", "--to", "box", "--box-size", 64)
    assert r.exit_code == 0 and (tmp_path / "boxes" / "m1.box").exists()
    # a folder whose name has a dot-suffix: the trailing slash says folder
    r = run("convert", tmp_path / "out.tsv", f"{tmp_path}/out.coords/", "--to", "coords")
    assert r.exit_code == 0 and (tmp_path / "out.coords" / "m1.coords").is_file(), r.output


def test_bad_inputs_exit_2_with_one_clear_line(tmp_path):
    noise = np.random.default_rng(0).normal(size=(128, 128)).astype(np.float32)
    write_mrc(tmp_path / "good.mrc", noise)
    write_mrc(tmp_path / "vol.mrc", np.zeros((4, 32, 32), np.float32))
    bad = noise.copy()
    bad[3, 4] = np.nan
    write_mrc(tmp_path / "nan.mrc", bad)
    raw = (tmp_path / "good.mrc").read_bytes()
    (tmp_path / "cut.mrc").write_bytes(raw[:2000])
    out = tmp_path / "picks.star"
    out.write_text("precious\n")
    cases = [
        (("pick", tmp_path / "cut.mrc", "-d", 20, "--out", out), "cut.mrc: truncated MRC file"),
        (("pick", tmp_path / "vol.mrc", "-d", 20, "--out", out), "expected a 2D micrograph"),
        (("pick", tmp_path / "nan.mrc", "-d", 20, "--out", out), "NaN or infinite"),
        (("pick", tmp_path / "good.mrc", "-d", 20, "-t", "lots", "--out", out), "--threshold must be a number"),
        (("pick", tmp_path / "good.mrc", "-d", 20, "-t", "calibrated", "--out", out), "no calibrated threshold"),
        (("pick", tmp_path / "good.mrc", "-d", "20A", "--out", out), "pixel size is unknown"),
        (("pick", tmp_path / "good.mrc", "-d", 20, "--method", "template", "--out", out), "needs --template"),
        (("pick", tmp_path / "missing.mrc", "-d", 20, "--out", out), "no such file"),
    ]
    for args, message in cases:
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output, (args, r.output)
        assert "Traceback" not in r.output
    assert out.read_text() == "precious\n"  # never destroyed by a failed run
    (tmp_path / "nocoords.star").write_text("data_\n\nloop_\n_rlnMicrographName #1\na.mrc\n")
    (tmp_path / "empty.csv").write_text("x,y\n")
    write_picks(make_picks("good", [5.0], [5.0]), tmp_path / "p.star")
    r = run("evaluate", tmp_path / "p.star", tmp_path / "nocoords.star", "--radius", 5)
    assert r.exit_code == 2 and "nocoords.star: STAR file has no table with rlnCoordinateX" in r.output
    r = run("evaluate", tmp_path / "p.star", tmp_path / "empty.csv", "--radius", 5)
    assert r.exit_code == 2 and "empty.csv: holds no particle coordinates" in r.output
    r = run("evaluate", tmp_path / "p.star", tmp_path / "p.star")
    assert r.exit_code == 2 and "--radius" in r.output
    write_picks(make_picks("good", [5.0, 130.0], [5.0, 6.0]), tmp_path / "outside.star")
    r = run("overlay", tmp_path / "good.mrc", "--picks", tmp_path / "outside.star", "--out", tmp_path / "o.png")
    assert r.exit_code == 2 and "outside.star: x=130 (row 2, micrograph 'good') lies outside" in r.output
    assert not (tmp_path / "o.png").exists()
    r = run("convert", tmp_path / "outside.star", tmp_path / "flipped.star", "--flip-y", 6)
    assert r.exit_code == 2 and "outside.star: y=6 (row 2) lies outside an image of height 6" in r.output
    assert not (tmp_path / "flipped.star").exists()


def test_the_command_line_starts_without_loading_the_heavy_libraries():
    """``fewpick --help`` (and every verb's start) imports neither pandas nor PyTorch: the verbs import what they
    need when they run, and the help texts read the list of formats without their readers."""
    import subprocess
    import sys

    code = "import sys, fewpick.cli; print(sorted(m for m in ('pandas', 'torch', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
