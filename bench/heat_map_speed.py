"""How long a tomogram's heat map takes with the network as trained, with its batch normalisation folded into
the convolutions, and folded and run on a few slices at a time (what fewpick scores with), in one process,
alternating, best of ``--repeats``; and how far the maps lie apart.

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
    from fewpick.nn.unet import SliceUNet3D
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
    per_pass = SliceUNet3D.pass_slices

    def plain(net, build):  # the network as trained (eval mode)
        return net

    def whole(self, h, w):  # every slice of a block in one pass
        return 1 << 30

    ways = {"as trained": (plain, whole), "folded": (folded, whole), "folded, few slices a pass": (folded, per_pass)}
    rows = []
    for name in a.models:
        model = load_model(WORK / f"model_{name}.pt", "cpu")
        v = prepare(np.asarray(read_volume(WORK / "data" / f"{a.tomogram}.mrc").data), model.settings.bin)
        r = model.settings.geometry().radius(minimum=1.0)
        for views in (1, 2):
            best = dict.fromkeys(ways, np.inf)
            maps = {}
            for _ in range(a.repeats):
                for how, (copy, slices) in ways.items():
                    tomo_model.inference_copy, SliceUNet3D.pass_slices = copy, slices
                    t0 = time.perf_counter()
                    maps[how] = tomo_model.prepared_heat_map(model.net, v, views=views)
                    best[how] = min(best[how], time.perf_counter() - t0)
            tomo_model.inference_copy, SliceUNet3D.pass_slices = folded, per_pass
            peaks = {how: nms(m, r, 0.05, footprint="box")[0] for how, m in maps.items()}
            same = len({tuple(map(tuple, p)) for p in peaks.values()}) == 1
            rows.append({"model": name, "shape": list(v.shape), "views": views,
                         "seconds": {how: best[how] for how in ways},
                         "max_abs_diff": max(float(np.abs(m - maps["as trained"]).max()) for m in maps.values()),
                         "peaks": len(peaks["as trained"]), "same_peaks": same})
            print(rows[-1], flush=True)
    md = [f"Heat map of one prepared training tomogram ({a.tomogram}, binned as each model bins), {a.threads} threads, "
          f"best of {a.repeats}, the ways alternating in one process; peaks: 3D suppression at the particle radius "
          "above 0.05, as picking does; the largest difference of any map from the network as trained.", "",
          "| model | binned volume | views | " + " s | ".join(ways) + " s | speed-up | largest difference | peaks | "
          "same peaks |", "|---|---|---|" + "---|" * len(ways) + "---|---|---|---|"]
    for r in rows:
        sec = r["seconds"]
        md.append(f"| {r['model']} | {'×'.join(map(str, r['shape']))} | {r['views']} | "
                  + " | ".join(f"{sec[how]:.2f}" for how in ways)
                  + f" | {sec['as trained'] / sec['folded, few slices a pass']:.2f}× | {r['max_abs_diff']:.1e} | "
                  f"{r['peaks']} | {'yes' if r['same_peaks'] else 'no'} |")
    write_results("heat_map_speed", {"runs": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
