"""Seed 003's table on simulated data: AUPRC by PU loss × number of labels, with and without the autoencoder.

    .venv/bin/python bench/pu_data.py
    .venv/bin/python bench/pu_losses.py [--labels 10 100 1000] [--seeds 0 1 2] [--steps 600]

Same data as bench/pu_vs_topaz.py (realistic preset; target mTOR among distractors) plus the ``extra``
training micrographs, so that 1000 targets exist to be labeled; every label count trains on the same micrographs. For each label count and
seed one random draw of labeled target particles trains every loss (PN, uPU, nnPU, GE-KL, GE-binomial) and
GE-binomial + autoencoder (weight a = N/10, seed 003); AUPRC on the held-out micrographs, all peaks kept.
A label count above the available targets uses them all (noted in the table). Writes
bench/results/pu_losses.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.evaluate import evaluate  # noqa: E402
from fewpick.io import list_images, read_micrograph  # noqa: E402
from fewpick.pickers import pu  # noqa: E402
from pu_data import DATA, TARGET, expected_per_micrograph, target_truth  # noqa: E402

VARIANTS = [("pn", False), ("upu", False), ("nnpu", False), ("ge-kl", False), ("ge-binomial", False),
            ("ge-binomial", True)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--fresh", action="store_true", help="ignore runs recorded by an interrupted invocation")
    args = ap.parse_args()
    # each finished run is appended here, so an interrupted benchmark continues where it stopped
    log = DATA.parent / f"pu_losses_runs_{args.steps}.jsonl"
    done = {} if args.fresh or not log.is_file() else {
        (r["labels"], r["seed"], r["method"], r["autoencoder"]): r for r in map(json.loads, log.read_text().splitlines())}
    train = [read_micrograph(f) for f in list_images([DATA / "train", DATA / "extra"], suffixes=(".mrc",))]
    test = [read_micrograph(f) for f in list_images([DATA / "test"], suffixes=(".mrc",))]
    tt, te = target_truth("train", "extra"), target_truth("test")
    expected = expected_per_micrograph("train", "extra")
    diameter = float(tt.diameter_px.iloc[0])
    rows = []
    for n in args.labels:
        used = min(n, len(tt))
        for seed in args.seeds:
            labels = tt.sample(used, random_state=seed)
            for method, ae in VARIANTS:
                if (n, seed, method, ae) in done:
                    rows.append(done[(n, seed, method, ae)])
                    continue
                t0 = time.time()
                settings = pu.PUSettings(diameter=diameter, expected_particles=expected, steps=args.steps,
                                         method=method, autoencoder=used / 10 if ae else 0.0, seed=seed)
                model = pu.train(train, labels, settings, DATA.parent / "pu_losses.pt")
                r = evaluate(pu.pick_images(model, test, threshold=-1e9), te, radius=diameter / 2)
                rows.append({"labels": n, "labels_used": used, "seed": seed, "method": method, "autoencoder": ae,
                             "auprc": r["auprc"], "best_f1": r["best"]["f1"], "seconds": time.time() - t0})
                print(rows[-1], flush=True)
                with open(log, "a") as fh:
                    fh.write(json.dumps(rows[-1]) + "\n")
    df = pd.DataFrame(rows)
    df["model"] = df.method + np.where(df.autoencoder, " + autoencoder", "")
    agg = df.groupby(["model", "labels"], sort=False)["auprc"].agg(["mean", "std"]).reset_index()
    counts = sorted(df["labels"].unique())
    used = {n: int(df[df["labels"] == n]["labels_used"].iloc[0]) for n in counts}
    md = [f"AUPRC on {len(te)} held-out {TARGET} particles (mean ± sd over seeds {args.seeds}; {args.steps} steps;"
          f" realistic preset, distractors ribosome/CCT/RuvAB/enolase).", "",
          "| model | " + " | ".join(f"{n} labels" + (f" ({used[n]} used)" if used[n] != n else "") for n in counts) + " |",
          "|---|" + "---|" * len(counts)]
    for model in df["model"].unique():
        cells = []
        for n in counts:
            r = agg[(agg.model == model) & (agg["labels"] == n)]
            cells.append(f"{r['mean'].iloc[0]:.3f} ± {np.nan_to_num(r['std'].iloc[0]):.3f}" if len(r) else "-")
        md.append(f"| {model} | " + " | ".join(cells) + " |")
    write_results("pu_losses", {"runs": rows}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
