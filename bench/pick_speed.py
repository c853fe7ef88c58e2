"""How long the PU and few-shot pickers take per 4096 × 4096 micrograph on this machine, reading included.

    .venv/bin/python bench/pick_speed.py [--threads 2] [--repeats 3] [--device cpu] [--models real2d_pu]

1. Trained models: the 15-label PU model of each real set that bench/real2d.py trained (seed 0), on a 4096²
   float32 MRC made by tiling one of that set's test micrographs (the same particles and sampling, a 4096² field),
   picked as ``fewpick pick --threshold -1e9`` picks it (every peak: the slowest case): read the file, bin,
   score, non-maximum suppression. Best of ``--repeats`` after one warm-up; the process's peak memory.
2. Few-shot models: the seed-0 15-exemplar model of each real set (``--fewshot-models``) on the same files, and
   bench/fewshot_vs_topaz.py's seed-0 model on a simulated 4096² micrograph at its own scale; scored once by the
   encoder at every window, once by the fast network trained to follow it, once by the correlation with the
   exemplars' rotational average alone and once by the encoder on the half of the windows the network ranks
   higher (the last three where the model has a fast network), after a warm-up.
3. Network sizes (random weights, on the first set's 4096² file): the default network and binning (particle
   binned to at most 16 px, width 16) against the earlier default (the nearest 16 px, width 24), the same binning
   at width 16 and a coarser binning (the nearest 10 px), for
   particle diameters of 36–108 px, so that the cost of each choice is known beside its accuracy
   (bench/real2d.py --variant).

Writes bench/results/pick_speed.{json,md} (``--out NAME``: bench/results/NAME.{json,md}). On a GPU:
``--device cuda --models real2d_gpu --out pick_speed_gpu`` after bench/gpu_check.sh's real2d run.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from real2d import (
    WORK as REAL2D_WORK,  # noqa: E402
    load_set,  # noqa: E402
)

ROOT = Path(__file__).resolve().parents[1]
BENCH_WORK = ROOT / "bench" / "work"
WORK = BENCH_WORK / "pick_speed"
SETS = ("10059", "10947", "apoferritin_ab")
SIZE = 4096


def tiled_micrograph(set_name: str) -> Path:
    from fewpick.io import read_micrograph, write_mrc

    path = WORK / f"{set_name}_{SIZE}.mrc"
    if not path.is_file():
        rs = load_set(set_name)
        img = np.asarray(read_micrograph(rs.test[0]).data, np.float32)
        reps = (-(-SIZE // img.shape[0]), -(-SIZE // img.shape[1]))
        WORK.mkdir(parents=True, exist_ok=True)
        write_mrc(path, np.tile(img, reps)[:SIZE, :SIZE].copy(), 1.0)
    return path


def time_pick(model, path: Path, repeats: int) -> tuple[float, int]:
    from fewpick.io import read_micrograph
    from fewpick.pickers import pu

    pu.pick_micrograph(model, read_micrograph(path).data, "warm-up", threshold=-1e9)
    best, n = np.inf, 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        picks = pu.pick_micrograph(model, read_micrograph(path).data, path.stem, threshold=-1e9)
        best, n = min(best, time.perf_counter() - t0), len(picks)
    return best, n


def main() -> None:
    import torch

    from fewpick.geometry import choose_binning
    from fewpick.io import read_micrograph
    from fewpick.pickers import fewshot, pu
    from fewpick.pickers.fewshot.fast import MIN_AGREEMENT, NOISE_AGREEMENT

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--models", default="real2d_pu", help="the bench/real2d.py run whose models are timed")
    ap.add_argument("--fewshot-models", default="real2d_fewshot_alone",
                    help="the bench/real2d.py run whose seed-0 few-shot models are timed too (once each)")
    ap.add_argument("--out", default="pick_speed")
    args = ap.parse_args()
    from fewpick.device import device_name, resolve_device

    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    trained, sizes = [], []
    for s in SETS:
        model_file = REAL2D_WORK / args.models / s / "pu_15_s0" / "pu.pt"
        if not model_file.is_file():
            print(f"{s}: no trained model at {model_file} (run bench/real2d.py first); skipped")
            continue
        model = pu.load_model(model_file, device)
        model.settings.threads = args.threads
        sec, n = time_pick(model, tiled_micrograph(s), args.repeats)
        row = {"set": s, "diameter": model.settings.diameter, "factor": model.factor, "width": model.settings.width,
               "seconds": sec, "peaks": n}
        trained.append(row)
        print(row, flush=True)
    peak_pu = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    few = []
    candidates = [(s, REAL2D_WORK / args.fewshot_models / s / "fewshot_15_s0" / "fewshot.pt", tiled_micrograph, s)
                  for s in SETS]
    sim_test = sorted((BENCH_WORK / "pu_sim" / "test").glob("*.mrc"))
    if sim_test:  # a simulated 4096² micrograph at its own scale (a 148 px particle), seed 0's model
        candidates.append(("simulated mTOR", BENCH_WORK / "fewshot_vs_topaz" / "s0" / "fewshot.pt", lambda _: sim_test[0], None))
    for name, model_file, micrograph, real in candidates:
        if not model_file.is_file():
            continue
        model = fewshot.load_model(model_file, device)
        model.settings.threads = args.threads
        path = micrograph(real)
        warm = read_micrograph(load_set(real).test[0]) if real else read_micrograph(path)
        modes = [("encoder", "encoder")] + ([("fast network", "fast"), ("correlation", "correlation"),
                                             ("gated encoder", "gated")] if model.fast_net is not None else [])
        own = model.scoring()
        for mode, how in modes:
            # each way, whatever the model's own choice
            m = replace(model, scoring_override=how)
            fewshot.pick_micrograph(m, warm)  # warm-up
            t0 = time.perf_counter()
            picks = fewshot.pick_micrograph(m, read_micrograph(path))
            row = {"set": name, "diameter": model.settings.diameter, "window_scale": model.settings.scale,
                   "scoring": mode, "agreement": model.fast_info.get("agreement"),
                   "default": how == own,
                   "seconds": time.perf_counter() - t0, "picks": len(picks)}
            few.append(row)
            print(row, flush=True)
    path = tiled_micrograph(SETS[0])
    for d in (36.0, 60.0, 68.0, 108.0):
        nearest = {n: choose_binning(d, n) for n in (10.0, 16.0)}
        for name, change in (("default (binned to at most 16 px, width 16)", {}),
                             ("earlier default (binned to the nearest 16 px, width 24)", {"bin_factor": nearest[16.0], "width": 24}),
                             ("binned to the nearest 16 px, width 16", {"bin_factor": nearest[16.0]}),
                             ("binned to the nearest 10 px, width 16", {"bin_factor": nearest[10.0]})):
            st = pu.PUSettings(diameter=d, min_distance=0.5, threads=args.threads, **change)
            torch.manual_seed(0)
            model = pu.PUModel(net=pu.build_network(st).eval().to(device), settings=st, pi=0.01, pixel_size=1.0)
            sec, n = time_pick(model, path, args.repeats)
            row = {"diameter": d, "network": name, "factor": model.factor, "width": st.width, "seconds": sec, "peaks": n}
            sizes.append(row)
            print(row, flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    md = [f"PU picking of one {SIZE}×{SIZE} float32 MRC, reading included, every peak kept (`--threshold -1e9`), "
          f"{args.threads} threads, network on {device_name(device)}, best of {args.repeats}; peak memory of the process "
          f"after the trained PU models {peak_pu:.0f} MiB, at the end {peak:.0f} MiB.", "",
          "Trained 15-label models of the real sets, on a test micrograph of the set tiled to 4096²:", "",
          "| set | particle px | binning | width | s per micrograph | peaks |", "|---|---|---|---|---|---|"]
    md += [f"| {r['set']} | {r['diameter']:g} | {r['factor']} | {r['width']} | {r['seconds']:.2f} | {r['peaks']} |"
           for r in trained]
    if few:
        md += ["", "Few-shot picker: the seed-0 15-exemplar model of each set on the same 4096² file (and a simulated "
               "4096² micrograph of 148 px particles), its default cut, once after a warm-up, scored by the encoder at "
               "every window, by the fast network trained to follow it, or by the correlation with the exemplars' "
               "rotational average alone (agreement: the correlation of the encoder and the fast network on rows it "
               "was not trained on; the default, in bold, is the fast network where it reaches "
               f"{MIN_AGREEMENT:g}, the correlation alone where it stays below {NOISE_AGREEMENT:g}, else the "
               "encoder on the half of the windows the network ranks higher — the gated encoder):", "",
               "| set | particle px | scoring | agreement | s per micrograph | picks |", "|---|---|---|---|---|---|"]
        for r in few:
            b = "**" if r["default"] else ""
            agree = "-" if r["agreement"] is None else f"{r['agreement']:.2f}"
            md.append(f"| {r['set']} | {r['diameter']:g} | {b}{r['scoring']}{b} | {agree} | {b}{r['seconds']:.2f}{b} "
                      f"| {r['picks']} |")
    md += ["", "Network sizes (random weights; the time hardly depends on the weights but for the number of peaks):", "",
           "| particle px | network | binning | s per micrograph |", "|---|---|---|---|"]
    md += [f"| {r['diameter']:g} | {r['network']} | {r['factor']} | {r['seconds']:.2f} |" for r in sizes]
    write_results(args.out, {"device": device_name(device), "trained": trained, "fewshot": few, "sizes": sizes,
                             "peak_rss_mib_pu": peak_pu, "peak_rss_mib": peak}, "\n".join(md))


if __name__ == "__main__":
    main()
