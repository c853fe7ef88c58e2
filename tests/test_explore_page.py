"""The exploration page in a real browser (Playwright driving Debian's Chromium), and the server's errors.

`make test` installs Chromium (apt-get) and Playwright; the browser tests skip, saying why, only where
Chromium is not there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fewpick.errors import InputError
from fewpick.explore.run import ExploreSettings, Run, explore
from fewpick.io import make_picks, read_picks, write_mrc, write_picks, write_tilt_angles
from fewpick.simulate.tomogram import TOMO_PRESETS, simulate_tomogram
from fewpick.web.explore import export_selection, make_server
from fewpick.web.server import TOKEN_HEADER

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


def _address(srv) -> str:
    """The page's address as the command prints it: with its key."""
    return srv.address("127.0.0.1").replace("localhost", "127.0.0.1")


def _token(srv) -> str:
    """The token as the page carries it (read from the served page, as a browser would)."""
    with urllib.request.urlopen(_address(srv)) as r:
        page = r.read().decode()
    return re.search(r'name="fewpick-token" content="([^"]+)"', page).group(1)


def _raw(srv, request: bytes, timeout: float = 10.0) -> tuple[int | None, dict | None]:
    """Send bytes as they are (any Host, any header); the reply's status and JSON body, or (None, None) when the
    server closed the connection without a reply."""
    with socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while True:
            try:
                c = s.recv(65536)
            except ConnectionResetError:
                break
            if not c:
                break
            chunks.append(c)
    reply = b"".join(chunks)
    if not reply:
        return None, None
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def _post(srv, body: bytes, *, host: str | None = None, ctype: str = "application/json", token: str | None = None,
          origin: str | None = None, length: int | None = None, extra: str = "") -> bytes:
    port = srv.server_address[1]
    lines = ["POST /export HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}", f"Content-Type: {ctype}",
             f"Content-Length: {len(body) if length is None else length}", "Connection: close"]
    if token:
        lines.append(f"{TOKEN_HEADER}: {token}")
    if origin:
        lines.append(f"Origin: {origin}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _export(srv, body: bytes) -> tuple[int, dict]:
    """Post ``body`` to the page's export as the page does (with its token): the status and the JSON reply."""
    req = urllib.request.Request(_url(srv) + "export", data=body, method="POST",
                                 headers={"Content-Type": "application/json", TOKEN_HEADER: _token(srv)})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


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
        page.goto(_address(srv))
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
        # hovering a class average shows its members; the gallery marks the selected class
        page.hover(f"#g{target}")
        assert page.locator("#members div").count() == min(48, len(members))
        assert "sel" in page.get_attribute(f"#g{target}", "class")
        # clicking a point on the map shows its section in the slice viewer, the candidate ringed in its colour
        hit = table.iloc[page.evaluate("i => nearest(px[i], py[i])", int(members.index[0]))]  # the point clicked
        z = int(np.floor(hit.z + 0.5))  # the page rounds halves up
        page.mouse.click(box["x"] + pos[0], box["y"] + pos[1])
        sync_api.expect(page.locator("body")).to_have_attribute("data-section", f"0/{z}")
        in_slab = int(page.inner_text("#inslab"))
        assert in_slab == int((abs(table.z - z) <= 6).sum()) and in_slab >= 1
        # clicking a candidate in the slice takes it out of the selection, clicking again puts it back
        sbox = page.locator("#slice").bounding_box()
        k = sbox["width"] / page.evaluate("document.getElementById('slice').width")
        sx, sy = page.evaluate("i => [(D.xyz[i][0] + 0.5) * cur.scale, (D.xyz[i][1] + 0.5) * cur.scale]",
                               int(hit.name))
        was = int(page.inner_text("#count"))
        page.mouse.click(sbox["x"] + sx * k, sbox["y"] + sy * k)
        assert int(page.inner_text("#count")) == was + (-1 if int(hit.label) == target else 1)
        page.mouse.click(sbox["x"] + sx * k, sbox["y"] + sy * k)
        assert page.inner_text("#count") == str(len(members))
        page.mouse.move(box["x"] + 5, box["y"] + 5)
        page.click("#export")
        sync_api.expect(page.locator("#msg")).to_have_text(re.compile("^exported"))  # (no eval: the page forbids it)
        assert f"exported {len(members)} particles" in page.inner_text("#msg")
        chosen = read_picks(run / "selected.star")
        assert len(chosen) == len(members) and set(chosen["label"]) == {target}
        np.testing.assert_allclose(chosen[["x", "y", "z"]].to_numpy(float),
                                   members[["x", "y", "z"]].to_numpy(float), atol=1e-3)
        coords = np.loadtxt(run / "selected" / "t0.coords", ndmin=2)
        np.testing.assert_allclose(coords, members[["x", "y", "z"]].to_numpy(float), atol=1e-2)
        page.screenshot(path=str(run / "page.png"))
        # a lasso around the whole map adds every other candidate
        page.mouse.move(box["x"] + 2, box["y"] + 2)
        page.mouse.down()
        for x, y in [(box["width"] - 2, 2), (box["width"] - 2, box["height"] - 2), (2, box["height"] - 2)]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
        page.mouse.up()
        assert page.inner_text("#count") == str(len(table))
        # with the particle's diameter, candidates closer than its half are exported as one particle
        page.fill("#diameter", "60")
        page.click("#export")
        sync_api.expect(page.locator("#msg")).to_have_text(re.compile("candidates, those on one particle merged"))
        merged = read_picks(run / "selected.star")
        assert f"exported {len(merged)} particles ({len(table)} candidates" in page.inner_text("#msg")
        assert len(merged) < len(table)
        browser.close()
    assert all(u.startswith(_url(srv)) for u in requests), requests  # nothing from outside
    assert (run / "page.png").stat().st_size > 10_000


def test_the_tomogram_viewer_draws_a_picks_file(run_folder, tmp_path):
    """``explore serve --picks``: the picks of the run's tomogram are drawn as crosses on the sections within the
    slab; picks on another tomogram are counted and left out; 2D picks, picks naming none of the run's
    tomograms and picks outside the tomogram are refused in one line."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is installed by 'make test'")
    run = tmp_path / "run"
    shutil.copytree(run_folder, run)
    table = read_picks(run / "candidates.star")
    picks = pd.concat([make_picks("t0", table.x + 3, table.y, z=table.z, score=np.linspace(1, 0, len(table))),
                       make_picks("t9", [10.0], [10.0], z=[10.0], score=[1.0])], ignore_index=True)
    write_picks(picks, tmp_path / "picks.star")
    srv = make_server(run, "127.0.0.1", 0, picks=tmp_path / "picks.star")
    assert srv.view["picks"]["elsewhere"] == 1 and len(srv.view["picks"]["xyz"]) == len(table)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        with sync_api.sync_playwright() as p:
            browser = _browser(p)
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(_address(srv))
            z = int(table.z.iloc[0] + 0.5)
            sync_api.expect(page.locator("body")).to_have_attribute("data-section", re.compile("^0/"))
            page.evaluate("z => showSection(0, z)", z)
            sync_api.expect(page.locator("body")).to_have_attribute("data-section", f"0/{z}")
            near = int((abs(table.z - z) <= 6).sum())
            assert page.get_attribute("body", "data-picks") == f"{len(table)}/{near}" and near >= 1
            assert page.inner_text("#pickfile") == "picks.star"
            # the cross's centre is drawn in yellow where the first pick lies
            rgb = page.evaluate("""() => { const x = Math.round((D.picks.xyz[0][0] + 0.5) * cur.scale),
                y = Math.round((D.picks.xyz[0][1] + 0.5) * cur.scale); return Array.from(sctx.getImageData(x, y, 1, 1).data); }""")
            assert rgb[0] > 200 and rgb[1] > 180 and rgb[2] < 60, rgb
            browser.close()
    finally:
        srv.shutdown()
        srv.server_close()
    write_picks(make_picks("t0", [5.0], [5.0]), tmp_path / "flat.star")
    with pytest.raises(InputError, match="2D picks"):
        make_server(run, "127.0.0.1", 0, picks=tmp_path / "flat.star")
    write_picks(make_picks("t9", [5.0], [5.0], z=[5.0]), tmp_path / "other.star")
    with pytest.raises(InputError, match="names none of this run's tomograms"):
        make_server(run, "127.0.0.1", 0, picks=tmp_path / "other.star")
    write_picks(make_picks("t0", [5.0], [5.0], z=[500.0]), tmp_path / "far.star")
    with pytest.raises(InputError, match="1 picks lie outside their tomogram"):
        make_server(run, "127.0.0.1", 0, picks=tmp_path / "far.star")


def test_export_endpoint_rejects_bad_requests(server):
    srv, run = server

    def post(body: bytes):
        return _export(srv, body)

    status, reply = post(b'{"indices": []}')
    assert status == 400 and "nothing is selected" in reply["error"]
    status, reply = post(b'{"indices": [0, 100000]}')
    assert status == 400 and "outside" in reply["error"]
    status, reply = post(b"not json")
    assert status == 400 and "not valid JSON" in reply["error"]
    assert not (run / "selected.star").exists()  # nothing half-written
    status, reply = post(b'{"indices": [2, 0, 2]}')
    assert status == 200 and reply["count"] == 2
    with urllib.request.urlopen(urllib.request.Request(_url(srv) + "data.json", headers={TOKEN_HEADER: _token(srv)})) as r:
        data = json.loads(r.read())
    assert data["n"] == len(read_picks(run / "candidates.star")) == len(data["x"]) == len(data["cls"])


def test_export_with_the_diameter_writes_one_point_per_particle(server):
    """Candidates closer than half the diameter are one particle: written once, at their mean, with the best one's
    score and class; the rest as they are. In voxels, in Å (the header's voxel size), and through the page's post."""
    srv, run = server
    table = make_picks("t0", [50.0, 54.0, 100.0, 100.0], [50.0, 50.0, 100.0, 112.0], z=[30.0, 30.0, 30.0, 30.0],
                       score=[0.5, 0.9, 0.7, 0.6])
    table["label"] = [3, 1, 2, 2]
    voxel = Run(run).load()["tomograms"][0]["voxel_size"]
    for diameter in ("12", f"{12 * voxel:g}A"):
        out = export_selection(Run(run), [0, 1, 2, 3], table, diameter=diameter)
        assert (out["count"], out["candidates"]) == (3, 4)
        got = read_picks(run / "selected.star")
        assert np.allclose(got[["x", "y"]].to_numpy(), [[52, 50], [100, 100], [100, 112]])  # 12 apart: two
        assert got["score"].tolist() == pytest.approx([0.9, 0.7, 0.6])
        assert read_picks(run / "selected" / "t0.coords")[["x", "y", "z"]].to_numpy().shape == (3, 3)
    assert export_selection(Run(run), [0, 1, 2, 3], table)["count"] == 4  # no diameter: every candidate
    with pytest.raises(InputError, match="too small"):
        export_selection(Run(run), [0, 1], table, diameter="1")

    def post(body: dict):
        return _export(srv, json.dumps(body).encode())

    cands = read_picks(run / "candidates.star")
    xyz = cands[["x", "y", "z"]].to_numpy(float)
    gap = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)[np.triu_indices(len(xyz), 1)].min()
    status, reply = post({"indices": list(range(len(cands))), "diameter": f"{2.01 * gap:.3f}"})
    assert status == 200 and reply["candidates"] == len(cands) and reply["count"] < len(cands)
    assert len(read_picks(run / "selected.star")) == reply["count"]
    status, reply = post({"indices": [0], "diameter": "large"})
    assert status == 400 and "cannot read the particle diameter" in reply["error"]
    status, reply = post({"indices": [0], "diameter": [12]})
    assert status == 400 and "number of voxels" in reply["error"]


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


def test_only_the_page_itself_can_export(server):
    """Each way another page could overwrite the next training's labels is refused, and nothing is written."""
    srv, run = server
    port, token, good = srv.server_address[1], _token(srv), b'{"indices": [5]}'
    # the cross-site form-like post (text/plain, a foreign Origin), as `curl -X POST -H 'Content-Type: text/plain'
    # -H 'Origin: http://evil.example' -d '{"indices":[5]}'` sent it
    status, reply = _raw(srv, _post(srv, good, ctype="text/plain", origin="http://evil.example"))
    assert status == 403 and "another web page" in reply["error"]
    status, reply = _raw(srv, _post(srv, good, ctype="text/plain", token=token))
    assert status == 415 and "application/json" in reply["error"]
    status, reply = _raw(srv, _post(srv, good, origin="http://evil.example", token=token))
    assert status == 403
    status, reply = _raw(srv, _post(srv, good, token=token, extra="Sec-Fetch-Site: cross-site"))
    assert status == 403
    status, reply = _raw(srv, _post(srv, good))  # no token: a page that could not read ours
    assert status == 403 and "token" in reply["error"]
    status, reply = _raw(srv, _post(srv, good, token="x" + token[1:]))
    assert status == 403
    # DNS rebinding: a foreign name that resolves to this machine, for reading and for writing
    status, reply = _raw(srv, f"GET / HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n\r\n".encode())
    assert status == 403 and "host" in reply["error"]
    status, reply = _raw(srv, _post(srv, good, host=f"evil.example:{port}", token=token,
                                    origin=f"http://evil.example:{port}"))
    assert status == 403
    assert not (run / "selected.star").exists() and not (run / "selected").exists()
    # the page's own request, also through an SSH tunnel on another local port
    status, reply = _raw(srv, _post(srv, good, token=token, origin=f"http://127.0.0.1:{port}"))
    assert status == 200 and reply["count"] == 1
    status, reply = _raw(srv, _post(srv, b'{"indices": [5, 6]}', host="localhost:9999", token=token,
                                    origin="http://localhost:9999"))
    assert status == 200 and reply["count"] == 2
    assert len(read_picks(run / "selected.star")) == 2


def test_bad_indices_get_a_message_not_a_traceback(server):
    srv, run = server
    token = _token(srv)
    for body, expect in [(b'{"indices":[123456789012345678901234567890]}', "outside"),
                         (b'{"indices":[true,false]}', "integers only"),
                         (b'{"indices":[1.0]}', "integers only"),
                         (b'{"indices":["3"]}', "integers only"),
                         (b'{"indices":-1}', "list of integers"),
                         (b'{"indices":[-1]}', "outside"),
                         (b'[5]', "indices"),
                         (b'{"indices":[' + b"9" * 5000 + b"]}", "")]:
        status, reply = _raw(srv, _post(srv, body, token=token))
        assert status in (400, 413), (body[:60], status, reply)
        assert expect in reply["error"] and "Traceback" not in reply["error"], reply
    assert not (run / "selected.star").exists()
    n = len(read_picks(run / "candidates.star"))
    huge = json.dumps({"indices": list(range(n)) * 50}).encode()  # far beyond what n candidates need
    status, reply = _raw(srv, _post(srv, huge, token=token))
    assert status == 413 and "too large" in reply["error"]


def test_silent_and_short_connections_time_out(server):
    """Half-open connections neither pile up threads nor block the page; a body shorter than its declared length
    is dropped after the timeout instead of hanging its handler."""
    srv, run = server
    srv.request_timeout = 1.0
    token = _token(srv)
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", srv.server_address[1])) for _ in range(300)]
    try:
        time.sleep(0.5)
        assert threading.active_count() <= before + srv.max_connections
        t0 = time.time()
        time.sleep(1.5)  # the silent connections have timed out by now
        short = socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=10)
        short.sendall(_post(srv, b'{"indices": [', token=token, length=4000))
        t1 = time.time()
        assert short.recv(65536) == b""  # dropped without a reply (a hang would raise socket.timeout here)
        assert 0.5 < time.time() - t1 < 5
        short.close()
        assert time.time() - t0 < 10
        status, reply = _raw(srv, _post(srv, b'{"indices": [1]}', token=token), timeout=5)
        assert status == 200 and reply["count"] == 1
    finally:
        for s in idle:
            s.close()
    time.sleep(1.5)
    assert threading.active_count() <= before + 2


def test_a_request_without_the_page_key_gets_nothing(server):
    """Another user of the machine (any local process that did not see the printed address) reads nothing: the
    key comes with the address the command prints and stays with the browser as a cookie of this port."""
    srv, run = server
    port = srv.server_address[1]

    def get(path, headers=""):
        return _raw(srv, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Connection: close\r\n\r\n"
                         .encode())

    for path in ("/", "/data.json", "/?token=" + "x" * len(srv.token)):
        status, reply = get(path)
        assert status == 403 and "key" in reply["error"], path
    assert get("/data.json", f"Cookie: fewpick-{port}=wrong\r\n")[0] == 403
    assert get("/data.json", f"Cookie: fewpick-{port + 1}={srv.token}\r\n")[0] == 403  # another server's cookie
    with urllib.request.urlopen(_address(srv)) as r:
        assert r.status == 200 and 'name="fewpick-token"' in r.read().decode()
        cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"fewpick-{port}={srv.token};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, reply = get("/data.json", f"Cookie: fewpick-{port}={srv.token}\r\n")
    assert status == 200 and isinstance(reply, dict) and reply
    assert srv.address("127.0.0.1") == f"http://localhost:{port}/?token={srv.token}"


def test_the_page_answers_beside_64_idle_connections(server):
    srv, run = server
    idle = [socket.create_connection(("127.0.0.1", srv.server_address[1])) for _ in range(64)]
    try:
        time.sleep(0.3)
        t0 = time.time()
        req = urllib.request.Request(_url(srv) + "data.json", headers={TOKEN_HEADER: srv.token})
        with urllib.request.urlopen(req, timeout=2) as r:
            assert r.status == 200 and len(r.read()) > 100
        assert time.time() - t0 < 2
    finally:
        for s in idle:
            s.close()
