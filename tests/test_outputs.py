"""Nothing a user types destroys a file or prints a traceback: outputs are checked before any work, numbers at
the boundary, and every failure is one line."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from fewpick.cli import app
from fewpick.errors import InputError
from fewpick.io import make_picks, write_mrc, write_picks
from fewpick.outputs import check_output
from fewpick.simulate import SimpleMicrographConfig, simulate_simple_micrograph

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result) -> str:
    """The failure a user sees: exit status 2, no traceback, one line that starts with 'error:'."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    text = " ".join(result.output.split())
    assert text.startswith("error:") and "Traceback" not in result.output, result.output
    return text


@pytest.fixture()
def folder(tmp_path):
    """A good 384² micrograph of 25 particles of 32 px, a micrograph too small to pick, and 15 labels."""
    cfg = SimpleMicrographConfig(size=(384, 384), diameter=32.0, n_particles=25, snr=0.05)
    image, centres, _ = simulate_simple_micrograph(cfg, seed=5)
    write_mrc(tmp_path / "good.mrc", image.astype(np.float32), 1.0)
    write_mrc(tmp_path / "tiny.mrc", np.zeros((8, 8), np.float32), 1.0)
    write_picks(make_picks("good", centres[:15, 0], centres[:15, 1]), tmp_path / "labels.star")
    return tmp_path


def test_a_batch_whose_every_micrograph_fails_leaves_the_earlier_picks_file_alone(folder):
    from fewpick.batch import pick_files
    from fewpick.io import read_micrograph

    out = folder / "p.star"
    assert run("pick", folder / "good.mrc", "--method", "dog", "-d", 32, "--out", out).exit_code == 0
    before = out.read_bytes()
    assert b"rlnCoordinateX" in before and len(before) > 500
    write_mrc(folder / "small.mrc", np.random.default_rng(0).normal(size=(24, 24)).astype(np.float32), 1.0)
    for bad in ("tiny.mrc", "small.mrc"):
        assert run("pick", folder / bad, "--method", "dog", "-d", 32, "--out", out).exit_code == 2
        assert out.read_bytes() == before

    def fails(image):
        raise InputError(image.path, "cannot be picked")

    result = pick_files([folder / "good.mrc", folder / "small.mrc"], read_micrograph, fails, out)
    assert sorted(result.failed) == ["good", "small"] and result.written == []
    assert out.read_bytes() == before


@pytest.mark.parametrize("args", [
    ("pick", "{d}/good.mrc", "--method", "dog", "-d", 32, "--out", "{d}/good.mrc", "--format", "star"),
    ("convert", "{d}/labels.star", "{d}/good.mrc", "--to", "star"),
    ("convert", "{d}/labels.star", "{d}/labels.star"),
    ("convert", "{d}/labels.star", "{d}/./labels.star", "--scale", 2),
])
def test_an_output_never_replaces_an_input(folder, args):
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    text = one_line_error(run(*(str(a).format(d=folder) for a in args)))
    assert "good.mrc" in text or "labels.star" in text
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_outputs_that_cannot_be_written_are_refused_before_any_work(folder):
    (folder / "a_folder.star").mkdir()
    (folder / "a_file").write_text("x")
    cases = {
        folder / "a_file" / "p.star": "is a file, not a folder",
        "/proc/fewpick-test/p.star": "not writable",
    }
    for out, problem in cases.items():
        assert problem in one_line_error(run("pick", folder / "good.mrc", "--method", "dog", "-d", 32, "--out", out))
    # training is refused before it starts, not after: also a model file where a folder is, or named as picks
    (folder / "a_folder.pt").mkdir()
    models = {folder / "a_file" / "m.pt": "is a file, not a folder", "/proc/fewpick-test/m.pt": "not writable",
              folder / "a_folder.pt": "is a folder", folder / "m.star": "name ending in .pt"}
    for out, problem in models.items():
        text = one_line_error(run("train", folder / "good.mrc", "--labels", folder / "labels.star", "-d", 32,
                                  "--steps", 5, "--out", out))
        assert problem in text
    with pytest.raises(InputError, match="is a file; the output here is a folder"):
        check_output(folder / "a_file", folder=True)
    assert check_output(folder / "new" / "deeper" / "p.star") == folder / "new" / "deeper" / "p.star"
    assert not (folder / "new").exists()  # the check writes nothing


