"""The labelling and review page: ``fewpick label MICROGRAPHS… --particle-diameter D --out labels.star``.

A user clicks a few particles on their own micrographs, trains a picker from them in the background, looks at its
picks with a score threshold, picks every micrograph and saves the picks — all in one page served from this
machine (see :mod:`fewpick.web.server` for what keeps it safe). :class:`LabelSession` is the library side: the
micrographs, the labels (saved as a RELION STAR file in original pixels after every change), one background job
at a time (training or picking) with its progress, and the picks. :func:`make_server` serves its page.

Micrographs are shown binned to at most ``DISPLAY_MAX`` pixels a side and low-passed, so a 4096² micrograph loads
at once; coordinates on the page are converted to original pixels on the server.
"""

from __future__ import annotations

import math
import os
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fewpick.batch import threshold_for_batch
from fewpick.errors import InputError
from fewpick.io import make_picks, read_micrograph, read_picks, write_picks
from fewpick.io.images import Image, image_info, micrograph_key, pair_names
from fewpick.ops.peaks import greedy_keep
from fewpick.outputs import check_output
from fewpick.pickers.base import CLOSE_PICKS, picks_table
from fewpick.pickers.threshold import Auto, Calibrated, Count, Fixed
from fewpick.web.server import PageHandler, PageServer, RequestError, parse_indices, static_page
from fewpick.workflows import LABEL_TRAINERS

DISPLAY_MAX = 1024
MAX_POINTS = 20_000  # labels on one micrograph, at most
PICKERS = tuple(LABEL_TRAINERS)  # the first is the default


@dataclass
class LabelSettings:
    """What the page trains and how. ``pu_options``/``fewshot_options`` override the pickers' settings (e.g.
    fewer steps for a quick look)."""

    diameter: float  # original pixels
    picker: str = "fewshot"
    expected_particles: float | None = None
    threads: int = 2
    device: str = "auto"
    pu_options: dict = field(default_factory=dict)
    fewshot_options: dict = field(default_factory=dict)


CHECKED_AT_START = 64  # up to this many micrographs are read whole at start; beyond, each when first shown


