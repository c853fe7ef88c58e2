"""Ablations of the PU picker on the real sets of bench/real2d.py: one row per change, AUPRC and best F1.

    .venv/bin/python bench/real2d_ablations.py --picking [--sets 10059 10947 apoferritin_ab] [--run real2d_fewpick]
    .venv/bin/python bench/real2d_ablations.py --train 'bin5={"bin_factor": 5}' [--sets 10947] [--seed 0]
    .venv/bin/python bench/real2d_ablations.py --rescore --run real2d_all --labels all [--sets ...]

``--picking`` re-scores the PU models that ``bench/real2d.py`` trained (15 labels or, with ``--labels all --run
real2d_all``, every label; seed 0; no training): the
minimum distance between picks (non-maximum suppression radius as a fraction of the particle radius), test-time
averaging over the 8 dihedral views, Gaussian smoothing of the score map. ``--train NAME=JSON`` trains a model with
the given PU settings changed (same labels and seed as bench/real2d.py) and scores it at the old and new minimum
distance. ``--rescore`` rescores a model's peaks with the local correlation of the labels' rotational average for every
particle, without the picker's agreement test (each peak moved to its best correlation within a quarter
diameter): the correlation alone, and the mean of the two scores' percentiles among the training micrographs'
peaks; ``--sim-runs n10_s0 ...`` adds bench/pu_vs_topaz.py's simulated models. Rows accumulate in bench/results/real2d_ablations.{json,md} (keyed by set,
change and seed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_results  # noqa: E402
from fewpick.evaluate import evaluate  # noqa: E402
from fewpick.io import read_micrograph  # noqa: E402
from fewpick.io.picks import make_picks  # noqa: E402
from fewpick.nn.dense import dense_logits  # noqa: E402
from fewpick.ops.peaks import nms  # noqa: E402
from fewpick.pickers import pu  # noqa: E402
from real2d import WORK, draw_labels, load_set  # noqa: E402


def dihedral_logits(model: pu.PUModel, data: np.ndarray, views: int) -> tuple[np.ndarray, np.ndarray]:
    binned = pu.prepare(data, model.factor)
    acc = np.zeros(binned.shape, np.float32)
    for k in range(views):
        x = np.rot90(binned, k % 4)
        x = x[:, ::-1] if k >= 4 else x
        y = dense_logits(model.net, np.ascontiguousarray(x))
        acc += np.rot90(y[:, ::-1] if k >= 4 else y, -(k % 4))
    return acc / views, np.array(data.shape, float) / np.array(binned.shape, float)


def score(model: pu.PUModel, rs, maps, min_distance: float, sigma: float = 0.0) -> dict:
    tables = []
    for name, logits, scale in maps:
        lg = ndi.gaussian_filter(logits, sigma) if sigma else logits
        c, v = nms(lg, max(1.0, min_distance * model.settings.diameter / 2 / model.factor), -np.inf)
        tables.append(make_picks(name, c[:, 1] * scale[1], c[:, 0] * scale[0], score=v))
    e = evaluate(pd.concat(tables, ignore_index=True), rs.test_truth, radius=rs.diameter / 2)
    return {"auprc": e["auprc"], "best_f1": e["best"]["f1"], "recall_all_picks": e["all_picks"]["recall"]}


def picking_rows(set_name: str, run: str, labels: str = "15") -> list[dict]:
    rs = load_set(set_name)
    model = pu.load_model(WORK / run / set_name / f"pu_{labels}_s0" / "pu.pt")
    images = [read_micrograph(p) for p in rs.test]
    rows = []
    for views in (1, 8):
        maps = [(im.name, *dihedral_logits(model, im.data, views)) for im in images]
        for md in ((1.0, 0.75, 0.5, 0.35) if views == 1 else (1.0, 0.5)):
            rows.append({"change": f"min distance {md:g} r" + (", 8 dihedral views" if views > 1 else ""),
                         **score(model, rs, maps, md)})
        if views == 1:
            for sigma in (1.0, 2.0):
                rows.append({"change": f"min distance 0.5 r, score map smoothed σ {sigma:g} binned px",
                             **score(model, rs, maps, 0.5, sigma)})
    return [{"set": set_name, "seed": 0, "kind": "picking", "labels": labels, **r} for r in rows]


def train_rows(set_name: str, name: str, changes: dict, seed: int, labels: str = "15", init: Path | None = None,
               note: str | None = None) -> list[dict]:
    rs = load_set(set_name)
    settings = pu.PUSettings(diameter=rs.diameter, expected_particles=rs.expected, seed=seed, threads=1, **changes)
    out = WORK / "ablations" / set_name / f"{name}_{labels}_s{seed}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    model = pu.train([read_micrograph(p) for p in rs.train], draw_labels(rs, labels, seed), settings, out,
                     init=init)
    train_s = time.time() - t0
    maps = [(p.stem, *pu.score_map(model, read_micrograph(p).data)) for p in rs.test]
    md = model.settings.min_distance
    return [{"set": set_name, "seed": seed, "kind": "training", "labels": labels,
             "change": f"{name} {note or json.dumps(changes)}, min distance {md:g} r (automatic)",
             "train_s": train_s, **score(model, rs, maps, md)}]

def rescore_rows(set_name: str, run: str, labels: str = "15", seed: int = 0) -> list[dict]:
    """Rescoring rows of one model: a real set's (``run``: a bench/real2d.py run) or, for ``set_name``
    ``simulated``, bench/pu_vs_topaz.py's (``run``: its run folder, e.g. n10_s0)."""
    from fewpick.io import read_picks
    from fewpick.ops.peaks import greedy_keep

    if set_name == "simulated":
        from pu_data import DATA, target_truth

        folder = WORK.parent / "pu_vs_topaz" / run
        model = pu.load_model(folder / "fewpick.pt", "cpu")
        train, test = sorted((DATA / "train").glob("*.mrc")), sorted((DATA / "test").glob("*.mrc"))
        truth, diameter, drawn = target_truth("test"), model.settings.diameter, read_picks(folder / "labels.star")
        labels = run.split("_")[0][1:]
    else:
        rs = load_set(set_name)
        model = pu.load_model(WORK / run / set_name / f"pu_{labels}_s{seed}" / "pu.pt", "cpu")
        train, test, truth, diameter, drawn = rs.train, rs.test, rs.test_truth, rs.diameter, draw_labels(rs, labels, seed)
    settings = model.settings
    tr = [read_micrograph(p) for p in train]
    items = pu.training_items(tr, pu.labels_by_micrograph(tr, drawn, None), settings)
    template = pu.label_template(items, settings, np.random.default_rng(settings.seed))

    def peaks(binned):
        c, v = nms(dense_logits(model.net, binned), settings.suppression_radius(), -np.inf)
        corr = pu.correlation_map(binned, template, settings)
        moved = pu.centred_on_correlation(c, corr, settings)
        return moved.astype(float), v, corr[moved[:, 0], moved[:, 1]], c

    train_peaks = [peaks(it.image) for it in items]
    grid = np.linspace(0, 1, 201)
    q_logit = np.quantile(np.concatenate([p[1] for p in train_peaks]), grid)
    q_corr = np.quantile(np.concatenate([p[2] for p in train_peaks]), grid)
    kinds = {"correlation alone": lambda v, c: c,
             "mean of the percentiles of logit and correlation": lambda v, c: np.interp(v, q_logit, grid)
             + np.interp(c, q_corr, grid)}
    tables = {k: [] for k in kinds}
    tables["none"] = []  # the network's peaks and logits, as picking gives them without the correlation
    for path in test:
        data = read_micrograph(path).data
        binned = pu.prepare(data, model.factor)
        scale = np.array(data.shape, float) / np.array(binned.shape, float)
        moved, v, c, plain = peaks(binned)
        tables["none"].append(make_picks(path.stem, plain[:, 1] * scale[1], plain[:, 0] * scale[0], score=v))
        for kind, f in kinds.items():
            sc = f(v, c)
            order = np.argsort(-sc, kind="stable")
            keep = order[greedy_keep(moved[order], settings.suppression_radius())]
            tables[kind].append(make_picks(path.stem, moved[keep, 1] * scale[1], moved[keep, 0] * scale[0],
                                           score=sc[keep]))
    rows = []
    for kind, t in tables.items():
        e = evaluate(pd.concat(t, ignore_index=True), truth, radius=diameter / 2)
        rows.append({"set": set_name, "seed": seed if set_name != "simulated" else int(run.split("_s")[-1]),
                     "kind": "picking", "labels": labels,
                     "change": "the network's peaks alone (no rescoring)" if kind == "none" else
                               f"peaks centred on the labels' rotational average and rescored, for every particle "
                               f"(no agreement test): {kind}",
                     "auprc": e["auprc"], "best_f1": e["best"]["f1"], "recall_all_picks": e["all_picks"]["recall"]})
    return rows


