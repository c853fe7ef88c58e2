"""copick projects: tomograms out as MRC, picks in and out, on a small local project made here with copick."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from fewpick.cli import app
from fewpick.io import make_picks, read_picks, read_volume, write_picks

runner = CliRunner()


@pytest.fixture()
def project(tmp_path):
    import copick
    from copick.models import PickableObject

    objects = [PickableObject(name="ribosome", is_particle=True, label=1, radius=120.0),
               PickableObject(name="apoferritin", is_particle=True, label=2, radius=60.0)]
    config = tmp_path / "copick.json"
    root = copick.new_config(str(config), overlay_root=str(tmp_path / "overlay"), pickable_objects=objects)
    rng = np.random.default_rng(0)
    volumes = {}
    for name in ("TS_01", "TS_02"):
        run = root.new_run(name)
        tomo = run.new_voxel_spacing(10.0).new_tomogram("wbp")
        volumes[name] = rng.normal(size=(24, 32, 40)).astype(np.float32)
        tomo.from_numpy(volumes[name])
    # a curator's picks, in Å, as the portal stores them
    p = root.get_run("TS_01").new_picks("ribosome", session_id="1", user_id="curator")
    p.from_numpy(np.array([[100.0, 200.0, 50.0], [310.0, 120.0, 230.0]]))
    p.store()
    return config, volumes


def test_copick_tomograms_become_mrc_files_named_by_run(project, tmp_path):
    config, volumes = project
    r = runner.invoke(app, ["copick", "tomograms", str(config), "--out", str(tmp_path / "Tomograms"),
                            "--voxel-spacing", "10"])
    assert r.exit_code == 0, r.output
    for name, vol in volumes.items():
        im = read_volume(tmp_path / "Tomograms" / f"{name}.mrc", mmap=False)
        assert np.array_equal(im.data, vol) and abs(im.pixel_size - 10.0) < 1e-4
    r = runner.invoke(app, ["copick", "tomograms", str(config), "--out", str(tmp_path / "x"), "--voxel-spacing", "7"])
    assert r.exit_code == 2 and "no 'wbp' tomogram at 7 Å" in r.output and "10 Å: wbp" in r.output


def test_copick_picks_round_trip_in_angstrom(project, tmp_path):
    import copick

    config, _ = project
    r = runner.invoke(app, ["copick", "picks", str(config), "--object", "ribosome", "--user", "curator",
                            "--out", str(tmp_path / "labels.star")])
    assert r.exit_code == 0, r.output
    labels = read_picks(tmp_path / "labels.star")
    assert list(labels["micrograph"]) == ["TS_01", "TS_01"]
    assert np.allclose(labels[["x", "y", "z"]].to_numpy(), [[10, 20, 5], [31, 12, 23]])  # Å / 10 Å voxels
    # picks found by fewpick go back as a new session, in Å
    found = make_picks(["TS_01", "TS_02", "TS_02"], [1.5, 2, 3], [4, 5, 6], z=[7, 8, 9], score=[0.9, 0.8, 0.7])
    write_picks(found, tmp_path / "particles.star")
    r = runner.invoke(app, ["copick", "add", str(tmp_path / "particles.star"), str(config), "--object", "ribosome"])
    assert r.exit_code == 0, r.output
    root = copick.from_file(str(config))
    mine = root.get_run("TS_02").get_picks(object_name="ribosome", user_id="fewpick", session_id="0")
    assert len(mine) == 1
    points, _ = mine[0].numpy()
    assert np.allclose(points, [[20, 50, 80], [30, 60, 90]]) and np.allclose(mine[0].scores(), [0.8, 0.7])
    # the same again is refused (nothing is overwritten unless asked), as are unknown objects and runs
    r = runner.invoke(app, ["copick", "add", str(tmp_path / "particles.star"), str(config), "--object", "ribosome"])
    assert r.exit_code == 2 and "already holds" in r.output
    r = runner.invoke(app, ["copick", "add", str(tmp_path / "particles.star"), str(config), "--object", "ribosome",
                            "--overwrite"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["copick", "add", str(tmp_path / "particles.star"), str(config), "--object", "proteasome"])
    assert r.exit_code == 2 and "no pickable object 'proteasome'" in r.output
    write_picks(make_picks("TS_09", [1], [2], z=[3]), tmp_path / "other.star")
    r = runner.invoke(app, ["copick", "add", str(tmp_path / "other.star"), str(config), "--object", "apoferritin"])
    assert r.exit_code == 2 and "no run 'TS_09'" in r.output
    assert not root.get_run("TS_01").get_picks(object_name="apoferritin")