class LabelSession:
    """The state behind the page: micrographs, labels, the background job, the model and its picks."""

    def __init__(self, micrographs: Sequence[str | os.PathLike], out: str | os.PathLike, settings: LabelSettings,
                 *, model_out: str | os.PathLike | None = None, picks_out: str | os.PathLike | None = None,
                 pixel_size: float | None = None):
        if not micrographs:
            raise InputError(None, "no micrographs given")
        if not settings.diameter > 0:
            raise InputError(None, f"the particle diameter must be positive, got {settings.diameter:g}")
        if settings.picker not in PICKERS:
            raise InputError(None, f"unknown picker {settings.picker!r}; choose {' or '.join(PICKERS)}")
        self.settings = settings
        self.out = Path(out)
        stem = self.out.with_suffix("")
        self.model_out = Path(model_out) if model_out else Path(f"{stem}_model.pt")
        self.picks_out = Path(picks_out) if picks_out else Path(f"{stem}_picks.star")
        for path in (self.out, self.model_out, self.picks_out):  # before the first click, not at the first save
            check_output(path, inputs=micrographs)
        self.pixel_size = pixel_size
        self.paths: list[Path] = []
        self.shapes: list[tuple[int, int]] = []
        infos = []
        self.bad: dict[str, str] = {}  # micrographs that cannot be read: name → why (the rest go on)
        check_pixels = len(micrographs) <= CHECKED_AT_START
        for p in map(Path, micrographs):
            try:
                info = image_info(p)
                if check_pixels:  # refused as every verb refuses it (NaN pixels, a constant image)
                    read_micrograph(p, pixel_size=pixel_size)
                if len(info.shape) != 2:
                    raise InputError(p, f"is not a 2D micrograph (shape {info.shape})")
                if settings.diameter >= min(info.shape):
                    raise InputError(p, f"is smaller than one particle ({settings.diameter:g} px)")
                self.paths.append(p)
                self.shapes.append(tuple(int(n) for n in info.shape))
                infos.append(info)
            except InputError as e:
                self.bad[str(p)] = str(e)
        if not self.paths:
            raise InputError(None, "none of the micrographs can be read: " + "; ".join(self.bad.values()))
        self.names = [micrograph_key(p) for p in self.paths]
        self.infos = dict(zip(self.names, infos))  # headers, read once: STAR files name micrographs by path
        if len(set(self.names)) != len(self.names):
            raise InputError(None, "two micrographs have the same name; give each once")
        self.labels: dict[str, np.ndarray] = {n: np.zeros((0, 2)) for n in self.names}
        if self.out.is_file():  # continue where the user left off
            self._load_labels()
        self.lock = threading.RLock()
        self._display: OrderedDict[int, tuple[bytes, np.ndarray]] = OrderedDict()
        self._candidates: dict[int, list] = {}
        self._general: Any = None  # the general particle model for this diameter, loaded at the first candidates
        self.job: dict[str, Any] = {"state": "idle"}
        self.model = None
        self.picker_kind: str | None = None
        self.expected_used: float | None = None  # the expected count the last training was given
        self.summary = ""  # the trained model's summary (how it scores, its cut), shown on the page
        self.threshold_note = ""  # how the initial threshold was set, as 'fewpick pick' prints it
        self.picks: dict[str, pd.DataFrame] = {}
        self.default_threshold: float | None = None
        self.auto_thresholds: dict[str, float] = {}
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- labels

    def _load_labels(self) -> None:
        table = read_picks(self.out)
        if not len(table):
            return
        pairs = pair_names(self.names, dict.fromkeys(table["micrograph"].astype(str)))
        for name, key in pairs.items():
            rows = table[table["micrograph"].astype(str) == key]
            self.labels[name] = rows[["x", "y"]].to_numpy(float)

    def index(self, value: Any) -> int:
        return parse_indices([value], len(self.paths), "micrograph")[0]

    def set_labels(self, i: int, points: Any) -> dict:
        """Replace micrograph ``i``'s labels by ``points`` (``[[x, y], …]``, original pixels) and save them all."""
        if not isinstance(points, list) or len(points) > MAX_POINTS:
            raise RequestError(400, f"'points' must be a list of at most {MAX_POINTS} [x, y] pairs")
        h, w = self.shapes[i]
        xy = []
        for p in points:
            if (not isinstance(p, list) or len(p) != 2 or not all(type(v) in (int, float) for v in p)
                    or not all(math.isfinite(v) for v in p)):
                raise RequestError(400, f"each point must be [x, y] with two numbers, not {str(p)[:40]}")
            if not (0 <= p[0] <= w - 1 and 0 <= p[1] <= h - 1):
                raise RequestError(400, f"point {p} lies outside the {w}×{h} px micrograph")
            xy.append((float(p[0]), float(p[1])))
        with self.lock:
            self.labels[self.names[i]] = np.array(xy, float).reshape(-1, 2)
            path = self.save_labels()
        return {"count": len(xy), "total": self.label_count(), "path": str(path)}

    def label_count(self) -> int:
        return int(sum(len(v) for v in self.labels.values()))

    def label_table(self) -> pd.DataFrame:
        tables = [make_picks(n, v[:, 0], v[:, 1]) for n, v in self.labels.items() if len(v)]
        return pd.concat(tables, ignore_index=True) if tables else make_picks("", [], [])

    def save_labels(self) -> Path:
        """Write every label (RELION STAR, micrographs named by their path as given), atomically."""
        return write_picks(self.label_table(), self.out, images=self.infos)[0]

    # ---------------------------------------------------------------- display

    def image(self, i: int) -> Image:
        """Micrograph ``i``, read and checked as every verb reads it; one refused (NaN pixels, a cut-off file) is
        listed with the unreadable ones and its error raised."""
        try:
            return read_micrograph(self.paths[i], pixel_size=self.pixel_size)
        except InputError as e:
            with self.lock:
                self.bad[str(self.paths[i])] = str(e)
            raise

    def display(self, i: int) -> tuple[bytes, np.ndarray]:
        """A PNG of micrograph ``i`` binned to at most ``DISPLAY_MAX`` px a side and low-passed, and the scale
        (original px per display px, y and x)."""
        with self.lock:
            if i in self._display:
                self._display.move_to_end(i)
                return self._display[i]
        from fewpick.report import display_png

        # low-passed to about a tenth of the particle
        result = display_png(self.image(i).data, DISPLAY_MAX, lowpass=0.1 * self.settings.diameter,
                             workers=self.settings.threads)
        with self.lock:
            self._display[i] = result
            while len(self._display) > 6:
                self._display.popitem(last=False)
        return result

    def candidates(self, i: int) -> list[list[float]]:
        """Micrograph ``i``'s picks by the general particle model (no labels; its default cut), original px, to
        click on."""
        with self.lock:
            if i in self._candidates:
                return self._candidates[i]
        if self._general is None:
            from fewpick.pickers.pu.general import general_model

            self._general = general_model(self.settings.diameter, self.settings.expected_particles,
                                          threads=self.settings.threads)
        picks = self._general.pick(self.image(i))
        out = np.round(picks[["x", "y"]].to_numpy(float), 1).tolist()
        with self.lock:
            self._candidates[i] = out
        return out

    # ---------------------------------------------------------------- background jobs

    def _failed(self) -> set[str]:
        """Names of the micrographs that could not be read or picked."""
        return {micrograph_key(p) for p in self.bad}

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict:
        with self.lock:
            return {"job": dict(self.job), "label_count": self.label_count(),
                    "per_micrograph": [len(self.labels[n]) for n in self.names],
                    "model": self.picker_kind, "summary": self.summary, "threshold_note": self.threshold_note,
                    "picked": len(self.picks),
                    "failed": dict(self.bad),
                    "of": len(set(self.names) - self._failed()),
                    "threshold": self.default_threshold, "labels_path": str(self.out),
                    "model_path": str(self.model_out), "picks_path": str(self.picks_out)}

    def _run(self, kind: str, work) -> None:
        if self.busy():
            raise RequestError(409, f"busy: {self.job.get('what', 'a job')} is still running")
        with self.lock:
            self.job = {"state": "running", "kind": kind, "what": kind, "fraction": 0.0, "started": time.time()}

        def target():
            try:
                work()
                with self.lock:
                    self.job.update(state="done", fraction=1.0, seconds=round(time.time() - self.job["started"], 1))
            except InputError as e:
                with self.lock:
                    self.job.update(state="error", message=str(e))
            except Exception as e:  # shown on the page; the server goes on
                traceback.print_exc()
                with self.lock:
                    self.job.update(state="error", message=f"{type(e).__name__}: {e}")

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def _progress(self, fraction: float, text: str, eta: float | None = None) -> None:
        with self.lock:
            self.job.update(fraction=round(float(min(max(fraction, 0.0), 1.0)), 4), text=text,
                            eta_s=None if eta is None else round(float(eta), 1))

    def start_training(self, picker: str | None = None, expected_particles: float | None = None) -> None:
        """Train the few-shot or the PU picker from the labels, in the background."""
        picker = picker or self.settings.picker
        if picker not in PICKERS:
            raise RequestError(400, f"unknown picker {picker!r}; choose {' or '.join(PICKERS)}")
        labels = self.label_table()
        if len(labels) < 2:
            raise RequestError(409, "click at least 2 particles first (about 15 work well)")
        expected = expected_particles or self.settings.expected_particles
        self.expected_used = expected
        self._run("training", lambda: self._train(picker, labels, expected))

    def _train(self, picker: str, labels: pd.DataFrame, expected: float | None) -> None:
        from fewpick.pickers import registry

        s = self.settings
        labelled = set(labels["micrograph"])
        images = {n: self.image(i) for i, n in enumerate(self.names) if n in labelled}
        options = s.pu_options if picker == "pu" else s.fewshot_options if picker == "fewshot" else {}
        model = LABEL_TRAINERS[picker](images, labels, diameter=s.diameter, expected=expected, options=options,
                                       out=self.model_out, progress=self._progress, device=s.device,
                                       threads=s.threads)
        summary = registry.summary(model, registry.get(picker))
        # the initial threshold as 'fewpick pick' sets it: the expected count on these micrographs (one score for
        # all), else the model's calibrated cut; a model whose default is automatic cuts each micrograph alone
        self._progress(1.0, "setting the threshold on the micrographs")
        readable = [p for p in self.paths if micrograph_key(p) not in self._failed()]
        first, said = threshold_for_batch(model, None, readable,
                                          lambda p: read_micrograph(p, pixel_size=self.pixel_size))
        if isinstance(first, Count) and first.score is not None:
            default: float | None = first.score
        elif isinstance(first, Fixed):
            default = first.value
        elif isinstance(first, Calibrated):
            default = model.calibrated_threshold()
        else:
            default = None
        with self.lock:
            self.model, self.picker_kind, self.summary, self.threshold_note = model, picker, summary, said or ""
            self.picks, self.auto_thresholds = {}, {}
            self.default_threshold = None if default is None else float(default)

    def picks_of(self, i: int) -> dict:
        """Every peak of micrograph ``i`` (original px) with its score, and the picker's own threshold there."""
        if self.model is None:
            raise RequestError(409, "train a picker first")
        name = self.names[i]
        with self.lock:
            table = self.picks.get(name)
        if table is None:
            table = self._pick(i)
        with self.lock:
            thr = self.default_threshold if self.default_threshold is not None else self.auto_thresholds.get(name)
        return {"x": np.round(table.x.to_numpy(float), 1).tolist(), "y": np.round(table.y.to_numpy(float), 1).tolist(),
                "score": np.round(table.score.to_numpy(float), 4).tolist(), "threshold": thr}

    def _pick(self, i: int) -> pd.DataFrame:
        model, name = self.model, self.names[i]
        image = self.image(i)
        smap = model.score_map(image)
        coords, scores = model.peaks(smap, -1e9)
        if isinstance(model.default_threshold(), Auto):  # each micrograph has its own cut, from the same peaks
            _, auto = model.peaks(smap, Auto())
            auto_thr = float(auto.min()) if len(auto) else float(scores.max(initial=0.0))
        else:
            auto_thr = None
        xy = smap.to_original(coords)
        # the picks in front: a pick ranked last for lying close to a better one (a particle picked twice) is not
        # offered, and does not stretch the threshold slider's range
        front = greedy_keep(xy, CLOSE_PICKS * self.settings.diameter) if len(xy) else np.ones(0, bool)
        table = picks_table(name, xy[front], scores[front])
        with self.lock:
            self.picks[name] = table
            if auto_thr is not None:
                self.auto_thresholds[name] = auto_thr
        return table

    def start_picking(self) -> None:
        """Pick every micrograph with the trained picker, in the background."""
        if self.model is None:
            raise RequestError(409, "train a picker first")

        def work():
            t0, n = time.time(), len(self.paths)
            for i in range(n):
                if self.names[i] not in self.picks:
                    try:
                        self._pick(i)
                    except InputError as e:  # one bad micrograph is reported; the rest go on
                        with self.lock:
                            self.bad[str(self.paths[i])] = str(e)
                sec = time.time() - t0
                self._progress((i + 1) / n, f"picking: micrograph {i + 1}/{n}", sec / (i + 1) * (n - i - 1))

        self._run("picking", work)

    def save_picks(self, threshold: Any) -> dict:
        """Write the picks of every micrograph scoring at least ``threshold`` (RELION STAR, original px)."""
        if type(threshold) not in (int, float) or not math.isfinite(threshold):
            raise RequestError(400, "'threshold' must be a number")
        if self.busy():
            raise RequestError(409, "wait for the running job to finish")
        failed = self._failed()
        missing = [n for n in self.names if n not in self.picks and n not in failed]
        if self.model is None or missing:
            raise RequestError(409, f"pick every micrograph first ({len(missing)} not picked yet)")
        table = pd.concat([t[t.score >= threshold] for t in self.picks.values()], ignore_index=True)
        path = write_picks(table, self.picks_out, images=self.infos)[0]
        return {"count": len(table), "path": str(path), "micrographs": len(self.picks)}


