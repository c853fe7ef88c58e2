"""Every fewpick command in the README runs as written, in order, on tiny simulated data laid out as the README's
examples (a RELION project's ``MotionCorr/job002/Movies/``, ``Tomograms/``).

Left out, each for a reason a user would share: ``explore serve`` and ``label`` (servers that wait for their
user; the pages are tested in ``test_explore_page.py`` and ``test_label_page.py``, and the file the exploration
page's Export button writes is made here from the truth),
``--scheduler`` (needs a running Dask cluster), ``--device cuda`` and ``CUDA_VISIBLE_DEVICES`` (need a GPU;
``test_device.py`` runs those where one exists). Training commands get a few extra options that shorten them
(fewer steps and epochs): the README's commands train for minutes.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fewpick.cli import app
from fewpick.io import read_picks, write_mrc, write_picks

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = ("explore serve", "fewpick label ", "--scheduler", "--device cuda", "CUDA_VISIBLE_DEVICES")
SHORTER = {  # verb → options appended so that the test trains in seconds
    ("train",): ["--steps", "60"],
    ("fewshot", "train"): ["--pretrain-steps", "40", "--steps", "40", "--distill-steps", "40"],
    ("tomo", "train"): ["--epochs", "1", "--steps-per-epoch", "4"],
}


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("fewpick ")]


def test_the_readme_names_the_commands_it_runs():
    commands = readme_commands()
    assert len(commands) >= 20
    verbs = {" ".join(shlex.split(c, comments=True)[1:3]) for c in commands}
    for verb in ("pick MotionCorr/job002/Movies/", "train MotionCorr/job002/Movies/", "tomo train", "tomo pick",
                 "convert picks.star", "explore Tomograms/"):
        assert verb in verbs, verb


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Three micrographs of 150 Å particles at 6 Å/px (25 px) and one small tomogram with ribosomes."""
    from fewpick.simulate import SimpleMicrographConfig, simulate_simple_micrograph, write_tomograms

    root = tmp_path_factory.mktemp("project")
    movies = root / "MotionCorr" / "job002" / "Movies"
    config = SimpleMicrographConfig(size=(320, 320), diameter=25.0, n_particles=40, snr=0.6, pixel_size=6.0)
    for i in (1, 2, 3):
        image, _, _ = simulate_simple_micrograph(config, seed=40 + i)
        write_mrc(movies / f"mic_{i:03d}.mrc", image, config.pixel_size)
    truth = write_tomograms(root / "Tomograms", 1, "realistic", 5, 160, 64)
    chosen = truth[truth["species"] == "ribosome"].head(12)[["micrograph", "x", "y", "z"]]
    write_picks(chosen, root / "run" / "selected.star")  # what the exploration page's Export writes
    # a copick project holding the same tomogram as run tomo_000, with a curator's ribosome picks (Å)
    import copick
    from copick.models import PickableObject

    from fewpick.io import read_volume

    project = copick.new_config(str(root / "copick.json"), overlay_root=str(root / "copick"),
                                pickable_objects=[PickableObject(name="ribosome", is_particle=True, radius=125.0)])
    run = project.new_run("tomo_000")
    run.new_voxel_spacing(10.0).new_tomogram("wbp").from_numpy(read_volume(root / "Tomograms" / "tomo_000.mrc").data)
    curated = run.new_picks("ribosome", session_id="0", user_id="curator")
    curated.from_numpy(chosen[["x", "y", "z"]].to_numpy(float) * 10.0)
    curated.store()
    return root


def test_every_readme_command_runs_as_written(project, monkeypatch):
    monkeypatch.chdir(project)
    runner = CliRunner()
    ran = []
    for line in readme_commands():
        if any(s in line for s in SKIP):
            continue
        args = shlex.split(line, comments=True)[1:]
        for verb, extra in SHORTER.items():
            if tuple(args[: len(verb)]) == verb:
                args = args + extra
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{line}\n{result.output}"
        ran.append(line)
    assert len(ran) >= 18
    # what the guide says the files hold
    picks = read_picks(project / "picks.star")
    assert set(picks["micrograph"]) <= {f"MotionCorr/job002/Movies/mic_{i:03d}.mrc" for i in (1, 2, 3)}
    assert (project / "picks_micrographs" / "mic_001_pick.star").is_file()
    cs = read_picks(project / "picks.cs")
    assert set(cs["micrograph"]) <= {f"J2/motioncorrected/mic_{i:03d}.mrc" for i in (1, 2, 3)}
    assert np.allclose(np.sort(cs["x"].to_numpy()), np.sort(picks["x"].to_numpy()), atol=0.01)
    text = (project / "particles.star").read_text()
    assert "_rlnTomoName" in text and "_rlnCenteredCoordinateXAngst" in text
    assert (project / "look.png").stat().st_size > 0 and (project / "cct_map.mrc").is_file()
    curated = read_picks(project / "curated.star")  # the curator's picks, back in voxels
    selected = read_picks(project / "run" / "selected.star")
    assert len(curated) == len(selected) > 0 and set(curated["micrograph"]) == {"tomo_000"}
    assert np.allclose(curated.sort_values("x")[["x", "y", "z"]].to_numpy(),
                       selected.sort_values("x")[["x", "y", "z"]].to_numpy(), atol=1e-3)
