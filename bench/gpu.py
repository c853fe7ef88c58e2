"""The pickers on the CPU and on a GPU in one run: seconds, and how far the picks agree.

    .venv/bin/python bench/gpu.py                       # CPU against the first CUDA GPU (needs one)
    .venv/bin/python bench/gpu.py --devices cpu cpu     # on a machine without one: the CPU against itself

Simulates a set of realistic micrographs (one target species among distractors, exact truth), then with the
same labels and seeds, on each device in turn:

- PU picker: trains (``pu.train``), picks the test micrographs (reading, binning and peak finding included),
  scores AUPRC at half the diameter;
- few-shot picker: pre-trains and fine-tunes on one reference micrograph, picks, scores box F1 at its
  automatic threshold.

Agreement: the model trained on the first device picks again on the second (same weights: only the
arithmetic differs) in full precision (the default) and in mixed precision (bfloat16 on a GPU); reported as
the largest score difference and the F1 of one-to-one matching of the picks above the model's threshold within
a tenth of the diameter. The models trained on either device are compared the same way (their training
drifts apart by rounding, so they agree less; their AUPRC is what counts).

Writes bench/results/gpu.{json,md} (or --out NAME).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.device import device_name, resolve_device  # noqa: E402
from fewpick.evaluate import evaluate  # noqa: E402
from fewpick.io import read_micrograph, read_picks  # noqa: E402
from fewpick.pickers import fewshot, pu  # noqa: E402
from fewpick.simulate import write_micrographs  # noqa: E402

HERE = Path(__file__).resolve().parent
SPECIES = ("mtor", "ribosome", "cct", "ruvab", "enolase")
WEIGHTS = (0.4, 0.15, 0.15, 0.15, 0.15)
TARGET = "mtor"


def _simulate_one(folder: Path, size: int, split: str, seed: int, i: int) -> None:
    write_micrographs(folder / f"{i:03d}", 1, size, "realistic", seed * 1000 + i, species=SPECIES, weights=WEIGHTS,
                      prefix=f"{split}{i:03d}")


def simulate(work: Path, size: int, n_train: int, n_test: int) -> tuple[list, list, pd.DataFrame, pd.DataFrame]:
    """Each micrograph in its own process (a 4096² micrograph takes tens of seconds on one core)."""
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(work / f"sim{size}" / split, size, split, seed, i)
            for split, count, seed in (("train", n_train, 1001), ("test", n_test, 2002)) for i in range(count)]
    todo = [j for j in jobs if not (j[0] / f"{j[3]:03d}" / "simulation.json").is_file()]
    if todo:
        with ProcessPoolExecutor(min(len(todo), os.cpu_count() or 1)) as pool:
            list(pool.map(_simulate_one, *zip(*todo)))
    out = {}
    for split in ("train", "test"):
        folder = work / f"sim{size}" / split
        truth = pd.concat([read_picks(f) for f in sorted(folder.glob(f"{split}*_truth.star"))]
                          + [read_picks(f) for f in sorted(folder.glob(f"*/{split}*_truth.star"))], ignore_index=True)
        images = [read_micrograph(p) for p in sorted(folder.glob(f"*/{split}*.mrc"))]
        out[split] = (images, truth[truth.species == TARGET].reset_index(drop=True))
    return out["train"][0], out["test"][0], out["train"][1], out["test"][1]


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def agreement(a: pd.DataFrame, b: pd.DataFrame, radius: float) -> float:
    """F1 of one-to-one matching of two pick sets within ``radius`` (1 = the same picks)."""
    if not len(a) and not len(b):
        return 1.0
    if not len(a) or not len(b):
        return 0.0
    return float(evaluate(b, a, radius=radius)["all_picks"]["f1"])


def score_gap(a: pd.DataFrame, b: pd.DataFrame, radius: float) -> float:
    """Largest score difference between picks of ``a`` and ``b`` at (nearly) the same place."""
    from scipy.spatial import cKDTree

    gaps = []
    for name, pa in a.groupby("micrograph"):
        pb = b[b.micrograph == name]
        if not len(pb):
            continue
        d, i = cKDTree(pb[["x", "y"]].to_numpy()).query(pa[["x", "y"]].to_numpy())
        near = d <= radius
        gaps.append(np.abs(pa.score.to_numpy()[near] - pb.score.to_numpy()[i[near]]))
    return float(np.concatenate(gaps).max()) if gaps and sum(map(len, gaps)) else float("nan")


def timed_pick(pick_one, files: list[Path], dev: torch.device) -> tuple[pd.DataFrame, float]:
    """Picks of every file (read from disk each time) and the seconds per micrograph; one warm-up first."""
    pick_one(read_micrograph(files[0]))
    sync(dev)
    t0 = time.perf_counter()
    tables = [pick_one(read_micrograph(f)) for f in files]
    sync(dev)
    return pd.concat(tables, ignore_index=True), (time.perf_counter() - t0) / len(files)


def above(picks: pd.DataFrame, cut: float) -> pd.DataFrame:
    return picks[picks.score >= cut].reset_index(drop=True)


def record(rows: list, models: dict, picks: dict, row: dict, model, p: pd.DataFrame) -> None:
    rows.append(row)
    key = f"{row['device']}#{len(models)}"
    models[key], picks[key] = model, p
    print(row, flush=True)


def same_model(model, pick_one, reference: pd.DataFrame, cut: float, diameter: float, test_files, test_truth,
               dev: torch.device, what: str) -> dict:
    """The first device's model picking on the second device, in full and in mixed precision, against the
    first device's picks ``reference``."""
    out, r = {}, diameter / 10
    for amp in (False, True):
        model.mixed_precision = amp
        p, s = timed_pick(pick_one, test_files, dev)
        key = f"same_model_{'mixed' if amp else 'full'}"
        out[key] = {"agreement_f1": agreement(above(reference, cut), above(p, cut), r),
                    "max_score_diff": score_gap(above(reference, cut), above(p, cut), r),
                    "auprc": evaluate(p, test_truth, radius=diameter / 2)["auprc"], "pick_s_per_micrograph": s}
        print(f"{what} same model on {dev} ({'mixed' if amp else 'full'} precision):", out[key], flush=True)
    return out


