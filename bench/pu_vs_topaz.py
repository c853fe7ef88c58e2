"""fewpick's PU picker against Topaz 0.3.20 on the same simulated micrographs, labels and binning (CPU, 2 cores).

    bash bench/install_topaz.sh            # Topaz into bench/work/topaz-venv
    .venv/bin/python bench/pu_data.py      # the data (bench/work/pu_sim)
    .venv/bin/python bench/pu_vs_topaz.py [--labels 10 100] [--seeds 0 1 2] [--topaz-updates 300]

For each label count and seed, the same randomly drawn target particles train both pickers; both pick the
held-out test micrographs, keeping every peak, and are scored with `fewpick evaluate` (matching radius =
particle radius). Reported: AUPRC, best F1, training wall time, picking seconds per micrograph including
reading and preprocessing, and peak memory (from /usr/bin/time). Writes bench/results/pu_vs_topaz.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mib_of, write_results  # noqa: E402
from fewpick.evaluate import evaluate  # noqa: E402
from fewpick.io import read_picks, write_picks  # noqa: E402
from fewpick.pickers.pu.data import class_prior  # noqa: E402
from pu_data import (  # noqa: E402
    DATA,
    TARGET,
    expected_per_micrograph,
    target_truth as truth,  # noqa: E402
)

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
TOPAZ = WORK / "topaz-venv" / "bin" / "topaz"
FEWPICK = Path(sys.executable).parent / "fewpick"
EXPECTED = expected_per_micrograph()  # 83 mTOR per training micrograph (830 in 10)


def run_fewpick(labels: pd.DataFrame, run: Path, diameter: float, steps: int) -> dict:
    write_picks(labels, run / "labels.star")
    model = run / "fewpick.pt"
    train_s, train_mib, _ = peak_rss_mib_of([str(FEWPICK), "train", str(DATA / "train"), "--labels", str(run / "labels.star"),
                                             "-d", f"{diameter:.3f}", "-n", str(EXPECTED), "--steps", str(steps),
                                             "--out", str(model)])
    test = sorted((DATA / "test").glob("*.mrc"))
    pick_s, pick_mib, _ = peak_rss_mib_of([str(FEWPICK), "pick", *map(str, test), "--model", str(model), "-t", "-1e9",
                                           "--out", str(run / "fewpick_picks.star")])
    # the per-micrograph figure excludes the one-off start-up (Python, torch import): time it separately
    start_s, _, _ = peak_rss_mib_of([str(FEWPICK), "pick", str(test[0]), "--model", str(model), "-t", "-1e9",
                                     "--out", str(run / "one.star")])
    per_mic = (pick_s - start_s) / (len(test) - 1)
    r = evaluate(read_picks(run / "fewpick_picks.star"), truth("test"), radius=diameter / 2)
    return {"auprc": r["auprc"], "best_f1": r["best"]["f1"], "train_s": train_s, "train_peak_mib": train_mib,
            "pick_s_per_micrograph": per_mic, "pick_peak_mib": pick_mib}


def run_topaz(labels: pd.DataFrame, run: Path, diameter: float, factor: int, updates: int, pi: float) -> dict:
    pre_train, pre_test = WORK / "topaz" / "pre_train", run / "pre_test"
    if not (pre_train.is_dir() and len(list(pre_train.glob("*.mrc"))) == len(list((DATA / "train").glob("*.mrc")))):
        pre_train.mkdir(parents=True, exist_ok=True)
        peak_rss_mib_of([str(TOPAZ), "preprocess", "-s", str(factor), "-d", "-1", "--num-workers", "0", "-o",
                         str(pre_train), *map(str, sorted((DATA / "train").glob("*.mrc")))])
    targets = pd.DataFrame({"image_name": labels.micrograph, "x_coord": (labels.x / factor).round().astype(int),
                            "y_coord": (labels.y / factor).round().astype(int)})
    targets.to_csv(run / "targets.txt", sep="\t", index=False)
    train_s, train_mib, _ = peak_rss_mib_of([str(TOPAZ), "train", "--train-images", str(pre_train), "--train-targets",
                                             str(run / "targets.txt"), "--pi", f"{pi:.6f}", "-r", "3", "--method",
                                             "GE-binomial", "-d", "-1", "-j", "1", "--num-workers", "0", "--num-epochs",
                                             "1", "--epoch-size", str(updates), "--save-prefix", str(run / "topaz"),
                                             "-o", str(run / "topaz_log.txt")])
    test = sorted((DATA / "test").glob("*.mrc"))
    pre_test.mkdir(parents=True, exist_ok=True)
    pre_s, pre_mib, _ = peak_rss_mib_of([str(TOPAZ), "preprocess", "-s", str(factor), "-d", "-1", "--num-workers", "0",
                                         "-o", str(pre_test), *map(str, test)])
    ext_s, ext_mib, _ = peak_rss_mib_of([str(TOPAZ), "extract", "-m", str(run / "topaz_epoch1.sav"), "-r",
                                         str(int(round(diameter / 2 / factor))), "-x", str(factor), "-t", "-1000", "-d",
                                         "-1", "--num-workers", "0", "-o", str(run / "topaz_picks.txt"),
                                         *map(str, sorted(pre_test.glob("*.mrc")))])
    r = evaluate(read_picks(run / "topaz_picks.txt"), truth("test"), radius=diameter / 2)
    return {"auprc": r["auprc"], "best_f1": r["best"]["f1"], "train_s": train_s, "train_peak_mib": train_mib,
            "pick_s_per_micrograph": (pre_s + ext_s) / len(test), "pick_peak_mib": max(pre_mib, ext_mib)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1500, help="fewpick training steps")
    ap.add_argument("--reuse-topaz", action="store_true",
                    help="keep the Topaz rows of bench/results/pu_vs_topaz.json (same data, labels, seeds); rerun fewpick only")
    ap.add_argument("--topaz-updates", type=int, default=300)
    args = ap.parse_args()
    train_truth = truth("train")
    diameter = float(train_truth.diameter_px.iloc[0])
    factor = int(round(diameter / 16))
    import mrcfile

    with mrcfile.open(sorted((DATA / "train").glob("*.mrc"))[0], header_only=True) as m:
        shape = (int(m.header.ny), int(m.header.nx))
    binned = (int(round(shape[0] / factor)), int(round(shape[1] / factor)))
    pi = class_prior(EXPECTED, 3.0, [binned])
    rows = []
    old_topaz = {}
    if args.reuse_topaz:
        import json

        previous = json.loads((HERE / "results" / "pu_vs_topaz.json").read_text())
        old_topaz = {(r["labels"], r["seed"]): r for r in previous["runs"] if r["tool"] == "topaz"}
    for n in args.labels:
        for seed in args.seeds:
            labels = train_truth.sample(n, random_state=seed)
            run = WORK / "pu_vs_topaz" / f"n{n}_s{seed}"
            run.mkdir(parents=True, exist_ok=True)
            t0 = time.time()
            rows.append({"tool": "fewpick", "labels": n, "seed": seed, **run_fewpick(labels, run, diameter, args.steps)})
            if (n, seed) in old_topaz:
                rows.append(old_topaz[(n, seed)])
            else:
                rows.append({"tool": "topaz", "labels": n, "seed": seed,
                             **run_topaz(labels, run, diameter, factor, args.topaz_updates, pi)})
            print(rows[-2], rows[-1], f"{time.time() - t0:.0f} s", flush=True)
    df = pd.DataFrame(rows)
    agg = df.groupby(["labels", "tool"]).agg(["mean", "std"])
    md = [f"Target {TARGET} (particle {diameter:.0f} px, binned ×{factor}), {len(train_truth)} in "
          f"{len(list((DATA / 'train').glob('*.mrc')))} training micrographs of {shape[1]}² px, test "
          f"{len(truth('test'))} in {len(list((DATA / 'test').glob('*.mrc')))}; realistic preset with ribosome, "
          f"CCT, RuvAB, enolase as distractors. π = {pi:.4f} for both (label radius 3 binned px). Budgets: fewpick "
          f"{args.steps} steps, Topaz {args.topaz_updates} updates of 256 crops (GE-binomial, ResNet8, its defaults "
          f"otherwise; `-d -1 -j 1 --num-workers 0`). Mean ± sd over seeds {args.seeds}.", "",
          "| labels | tool | AUPRC | best F1 | train s | pick s / micrograph (read + preprocess + pick) | peak MiB train / pick |",
          "|---|---|---|---|---|---|---|"]
    for (n, tool), r in agg.iterrows():
        md.append(f"| {n} | {tool} | {r[('auprc', 'mean')]:.3f} ± {np.nan_to_num(r[('auprc', 'std')]):.3f} | "
                  f"{r[('best_f1', 'mean')]:.3f} ± {np.nan_to_num(r[('best_f1', 'std')]):.3f} | "
                  f"{r[('train_s', 'mean')]:.0f} | {r[('pick_s_per_micrograph', 'mean')]:.2f} | "
                  f"{r[('train_peak_mib', 'mean')]:.0f} / {r[('pick_peak_mib', 'mean')]:.0f} |")
    write_results("pu_vs_topaz", {"runs": df.to_dict(orient="records"), "pi": pi, "diameter_px": diameter,
                                  "binning": factor}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
