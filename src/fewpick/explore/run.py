"""The exploration run: tomograms in, a resumable run folder out.

``RUN/`` holds ``run.json`` (format, version, settings, the tomograms, each finished stage with its seconds
and the process's peak memory so far), ``candidates.star`` (every candidate's tomogram, x, y, z in original
voxels, blob score and, once clustered, class), ``inputs.npy`` (the 2D image of each candidate),
``encoder.pt`` (+ ``encoder.ckpt`` while training), ``embeddings.npy``, ``map.npy`` (UMAP), ``gallery.png``
and ``thumbs.png`` (an atlas of every candidate's image, for the page). A stage whose output is there is
skipped when the run is started again with the same settings; any other settings need a new folder (or
``force``).
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from fewpick import __version__, modelfile
from fewpick.errors import InputError
from fewpick.explore import candidates as cand
from fewpick.io import make_picks, read_image, read_picks, read_tilt_angles, read_volume, write_picks
from fewpick.io.images import micrograph_key
from fewpick.outputs import atomic_path

RUN_FORMAT = "fewpick-explore-run"
RUN_VERSION = 1
ENCODER_FORMAT = "fewpick-explore-encoder"
MODES = ("2d3d", "3d")
FEATURES = ("simsiam", "pca")
PCA_COMPONENTS = 32
CANDIDATES_PER_CLASS, MIN_CLASSES, MAX_CLASSES = 6, 8, 60
MIN_CANDIDATES = 10  # fewer cannot be laid out by UMAP and grouped


def classes_for(candidates: int, classes: int | None = None) -> int:
    """The number of classes: ``classes`` if given, else one per 6 candidates, 8–60 (never more than the candidates)."""
    h = classes or min(MAX_CLASSES, max(MIN_CLASSES, round(candidates / CANDIDATES_PER_CLASS)))
    return max(1, min(h, candidates))


@dataclass
class ExploreSettings:
    """Everything that defines an exploration run. Lengths in tomogram voxels."""

    radius: float  # NMS radius for candidates (about the smallest particle's radius)
    mode: str = "2d3d"
    box: float | None = None  # side of each candidate's image (default 6 × radius)
    size: int = 32  # the image's side for the network, px
    # the fraction of candidates allowed on background, estimated from a phase-scrambled copy of each tomogram
    background: float = cand.BACKGROUND
    max_tilt: float = 15.0  # 2d3d: tilt images within ±max_tilt are averaged
    slab: int | None = None  # 3d: half-thickness of the averaged slab (default radius / 2)
    # what the map is made of: "pca", the images' principal components and rotational averages, the candidates'
    # scores and the 3D rotational averages of the tomogram around each (no training; purer classes on simulated
    # tomograms, bench/results/explore_features.md), or "simsiam" embeddings (random init, CPU-sized training)
    features: str = "pca"
    width: int = 16  # ResNet-18-class encoder base width
    dim: int = 128
    epochs: int = 30
    batch: int = 128
    lr: float = 0.05
    neighbors: int = 40  # UMAP k
    # h (MiLoPYP: h well above the number of kinds of particle; several classes per kind); None: one class per
    # CANDIDATES_PER_CLASS candidates, between MIN_CLASSES and MAX_CLASSES
    classes: int | None = None
    clusters: int | None = None  # k of the over-clustering (default min(10 h, N/5))
    seed: int = 0
    threads: int = 2

    @property
    def box_px(self) -> float:
        return self.box or 6.0 * self.radius

    @property
    def slab_px(self) -> int:
        return self.slab if self.slab is not None else max(1, int(round(self.radius / 2)))

    def check(self) -> None:
        if self.mode not in MODES:
            raise InputError(None, f"unknown mode {self.mode!r}; choose 2d3d or 3d")
        if not self.radius > 0:
            raise InputError(None, f"the candidate radius must be positive, got {self.radius:g}")
        if self.features not in FEATURES:
            raise InputError(None, f"unknown features {self.features!r}; choose simsiam or pca")
        if self.classes is not None and self.classes < 1:
            raise InputError(None, f"need at least one class, got {self.classes}")
        if not 0 < self.background <= 1:
            raise InputError(None, f"the background fraction must be in (0, 1], got {self.background:g}")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pair(tomograms: Sequence[Path], others: Sequence[Path] | None, what: str) -> list[Path] | None:
    """``others`` in the order of ``tomograms``: by file stem where every stem matches, else by position."""
    if not others:
        return None
    if len(others) != len(tomograms):
        raise InputError(None, f"{len(tomograms)} tomogram(s) but {len(others)} {what}")
    by_key = {micrograph_key(p): p for p in others}
    keys = [micrograph_key(t) for t in tomograms]
    if all(k in by_key for k in keys):
        return [by_key[k] for k in keys]
    return list(others)


class Run:
    """A run folder: its manifest and its stages."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.manifest_path = self.folder / "run.json"

    def path(self, name: str) -> Path:
        return self.folder / name

    def load(self) -> dict:
        try:
            m = json.loads(self.manifest_path.read_text())
        except (FileNotFoundError, NotADirectoryError):
            raise InputError(self.folder, "is not an exploration run folder (no run.json)") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError(self.manifest_path, "is not valid JSON (a damaged run folder?)") from None
        if not isinstance(m, dict) or m.get("format") != RUN_FORMAT:
            raise InputError(self.manifest_path, "is not a fewpick exploration run")
        if m.get("version") != RUN_VERSION:
            raise InputError(self.manifest_path, f"run folder format version {m.get('version')} (fewpick "
                                                 f"{m.get('fewpick', '?')}); this fewpick ({__version__}) reads "
                                                 f"version {RUN_VERSION}: run 'fewpick explore' again into a new folder")
        return m

    def save(self, manifest: dict) -> None:
        with atomic_path(self.manifest_path) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1))


