"""The interactive page of an exploration run: ``fewpick explore serve RUN``.

A small HTTP server (standard library, threads) serves one self-contained page — its script and style
are inline, it loads nothing from elsewhere, so it works offline and through an SSH tunnel — plus the
run's data: ``/data.json`` (map positions, classes, tomogram of each candidate), ``/thumbs.png`` (the
atlas of candidate images) and ``/gallery.png``. The page draws the map coloured by class, shows a
candidate's image on hover, selects whole classes (check boxes) or a region (lasso), counts the
selection, and posts it to ``/export``, which writes the chosen candidates' 3D coordinates in the
original tomogram voxels: ``RUN/selected.star`` (all tomograms) and ``RUN/selected/<tomogram>.coords``
— the labels for ``fewpick tomo train``. Given the particle diameter, the export writes one point per particle: the
exploration gives a large complex several candidates, and other programs would count it several times. Served with a picks file (``--picks``: the output of ``fewpick tomo pick``),
the slice viewer draws those picks too, beside the candidates.
"""

from __future__ import annotations

import io
import json
import os
import threading
from typing import Sequence

import numpy as np
import pandas as pd

from fewpick.errors import InputError, first_line
from fewpick.explore.gallery import ATLAS_COLUMNS
from fewpick.explore.run import Run
from fewpick.geometry import parse_length
from fewpick.io import read_picks, write_picks
from fewpick.ops.peaks import components
from fewpick.web.server import PageHandler, PageServer, RequestError, body_cap, parse_indices, static_page


def load_view(run: Run) -> tuple[dict, pd.DataFrame]:
    """What the page shows of a finished run: its JSON payload and the candidates table."""
    manifest = run.load()
    missing = [s for s in ("classes", "gallery") if s not in manifest.get("stages", {})]
    if missing:
        raise InputError(run.folder, f"the run is not finished (stages left: {', '.join(missing)}); run "
                                     "'fewpick explore' again with the same options to complete it")
    try:
        table = read_picks(run.path("candidates.star"))
        xy = np.load(run.path("map.npy"))
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(run.folder, f"the run folder is damaged ({first_line(exc)}); run 'fewpick explore' "
                                     "again into a new folder") from None
    if len(xy) != len(table) or "label" not in table.columns:
        raise InputError(run.folder, f"map.npy has {len(xy)} points but candidates.star has {len(table)} rows "
                                     "with{} classes: the folder is damaged; run 'fewpick explore' again into a "
                                     "new folder".format("" if "label" in table.columns else "out"))
    names = [t["name"] for t in manifest["tomograms"]]
    index = {n: i for i, n in enumerate(names)}
    classes = table["label"].to_numpy(int)
    settings = manifest["settings"]
    view = {
        "run": run.folder.resolve().name,
        "n": len(table),
        "x": np.round(xy[:, 0].astype(float), 3).tolist(),
        "y": np.round(xy[:, 1].astype(float), 3).tolist(),
        "cls": classes.tolist(),
        "tomo": [index.get(str(m), 0) for m in table["micrograph"]],
        "tomograms": names,
        "classes": sorted({int(c) for c in classes}),
        "tile": int(settings["size"]),
        "columns": ATLAS_COLUMNS,
        "xyz": np.round(table[["x", "y", "z"]].to_numpy(float), 1).tolist(),
        "shapes": [t.get("shape_zyx") for t in manifest["tomograms"]],
        "radius": float(settings["radius"]),
    }
    return view, table


def picks_view(picks_file: str | os.PathLike, tomograms: Sequence[str],
               shapes: Sequence[Sequence[int] | None]) -> dict:
    """The picks of ``picks_file`` (a 3D picks table) on the run's tomograms, for the slice viewer: ``xyz``,
    ``tomo`` (index into ``tomograms``), ``score``, the file's name and ``elsewhere`` (picks on tomograms the run
    does not hold, left out). Refused when the file has no z or names none of the run's tomograms."""
    from fewpick.io.images import pair_names

    picks = read_picks(picks_file)
    if "z" not in picks.columns:
        raise InputError(picks_file, "holds 2D picks (no z): give the picks of 'fewpick tomo pick'")
    names = picks["micrograph"].astype(str)
    pairs = pair_names(sorted(set(names)), tomograms)
    if len(picks) and not pairs:
        raise InputError(picks_file, f"names none of this run's tomograms ({', '.join(tomograms[:5])}"
                                     f"{', …' if len(tomograms) > 5 else ''})")
    index = {n: tomograms.index(t) for n, t in pairs.items()}
    ours = picks[names.isin(index)]
    xyz = ours[["x", "y", "z"]].to_numpy(float)
    tomo = ours["micrograph"].astype(str).map(index).to_numpy(int)
    outside = np.zeros(len(ours), bool)
    for t, shape in enumerate(shapes):
        if shape is not None:
            here = tomo == t
            outside[here] |= ((xyz[here] < -0.5) | (xyz[here] > np.asarray(shape[::-1], float) - 0.5)).any(axis=1)
    if outside.any():
        raise InputError(picks_file, f"{int(outside.sum())} picks lie outside their tomogram: were they picked on "
                                     "these tomograms, at this voxel size?")
    score = ours["score"].to_numpy(float) if "score" in ours.columns else np.zeros(len(ours))
    return {"file": os.path.basename(os.fspath(picks_file)), "xyz": np.round(xyz, 1).tolist(),
            "tomo": tomo.tolist(), "score": np.round(score, 4).tolist(), "elsewhere": int(len(picks) - len(ours))}


