"""Screenshots of the two pages for the README: docs/label_page.png and docs/explore_page.png.

    .venv/bin/python bench/page_screenshots.py

The labelling page on the two annotated apoferritin micrographs of the real data (EMPIAR-10146, particle 68 px):
15 labels clicked on one (taken from its annotation), the PU picker trained from them (300 steps), its picks
shown on the other at the model's own threshold. The exploration page on a simulated tomogram (the realistic
preset, 200×384×384 voxels), explored with the defaults. Needs Chromium and Playwright (as `make test` installs).
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fewpick.explore.run import ExploreSettings, explore  # noqa: E402
from fewpick.io import write_mrc, write_tilt_angles  # noqa: E402
from fewpick.simulate.tomogram import TOMO_PRESETS, simulate_tomogram  # noqa: E402
from fewpick.web.explore import make_server as explore_server  # noqa: E402
from fewpick.web.label import (  # noqa: E402
    LabelSession,
    LabelSettings,
    make_server as label_server,  # noqa: E402
)
from real2d import DATA  # noqa: E402

DOCS = HERE.parent / "docs"
WORK = HERE / "work" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def serve(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.address("127.0.0.1").replace("localhost", "127.0.0.1")


def open_page(p, url: str, height: int):
    """A headless Chromium page on ``url`` (and its browser, to close)."""
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1360, "height": height})
    page.goto(url)
    return browser, page


def label_page(p) -> None:
    root = DATA / "empiar10146_apoferritin"
    a, b = "May08_03.13.02", "May08_07.10.35"
    mics = [root / "images" / f"{k}.bin_avg.png" for k in (b, a)]
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "labels.star"
    out.unlink(missing_ok=True)
    session = LabelSession(mics, out, LabelSettings(diameter=68, picker="pu", expected_particles=160,
                                                    pu_options={"steps": 300, "steps_per_epoch": 100}))
    truth = pd.read_csv(root / "labels" / f"{a}.csv").sample(15, random_state=0)
    session.set_labels(1, truth[["X-Coordinate", "Y-Coordinate"]].to_numpy(float).tolist())
    url = serve(label_server(session))
    session.start_training("pu", 160)
    while session.busy():
        time.sleep(1)
    assert session.job["state"] == "done", session.job
    browser, page = open_page(p, url, 860)
    page.wait_for_selector("body[data-ready='0']")
    page.click("#m1")
    page.wait_for_selector("body[data-ready='1']")
    page.click("#m0")
    page.wait_for_selector("body[data-ready='0']")
    page.wait_for_selector("body[data-picks]")
    page.screenshot(path=str(DOCS / "label_page.png"))
    browser.close()


def explore_page(p) -> None:
    d = WORK / "tomo"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    preset = replace(TOMO_PRESETS["realistic"], shape=(200, 384, 384))
    sim = simulate_tomogram(preset, seed=3, name="tomo_01")
    write_mrc(d / "tomo_01.mrc", sim.tomogram, sim.voxel_size)
    write_mrc(d / "tomo_01.st", sim.tilt_series, sim.voxel_size)
    write_tilt_angles(d / "tomo_01.tlt", sim.angles)
    run = explore([d / "tomo_01.mrc"], d / "run", ExploreSettings(radius=max(2.0, round(60 / sim.voxel_size))),
                  tilt_series=[d / "tomo_01.st"], tilt_angles=[d / "tomo_01.tlt"])
    url = serve(explore_server(run.folder, "127.0.0.1", 0))
    browser, page = open_page(p, url, 1180)
    page.wait_for_selector("body[data-section]")
    page.check("#c1")
    page.hover("#g2")
    page.screenshot(path=str(DOCS / "explore_page.png"))
    browser.close()


def main() -> None:
    import argparse

    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["label", "explore"], default=None)
    args = ap.parse_args()
    with sync_playwright() as p:
        if args.only in (None, "label"):
            label_page(p)
        if args.only in (None, "explore"):
            explore_page(p)
    print(f"wrote {DOCS / 'label_page.png'} and {DOCS / 'explore_page.png'}")


if __name__ == "__main__":
    main()