# ---------------------------------------------------------------- server


def _handler(session: LabelSession):
    class Handler(PageHandler):
        def get(self, path):
            s = session
            if path in ("/", "/index.html"):
                self.send_page(PAGE)
            elif path == "/session.json":
                self.send_json(200, {"names": s.names, "shapes": s.shapes, "diameter": s.settings.diameter,
                                     # the trained model's kind and count, so that a reload shows what was trained
                                     "picker": s.picker_kind or s.settings.picker,
                                     "expected": s.expected_used or s.settings.expected_particles,
                                     "labels": {n: np.round(v, 1).tolist() for n, v in s.labels.items()},
                                     "bad": s.bad, **s.status()})
            elif path == "/status.json":
                self.send_json(200, s.status())
            elif path.startswith("/image/") and path.endswith(".png"):
                i = self._index(path[len("/image/"):-4])
                png, _ = s.display(i)
                self.send_body(200, png, "image/png")
            elif path.startswith("/candidates/"):
                self.send_json(200, {"points": s.candidates(self._index(path[len("/candidates/"):]))})
            elif path.startswith("/picks/"):
                self.send_json(200, s.picks_of(self._index(path[len("/picks/"):])))
            else:
                raise RequestError(404, f"no such page: {path}")

        def _index(self, text: str) -> int:
            if not text.isdigit() or len(text) > 9:
                raise RequestError(400, f"no micrograph {text[:20]!r}")
            return session.index(int(text))

        def post(self, path):
            s = session
            body = self.read_json(64 * MAX_POINTS + 4096)
            if not isinstance(body, dict):
                raise RequestError(400, "send a JSON object")
            try:
                if path == "/labels":
                    reply = s.set_labels(s.index(body.get("micrograph")), body.get("points"))
                elif path == "/train":
                    expected = body.get("expected_particles")
                    if expected is not None and (type(expected) not in (int, float) or not 0 < expected < 1e7):
                        raise RequestError(400, "'expected_particles' must be a positive number")
                    s.start_training(body.get("picker"), expected)
                    reply = s.status()
                elif path == "/pick":
                    s.start_picking()
                    reply = s.status()
                elif path == "/save-picks":
                    reply = s.save_picks(body.get("threshold"))
                else:
                    raise RequestError(404, f"no such action: {path}")
            except InputError as e:
                raise RequestError(400, str(e)) from None
            except OSError as e:
                raise RequestError(500, f"could not write: {e}") from None
            self.send_json(200, reply)

    return Handler


def make_server(session: LabelSession, host: str = "127.0.0.1", port: int = 8000) -> PageServer:
    """A server for the session's page (not yet serving: call ``serve_forever``); port 0 picks a free port."""
    return PageServer(host, port, _handler(session))


PAGE = static_page("fewpick label", "label.html")