def class_averages(inputs: np.ndarray, classes: np.ndarray) -> bytes:
    """A PNG with the average image of each class side by side, in ascending class order (proteins dark)."""
    from PIL import Image as PILImage

    from fewpick.explore.gallery import average_image

    labels = np.unique(classes)
    n, size = len(labels), inputs.shape[-1]
    strip = np.full((size, max(1, n) * size), 255, np.uint8)
    for k, c in enumerate(labels):
        strip[:, k * size : (k + 1) * size] = average_image(inputs[classes == c])
    buf = io.BytesIO()
    PILImage.fromarray(strip).save(buf, format="PNG")
    return buf.getvalue()


class Sections:
    """Sections of the run's tomograms for the slice viewer: a slab of ``thickness`` sections around z, averaged,
    binned to at most ``max_px`` a side and low-passed, as PNG (proteins dark, as in the tomogram)."""

    def __init__(self, manifest: dict, thickness: int, max_px: int = 640):
        self.tomograms = manifest["tomograms"]
        self.half = max(0, thickness // 2)
        self.max_px = max_px
        self._volumes: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def volume(self, t: int) -> np.ndarray:
        from fewpick.io import read_volume

        with self._lock:
            if t not in self._volumes:
                if len(self._volumes) >= 2:
                    self._volumes.pop(next(iter(self._volumes)))
                self._volumes[t] = read_volume(self.tomograms[t]["path"]).data
            return self._volumes[t]

    def png(self, t: int, z: int) -> bytes:
        from fewpick.report import display_png

        vol = self.volume(t)
        z = int(np.clip(z, 0, vol.shape[0] - 1))
        section = np.asarray(vol[max(0, z - self.half) : z + self.half + 1], np.float32).mean(0)
        return display_png(section, self.max_px, min_sigma=0.7)[0]


def one_per_particle(chosen: pd.DataFrame, diameters: dict[str, float]) -> pd.DataFrame:
    """The chosen candidates with those of one tomogram that are joined by gaps shorter than the particle's radius
    (``diameters``: voxels, by tomogram name) taken as one particle, as ``fewpick tomo train`` takes its labels:
    the best-scoring candidate's row at the group's mean position. Rows keep the order of the best ones."""
    keep, rows = [], []
    for name, g in chosen.groupby(chosen["micrograph"].astype(str), sort=False):
        xyz = g[["x", "y", "z"]].to_numpy(float)
        group = components(xyz, diameters[name] / 2)
        score = g["score"].to_numpy(float) if "score" in g else np.zeros(len(g))
        for k in np.unique(group):
            members = np.flatnonzero(group == k)
            best = members[np.argmax(score[members])]
            keep.append(g.index[best])
            rows.append(xyz[members].mean(0))
    out = chosen.loc[keep].copy()
    out[["x", "y", "z"]] = np.asarray(rows).reshape(-1, 3)
    order = np.argsort(chosen.index.get_indexer(out.index), kind="stable")
    return out.iloc[order].reset_index(drop=True)


def export_selection(run: Run, indices: Sequence[int], table: pd.DataFrame | None = None,
                     diameter: str | float | None = None) -> dict:
    """Write the candidates ``indices`` (rows of ``candidates.star``) as ``RUN/selected.star`` and one
    ``RUN/selected/<tomogram>.coords`` per tomogram (empty where none is chosen); returns what was written.

    ``diameter``: the particle's (voxels, or physical such as ``"250A"`` with each tomogram's voxel size); with
    it the candidates closer than its half to each other are written as one particle (:func:`one_per_particle`)."""
    manifest = run.load()
    sizes = {}
    if diameter is not None and str(diameter).strip():
        for t in manifest["tomograms"]:
            try:
                sizes[t["name"]] = parse_length(diameter, t.get("voxel_size"), what="the particle diameter")
            except InputError:
                if t.get("voxel_size"):
                    raise
                raise InputError(None, f"{t['name']} has no voxel size in its header: give the particle diameter "
                                       "in voxels") from None
    if table is None:
        table = read_picks(run.path("candidates.star"))
    indices = list(indices)
    if not indices:
        raise InputError(None, "nothing is selected: choose classes or draw a lasso first")
    for i in indices:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise InputError(None, f"candidate indices must be integers, not {i!r:.40}")
        if not 0 <= i < len(table):
            raise InputError(None, f"candidate index {str(i)[:20]} is outside 0…{len(table) - 1}")
    idx = np.asarray(indices, dtype=np.int64)
    chosen = table.iloc[np.unique(idx)].reset_index(drop=True)
    candidates = len(chosen)
    if sizes:
        chosen = one_per_particle(chosen, sizes)
    names = [t["name"] for t in manifest["tomograms"]]
    star = write_picks(chosen, run.path("selected.star"))
    coords = write_picks(chosen[["micrograph", "x", "y", "z"]], run.path("selected") / "", "coords",
                         micrographs=names)
    per = {n: int((chosen["micrograph"].astype(str) == n).sum()) for n in names}
    return {"count": len(chosen), "candidates": candidates, "star": str(star[0]), "coords": [str(p) for p in coords],
            "per_tomogram": per}


def _handler(run: Run, view: dict, table: pd.DataFrame):
    inputs = np.load(run.path("inputs.npy"))
    averages = class_averages(inputs, table["label"].to_numpy(int))
    del inputs
    sections = Sections(run.load(), thickness=max(1, int(round(view["radius"]))))
    data = json.dumps(view, separators=(",", ":")).encode()
    lock = threading.Lock()
    files = {"/thumbs.png": run.path("thumbs.png"), "/gallery.png": run.path("gallery.png")}
    cap = body_cap(len(table))

    class Handler(PageHandler):
        def get(self, path):
            if path in ("/", "/index.html"):
                self.send_page(PAGE)
            elif path == "/data.json":
                self.send_body(200, data, "application/json")
            elif path == "/averages.png":
                self.send_body(200, averages, "image/png")
            elif path.startswith("/section/"):
                parts = path[len("/section/"):].removesuffix(".png").split("/")
                if len(parts) != 2 or not all(p.isdigit() and len(p) < 7 for p in parts):
                    raise RequestError(400, "ask for /section/<tomogram>/<z>.png")
                t, z = int(parts[0]), int(parts[1])
                if t >= len(view["tomograms"]):
                    raise RequestError(404, f"no tomogram {t}")
                self.send_body(200, sections.png(t, z), "image/png")
            elif path in files:
                try:
                    self.send_body(200, files[path].read_bytes(), "image/png")
                except OSError:
                    raise RequestError(404, f"{files[path].name} is missing from the run folder") from None
            else:
                raise RequestError(404, f"no such page: {path}")

        def post(self, path):
            if path != "/export":
                raise RequestError(404, f"no such action: {path}")
            body = self.read_json(cap)
            if not isinstance(body, dict) or "indices" not in body:
                raise RequestError(400, "bad export request: send {\"indices\": [...]}")
            indices = parse_indices(body["indices"], len(table))
            diameter = body.get("diameter")
            if diameter is not None and not (isinstance(diameter, str) and len(diameter) <= 32
                                             or isinstance(diameter, (int, float)) and not isinstance(diameter, bool)):
                raise RequestError(400, "the particle diameter must be a number of voxels or a length such as 250A")
            try:
                with lock:
                    result = export_selection(run, indices, table, diameter)
            except InputError as e:
                raise RequestError(400, str(e)) from None
            except OSError as e:
                raise RequestError(500, f"could not write the selection: {e}") from None
            self.server.exports.append(result)  # type: ignore[attr-defined]
            if self.server.on_export:  # type: ignore[attr-defined]
                self.server.on_export(result)  # type: ignore[attr-defined]
            self.send_json(200, result)

    return Handler


def make_server(run_folder: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
                on_export=None, picks: str | os.PathLike | None = None) -> PageServer:
    """A server for the run's page (not yet serving: call ``serve_forever``); port 0 picks a free port.
    ``picks``: a 3D picks file drawn in the slice viewer (:func:`picks_view`). Only the page itself can export
    (see :mod:`fewpick.web.server`)."""
    run = Run(run_folder)
    view, table = load_view(run)
    if picks is not None:
        view["picks"] = picks_view(picks, view["tomograms"], view["shapes"])
    server = PageServer(host, port, _handler(run, view, table))
    server.view = view  # type: ignore[attr-defined]
    server.exports = []  # type: ignore[attr-defined]
    server.on_export = on_export  # type: ignore[attr-defined]
    return server


PAGE = static_page("fewpick explore", "explore.html")
