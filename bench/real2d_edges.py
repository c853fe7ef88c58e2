"""The PU picker's edge band on the real sets: the models of a bench/real2d.py run picked again with picks near the
micrograph edges kept, dropped within a fixed band, or dropped as the labels ask (the default).

    .venv/bin/python bench/real2d_edges.py [--run real2d_pu] [--sets ...]

No retraining: each run's model (bench/work/real2d/RUN/SET/pu_N_sSEED/pu.pt) picks the set's test micrographs with
every peak kept, its ``edge_margin`` set per row; AUPRC at matching radius D/2. Also reports, per set and labels,
what the labels say: the closest label's distance to the edge and how many labels particles spread evenly would
have put closer. Writes bench/results/real2d_edges.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from real2d import SETS_ALL, WORK, draw_labels, load_set  # noqa: E402

VARIANTS = (("every pick kept", 0.0), ("dropped within a quarter diameter", 0.25),
            ("dropped within half a diameter", 0.5), ("from the labels (default)", None))


def main() -> None:
    from fewpick.evaluate import evaluate
    from fewpick.io import read_micrograph
    from fewpick.pickers import pu

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="real2d_pu")
    ap.add_argument("--sets", nargs="+", default=list(SETS_ALL))
    args = ap.parse_args()
    rows = []
    for name in args.sets:
        rs = load_set(name)
        train = [read_micrograph(p) for p in rs.train]
        test = [read_micrograph(p) for p in rs.test]
        shapes = {im.name: im.shape for im in train}
        for n, seed in (("15", 0), ("15", 1), ("15", 2), ("all", 0)):
            path = WORK / args.run / name / f"pu_{n}_s{seed}" / "pu.pt"
            if not path.is_file():
                continue
            model = pu.load_model(path, "cpu")
            labels = pu.labels_by_micrograph(train, draw_labels(rs, n, seed), None)
            dist = np.concatenate([np.minimum.reduce([t.y, t.x, shapes[m][0] - 1 - t.y, shapes[m][1] - 1 - t.x])
                                   for m, t in labels.items()])
            row = {"set": name, "labels": n, "seed": seed, "closest_label_d": float(dist.min() / rs.diameter),
                   "margin_from_labels": pu.label_edge_margin(labels, shapes, rs.diameter)}
            for label, margin in VARIANTS:
                model.settings.edge_margin = row["margin_from_labels"] if margin is None else margin
                picks = model.pick_images(test, threshold=-1e9)
                row[label] = evaluate(picks, rs.test_truth, radius=rs.diameter / 2)["auprc"]
            rows.append(row)
            print(row, flush=True)
    md = ["Each run's PU model (bench/real2d.py, the run named in the command) picking the test micrographs again "
          "with picks near the edges kept or dropped; AUPRC, matching radius D/2. 'closest label': the training "
          "labels' smallest distance to their micrograph's edge, in particle diameters; 'band from the labels': "
          "what training sets (0 where the empty band is not significant: fewer than 3 labels expected there).", "",
          "| set | labels | seed | closest label (D) | band from the labels (D) | "
          + " | ".join(v for v, _ in VARIANTS) + " |", "|---" * (5 + len(VARIANTS)) + "|"]
    for r in rows:
        md.append(f"| {r['set']} | {r['labels']} | {r['seed']} | {r['closest_label_d']:.2f} | "
                  f"{r['margin_from_labels']:.3f} | " + " | ".join(f"{r[v]:.3f}" for v, _ in VARIANTS) + " |")
    write_results("real2d_edges", {"run": args.run, "rows": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
