"""Seed 002's ablations and sensitivity tables for the few-shot picker, on simulated data.

    .venv/bin/python bench/pu_data.py                      # the data, once
    .venv/bin/python bench/fewshot_ablations.py [--seeds 0 1 2]

Data: bench/work/pu_sim (realistic preset; target mTOR among ribosome, CCT, RuvAB, enolase). The encoder is
pre-trained once on the 10 training micrographs (shared by every run that uses pre-training); each seed draws
its exemplars on the reference train_000 (nested: the first m of 25) and fine-tunes; picking is on the 4 test
micrographs at the automatic threshold. Scored like seed 002: box protocol (boxes of the particle diameter,
IoU ≥ 0.5, one-to-one) precision, recall and F1; plus AUPRC (centre distance) of all peaks. Tables:

1. self-cross similarity loss: none / unadjusted / PU-adjusted (Table 3), and the adjusted loss on the features
   of the masked views as seed 002 computes it (fewpick's default uses the whole windows' features);
2. with / without pre-training (Table 4);
3. max / mean matching (Table 5);
4. exemplar count 1, 5, 15, 25 (Table 6; one exemplar is refused by the command line, allowed here);
5. stride window/16, /8, /5, /4 (Table 7; rounded to whole resampled pixels) with seconds per micrograph.

Writes bench/results/fewshot_ablations.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.evaluate import evaluate  # noqa: E402
from fewpick.io import list_images, read_micrograph  # noqa: E402
from fewpick.ops.thresholds import threshold_knn_density  # noqa: E402
from fewpick.pickers import fewshot as fs  # noqa: E402
from fewshot_vs_topaz import REFERENCE, exemplars_for  # noqa: E402
from pu_data import DATA, TARGET, target_truth  # noqa: E402

WORK = Path(__file__).resolve().parent / "work" / "fewshot_ablations"


def score(model: fs.FewShotModel, test_files: list[Path], truth: pd.DataFrame, diameter: float, **kw) -> dict:
    """Pick every peak once per micrograph (timed, reading included); the automatic cut is then applied to the
    same peaks exactly as ``pick_micrograph(..., "auto")`` does."""
    auto, every, seconds = [], [], []
    for f in test_files:
        t0 = time.perf_counter()
        peaks = fs.pick_micrograph(model, read_micrograph(f), -1e9, **kw)
        seconds.append(time.perf_counter() - t0)
        every.append(peaks)
        auto.append(peaks[peaks.score >= threshold_knn_density(peaks.score.to_numpy(), k=5)])
    auto, every = pd.concat(auto, ignore_index=True), pd.concat(every, ignore_index=True)
    box = evaluate(auto, truth, box=diameter)["all_picks"]
    return {"precision": box["precision"], "recall": box["recall"], "f1": box["f1"], "n_picks": box["n_pred"],
            "auprc": evaluate(every, truth, radius=diameter / 2)["auprc"], "pick_s": float(np.mean(seconds))}


def write_tables(rows, seeds, diameter, truth, test_files, train_files, base, pretrain_s):
    df = pd.DataFrame(rows)
    titles = {"scs": "Self-cross similarity loss (seed 002, Table 3)", "pretraining": "Pre-training (Table 4)",
              "matching": "Matching (Table 5)", "exemplars": "Number of exemplars (Table 6)",
              "stride": "Sliding stride (Table 7)"}
    md = [f"Target {TARGET} ({diameter:.0f} px), exemplars on {REFERENCE}, scored on {len(truth)} {TARGET} in "
          f"{len(test_files)} test micrographs (4096² px). Box protocol at the automatic threshold (IoU ≥ 0.5); "
          f"AUPRC of all peaks by centre distance. Mean ± sd over seeds {seeds}. Encoder pre-trained once "
          f"({base.pretrain_steps} steps on {len(train_files)} micrographs, {pretrain_s:.0f} s this run; 0 = reused).", ""]
    for table, title in titles.items():
        sub = df[df.table == table]
        md += [f"**{title}**", "", "| variant | precision | recall | F1 | AUPRC | picks | fine-tune s | pick s / micrograph |",
               "|---|---|---|---|---|---|---|---|"]
        for variant in dict.fromkeys(sub.variant):
            v = sub[sub.variant == variant]
            cell = lambda c, f="{:.3f}": f.format(v[c].mean()) + (" ± " + f.format(v[c].std()) if len(v) > 1 else "")  # noqa: E731
            md.append(f"| {variant} | {cell('precision')} | {cell('recall')} | {cell('f1')} | {cell('auprc')} | "
                      f"{v.n_picks.mean():.0f} | {v.train_s.mean():.0f} | {v.pick_s.mean():.2f} |")
        md.append("")
    write_results("fewshot_ablations", {"pretrain_s": pretrain_s, "runs": rows}, "\n".join(md))
    print("\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--keep", action="store_true",
                    help="add to the runs already in bench/results/fewshot_ablations.json (other seeds)")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    train_files = list_images([DATA / "train"], suffixes=(".mrc",))
    test_files = list_images([DATA / "test"], suffixes=(".mrc",))
    truth = target_truth("test")
    _, diameter = exemplars_for(0)
    base = fs.FewShotSettings(diameter=diameter)
    pre_path = WORK / "encoder.pt"
    t0 = time.time()
    if not pre_path.is_file():
        ims = [read_micrograph(f) for f in train_files]
        net, info = fs.pretrain(ims, base)
        fs.save_pretrained(net, base, info, pre_path)
    pretrain_s = time.time() - t0
    reference = read_micrograph(DATA / "train" / f"{REFERENCE}.mrc")
    stride_of = {k: max(1, int(round(base.size / k))) for k in (16, 8, 5, 4)}
    rows, done_seeds = [], []
    if args.keep:
        import json

        previous = json.loads((Path(__file__).resolve().parent / "results" / "fewshot_ablations.json").read_text())
        rows = [r for r in previous["runs"] if r["seed"] not in args.seeds]
        done_seeds = sorted({r["seed"] for r in rows})

    def record(table, variant, seed, model_s, result):
        rows.append({"table": table, "variant": variant, "seed": seed, "train_s": model_s, **result})
        print(rows[-1], flush=True)

    for seed in args.seeds:
        pool, _ = exemplars_for(seed, 25)

        def train(m=15, pretrained=True, **kw):
            s = replace(base, seed=seed, **kw)
            t = time.time()
            net = fs.load_pretrained(pre_path)[0] if pretrained else None
            model = fs.finetune(reference, pool.iloc[:m], s, net=net, pretrained={"file": str(pre_path)} if pretrained else {},
                                min_exemplars=1)
            return model, time.time() - t

        model, t = train()
        full = score(model, test_files, truth, diameter)
        record("scs", "adjusted", seed, t, full)
        record("pretraining", "with", seed, t, full)
        record("matching", "max", seed, t, full)
        record("exemplars", "15", seed, t, full)
        for k, stride in stride_of.items():
            res = full if stride == base.step() else score(model, test_files, truth, diameter, stride=stride)
            record("stride", f"window/{k} ({stride} px)", seed, t, res)
        record("matching", "mean", seed, t, score(model, test_files, truth, diameter, match="mean"))
        for mode in ("none", "unadjusted"):
            m2, t2 = train(scs=mode)
            record("scs", mode, seed, t2, score(m2, test_files, truth, diameter))
        m2, t2 = train(scs_view="masked")
        record("scs", "adjusted, on masked views (seed 002)", seed, t2, score(m2, test_files, truth, diameter))
        m2, t2 = train(pretrained=False)
        record("pretraining", "without", seed, t2, score(m2, test_files, truth, diameter))
        for m in (1, 5, 25):
            m2, t2 = train(m=m)
            record("exemplars", str(m), seed, t2, score(m2, test_files, truth, diameter))
        # tables after every seed, so a long run leaves results even if it is stopped
        write_tables(rows, done_seeds + args.seeds[: args.seeds.index(seed) + 1], diameter, truth, test_files,
                     train_files, base, pretrain_s)


if __name__ == "__main__":
    main()
