"""Few-shot tomogram localization benchmark (issue 7): globular targets with few labels, against baselines.

    .venv/bin/python bench/tomo_bench.py [--species ribosome cct] [--labels 10 50 200] [--seeds 0 1 2]

Simulates realistic 512×512×200 tomograms (4 species + microtubules): four for training (labels are drawn
from their truth; a model trains on the tomograms its labels fall in) and two held out for testing. For
every species, label count and seed it runs the contract's CLI (``fewpick tomo train`` under /usr/bin/time
for time and peak memory, then ``fewpick tomo pick --threshold auto``) and scores the picks at a matching
radius of half the particle diameter. Baseline: DoG + 3D NMS (the exploration's candidate finder with the
particle's radius) at its best threshold on the test tomograms (an oracle choice).

Writes bench/results/tomo.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mib_of, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work" / "tomo"
FEWPICK = str(Path(sys.executable).parent / "fewpick")
TRAIN_SEEDS, TEST_SEEDS = (21, 22, 23, 24), (25, 26)
KEEP = False


def simulate(seed: int) -> Path:
    from fewpick.io import write_mrc, write_picks
    from fewpick.simulate import simulate_tomogram

    d = WORK / "data"
    name = f"tomo_{seed}"
    if not (d / f"{name}_truth.csv").exists():
        sim = simulate_tomogram("realistic", seed=seed, name=name)
        write_mrc(d / f"{name}.mrc", sim.tomogram, sim.voxel_size)
        truth = sim.truth.copy()
        truth["micrograph"] = name
        write_picks(truth, d / f"{name}_truth.csv")
    return d / f"{name}.mrc"


def truth_of(species: str, seeds) -> pd.DataFrame:
    from fewpick.io import read_picks

    t = pd.concat([read_picks(WORK / "data" / f"tomo_{s}_truth.csv") for s in seeds], ignore_index=True)
    return t[t["species"] == species].reset_index(drop=True)


def score(picks: pd.DataFrame, truth: pd.DataFrame, radius: float) -> dict:
    from fewpick.evaluate import evaluate

    r = evaluate(picks, truth, radius=radius)
    a = r["all_picks"]
    return {"precision": a["precision"], "recall": a["recall"], "f1": a["f1"], "n_pred": a["n_pred"],
            "best_f1": (r["best"] or {}).get("f1", 0.0)}


def run_fewpick(species: str, n: int, seed: int, diameter: float, test_truth: pd.DataFrame) -> dict:
    from fewpick.io import read_picks, write_picks

    pool = truth_of(species, TRAIN_SEEDS)
    rng = np.random.default_rng(1000 * seed + n)
    labels = pool.iloc[np.sort(rng.choice(len(pool), size=min(n, len(pool)), replace=False))]
    tag = f"{species}_{n}_{seed}"
    lab_path = WORK / f"labels_{tag}.star"
    write_picks(labels[["micrograph", "x", "y", "z"]], lab_path)
    tomos = [str(WORK / "data" / f"{m}.mrc") for m in sorted(labels["micrograph"].unique())]
    model = WORK / f"model_{tag}.pt"
    meta = model.with_suffix(".json")
    if KEEP and model.exists() and meta.exists():  # --keep: reuse a model trained by the same code
        train_s, train_mib = json.loads(meta.read_text())
    else:
        train_s, train_mib, _ = peak_rss_mib_of([FEWPICK, "tomo", "train", *tomos, "--labels", str(lab_path),
                                                 "--particle-diameter", f"{diameter:g}", "--out", str(model),
                                                 "--seed", str(seed)])
        meta.write_text(json.dumps([train_s, train_mib]))
    out = WORK / f"picks_{tag}.star"
    tests = [str(WORK / "data" / f"tomo_{s}.mrc") for s in TEST_SEEDS]
    pick_s, pick_mib, _ = peak_rss_mib_of([FEWPICK, "tomo", "pick", *tests, "--model", str(model), "--out", str(out)])
    res = score(read_picks(out), test_truth, diameter / 2)
    print(f"{tag}: F1 {res['f1']:.3f} (P {res['precision']:.3f} R {res['recall']:.3f}), train {train_s:.0f} s "
          f"{train_mib:.0f} MiB, pick {pick_s / len(tests):.1f} s/tomogram {pick_mib:.0f} MiB", flush=True)
    return {"species": species, "labels": n, "seed": seed, "training_tomograms": len(tomos), **res,
            "train_s": train_s, "train_peak_mib": train_mib, "pick_s_per_tomogram": pick_s / len(tests),
            "pick_peak_mib": pick_mib}


def dog_baseline(species: str, diameter: float, test_truth: pd.DataFrame) -> dict:
    from fewpick.explore.candidates import find_candidates
    from fewpick.io import make_picks, read_volume

    tables, t0 = [], time.perf_counter()
    for s in TEST_SEEDS:
        vol = read_volume(WORK / "data" / f"tomo_{s}.mrc")
        xyz, sc = find_candidates(np.asarray(vol.data), diameter / 2, threshold_sd=-1e9)
        tables.append(make_picks(vol.name, xyz[:, 0], xyz[:, 1], xyz[:, 2], score=sc))
    res = score(pd.concat(tables, ignore_index=True), test_truth, diameter / 2)
    return {"species": species, "method": "DoG + NMS (best threshold)", **res,
            "seconds_per_tomogram": (time.perf_counter() - t0) / len(TEST_SEEDS)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--species", nargs="+", default=["ribosome", "cct"])
    ap.add_argument("--labels", type=int, nargs="+", default=[10, 50, 200])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--keep", action="store_true", help="reuse models already trained in bench/work/tomo "
                    "(picking and scoring again; for a change that touches picking only)")
    a = ap.parse_args()
    global KEEP
    KEEP = a.keep
    for s in TRAIN_SEEDS + TEST_SEEDS:
        simulate(s)
    rows, base = [], []
    for sp in a.species:
        test_truth = truth_of(sp, TEST_SEEDS)
        diameter = float(test_truth["diameter_px"].iloc[0])
        base.append(dog_baseline(sp, diameter, test_truth))
        print(f"{sp} DoG baseline: best F1 {base[-1]['best_f1']:.3f}", flush=True)
        for n in a.labels:
            for seed in a.seeds:
                rows.append(run_fewpick(sp, n, seed, diameter, test_truth))
    df = pd.DataFrame(rows)
    md = ["## Globular targets: F1 on two held-out 512×512×200 tomograms (matching radius = particle radius)", "",
          "| species | labels | fewpick F1 (auto threshold) | precision | recall | best-threshold F1 | DoG + NMS F1 "
          "(oracle threshold) | train s | train peak MiB | pick s / tomogram | pick peak MiB |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (sp, n), g in df.groupby(["species", "labels"], sort=False):
        b = next(x for x in base if x["species"] == sp)
        md.append(f"| {sp} | {n} | {g.f1.mean():.3f} ± {g.f1.std(ddof=0):.3f} | {g.precision.mean():.3f} | "
                  f"{g.recall.mean():.3f} | {g.best_f1.mean():.3f} | {b['best_f1']:.3f} | {g.train_s.mean():.0f} | "
                  f"{g.train_peak_mib.max():.0f} | {g.pick_s_per_tomogram.mean():.1f} | {g.pick_peak_mib.max():.0f} |")
    md += ["", f"{len(a.seeds)} seeds ({', '.join(map(str, a.seeds))}): label draws and training seeds; mean ± sd.",
           f"Training tomograms: simulated seeds {TRAIN_SEEDS}; test: {TEST_SEEDS} (realistic preset)."]
    write_results("tomo", {"rows": rows, "baselines": base}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
