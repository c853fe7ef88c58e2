"""How long a tomogram's heat map takes with the network as trained and with its batch normalisation folded
into the convolutions (what fewpick scores with), in one process, alternating, best of ``--repeats``; and how
far the two maps lie apart.

    .venv/bin/python bench/heat_map_speed.py [--models cct_10_0 ribosome_10_0] [--repeats 3]

Uses the models and tomograms bench/tomo_bench.py left in bench/work/tomo (run it first); writes
bench/results/heat_map_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

WORK = Path(__file__).resolve().parent / "work" / "tomo"


def main() -> None:
    from fewpick.io import read_volume
    from fewpick.ops.peaks import nms
    from fewpick.pickers.tomo import load_model, model as tomo_model, prepare

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["cct_10_0", "ribosome_10_0"])
    ap.add_argument("--tomogram", default="tomo_21", help="a tomogram in bench/work/tomo/data")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    folded = tomo_model.inference_copy
    plain = lambda net, build: net  # noqa: E731  # the network as trained (eval mode)
    rows = []
    for name in a.models:
        model = load_model(WORK / f"model_{name}.pt", "cpu")
        v = prepare(np.asarray(read_volume(WORK / "data" / f"{a.tomogram}.mrc").data), model.settings.bin)
        r = model.settings.geometry().radius(minimum=1.0)
        for views in (1, 2):
            best = {"as trained": np.inf, "folded": np.inf}
            maps = {}
            for _ in range(a.repeats):
                for how, copy in (("as trained", plain), ("folded", folded)):
                    tomo_model.inference_copy = copy
                    t0 = time.perf_counter()
                    maps[how] = tomo_model.prepared_heat_map(model.net, v, views=views)
                    best[how] = min(best[how], time.perf_counter() - t0)
            tomo_model.inference_copy = folded
            peaks = {how: nms(m, r, 0.05, footprint="box")[0] for how, m in maps.items()}
            same = len({tuple(map(tuple, p)) for p in peaks.values()}) == 1
            rows.append({"model": name, "shape": list(v.shape), "views": views, "as_trained_s": best["as trained"],
                         "folded_s": best["folded"], "max_abs_diff": float(np.abs(maps["folded"] - maps["as trained"]).max()),
                         "peaks": len(peaks["folded"]), "same_peaks": same})
            print(rows[-1], flush=True)
    md = [f"Heat map of one prepared training tomogram ({a.tomogram}, binned as each model bins), {a.threads} threads, "
          f"best of {a.repeats}, the two networks alternating in one process; peaks: 3D suppression at the "
          "particle radius above 0.05, as picking does.", "",
          "| model | binned volume | views | as trained s | folded s | speed-up | largest difference | peaks | same peaks |",
          "|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['model']} | {'×'.join(map(str, r['shape']))} | {r['views']} | {r['as_trained_s']:.2f} | "
           f"{r['folded_s']:.2f} | {r['as_trained_s'] / r['folded_s']:.2f}× | {r['max_abs_diff']:.1e} | {r['peaks']} | "
           f"{'yes' if r['same_peaks'] else 'no'} |" for r in rows]
    write_results("heat_map_speed", {"runs": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