def load_rows() -> list[dict]:
    path = RESULTS / "real2d_ablations.json"
    return json.loads(path.read_text())["rows"] if path.is_file() else []


def write_rows(rows: list[dict]) -> None:
    md = ["PU picker, 15 labels (bench/real2d.py's draw for the seed) or every training label, scored on each set's "
          "test micrographs (matching radius D/2). 'r' is the particle radius; the old default was min distance 1 r, "
          "the new 0.5 r (automatic: from the expected count). One seed per row; train s on 2 cores, one thread.", "",
          "| set | labels | seed | change | AUPRC | best F1 | recall of all picks | train s |",
          "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["set"], r.get("labels", "15"), r["kind"], r["change"], r["seed"])):
        ts = f"{r['train_s']:.0f}" if "train_s" in r else ""
        md.append(f"| {r['set']} | {r.get('labels', '15')} | {r['seed']} | {r['change']} | {r['auprc']:.3f} | "
                  f"{r['best_f1']:.3f} | {r['recall_all_picks']:.3f} | {ts} |")
    write_results("real2d_ablations", {"rows": rows}, "\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=["10059", "10947", "apoferritin_ab"])
    ap.add_argument("--run", default="real2d_fewpick", help="bench/real2d.py results whose models --picking re-scores")
    ap.add_argument("--picking", action="store_true")
    ap.add_argument("--rescore", action="store_true", help="rescore a model's peaks by correlation, for every set")
    ap.add_argument("--sim-runs", nargs="*", default=[], help="with --rescore: bench/pu_vs_topaz.py runs (n10_s0 ...)")
    ap.add_argument("--train", nargs="*", default=[], metavar="NAME=JSON")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labels", default="15", help="'15' (bench/real2d.py's draw for --seed) or 'all'")
    args = ap.parse_args()
    rows = load_rows()
    key = lambda r: (r["set"], r.get("labels", "15"), r["change"], r["seed"])  # noqa: E731
    for s in args.sets:
        new = picking_rows(s, args.run, args.labels) if args.picking else []
        new += rescore_rows(s, args.run, args.labels, args.seed) if args.rescore else []
        if args.rescore and s == args.sets[-1]:
            for run in args.sim_runs:
                new += rescore_rows("simulated", run)
        for spec in args.train:
            name, js = spec.split("=", 1)
            new += train_rows(s, name, json.loads(js), args.seed, args.labels)
        keys = {key(r) for r in new}
        rows = [r for r in rows if key(r) not in keys] + new
        for r in new:
            print(f"{s} {r['change']}: AUPRC {r['auprc']:.3f}, best F1 {r['best_f1']:.3f}", flush=True)
    write_rows(rows)


if __name__ == "__main__":
    main()
