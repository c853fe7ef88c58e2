"""The labelling and review page: a real browser clicks particles, trains a small picker, moves the threshold,
picks every micrograph and saves; the files are checked against the simulation's truth. Also the session's
errors and the server's refusals.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from fewpick.evaluate import evaluate
from fewpick.io import make_picks, read_picks, write_mrc
from fewpick.simulate import SimpleMicrographConfig, simulate_simple_micrograph
from fewpick.web.label import LabelSession, LabelSettings, make_server
from fewpick.web.server import TOKEN_HEADER
from test_explore_page import _address, _browser, _raw, _token, _url  # noqa: E402  (same browser set-up and raw requests)

D = 40.0


@pytest.fixture(scope="module")
def micrographs(tmp_path_factory):
    d = tmp_path_factory.mktemp("label")
    truths = []
    for k in range(2):
        cfg = SimpleMicrographConfig(size=(448, 512), diameter=D, n_particles=30, snr=0.05)
        image, centres, _ = simulate_simple_micrograph(cfg, seed=30 + k)
        write_mrc(d / f"mic{k}.mrc", image, 2.0)
        truths.append(make_picks(f"mic{k}", centres[:, 0], centres[:, 1]))
    (d / "broken.mrc").write_bytes(b"not an image")
    return d, truths


def _session(d, out, **kw):
    settings = LabelSettings(diameter=D, picker="pu", threads=2,
                             pu_options={"steps": 200, "steps_per_epoch": 50, "seed": 1}, **kw)
    return LabelSession([d / "mic0.mrc", d / "mic1.mrc", d / "broken.mrc"], out, settings)


@pytest.fixture()
def served(micrographs, tmp_path):
    d, truths = micrographs
    session = _session(d, tmp_path / "labels.star")
    srv = make_server(session, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, session, truths, tmp_path
    srv.shutdown()
    srv.server_close()


def test_click_train_review_and_save_in_a_browser(served):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is installed by 'make test'")
    expect = sync_api.expect
    srv, session, truths, tmp = served
    truth = truths[0]
    requests = []
    with sync_api.sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("request", lambda r: requests.append(r.url))
        page.goto(_address(srv))
        expect(page.locator("body")).to_have_attribute("data-ready", "0")
        assert "unreadable" in page.inner_text("#list")  # the broken file is listed, the others go on
        box = page.locator("#view").bounding_box()

        def click(x, y):
            sx, sy = page.evaluate("([x, y]) => fp.toScreen(x, y)", [float(x), float(y)])
            page.mouse.click(box["x"] + sx, box["y"] + sy)

        chosen = truth.sample(15, random_state=0)
        for k, (x, y) in enumerate(chosen[["x", "y"]].to_numpy(), 1):
            click(x, y)
            expect(page.locator("#count")).to_have_text(str(k))
        x, y = chosen[["x", "y"]].to_numpy()[0]
        click(x + 3, y - 2)  # a click inside a labelled particle removes it …
        expect(page.locator("#count")).to_have_text("14")
        click(x, y)  # … and a click puts it back
        expect(page.locator("#count")).to_have_text("15")
        expect(page.locator("#saved")).to_contain_text("saved 15 labels")
        # train the PU picker (expected count typed in), watch its progress to the end
        page.check("input[name=picker][value=pu]")
        page.fill("#expected", "30")
        page.click("#train")
        expect(page.locator("#job")).to_contain_text("training done", timeout=600_000)
        expect(page.locator("#job")).to_contain_text("particle picker trained on labelled")  # the model's summary follows
        expect(page.locator("#job")).to_contain_text("Initial threshold")  # and how the starting cut was set
        expect(page.locator("#thr")).to_be_enabled()
        # the initial threshold finds the particles of the micrograph without labels too
        assert recall_at_the_page_threshold(session.picks_of(1), truths[1]) >= 0.8
        before = int(page.inner_text("#npicks"))
        page.focus("#thr")
        for _ in range(1000):  # move the slider up until a fifth of this micrograph's picks are gone
            page.keyboard.press("ArrowRight")
            if int(page.inner_text("#npicks")) <= 0.8 * before:
                break
        after = int(page.inner_text("#npicks"))
        thr = float(page.input_value("#thr"))
        assert after < before
        page.click("#pickall")
        expect(page.locator("#pmsg")).to_contain_text("picked 2 of 2", timeout=120_000)
        page.click("#savepicks")
        expect(page.locator("#pmsg")).to_contain_text("saved")
        page.screenshot(path=str(tmp / "label_page.png"))
        # a reload keeps what was trained: the picker's kind, the count, the threshold and the buttons
        page.check("input[name=picker][value=fewshot]")
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-ready", "0")
        expect(page.locator("#pickall")).to_be_enabled()
        expect(page.locator("#savepicks")).to_be_enabled()
        expect(page.locator("#thr")).to_be_enabled()
        expect(page.locator("#job")).to_contain_text("done")
        assert page.is_checked("input[name=picker][value=pu]") and page.input_value("#expected") == "30"
        browser.close()
    assert all(u.removeprefix("blob:").startswith(_url(srv)) for u in requests), requests  # nothing from elsewhere
    # the labels: 15 of the true particles, in original pixels
    labels = read_picks(tmp / "labels.star")
    assert len(labels) == 15 and set(labels.micrograph.map(lambda m: m.split("/")[-1])) == {"mic0.mrc"}
    d = np.hypot(*(labels[["x", "y"]].to_numpy()[:, None] - chosen[["x", "y"]].to_numpy()[None]).transpose(2, 0, 1))
    assert d.min(axis=1).max() < 1.5
    # the picks: every micrograph, all at or above the chosen threshold, as many on mic0 as the page showed
    picks = read_picks(tmp / "labels_picks.star")
    assert picks.score.min() >= thr - 1e-3 and (picks.micrograph.str.endswith("mic0.mrc")).sum() == after
    names = picks.micrograph.map(lambda m: m.split("/")[-1][:-4])
    other = picks[names == "mic1"].assign(micrograph="mic1")
    assert evaluate(other, truths[1], radius=D / 2)["all_picks"]["recall"] >= 0.5  # on the unlabelled micrograph
    assert (tmp / "labels_model.pt").is_file()


def test_labels_are_checked_and_only_the_page_can_change_them(served):
    srv, session, truths, tmp = served
    token = _token(srv)

    def post(path, body, headers=None):
        req = urllib.request.Request(_url(srv) + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", TOKEN_HEADER: token,
                                              **(headers or {})})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    assert post("labels", {"micrograph": 0, "points": [[10, 10], [20.5, 30]]})[0] == 200
    for body, expect in [({"micrograph": 0, "points": [[600, 10]]}, "outside"),
                         ({"micrograph": 0, "points": [[True, 10]]}, "two numbers"),
                         ({"micrograph": 0, "points": [["1", 2]]}, "two numbers"),
                         ({"micrograph": 7, "points": []}, "outside"),
                         ({"micrograph": True, "points": []}, "integers"),
                         ({"micrograph": 0, "points": "x"}, "list")]:
        status, reply = post("labels", body)
        assert status == 400 and expect in reply["error"], (body, reply)
    status, reply = post("train", {"picker": "magic"})
    assert status == 400 and "unknown picker" in reply["error"]
    status, reply = post("save-picks", {"threshold": 0})
    assert status == 409 and "pick every micrograph" in reply["error"]
    status, reply = post("labels", {"micrograph": 0, "points": []}, {"Origin": "http://evil.example"})
    assert status == 403
    status, _ = _raw(srv, f"POST /labels HTTP/1.1\r\nHost: 127.0.0.1:{srv.server_address[1]}\r\nContent-Type: "
                          "text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".encode())
    assert status == 415
    table = read_picks(tmp / "labels.star")  # the refused requests changed nothing
    assert len(table) == 2 and np.allclose(table[["x", "y"]].to_numpy(), [[10, 10], [20.5, 30]])
    # an existing labels file is loaded by the next session
    d = session.paths[0].parent
    resumed = _session(d, tmp / "labels.star")
    assert resumed.label_count() == 2 and re.search("broken", " ".join(resumed.bad))


def test_the_few_shot_picker_trains_and_picks_from_the_session(micrographs, tmp_path):
    d, truths = micrographs
    settings = LabelSettings(diameter=D, threads=2, fewshot_options={"pretrain_steps": 30, "finetune_steps": 30, "distill_steps": 0})
    session = LabelSession([d / "mic0.mrc", d / "mic1.mrc"], tmp_path / "l.star", settings)
    session.set_labels(0, truths[0][["x", "y"]].to_numpy(float)[:12].tolist())
    session.start_training()  # the default picker: few-shot
    session._thread.join(timeout=600)
    assert session.job["state"] == "done", session.job
    assert session.job["fraction"] == 1.0 and (tmp_path / "l_model.pt").is_file()
    # the page says what was trained and how it scores (no fast network here: the encoder)
    summary = session.status()["summary"]
    assert summary.startswith("few-shot picker: 12 exemplars on mic0") and "the encoder scores every window" in summary
    shown = session.picks_of(1)
    assert len(shown["x"]) == len(shown["score"]) > 0 and shown["threshold"] is not None
    assert min(shown["score"]) <= shown["threshold"] <= max(shown["score"])  # its own automatic cut
    session.start_picking()
    session._thread.join(timeout=300)
    saved = session.save_picks(shown["threshold"])
    assert saved["micrographs"] == 2 and saved["count"] == len(read_picks(tmp_path / "l_picks.star"))
    # with an expected count the page offers one cut for every micrograph, set where their peaks pooled give that
    # count each, or at the gap between two clear groups of their scores near it (as 'fewpick fewshot pick' sets
    # it), and it finds the particles of the unlabelled micrograph
    session.start_training("fewshot", expected_particles=30)
    session._thread.join(timeout=600)
    assert session.job["state"] == "done", session.job
    pooled = session.model.count_cut([session.image(0), session.image(1)], 30, split=True)
    # and says how it set that cut, as 'fewpick fewshot pick' prints it
    assert session.status()["threshold_note"].startswith(f"threshold {pooled:.3g}, set on 2 of the 2 micrographs")
    assert session.picks_of(0)["threshold"] == session.picks_of(1)["threshold"] == pytest.approx(pooled, abs=1e-6)
    assert recall_at_the_page_threshold(session.picks_of(1), truths[1]) >= 0.8


def recall_at_the_page_threshold(shown: dict, truth) -> float:
    """Recall on one micrograph at the page's initial threshold, as a share of the recall at the best-F1 one."""
    table = make_picks(truth.micrograph.iloc[0], shown["x"], shown["y"], score=shown["score"])
    report = evaluate(table, truth, radius=D / 2, threshold=shown["threshold"])
    return report["at_threshold"]["recall"] / max(report["best"]["recall"], 1e-9)


