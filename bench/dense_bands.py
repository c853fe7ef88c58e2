"""How the band height of the 2D dense scoring (fewpick.nn.dense) sets its speed on a CPU: each real set's
15-label PU network (bench/default_threshold.py's, seed 0) and the general model over one 4096² micrograph
(bench/pick_speed.py's tiled test micrograph), binned as the model bins, with bands of fixed heights and with the
default (about :data:`~fewpick.device.CPU_PASS_VALUES` values per activation); best of ``--repeats``, the
heights alternating in one process; the largest difference from 512-row bands (the earlier default).

    .venv/bin/python bench/dense_bands.py [--repeats 5]

Writes bench/results/dense_bands.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import write_results  # noqa: E402

HEIGHTS = (64, 128, 192, 256, 512)


def main() -> None:
    import fewpick.nn.dense as dense
    from fewpick.io import read_micrograph
    from fewpick.pickers import pu
    from fewpick.pickers.pu.general import general_model
    from fewpick.pickers.pu.model import binned_for_network
    from pick_speed import tiled_micrograph

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    default_rows = dense.band_rows
    rows_out = []
    for name in ("10059", "10947", "apoferritin_ab"):
        model = pu.load_model(HERE / "work" / "default_threshold" / name / "pu_s0" / "pu.pt", "cpu")
        binned, _ = binned_for_network(model, read_micrograph(tiled_micrograph(name)).data)
        nets = {"PU network": model.net, "general model": general_model(model.settings.diameter, None, "cpu",
                                                                         a.threads, model.factor).net}
        for what, net in nets.items():
            half = net.receptive_field // 2
            chosen = default_rows(binned.shape[1] + 2 * half, net.width, torch.device("cpu"))
            variants: dict[str, int | None] = {f"{h} rows": h for h in HEIGHTS}
            variants[f"default ({chosen} rows)"] = None
            best = dict.fromkeys(variants, np.inf)
            maps = {}
            for _ in range(a.repeats):
                for label, h in variants.items():
                    dense.band_rows = default_rows if h is None else (lambda w, c, d, h=h: h)
                    t0 = time.perf_counter()
                    maps[label] = dense.dense_logits(net, binned)
                    best[label] = min(best[label], time.perf_counter() - t0)
            dense.band_rows = default_rows
            for label in variants:
                rows_out.append({"set": name, "network": what, "binned": list(binned.shape), "bands": label,
                                 "seconds": best[label],
                                 "max_diff_vs_512": float(np.abs(maps[label] - maps["512 rows"]).max())})
            print({k: round(v, 3) for k, v in best.items()}, name, what, flush=True)
    md = ["Dense scoring of one 4096² micrograph (a test micrograph of the set tiled), binned as the model bins, "
          f"{a.threads} threads, best of {a.repeats}, the band heights alternating in one process:", "",
          "| set | network | binned | bands | s | largest difference from 512-row bands |", "|---|---|---|---|---|---|"]
    md += [f"| {r['set']} | {r['network']} | {'×'.join(map(str, r['binned']))} | {r['bands']} | {r['seconds']:.3f} | "
           f"{r['max_diff_vs_512']:.1e} |" for r in rows_out]
    write_results("dense_bands", {"runs": rows_out}, "\n".join(md))


if __name__ == "__main__":
    main()
