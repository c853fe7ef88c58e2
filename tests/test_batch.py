"""Batch picking: picks written per micrograph as they come, bad files listed while the rest go on, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fewpick.batch import RUN_RECORD, pick_files
from fewpick.cli import app
from fewpick.errors import InputError
from fewpick.io import micrograph_key, read_micrograph, read_picks, write_mrc
from fewpick.pickers.classic import ClassicSettings, pick_micrograph
from fewpick.simulate import SimpleMicrographConfig, simulate_simple_micrograph

SETTINGS = ClassicSettings(diameter=30.0, threshold="auto")


def _mics(folder: Path, n: int, size: int = 384) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = SimpleMicrographConfig(size=(size, size), diameter=30, n_particles=max(6, size * size // 12000), snr=0.05)
    files = []
    for i in range(n):
        image, _, _ = simulate_simple_micrograph(cfg, seed=100 + i)
        write_mrc(folder / f"mic_{i:02d}.mrc", image.astype(np.float32), 1.0)
        files.append(folder / f"mic_{i:02d}.mrc")
    return files


def _pick(im):
    return pick_micrograph(im.data, SETTINGS, im.name)


def _sorted(p: pd.DataFrame) -> pd.DataFrame:
    return p.sort_values(["micrograph", "x", "y"]).reset_index(drop=True)[["micrograph", "x", "y", "score"]]


def test_bad_micrographs_are_listed_and_the_rest_are_picked(tmp_path):
    files = _mics(tmp_path / "mics", 4)
    (tmp_path / "mics" / "mic_90.mrc").write_bytes(b"not an mrc file at all")
    good = read_micrograph(files[0]).data
    with open(tmp_path / "mics" / "mic_91.mrc", "wb") as f:  # a truncated copy: the header promises more data
        f.write((tmp_path / "mics" / "mic_00.mrc").read_bytes()[: 1024 + good.nbytes // 2])
    out = tmp_path / "picks.star"
    res = CliRunner().invoke(app, ["pick", str(tmp_path / "mics"), "--method", "dog", "-d", "30", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "mic_90.mrc" in res.output and "mic_91.mrc" in res.output and "2 of 6 micrographs failed" in res.output
    failures = (tmp_path / "picks_failures.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in failures) == ["mic_90", "mic_91"]
    parts = sorted(p.name for p in (tmp_path / "picks_micrographs").glob("*.star"))
    assert parts == [f"mic_{i:02d}_pick.star" for i in range(4)]  # RELION's <micrograph>_<suffix>.star
    combined = read_picks(out)
    assert sorted(combined.micrograph.unique()) == [str(tmp_path / "mics" / f"mic_{i:02d}.mrc") for i in range(4)]
    combined = combined.assign(micrograph=combined.micrograph.map(micrograph_key))
    expected = pd.concat([_pick(read_micrograph(f)) for f in files], ignore_index=True)
    pd.testing.assert_frame_equal(_sorted(combined), _sorted(expected), check_dtype=False, atol=1e-3)
    # --strict stops at the first bad file with one clear error, naming it
    res = CliRunner().invoke(app, ["pick", str(tmp_path / "mics"), "--method", "dog", "-d", "30", "--out",
                                   str(tmp_path / "strict.star"), "--strict"])
    assert res.exit_code == 2 and "mic_90.mrc" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "strict.star").exists()


def test_an_interrupted_batch_resumes_to_the_same_picks(tmp_path):
    files = _mics(tmp_path / "mics", 5)
    whole = pick_files(files, read_micrograph, _pick, tmp_path / "whole.star")
    assert whole.picked == [f.stem for f in files] and not whole.failed

    calls = []

    def dies_after_two(im):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the job were killed while picking the third
        calls.append(im.name)
        return _pick(im)

    with pytest.raises(KeyboardInterrupt):
        pick_files(files, read_micrograph, dies_after_two, tmp_path / "run.star")
    assert sorted(p.stem for p in (tmp_path / "run_micrographs").glob("*.star")) == ["mic_00_pick", "mic_01_pick"]
    assert not (tmp_path / "run.star").exists()
    again = []
    res = pick_files(files, read_micrograph, lambda im: again.append(im.name) or _pick(im), tmp_path / "run.star",
                     resume=True)
    assert res.skipped == ["mic_00", "mic_01"] and again == ["mic_02", "mic_03", "mic_04"]
    pd.testing.assert_frame_equal(_sorted(read_picks(tmp_path / "run.star")), _sorted(read_picks(tmp_path / "whole.star")))


def test_killed_command_line_batch_resumes_to_the_same_picks(tmp_path):
    files = _mics(tmp_path / "mics", 8, size=1024)
    fewpick = [sys.executable, "-m", "fewpick.cli"]
    base = ["pick", str(tmp_path / "mics"), "--method", "dog", "-d", "30", "--format", "star"]
    subprocess.run([*fewpick, *base, "--out", str(tmp_path / "whole.star")], check=True, capture_output=True)
    proc = subprocess.Popen([*fewpick, *base, "--out", str(tmp_path / "run.star")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    parts = tmp_path / "run_micrographs"
    t0 = time.time()

    def written():  # a file being written is a hidden temporary until it is renamed
        return [p for p in parts.glob("*.star") if not p.name.startswith(".")]

    while proc.poll() is None and len(written()) < 3 and time.time() - t0 < 120:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(written())
    assert 3 <= done < len(files), "the batch should have been killed part-way"
    assert not (tmp_path / "run.star").exists()
    res = subprocess.run([*fewpick, *base, "--out", str(tmp_path / "run.star"), "--resume"], capture_output=True,
                         text=True, check=True)
    assert f"({done} already done)" in res.stdout
    # the killed run's temporary file is gone; the run's settings are kept for the next --resume
    assert [p.name for p in parts.iterdir() if p.name.startswith(".")] == [RUN_RECORD]
    pd.testing.assert_frame_equal(_sorted(read_picks(tmp_path / "run.star")), _sorted(read_picks(tmp_path / "whole.star")))


def test_folder_output_and_duplicate_names(tmp_path):
    files = _mics(tmp_path / "mics", 2)
    res = pick_files(files, read_micrograph, _pick, tmp_path / "boxes/", fmt="box", box_size=30)
    assert sorted(p.name for p in (tmp_path / "boxes").iterdir()) == ["mic_00.box", "mic_01.box"]
    assert res.written == [tmp_path / "boxes" / "mic_00.box", tmp_path / "boxes" / "mic_01.box"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mic_00.mrc").write_bytes(files[0].read_bytes())
    with pytest.raises(InputError, match="share the name 'mic_00'"):
        pick_files([*files, tmp_path / "other" / "mic_00.mrc"], read_micrograph, _pick, tmp_path / "x.star")


def test_two_dask_workers_give_the_serial_picks_in_order(tmp_path):
    from fewpick.allocator import environment
    from fewpick.batch import dask_client

    files = _mics(tmp_path / "mics", 6)
    (tmp_path / "mics" / "mic_99.mrc").write_bytes(b"broken")
    files.append(tmp_path / "mics" / "mic_99.mrc")
    serial = pick_files(files, read_micrograph, _pick, tmp_path / "serial.star")
    with dask_client(workers=2) as client:
        assert len(client.nthreads()) == 2
        # Dask's default MALLOC_TRIM_THRESHOLD_ makes every large array a fresh mapping (picking 1.6x slower);
        # the workers get the command line's allocator setting instead
        for name, value in environment().items():
            assert set(client.run(os.environ.get, name).values()) == {value}
        assert set(client.run(dask.config.get, "distributed.worker.profile.enabled").values()) == {False}
        lines = []
        par = pick_files(files, read_micrograph, _pick, tmp_path / "dask.star", client=client, report=lines.append)
    # the bad file fails on a worker with the same clear error, and the rest are picked
    assert par.failed == serial.failed and "mic_99" in par.failed and "mic_99.mrc" in lines[0]
    assert par.picked == serial.picked == [f.stem for f in files[:-1]]
    a, b = read_picks(tmp_path / "serial.star"), read_picks(tmp_path / "dask.star")
    pd.testing.assert_frame_equal(a, b)  # same rows in the same order


def test_cli_workers_pick_like_the_serial_run(tmp_path):
    _mics(tmp_path / "mics", 4)
    base = ["pick", str(tmp_path / "mics"), "--method", "dog", "-d", "30"]
    assert CliRunner().invoke(app, [*base, "--out", str(tmp_path / "a.star")]).exit_code == 0
    res = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "b.star"), "--workers", "2"])
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(read_picks(tmp_path / "a.star"), read_picks(tmp_path / "b.star"))
    res = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "c.star"), "--workers", "2", "--scheduler", "x:1"])
    assert res.exit_code == 2 and "give one" in res.output


def test_a_pu_model_goes_to_the_workers_and_picks_as_it_does_here(tmp_path):
    from fewpick.io import make_picks, write_picks
    from fewpick.pickers import pu

    files = _mics(tmp_path / "mics", 4)
    ims = [read_micrograph(f) for f in files[:2]]
    peaks = _pick(ims[0]).iloc[:8]
    write_picks(make_picks(ims[0].name, peaks.x, peaks.y), tmp_path / "labels.star")
    model = tmp_path / "pu.pt"
    pu.train(ims, read_picks(tmp_path / "labels.star"), pu.PUSettings(diameter=30, expected_particles=12, steps=20,
                                                                       threads=1), model)
    base = ["pick", str(tmp_path / "mics"), "--model", str(model), "--threshold", "-1e9"]
    assert CliRunner().invoke(app, [*base, "--out", str(tmp_path / "a.star")]).exit_code == 0
    res = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "b.star"), "--workers", "2"])
    assert res.exit_code == 0, res.output
    a, b = read_picks(tmp_path / "a.star"), read_picks(tmp_path / "b.star")
    assert len(a) > 20 and list(a.micrograph) == list(b.micrograph)
    np.testing.assert_allclose(a[["x", "y"]].to_numpy(), b[["x", "y"]].to_numpy())
    np.testing.assert_allclose(a.score.to_numpy(), b.score.to_numpy(), atol=1e-4)


def test_a_bad_file_on_dask_workers_is_one_line_and_a_bad_scheduler_too(tmp_path):
    _mics(tmp_path / "mics", 3)
    (tmp_path / "mics" / "mic_99.mrc").write_bytes(b"broken")
    fewpick = [sys.executable, "-m", "fewpick.cli", "pick", str(tmp_path / "mics"), "--method", "dog", "-d", "30"]
    res = subprocess.run([*fewpick, "--out", str(tmp_path / "a.star"), "--workers", "2"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and res.stderr.count("mic_99.mrc") == 1, res.stderr[-2000:]
    res = subprocess.run([*fewpick, "--out", str(tmp_path / "b.star"), "--scheduler", "notanaddress"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.stderr.strip().startswith("error: --scheduler notanaddress: cannot reach a Dask scheduler")


def test_a_threshold_written_for_the_user_to_type_back_keeps_the_same_scores():
    """A cut printed for the user is rounded down to four significant digits (whole numbers kept whole), so that
    typed back it keeps every score the exact cut keeps, and no further than the fourth digit."""
    from fewpick.batch import rounded_down

    for value in (0.610605, 12.3456, -1.5, -0.000123456, 1234567.8, 0.5, 3.0):
        written = float(rounded_down(value))
        assert written <= value and value - written < max(abs(value) * 1e-3, 1.0 if abs(value) >= 1e4 else 0), value
    assert rounded_down(0.610605) == "0.6106" and rounded_down(-1.5) == "-1.500" and rounded_down(1234567.8) == "1234567"