def test_servers_listening_beyond_this_machine_warn_and_still_check_the_host(micrographs, tmp_path):
    from fewpick.web.label import make_server as serve_labels
    from fewpick.web.server import warn_if_exposed

    assert warn_if_exposed("127.0.0.1") is None and warn_if_exposed("localhost") is None
    assert "anyone who can reach this machine" in warn_if_exposed("0.0.0.0")
    d, _ = micrographs
    srv = serve_labels(LabelSession([d / "mic0.mrc"], tmp_path / "l.star", LabelSettings(diameter=D)), "0.0.0.0", 0)
    try:
        port = srv.server_address[1]
        assert srv.host_allowed(f"127.0.0.1:{port}") and srv.host_allowed(f"10.1.2.3:{port}")  # addresses typed in
        assert not srv.host_allowed(f"evil.example:{port}") and not srv.host_allowed(None)
        assert not srv.host_allowed(f"10.1.2.3:{port + 1}")
    finally:
        srv.server_close()


def test_a_micrograph_that_fails_when_picked_is_reported_and_the_rest_are_saved(micrographs, tmp_path, monkeypatch):
    import fewpick.web.label as label_page

    monkeypatch.setattr(label_page, "CHECKED_AT_START", 0)  # as with many micrographs: each checked when used
    d, truths = micrographs
    bad = np.full((448, 512), np.nan, np.float32)  # its header reads; its pixels do not
    write_mrc(tmp_path / "nan.mrc", bad, 2.0)
    settings = LabelSettings(diameter=D, picker="pu", expected_particles=30,
                             pu_options={"steps": 5, "steps_per_epoch": 5})
    session = LabelSession([d / "mic0.mrc", tmp_path / "nan.mrc", d / "mic1.mrc"], tmp_path / "l.star", settings)
    assert len(session.paths) == 3 and not session.bad
    session.set_labels(0, truths[0][["x", "y"]].to_numpy(float)[:5].tolist())
    session.start_training()
    session._thread.join(timeout=300)
    assert session.job["state"] == "done", session.job
    session.start_picking()
    session._thread.join(timeout=300)
    assert session.job["state"] == "done" and any("nan.mrc" in k for k in session.bad)
    status = session.status()
    assert status["of"] == status["picked"] == 2 and any("nan.mrc" in why for why in status["failed"].values())
    saved = session.save_picks(-1e9)
    assert saved["micrographs"] == 2
    assert set(read_picks(tmp_path / "l_picks.star").micrograph.map(lambda m: m.split("/")[-1])) == {"mic0.mrc",
                                                                                                  "mic1.mrc"}