def _settings_dict(s: ExploreSettings) -> dict:
    return {f.name: getattr(s, f.name) for f in fields(s) if f.name != "threads"}


def explore(tomograms: Sequence[str | os.PathLike], out: str | os.PathLike, settings: ExploreSettings, *,
            tilt_series: Sequence[str | os.PathLike] | None = None,
            tilt_angles: Sequence[str | os.PathLike] | None = None, force: bool = False,
            progress: Callable[[str, dict], None] | None = None, device: str = "auto") -> Run:
    """Run (or resume) the whole exploration into ``out`` (SimSiam on ``device``); returns the :class:`Run`."""
    import torch

    from fewpick.device import cpu_state, resolve_device

    settings.check()
    dev = resolve_device(device)
    torch.set_num_threads(settings.threads)
    tomos = [Path(t) for t in tomograms]
    if not tomos:
        raise InputError(None, "no tomograms given")
    ts = _pair(tomos, [Path(p) for p in tilt_series or []], "tilt series")
    tlt = _pair(tomos, [Path(p) for p in tilt_angles or []], ".tlt files")
    if settings.mode == "2d3d" and (ts is None or tlt is None):
        raise InputError(None, "2d3d mode needs the tilt series and their .tlt files (--tilt-series, "
                               "--tilt-angles); or use --mode 3d")
    if settings.mode == "2d3d":  # check every pairing before any work
        for series_path, tlt_path in zip(ts, tlt):
            n_images, n_angles = read_image(series_path, ndim=3).shape[0], len(read_tilt_angles(tlt_path))
            if n_images != n_angles:
                raise InputError(series_path, f"has {n_images} tilt images but {tlt_path} lists {n_angles} angles")
    run = Run(out)
    manifest = {"format": RUN_FORMAT, "version": RUN_VERSION, "fewpick": __version__,
                "settings": _settings_dict(settings),
                "tomograms": [{"name": micrograph_key(t), "path": str(t.resolve()),
                               "tilt_series": str(ts[i].resolve()) if ts else None,
                               "tilt_angles": str(tlt[i].resolve()) if tlt else None} for i, t in enumerate(tomos)],
                "stages": {}}
    if run.manifest_path.exists() and not force:
        old = run.load()
        if old["settings"] != manifest["settings"] or [t["path"] for t in old["tomograms"]] != \
                [t["path"] for t in manifest["tomograms"]]:
            raise InputError(run.folder, "holds a run with other settings or tomograms: choose another --out, "
                                         "or --force to start it again")
        manifest = old
    elif run.folder.exists() and force:
        for name in ("run.json", "candidates.star", "inputs.npy", "encoder.pt", "encoder.ckpt", "embeddings.npy",
                     "map.npy", "gallery.png", "thumbs.png"):
            run.path(name).unlink(missing_ok=True)
    run.folder.mkdir(parents=True, exist_ok=True)
    run.save(manifest)

    def done(stage: str, t0: float, **info) -> None:
        manifest["stages"][stage] = {"seconds": round(time.perf_counter() - t0, 2), "peak_mib": round(_peak_mib()), **info}
        run.save(manifest)
        if progress:
            progress(stage, manifest["stages"][stage])

    def begin(stage: str, what: str) -> None:
        if progress:
            progress("begin", {"stage": stage, "what": what})

    def each(stage: str, i: int, n: int, name: str, t0: float) -> None:
        if progress:
            sec = time.perf_counter() - t0
            progress("tomogram", {"stage": stage, "i": i + 1, "n": n, "name": name, "seconds": sec,
                                  "eta_s": sec / (i + 1) * (n - i - 1)})

    stages = manifest["stages"]
    n_tomo = len(manifest["tomograms"])
    # 1–2: candidates
    if "candidates" not in stages:
        begin("candidates", f"finding candidates in {n_tomo} tomogram(s)")
        t0 = time.perf_counter()
        tables = []
        for i, t in enumerate(manifest["tomograms"]):
            vol = read_volume(t["path"])
            xyz, score = cand.find_candidates(np.asarray(vol.data), settings.radius,
                                              background=settings.background, seed=settings.seed,
                                              source=vol.path)
            tables.append(make_picks(t["name"], xyz[:, 0], xyz[:, 1], xyz[:, 2], score=score))
            t["shape_zyx"] = list(vol.shape)
            t["voxel_size"] = vol.pixel_size
            each("candidates", i, n_tomo, t["name"], t0)
        table = pd.concat(tables, ignore_index=True)
        if len(table) < MIN_CANDIDATES:
            raise InputError(None, f"only {len(table)} candidate(s) in {n_tomo} tomogram(s), too few to map and "
                                   f"group (at least {MIN_CANDIDATES}): nothing stands out of the noise at this "
                                   "radius; try a smaller --radius or a larger --background")
        write_picks(table, run.path("candidates.star"))
        done("candidates", t0, count=len(table), per_tomogram={t["name"]: int((table.micrograph == t["name"]).sum())
                                                                for t in manifest["tomograms"]})
    table = read_picks(run.path("candidates.star"))
    # 3: inputs
    if "inputs" not in stages:
        begin("inputs", f"cutting out {len(table)} candidates' images"
                        f"{' from the tilt series' if settings.mode == '2d3d' else ''}")
        t0 = time.perf_counter()
        parts = []
        for i, t in enumerate(manifest["tomograms"]):
            rows = table[table.micrograph == t["name"]]
            xyz = rows[["x", "y", "z"]].to_numpy(float)
            shape = tuple(t["shape_zyx"])
            if settings.mode == "2d3d":
                series = read_volume(t["tilt_series"])
                angles = read_tilt_angles(t["tilt_angles"])
                parts.append(cand.tilt_inputs(np.asarray(series.data), angles, xyz, shape, settings.box_px,
                                              settings.size, settings.max_tilt, source=series.path))
            else:
                vol = read_volume(t["path"])
                parts.append(cand.slab_inputs(vol.data, xyz, settings.box_px, settings.size, settings.slab_px))
            each("inputs", i, n_tomo, t["name"], t0)
        inputs = cand.normalize_inputs(np.concatenate(parts))
        with atomic_path(run.path("inputs.npy")) as tmp:
            np.save(tmp, inputs.astype(np.float16))
        done("inputs", t0)
    inputs = np.load(run.path("inputs.npy")).astype(np.float32)
    # 4: self-supervised training, then embeddings
    from fewpick.explore.embed import embed, train_simsiam
    from fewpick.nn.resnet import SimSiam

    if "train" not in stages and settings.features == "simsiam":
        begin("train", f"learning features of the candidates (SimSiam, {settings.epochs} epochs)")
        t0 = time.perf_counter()
        model, history = train_simsiam(inputs, width=settings.width, dim=settings.dim, epochs=settings.epochs,
                                       batch=settings.batch, lr=settings.lr, seed=settings.seed,
                                       checkpoint=run.path("encoder.ckpt"), device=dev,
                                       progress=(lambda e: progress("epoch", e)) if progress else None)
        modelfile.save(run.path("encoder.pt"), ENCODER_FORMAT, RUN_VERSION, None, config=model.config,
                       state=cpu_state(model))
        run.path("encoder.ckpt").unlink(missing_ok=True)
        done("train", t0, final_loss=history[-1]["loss"], epochs=len(history))
    if "embed" not in stages:
        begin("embed", "describing every candidate" + (" with the encoder" if settings.features == "simsiam"
                                                       else " by its image and the tomogram around it"))
        t0 = time.perf_counter()
        if settings.features == "simsiam":
            bundle = modelfile.load(run.path("encoder.pt"), ENCODER_FORMAT, RUN_VERSION, "exploration encoder")
            model = SimSiam(**bundle["config"])
            model.load_state_dict(bundle["state"])
            emb = embed(model.to(dev), inputs)
        else:
            from fewpick.explore.cluster import pca_features, strength

            groups = table["micrograph"].astype(str).to_numpy()
            xyz = table[["x", "y", "z"]].to_numpy(float)
            energy = np.empty((len(table), len(cand.SHELLS)), np.float32)
            density = np.empty_like(energy)
            for i, t in enumerate(manifest["tomograms"]):
                rows = np.flatnonzero(groups == t["name"])
                vol = read_volume(t["path"])
                energy[rows], density[rows] = cand.context_profiles(np.asarray(vol.data), xyz[rows], settings.radius,
                                                                    source=vol.path)
                each("embed", i, n_tomo, t["name"], t0)
            emb = pca_features(inputs, PCA_COMPONENTS, settings.seed,
                               scores=strength(table["score"].to_numpy(float), groups), context=(energy, density))
        with atomic_path(run.path("embeddings.npy")) as tmp:
            np.save(tmp, emb)
        done("embed", t0)
    # 5: map and classes
    from fewpick.explore.cluster import overcluster, umap_2d

    if "map" not in stages:
        begin("map", f"laying out {len(table)} candidates on a 2D map (UMAP; its first run in a session also "
                     "compiles, about a minute)")
        t0 = time.perf_counter()
        xy = umap_2d(np.load(run.path("embeddings.npy")), settings.neighbors, settings.seed)
        with atomic_path(run.path("map.npy")) as tmp:
            np.save(tmp, xy)
        done("map", t0)
    if "classes" not in stages:
        h = classes_for(len(table), settings.classes)
        begin("classes", f"grouping the map into {h} classes")
        t0 = time.perf_counter()
        classes, _ = overcluster(np.load(run.path("map.npy")), h, settings.clusters, settings.seed)
        table["label"] = classes
        write_picks(table, run.path("candidates.star"))
        done("classes", t0, sizes={int(c): int((classes == c).sum()) for c in np.unique(classes)})
    if "gallery" not in stages:
        begin("gallery", "drawing the class gallery and the page's thumbnails")
        t0 = time.perf_counter()
        from fewpick.explore.gallery import write_atlas, write_gallery

        table = read_picks(run.path("candidates.star"))
        write_gallery(inputs, table["label"].to_numpy(int), run.path("gallery.png"))
        write_atlas(inputs, run.path("thumbs.png"))
        done("gallery", t0)
    return run
