"""Does the PU picker gain from starting at the general particle model? Random start against general start on
the real sets of bench/real2d.py.

    .venv/bin/python bench/general_start.py [--sets 10059 10947 apoferritin_ab apoferritin_ba] [--seeds 0 1 2]
                                            [--labels 15 all] [--starts random general] [--model FILE]

Each row trains the PU picker as ``bench/real2d_ablations.py --train`` does (the set's diameter and expected
count, bench/real2d.py's label draw for the seed, one thread) from random weights or from the general model
(``--model``, default: the one shipped in the package), and scores it on the test micrographs (AUPRC and best F1,
matching radius D/2). ``all`` labels: seed 0 only. Rows accumulate in bench/results/general_start.{json,md}
(keyed by set, labels, start and seed; two runs, one a start, may share the file); the table gives each
start's mean over the seeds. ``--simulated 10 100`` adds bench/pu_vs_topaz.py's simulated set (one complex among
others of its size) trained from the general model, beside that benchmark's recorded random-start rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_results  # noqa: E402
from fewpick.pickers.pu.general import GENERAL_MODEL  # noqa: E402
from real2d import SETS_ALL  # noqa: E402
from real2d_ablations import train_rows  # noqa: E402

NAME = "general_start"


def simulated_row(labels: int, seed: int) -> dict:
    """bench/pu_vs_topaz.py's simulated set (mTOR among four other complexes, two of its size) picked by the PU
    picker trained from the general model through the command line, as that benchmark trains it; its
    random-start rows are that benchmark's (``bench/results/pu_vs_topaz.json``)."""
    import subprocess

    from fewpick.evaluate import evaluate
    from fewpick.io import read_picks, write_picks
    from pu_vs_topaz import DATA, EXPECTED, FEWPICK, WORK, truth

    train_truth = truth("train")
    diameter = float(train_truth.diameter_px.iloc[0])
    run = WORK / "general_start" / f"simulated_n{labels}_s{seed}"
    run.mkdir(parents=True, exist_ok=True)
    write_picks(train_truth.sample(labels, random_state=seed), run / "labels.star")
    t0 = time.perf_counter()
    subprocess.run([str(FEWPICK), "train", str(DATA / "train"), "--labels", str(run / "labels.star"), "-d",
                    f"{diameter:.3f}", "-n", str(EXPECTED), "--init", "general", "--out", str(run / "m.pt")],
                   check=True, capture_output=True)
    train_s = time.perf_counter() - t0
    subprocess.run([str(FEWPICK), "pick", *map(str, sorted((DATA / "test").glob("*.mrc"))), "--model",
                    str(run / "m.pt"), "-t", "-1e9", "--out", str(run / "picks.star")], check=True, capture_output=True)
    r = evaluate(read_picks(run / "picks.star"), truth("test"), radius=diameter / 2)
    return {"set": "simulated mTOR", "seed": seed, "labels": str(labels), "auprc": r["auprc"],
            "best_f1": r["best"]["f1"], "train_s": train_s}


def recorded_simulated_rows() -> list[dict]:
    """The random-start rows of the same simulated set, as bench/pu_vs_topaz.py recorded them."""
    runs = json.loads((RESULTS / "pu_vs_topaz.json").read_text())["runs"]
    return [{"set": "simulated mTOR", "seed": r["seed"], "labels": str(r["labels"]), "start": "random",
             "auprc": r["auprc"], "best_f1": r["best_f1"], "train_s": r["train_s"]}
            for r in runs if r["tool"] == "fewpick"]


def table(rows: list[dict]) -> str:
    out = ["AUPRC and best F1: matching radius D/2, test micrographs. Train s: wall time with up to three runs sharing "
           "the two cores (one thread each; the simulated set's command lines two): compare the AUPRC, not the "
           "times (bench/results/real2d.md times the PU picker alone).", "",
           "| set | labels | start | seeds | AUPRC | best F1 | train s |", "|---|---|---|---|---|---|---|"]
    keys = sorted({(r["set"], r["labels"], r["start"]) for r in rows}, key=lambda k: (k[0], k[1], k[2] != "random"))
    for key in keys:
        rs = [r for r in rows if (r["set"], r["labels"], r["start"]) == key]
        out.append(f"| {key[0]} | {key[1]} | {key[2]} | {len(rs)} | {np.mean([r['auprc'] for r in rs]):.3f} | "
                   f"{np.mean([r['best_f1'] for r in rs]):.3f} | {np.mean([r['train_s'] for r in rs]):.0f} |")
    return "\n".join(out)


def save(row: dict, also: list[dict] = ()) -> None:
    """Add ``row`` (and ``also``) to the results, replacing a row of the same set, labels, start and seed; after
    each row, so that a stopped run keeps those done (another run's rows too)."""
    path = RESULTS / f"{NAME}.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    for new in [*also, row]:
        key = (new["set"], new["labels"], new["start"], new["seed"])
        rows = [r for r in rows if (r["set"], r["labels"], r["start"], r["seed"]) != key] + [new]
    write_results(NAME, {"rows": rows}, table(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS_ALL))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--labels", nargs="+", default=["15", "all"])
    ap.add_argument("--starts", nargs="+", default=["random", "general"], choices=["random", "general"])
    ap.add_argument("--model", type=Path, default=GENERAL_MODEL, help="the general model to start from")
    ap.add_argument("--simulated", type=int, nargs="*", metavar="LABELS",
                    help="instead: bench/pu_vs_topaz.py's simulated set with these label counts (the shipped model)")
    args = ap.parse_args()
    if args.simulated is not None:
        for labels in args.simulated:
            for seed in args.seeds:
                row = {**simulated_row(labels, seed), "start": "general"}
                print(json.dumps(row), flush=True)
                save(row, recorded_simulated_rows())
        return
    for labels in args.labels:
        for seed in (args.seeds if labels != "all" else [0]):
            for name in args.sets:
                for start in args.starts:
                    init = args.model if start == "general" else None
                    row = train_rows(name, f"{start} start", {}, seed, labels, init=init)[0]
                    row["start"] = start
                    print(json.dumps({k: row[k] for k in ("set", "labels", "seed", "start", "auprc", "best_f1")}),
                          flush=True)
                    save(row)


if __name__ == "__main__":
    main()