def test_empty_model_files_and_duplicated_star_columns_are_one_line_errors(folder):
    (folder / "empty.pt").write_bytes(b"")
    write_mrc(folder / "vol.mrc", np.random.default_rng(1).normal(size=(24, 48, 48)).astype(np.float32), 10.0)
    for verb, image in ((("pick",), "good.mrc"), (("fewshot", "pick"), "good.mrc"), (("tomo", "pick"), "vol.mrc")):
        text = one_line_error(run(*verb, folder / image, "--model", folder / "empty.pt", "--out", folder / "x.star"))
        assert "empty.pt" in text and "empty" in text.split("empty.pt", 1)[1]
    (folder / "dup.star").write_text("data_particles\n\nloop_\n_rlnMicrographName #1\n_rlnCoordinateX #2\n"
                                     "_rlnCoordinateY #3\n_rlnCoordinateX #4\ngood\t10\t20\t30\n")
    assert "appears twice" in one_line_error(run("convert", folder / "dup.star", folder / "o.csv"))
    assert not (folder / "o.csv").exists()


@pytest.mark.parametrize("args, option", [
    (("convert", "{d}/labels.star", "{d}/o.star", "--flip-y", "nan"), "--flip-y"),
    (("convert", "{d}/labels.star", "{d}/o.box", "--box-size", "inf"), "--box-size"),
    (("evaluate", "{d}/labels.star", "{d}/labels.star", "--radius", "inf"), "--radius"),
    (("pick", "{d}/good.mrc", "--method", "dog", "-d", "0.5", "--out", "{d}/o.star"), "--particle-diameter"),
    (("pick", "{d}/good.mrc", "--method", "dog", "-d", "1e9", "--out", "{d}/o.star"), "--particle-diameter"),
    (("pick", "{d}/good.mrc", "--method", "dog", "-d", "nan", "--out", "{d}/o.star"), "--particle-diameter"),
    (("simulate", "micrographs", "--out", "{d}/s", "--preset", "simple", "--particle-diameter", "1e9"),
     "--particle-diameter"),
    (("simulate", "tomograms", "--out", "{d}/t", "--size", 64, "--depth", 16, "--preset", "hard"), "depth"),
])
def test_nonsense_numbers_are_refused_in_one_line_and_nothing_is_written(folder, args, option):
    before = sorted(p.name for p in folder.iterdir())
    r = run(*(str(a).format(d=folder) for a in args))
    if "Invalid value" in r.output:  # out of an option's range: the usage error of the command line
        assert r.exit_code == 2 and "Traceback" not in r.output and option in r.output, r.output
    else:
        assert option in one_line_error(r)
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.parametrize("args", [
    ("simulate", "micrographs", "--out", "{d}/s", "--seed", -1),
    ("simulate", "map", "--species", "cct", "--pixel-size", "1e-3", "--out", "{d}/m.mrc"),
    ("convert", "{d}/labels.star", "{d}/o.box", "--box-size", -5),
    ("tomo", "pick", "{d}/good.mrc", "--model", "{d}/m.pt", "--radius", -3, "--out", "{d}/o.star"),
])
def test_out_of_range_numbers_are_usage_errors(folder, args):
    r = run(*(str(a).format(d=folder) for a in args))
    assert r.exit_code == 2 and "Traceback" not in r.output and "Invalid value" in r.output, r.output


def test_overlay_writes_the_format_its_name_says(folder):
    from PIL import Image

    for name, fmt in (("o.png", "PNG"), ("o.jpg", "JPEG")):
        assert run("overlay", folder / "good.mrc", "--picks", folder / "labels.star", "-d", 32,
                   "--out", folder / name).exit_code == 0
        assert Image.open(folder / name).format == fmt
    assert "give the picture a .png or .jpg name" in one_line_error(
        run("overlay", folder / "good.mrc", "--out", folder / "o.tif"))


def test_resume_refuses_settings_that_changed(folder):
    out = folder / "p.star"
    pick = ("pick", folder / "good.mrc", "--method", "dog", "-d", 32, "--out", out)
    assert run(*pick).exit_code == 0
    before = out.read_bytes()
    text = one_line_error(run(*pick, "--resume", "--threshold", "0.5"))
    assert "--threshold changed" in text and "without --resume" in text
    assert out.read_bytes() == before
    # how the run runs is not what it picks: fewer threads resume it
    r = run(*pick, "--resume", "--threads", 1)
    assert r.exit_code == 0 and "already done" in r.output
