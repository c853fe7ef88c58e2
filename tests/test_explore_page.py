"""The exploration page in a real browser (Playwright driving Debian's Chromium), and the server's errors.

`make test` installs Chromium (apt-get) and Playwright; the browser tests skip, saying why, only where
Chromium is not there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fewpick.errors import InputError
from fewpick.explore.run import ExploreSettings, Run, explore
from fewpick.explore.serve import export_selection, make_server
from fewpick.io import read_picks, write_mrc, write_tilt_angles
from fewpick.simulate.tomogram import TOMO_PRESETS, simulate_tomogram

CHROMIUM = os.environ.get("FEWPICK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    preset = replace(TOMO_PRESETS["easy"], shape=(64, 160, 160), n_particles=24, n_filaments=(0, 0),
                     species=("ribosome", "cct"))
    sim = simulate_tomogram(preset, seed=4, name="t0")
    d = tmp_path_factory.mktemp("page")
    write_mrc(d / "t0.mrc", sim.tomogram, sim.voxel_size)
    write_mrc(d / "t0.st", sim.tilt_series, sim.voxel_size)
    write_tilt_angles(d / "t0.tlt", sim.angles)
    s = ExploreSettings(radius=6, epochs=2, classes=4, size=24, width=8)
    explore([d / "t0.mrc"], d / "run", s, tilt_series=[d / "t0.st"], tilt_angles=[d / "t0.tlt"])
    return d / "run"


@pytest.fixture()
def server(run_folder, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_folder, run)
    srv = make_server(run, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, run
    srv.shutdown()
    srv.server_close()


def _url(srv) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/"


def _browser(p):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: 'make test' installs it with apt-get install chromium; "
                    "that failed on this machine")
    return p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def test_page_selects_a_class_and_exports_its_coordinates(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is installed by 'make test'")
    srv, run = server
    table = read_picks(run / "candidates.star")
    target = int(table["label"].value_counts().idxmax())
    members = table[table["label"] == target]
    requests = []
    with sync_api.sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.on("request", lambda r: requests.append(r.url))
        page.goto(_url(srv))
        page.wait_for_selector(f"#c{target}")
        assert page.inner_text("#count") == "0"
        page.check(f"#c{target}")
        assert page.inner_text("#count") == str(len(members))
        # hovering a point shows its thumbnail and class
        box = page.locator("#map").bounding_box()
        pos = page.evaluate("i => [px[i], py[i]]", int(members.index[0]))
        page.mouse.move(box["x"] + pos[0], box["y"] + pos[1])
        page.wait_for_selector("#tip", state="visible")
        assert f"class {target}" in page.inner_text("#tiptext")
        page.click("#export")
        page.wait_for_function("document.getElementById('msg').textContent.startsWith('exported')")
        assert f"exported {len(members)} particles" in page.inner_text("#msg")
        page.screenshot(path=str(run / "page.png"))
        # a lasso around the whole map adds every other candidate
        page.mouse.move(box["x"] + 2, box["y"] + 2)
        page.mouse.down()
        for x, y in [(box["width"] - 2, 2), (box["width"] - 2, box["height"] - 2), (2, box["height"] - 2)]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
        page.mouse.up()
        assert page.inner_text("#count") == str(len(table))
        browser.close()
    assert all(u.startswith(_url(srv)) for u in requests), requests  # nothing from outside
    chosen = read_picks(run / "selected.star")
    assert len(chosen) == len(members) and set(chosen["label"]) == {target}
    np.testing.assert_allclose(chosen[["x", "y", "z"]].to_numpy(float),
                               members[["x", "y", "z"]].to_numpy(float), atol=1e-3)
    coords = np.loadtxt(run / "selected" / "t0.coords", ndmin=2)
    np.testing.assert_allclose(coords, members[["x", "y", "z"]].to_numpy(float), atol=1e-2)
    assert (run / "page.png").stat().st_size > 10_000


def test_export_endpoint_rejects_bad_requests(server):
    srv, run = server

    def post(body: bytes):
        req = urllib.request.Request(_url(srv) + "export", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    status, reply = post(b'{"indices": []}')
    assert status == 400 and "nothing is selected" in reply["error"]
    status, reply = post(b'{"indices": [0, 100000]}')
    assert status == 400 and "outside" in reply["error"]
    status, reply = post(b"not json")
    assert status == 400 and "bad export request" in reply["error"]
    assert not (run / "selected.star").exists()  # nothing half-written
    status, reply = post(b'{"indices": [2, 0, 2]}')
    assert status == 200 and reply["count"] == 2
    with urllib.request.urlopen(_url(srv) + "data.json") as r:
        data = json.loads(r.read())
    assert data["n"] == len(read_picks(run / "candidates.star")) == len(data["x"]) == len(data["cls"])


def test_port_in_use_and_unfinished_runs_are_clear_errors(run_folder, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(InputError, match=f"port {port} on 127.0.0.1 is already in use: choose another"):
            make_server(run_folder, "127.0.0.1", port)
    run = tmp_path / "run"
    shutil.copytree(run_folder, run)
    m = Run(run).load()
    del m["stages"]["gallery"]
    Run(run).save(m)
    with pytest.raises(InputError, match="not finished .*stages left: gallery"):
        make_server(run, "127.0.0.1", 0)
    with pytest.raises(InputError, match="nothing is selected"):
        export_selection(Run(run_folder), [])
