"""Few-shot picking at coarser window strides: what speed costs in accuracy on the real sets.

    .venv/bin/python bench/fewshot_stride.py [--run real2d_fewshot_alone] [--strides 6 8]

No retraining: each set's seed-0 few-shot model of a bench/real2d.py run (bench/work/real2d/RUN/SET/fewshot_15_s0)
picks the set's test micrographs with the sliding windows every 4 resampled px (the default: a sixth of the
window) and at the coarser strides given; box F1 (boxes of D, IoU ≥ 0.5) at the model's calibrated cut, AUPRC
(matching radius D/2) of every peak, and seconds per test micrograph (reading included, 2 threads).
Writes bench/results/fewshot_stride.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from real2d import SETS_ALL, WORK, load_set  # noqa: E402


def main() -> None:
    from fewpick.evaluate import evaluate
    from fewpick.io import read_micrograph
    from fewpick.pickers import fewshot

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="real2d_fewshot_alone")
    ap.add_argument("--sets", nargs="+", default=list(SETS_ALL))
    ap.add_argument("--strides", type=int, nargs="+", default=[6, 8])
    args = ap.parse_args()
    rows = []
    for name in args.sets:
        rs = load_set(name)
        model = fewshot.load_model(WORK / args.run / name / "fewshot_15_s0" / "fewshot.pt", "cpu")
        for stride in (model.settings.step(), *args.strides):
            t0 = time.perf_counter()
            auto = fewshot.pick_images(model, [read_micrograph(p) for p in rs.test], stride=stride)
            seconds = (time.perf_counter() - t0) / len(rs.test)
            every = fewshot.pick_images(model, [read_micrograph(p) for p in rs.test], -1e9, stride=stride)
            row = {"set": name, "stride": stride, "default": stride == model.settings.step(),
                   "box_f1": evaluate(auto, rs.test_truth, box=rs.diameter)["all_picks"]["f1"],
                   "auprc": evaluate(every, rs.test_truth, radius=rs.diameter / 2)["auprc"],
                   "s_per_micrograph": seconds, "micrograph_px": list(read_micrograph(rs.test[0]).shape)}
            rows.append(row)
            print(row, flush=True)
    md = ["Seed-0 few-shot models (15 exemplars) of the bench/real2d.py run named in the command, picking the test "
          "micrographs with the sliding windows at each stride (resampled px; the window is 24). Box F1 at the "
          "model's calibrated cut; AUPRC of every peak.", "",
          "| set | stride | box F1 | AUPRC | s per test micrograph (size) |", "|---|---|---|---|---|"]
    md += [f"| {r['set']} | {r['stride']}{' (default)' if r['default'] else ''} | {r['box_f1']:.3f} | {r['auprc']:.3f} | "
           f"{r['s_per_micrograph']:.2f} ({r['micrograph_px'][1]}×{r['micrograph_px'][0]}) |" for r in rows]
    write_results("fewshot_stride", {"run": args.run, "rows": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
