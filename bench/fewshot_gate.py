"""The gated encoder on the simulated benchmark: how large a share of the windows the fast network must let through,
against scoring every window or a coarser stride.

    .venv/bin/python bench/fewshot_gate.py [--run fewshot_vs_topaz] [--seeds 0 1 2]

Models: the few-shot models of ``bench/fewshot_vs_topaz.py`` (mTOR among four other species, 148 px particles on
4096² micrographs; their fast networks' agreements 0.36–0.66, so they pick with the gated encoder). Each picks the
benchmark's test micrographs with the encoder at every window (strides 4, the default, 6 and 8 resampled px) and
with the encoder on the top 30 %, 50 % (the default) and 70 % of the windows as its fast network ranks them. Box
F1 at the automatic cut (each micrograph cut where its scores are sparsest), AUPRC of every pick, seconds per
micrograph (picking, the file already read). Writes bench/results/fewshot_gate.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.io import read_micrograph  # noqa: E402
from fewpick.pickers import fewshot  # noqa: E402
from fewpick.pickers.fewshot import fast as ff  # noqa: E402
from fewshot_fast import measure  # noqa: E402
from pu_data import DATA, target_truth  # noqa: E402

BENCH_WORK = Path(__file__).resolve().parent / "work"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="fewshot_vs_topaz")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tests = [read_micrograph(p) for p in sorted((DATA / "test").glob("*.mrc"))]
    truth = target_truth("test")
    default_share = ff.ENCODER_SHARE
    rows = []
    for seed in args.seeds:
        path = BENCH_WORK / args.run / f"s{seed}" / "fewshot.pt"
        if not path.is_file():
            print(f"seed {seed}: no model at {path}; skipped", flush=True)
            continue
        model = fewshot.load_model(path, "cpu")
        model.settings.threads = args.threads
        ref = read_micrograph(DATA / "train" / f"{model.reference}.mrc")
        variants = [(f"every window, stride {k}", "encoder", k, None) for k in (4, 6, 8)]
        variants += [(f"gated, top {share:.0%}", "gated", None, share) for share in (0.3, 0.5, 0.7)]
        for label, how, stride, share in variants:
            ff.ENCODER_SHARE = share if share is not None else default_share
            try:
                m = replace(model, scoring_override=how, settings=replace(model.settings, stride=stride))
                r = {"seed": seed, "scoring": label, "agreement": model.fast_info.get("agreement"),
                     **measure(m, ref, tests, truth, model.settings.diameter, False)}
            finally:
                ff.ENCODER_SHARE = default_share
            rows.append(r)
            print(r, flush=True)
    labels = list(dict.fromkeys(r["scoring"] for r in rows))
    md = [f"Simulated benchmark, the few-shot models of seeds {args.seeds} (agreements "
          + ", ".join(f"{a:.2f}" for a in dict.fromkeys(r["agreement"] for r in rows))
          + "); mean over the seeds (see the script). The default: gated, top 50 %.", "",
          "| scoring | box F1, automatic cut | AUPRC | s per micrograph |", "|---|---|---|---|"]
    for lab in labels:
        sel = [r for r in rows if r["scoring"] == lab]
        f1 = [r["box_f1"] for r in sel]
        md.append(f"| {lab} | {np.mean(f1):.3f} ± {np.std(f1):.3f} | {np.mean([r['auprc'] for r in sel]):.3f} "
                  f"| {np.mean([r['pick_s'] for r in sel]):.2f} |")
    write_results("fewshot_gate", {"run": args.run, "rows": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