def test_a_refused_micrograph_is_said_on_the_page_and_the_others_stay(micrographs, tmp_path, monkeypatch):
    """A micrograph every verb refuses (NaN pixels) gets one line on the page and in the session, never a
    dropped request or a traceback; the other micrographs are shown. A few micrographs are checked at start;
    of many, each is checked when first shown."""
    import fewpick.web.label as label_page

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is installed by 'make test'")
    d, _ = micrographs
    bad = np.ones((448, 512), np.float32)
    bad[10, 10] = np.nan
    write_mrc(tmp_path / "nan.mrc", bad, 2.0)
    settings = LabelSettings(diameter=D, picker="pu", threads=2)
    at_start = LabelSession([tmp_path / "nan.mrc", d / "mic1.mrc"], tmp_path / "l.star", settings)
    assert at_start.names == ["mic1"] and "NaN" in " ".join(at_start.bad.values())
    monkeypatch.setattr(label_page, "CHECKED_AT_START", 0)
    session = LabelSession([tmp_path / "nan.mrc", d / "mic1.mrc"], tmp_path / "l.star", settings)
    srv = make_server(session, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        status, reply = _raw(srv, f"GET /image/0.png HTTP/1.1\r\nHost: 127.0.0.1:{srv.server_address[1]}\r\n"
                                  f"{TOKEN_HEADER}: {srv.token}\r\nConnection: close\r\n\r\n".encode())
        assert status == 422 and "nan.mrc" in reply["error"] and "NaN" in reply["error"], reply
        assert any("nan.mrc" in k for k in session.bad)
        with sync_api.sync_playwright() as p:
            browser = _browser(p)
            page = browser.new_page()
            page.goto(_address(srv))
            page.wait_for_selector("body[data-refused='0']", timeout=20000)
            assert "NaN" in page.inner_text("#pmsg")
            page.click("#m1")
            page.wait_for_selector("body[data-ready='1']", timeout=20000)
            browser.close()
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_pu_model_trained_without_a_count_starts_at_its_own_default_cut(micrographs, tmp_path):
    """No count typed in: the general model counts the particles, and the page's initial threshold is the model's
    default as 'fewpick pick' sets it (the gap in the scores of the micrographs near that count, else the
    calibrated cut), one cut for every micrograph, and it finds the particles of the unlabelled micrograph."""
    d, truths = micrographs
    session = _session(d, tmp_path / "l.star")
    session.set_labels(0, truths[0][["x", "y"]].to_numpy(float)[:15].tolist())
    session.start_training("pu")
    session._thread.join(timeout=600)
    assert session.job["state"] == "done", session.job
    model = session.model
    assert model.settings.expected_particles is None and model.estimated_count()
    cut = model.count_cut([session.image(0), session.image(1)], model.estimated_count(), True, model.threshold)
    assert session.picks_of(0)["threshold"] == session.picks_of(1)["threshold"] == pytest.approx(cut, abs=1e-6)
    assert recall_at_the_page_threshold(session.picks_of(1), truths[1]) >= 0.8