def run_pu(args, devices, train_ims, test_files, labels, train_truth, test_truth, work) -> dict:
    diameter = float(labels.diameter_px.iloc[0])
    expected = len(train_truth) / len(train_ims)
    rows, models, picks = [], {}, {}
    for dev in devices:
        settings = pu.PUSettings(diameter=diameter, expected_particles=expected, steps=args.pu_steps,
                                 seed=0, threads=args.threads)
        sync(dev)
        t0 = time.perf_counter()
        model = pu.train(train_ims, labels, settings, work / f"pu_{dev.type}.pt", device=dev)
        sync(dev)
        train_s = time.perf_counter() - t0
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        p, pick_s = timed_pick(lambda im: pu.pick_micrograph(model, im.data, im.name, threshold=-1e9), test_files, dev)
        row = {"picker": "PU", "device": device_name(dev), "train_s": train_s, "train_steps_per_s": args.pu_steps / train_s,
               "pick_s_per_micrograph": pick_s, "auprc": evaluate(p, test_truth, radius=diameter / 2)["auprc"],
               "picks_above_threshold": int((p.score >= model.threshold).sum())}
        if dev.type == "cuda":
            row["gpu_peak_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
        record(rows, models, picks, row, model, p)
    (k0, m0), (k1, m1) = list(models.items())[:2]
    r = diameter / 10
    cut, cut1 = m0.threshold, m1.threshold
    if not (picks[k0].score >= cut).any():  # briefly trained models (a test): compare the better half of the picks
        cut = cut1 = float(picks[k0].score.median())
    out = {"rows": rows}
    same = pu.load_model(work / f"pu_{devices[0].type}.pt", devices[1])
    same.settings.threads = args.threads  # a run-time knob: not stored in the model file
    out.update(same_model(same, lambda im: pu.pick_micrograph(same, im.data, im.name, threshold=-1e9), picks[k0], cut,
                          diameter, test_files, test_truth, devices[1], "PU"))
    out["trained_apart"] = {"agreement_f1": agreement(above(picks[k0], cut), above(picks[k1], cut1), r)}
    return out


def run_fewshot(args, devices, train_ims, test_files, train_truth, test_truth, work) -> dict:
    diameter = float(train_truth.diameter_px.iloc[0])
    reference = train_ims[0]
    h, w = reference.shape
    m = 0.7 * diameter  # the exemplar's window (1.2 diameters) must fit inside the micrograph
    on_ref = train_truth[(train_truth.micrograph == reference.name) & train_truth.x.between(m, w - 1 - m)
                         & train_truth.y.between(m, h - 1 - m)]
    ex = on_ref.sample(min(15, len(on_ref)), random_state=0)
    expected = len(train_truth) / len(train_ims)
    rows, models, picks = [], {}, {}
    for dev in devices:
        settings = fewshot.FewShotSettings(diameter=diameter, pretrain_steps=args.fewshot_pretrain_steps,
                                           finetune_steps=args.fewshot_steps, distill_steps=args.fewshot_distill_steps,
                                           expected_particles=expected, seed=0,
                                           train_threads=args.threads, threads=args.threads)
        sync(dev)
        t0 = time.perf_counter()
        model = fewshot.train(reference, ex, settings, work / f"fewshot_{dev.type}.pt", pretrain_images=train_ims,
                              device=dev)
        sync(dev)
        train_s = time.perf_counter() - t0
        p, pick_s = timed_pick(lambda im: fewshot.pick_micrograph(model, im, threshold=-1e9), test_files, dev)
        auto = pd.concat([fewshot.pick_micrograph(model, read_micrograph(f)) for f in test_files], ignore_index=True)
        row = {"picker": "few-shot", "device": device_name(dev), "train_s": train_s,
               "pick_s_per_micrograph": pick_s, "auprc": evaluate(p, test_truth, radius=diameter / 2)["auprc"],
               "box_f1_auto": evaluate(auto, test_truth, box=diameter)["all_picks"]["f1"]}
        record(rows, models, picks, row, model, p)
    (k0, m0), (k1, m1) = list(models.items())[:2]
    r = diameter / 10
    # the picks the first model's automatic threshold keeps on each micrograph
    cut = float(np.median([fewshot.pick_micrograph(m0, read_micrograph(f)).score.min() for f in test_files]))
    out = {"rows": rows}
    same = fewshot.load_model(work / f"fewshot_{devices[0].type}.pt", devices[1])
    same.settings.threads = args.threads
    out.update(same_model(same, lambda im: fewshot.pick_micrograph(same, im, threshold=-1e9), picks[k0], cut,
                          diameter, test_files, test_truth, devices[1], "few-shot"))
    out["trained_apart"] = {"agreement_f1": agreement(above(picks[k0], cut), above(picks[k1], cut), r)}
    return out


def table(name: str, res: dict, devices) -> list[str]:
    md = [f"**{name}**", "", "| device | train s | pick s / micrograph | AUPRC | box F1 (auto) |", "|---|---|---|---|---|"]
    for r in res["rows"]:
        md.append(f"| {r['device']} | {r['train_s']:.1f} | {r['pick_s_per_micrograph']:.3f} | {r['auprc']:.3f} | "
                  f"{r.get('box_f1_auto', float('nan')):.3f} |")
    md += ["", f"| model trained on {devices[0]}, picking on {devices[1]} | picks agree (F1) | largest score "
           "difference | AUPRC | pick s / micrograph |", "|---|---|---|---|---|"]
    for k in ("same_model_full", "same_model_mixed"):
        a = res[k]
        md.append(f"| {'full precision' if k.endswith('full') else 'mixed precision (bf16 on a GPU)'} | "
                  f"{a['agreement_f1']:.4f} | {a['max_score_diff']:.2g} | {a['auprc']:.3f} | "
                  f"{a['pick_s_per_micrograph']:.3f} |")
    md += ["", f"Models trained apart on the two devices: picks agree F1 {res['trained_apart']['agreement_f1']:.3f}.", ""]
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", nargs=2, default=["cpu", "cuda"], help="the two devices compared")
    ap.add_argument("--size", type=int, default=4096, help="micrograph side, px")
    ap.add_argument("--train", type=int, default=4, help="training micrographs")
    ap.add_argument("--test", type=int, default=4, help="test micrographs")
    ap.add_argument("--labels", type=int, default=30, help="labeled target particles")
    ap.add_argument("--pu-steps", type=int, default=1500)
    ap.add_argument("--fewshot-pretrain-steps", type=int, default=1000)
    ap.add_argument("--fewshot-steps", type=int, default=1000)
    ap.add_argument("--fewshot-distill-steps", type=int, default=600, help="steps of the fast scoring network")
    ap.add_argument("--pickers", nargs="+", default=["pu", "fewshot"], choices=["pu", "fewshot"])
    ap.add_argument("--threads", type=int, default=min(16, os.cpu_count() or 1), help="CPU threads for torch")
    ap.add_argument("--work", type=Path, default=HERE / "work" / "gpu")
    ap.add_argument("--out", default="gpu", help="results name in bench/results")
    ap.add_argument("--results", type=Path, default=None, help="results folder (default bench/results)")
    args = ap.parse_args()
    devices = [resolve_device(d) for d in args.devices]
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_ims, test_ims, train_truth, test_truth = simulate(args.work, args.size, args.train, args.test)
    sim_s = time.perf_counter() - t0
    test_files = [Path(im.path) for im in test_ims]
    labels = train_truth.sample(min(args.labels, len(train_truth)), random_state=0)
    print(f"simulated {args.train}+{args.test} micrographs of {args.size}² in {sim_s:.0f} s; "
          f"{len(labels)} labels, {len(test_truth)} test particles", flush=True)
    results = {"devices": [device_name(d) for d in devices], "torch": torch.__version__, "threads": args.threads,
               "size": args.size, "train": args.train, "test": args.test, "labels": len(labels),
               "pu_steps": args.pu_steps, "fewshot_pretrain_steps": args.fewshot_pretrain_steps,
               "fewshot_steps": args.fewshot_steps}
    md = [f"Devices: {results['devices'][0]} against {results['devices'][1]}; torch {torch.__version__}, "
          f"{args.threads} CPU threads. {args.train} training and {args.test} test micrographs of {args.size}² px "
          f"(realistic preset, target {TARGET} among 4 distractors), {len(labels)} labels; PU {args.pu_steps} steps, "
          f"few-shot {args.fewshot_pretrain_steps} pre-training + {args.fewshot_steps} fine-tuning steps. Pick "
          "seconds include reading and preprocessing; picks agree = F1 of one-to-one matching within D/10 of the "
          "picks above the first model's threshold.", ""]
    if "pu" in args.pickers:
        results["pu"] = run_pu(args, devices, train_ims, test_files, labels, train_truth, test_truth, args.work)
        md += table("PU picker", results["pu"], args.devices)
        write_results(args.out, results, "\n".join(md), folder=args.results)  # kept if the few-shot run is cut
    if "fewshot" in args.pickers:
        results["fewshot"] = run_fewshot(args, devices, train_ims, test_files, train_truth, test_truth, args.work)
        md += table("Few-shot picker", results["fewshot"], args.devices)
    write_results(args.out, results, "\n".join(md), folder=args.results)
    print("\n".join(md))


if __name__ == "__main__":
    main()
