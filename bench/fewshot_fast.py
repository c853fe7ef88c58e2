"""The few-shot picker's fast scoring network against the encoder it learns from, on every real set and on
simulated data.

    .venv/bin/python bench/fewshot_fast.py [--run real2d_fewshot] [--sim-run fewshot_vs_topaz]

Models: each real set's seed-0 15-exemplar model trained by ``bench/real2d.py --out RUN`` and seed 0 of
``bench/fewshot_vs_topaz.py`` (simulated mTOR among four other species, 148 px particles on 4096² micrographs);
each holds its fast network (trained at the end of ``fewpick fewshot train``) and its agreement with the encoder
(correlation of their scores on rows of the training micrographs it was not trained on), from which the model
chose how it picks. The test micrographs are picked four ways, whatever that choice:

- ``encoder``: the encoder scores every window (``fewshot pick --exact``);
- ``fast network``: the fast network scores every pixel of the binned micrograph;
- ``correlation``: the correlation with the exemplars' rotational average read at the windows' centres, without
  the encoder (``fewshot_fast.chosen_scoring``: what a model picks with when its fast network's agreement stays
  below ``NOISE_AGREEMENT``);
- ``gated encoder``: the encoder on the windows the fast network ranks in the top ``ENCODER_SHARE`` (what a model
  picks with when the agreement lies between the two bars).

Box F1 at the picker's own cut (calibrated on the reference with the expected count; the simulated run, trained
without a count, cuts each micrograph where its scores are sparsest), AUPRC of every pick (centre within D/2),
seconds per test micrograph (picking, reading included, one process). Writes
bench/results/fewshot_fast.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.evaluate import evaluate  # noqa: E402
from fewpick.io import read_micrograph  # noqa: E402
from fewpick.pickers import fewshot  # noqa: E402
from fewpick.pickers.fewshot.fast import MIN_AGREEMENT, NOISE_AGREEMENT  # noqa: E402
from real2d import SETS_ALL, WORK, load_set  # noqa: E402

BENCH_WORK = Path(__file__).resolve().parent / "work"


def measure(model: fewshot.FewShotModel, reference, tests, truth: pd.DataFrame, diameter: float,
            calibrate: bool) -> dict:
    model.threshold = fewshot.calibrate_threshold(model, [reference]) if calibrate else None
    t0 = time.perf_counter()
    auto = pd.concat([fewshot.pick_micrograph(model, im) for im in tests], ignore_index=True)
    seconds = (time.perf_counter() - t0) / len(tests)
    every = pd.concat([fewshot.pick_micrograph(model, im, -1e9) for im in tests], ignore_index=True)
    box = evaluate(auto, truth, box=diameter)["all_picks"]
    return {"box_f1": box["f1"], "box_precision": box["precision"], "box_recall": box["recall"], "n_auto": box["n_pred"],
            "auprc": evaluate(every, truth, radius=diameter / 2)["auprc"], "pick_s": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="real2d_fewshot", help="the bench/real2d.py run whose seed-0 models are measured")
    ap.add_argument("--sim-run", default="fewshot_vs_topaz", help="bench/work folder of bench/fewshot_vs_topaz.py")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    jobs = []
    for s in SETS_ALL:
        path = WORK / args.run / s / "fewshot_15_s0" / "fewshot.pt"
        if path.is_file():
            rs = load_set(s)
            jobs.append((s, path, lambda rs=rs: (read_micrograph(rs.reference), [read_micrograph(p) for p in rs.test],
                                                 rs.test_truth, rs.diameter, True)))
    sim_model = BENCH_WORK / args.sim_run / "s0" / "fewshot.pt"
    if sim_model.is_file():
        from pu_data import DATA, target_truth

        def sim_inputs():
            m = fewshot.load_model(sim_model, "cpu")
            ref = read_micrograph(DATA / "train" / f"{m.reference}.mrc")
            return (ref, [read_micrograph(p) for p in sorted((DATA / "test").glob("*.mrc"))], target_truth("test"),
                    m.settings.diameter, False)

        jobs.append(("simulated mTOR", sim_model, sim_inputs))
    rows = []
    for name, path, inputs in jobs:
        model = fewshot.load_model(path, "cpu")
        model.settings.threads = args.threads
        if model.fast_net is None:
            print(f"{name}: {path} has no fast network (trained before it existed); skipped")
            continue
        reference, tests, truth, diameter, calibrate = inputs()
        info = model.fast_info
        own = model.scoring()
        variants = [("encoder", "encoder"), ("fast network", "fast"), ("correlation", "correlation"),
                    ("gated encoder", "gated")]
        for scoring, how in variants:
            m = replace(model, scoring_override=how)
            r = {"set": name, "scoring": scoring, "agreement": info["agreement"], "default": how == own,
                 "factor": info["factor"],
                **measure(m, reference, tests, truth, diameter, calibrate)}
            rows.append(r)
            print(r, flush=True)
    md = ["Each set's seed-0 few-shot model picks its test micrographs four ways (see the script); the model's "
          f"own choice in bold (the fast network where its agreement reaches {MIN_AGREEMENT:g}, the correlation alone where "
          f"it stays below {NOISE_AGREEMENT:g}, else the gated encoder).", "",
          "| set | agreement | scoring | box F1, own cut | picks | AUPRC | s per micrograph |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        b = "**" if r["default"] else ""
        md.append(f"| {r['set']} | {r['agreement']:.2f} | {b}{r['scoring']}{b} | {b}{r['box_f1']:.3f}{b} | {r['n_auto']} "
                  f"| {r['auprc']:.3f} | {r['pick_s']:.2f} |")
    write_results("fewshot_fast", {"run": args.run, "sim_run": args.sim_run, "rows": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
