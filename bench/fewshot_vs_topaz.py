"""Few-shot picker side by side with the PU picker and Topaz, all from the same 15 labels (seed 002's setting).

    bash bench/install_topaz.sh; .venv/bin/python bench/pu_data.py      # Topaz and the data, once
    .venv/bin/python bench/fewshot_vs_topaz.py [--seeds 0 1 2] [--tools fewshot --keep] [--repick [--refit]]

Data: bench/work/pu_sim (realistic preset, target mTOR among ribosome, CCT, RuvAB and enolase). For each seed,
15 target particles are drawn on the reference micrograph train_000 (at least half a window from its edges):

- fewpick few-shot: `fewpick fewshot train train_000.mrc --exemplars … --pretrain-images train/` (pre-training on
  the 10 training micrographs + fine-tuning, timed together), then `fewpick fewshot pick test/` at its default
  threshold (no count given: the general particle model's count, or the gap in its own scores near it);
- fewpick PU picker: `fewpick train train/ --labels …` (the 15 labels; the other micrographs unlabeled), then
  `fewpick pick test/` at its default threshold (the cut it makes when given none: the expected count on the
  test micrographs, or the gap between two groups of their scores near it);
- Topaz 0.3.20: as in bench/pu_vs_topaz.py (GE-binomial, same binning), picks at its best threshold.

All are scored on the 4 test micrographs with the box protocol of seed 002 (boxes of the particle diameter,
IoU ≥ 0.5, one-to-one); AUPRC and best F1 with the centre-distance protocol are given too. Picking time per
4096² micrograph includes reading and preprocessing (process start-up excluded). Writes
bench/results/fewshot_vs_topaz.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mib_of, refit_fewshot, write_results  # noqa: E402
from fewpick.evaluate import duplicates, evaluate  # noqa: E402
from fewpick.io import read_picks, write_picks  # noqa: E402
from fewpick.pickers.fewshot.settings import FewShotSettings  # noqa: E402
from fewpick.pickers.pu.data import class_prior  # noqa: E402
from pu_data import DATA, TARGET, expected_per_micrograph, target_truth  # noqa: E402
from pu_vs_topaz import WORK, run_topaz  # noqa: E402

FEWPICK = Path(sys.executable).parent / "fewpick"
REFERENCE = "train_000"
N_LABELS = 15


def exemplars_for(seed: int, count: int = N_LABELS) -> tuple[pd.DataFrame, float]:
    tt = target_truth("train")
    diameter = float(tt.diameter_px.iloc[0])
    half = FewShotSettings(diameter=diameter).window / 2 + 2
    import mrcfile

    with mrcfile.open(DATA / "train" / f"{REFERENCE}.mrc", header_only=True) as m:
        h, w = int(m.header.ny), int(m.header.nx)
    ref = tt[(tt.micrograph == REFERENCE) & (tt.x > half) & (tt.y > half) & (tt.x < w - half) & (tt.y < h - half)]
    return ref.sample(count, random_state=seed).reset_index(drop=True), diameter


def scores(picks: pd.DataFrame, truth: pd.DataFrame, diameter: float, threshold: float | None) -> dict:
    """Box-protocol P/R/F1 at ``threshold`` (None: the picks as written) and best; centre-distance AUPRC/best F1;
    the share of the picks that are a second (or later) pick within D/2 of one true particle."""
    box = evaluate(picks, truth, box=diameter, threshold=threshold)
    at = box["at_threshold"] if threshold is not None else box["all_picks"]
    centre = evaluate(picks, truth, radius=diameter / 2)
    return {"box_precision": at["precision"], "box_recall": at["recall"], "box_f1": at["f1"],
            "box_best_f1": box["best"]["f1"] if box["best"] else 0.0, "box_best_threshold": (box["best"] or {}).get("threshold"),
            "auprc": centre["auprc"], "best_f1": centre["best"]["f1"] if centre["best"] else 0.0, "n_picks": at["n_pred"],
            "duplicate_rate": duplicates(picks, truth, diameter / 2, threshold)["rate"]}


def default_and_every(default: Path, every: Path, diameter: float) -> dict:
    """:func:`scores` of the picks a picker made at its default cut (file ``default``) against the test targets,
    with AUPRC and the best F1s taken from ``every`` peak it found."""
    truth = target_truth("test")
    out = scores(read_picks(default), truth, diameter, None)
    ranked = scores(read_picks(every), truth, diameter, None)
    return {**out, "auprc": ranked["auprc"], "best_f1": ranked["best_f1"], "box_best_f1": ranked["box_best_f1"]}


def per_micrograph_seconds(cmd_all: list[str], cmd_one: list[str], n: int) -> tuple[float, float]:
    wall, mib, _ = peak_rss_mib_of(cmd_all)
    start, _, _ = peak_rss_mib_of(cmd_one)
    return (wall - start) / (n - 1), mib


def run_fewshot(labels: pd.DataFrame, run: Path, diameter: float, seed: int, previous: dict | None = None,
                refit: bool = False) -> dict:
    """Train and pick; with ``previous`` (that seed's earlier row), re-pick its model (finished again first with
    ``refit``) and keep its training figures."""
    write_picks(labels, run / "exemplars.star")
    model = run / "fewshot.pt"
    if previous is not None:
        train_s, train_mib = previous["train_s"], previous["train_peak_mib"]
        if refit:
            refit_fewshot(model, DATA / "train" / f"{REFERENCE}.mrc", sorted((DATA / "train").glob("*.mrc")),
                          run / "exemplars.star")
    else:
        train_s, train_mib, _ = peak_rss_mib_of([str(FEWPICK), "fewshot", "train", str(DATA / "train" / f"{REFERENCE}.mrc"),
                                                "--exemplars", str(run / "exemplars.star"), "-d", f"{diameter:.3f}",
                                                "--pretrain-images", str(DATA / "train"), "--seed", str(seed),
                                                "--out", str(model)])
    test = sorted((DATA / "test").glob("*.mrc"))
    pick = [str(FEWPICK), "fewshot", "pick", "--model", str(model)]
    per_mic, pick_mib = per_micrograph_seconds([*pick, *map(str, test), "--out", str(run / "fewshot_auto.star")],
                                               [*pick, str(test[0]), "--out", str(run / "one.star")], len(test))
    peak_rss_mib_of([*pick, *map(str, test), "-t", "-1e9", "--out", str(run / "fewshot_all.star")])
    out = default_and_every(run / "fewshot_auto.star", run / "fewshot_all.star", diameter)
    return {**out, "train_s": train_s, "train_peak_mib": train_mib, "pick_s_per_micrograph": per_mic,
            "pick_peak_mib": pick_mib, "threshold": "default"}


def run_pu(labels: pd.DataFrame, run: Path, diameter: float, seed: int) -> dict:
    write_picks(labels, run / "labels.star")
    model = run / "pu.pt"
    train_s, train_mib, _ = peak_rss_mib_of([str(FEWPICK), "train", str(DATA / "train"), "--labels", str(run / "labels.star"),
                                             "-d", f"{diameter:.3f}", "-n", str(expected_per_micrograph()),
                                             "--seed", str(seed), "--out", str(model)])
    test = sorted((DATA / "test").glob("*.mrc"))
    pick = [str(FEWPICK), "pick", "--model", str(model)]
    per_mic, pick_mib = per_micrograph_seconds([*pick, *map(str, test), "-t", "-1e9", "--out", str(run / "pu_all.star")],
                                               [*pick, str(test[0]), "--out", str(run / "one.star")], len(test))
    peak_rss_mib_of([*pick, *map(str, test), "--out", str(run / "pu_default.star")])  # the cut `fewpick pick` makes
    out = default_and_every(run / "pu_default.star", run / "pu_all.star", diameter)
    return {**out, "train_s": train_s, "train_peak_mib": train_mib, "pick_s_per_micrograph": per_mic,
            "pick_peak_mib": pick_mib, "threshold": "default"}


def run_topaz_box(labels: pd.DataFrame, run: Path, diameter: float) -> dict:
    factor = int(round(diameter / 16))
    import mrcfile

    with mrcfile.open(DATA / "train" / f"{REFERENCE}.mrc", header_only=True) as m:
        shape = (int(m.header.ny), int(m.header.nx))
    pi = class_prior(expected_per_micrograph(), 3.0, [(round(shape[0] / factor), round(shape[1] / factor))])
    r = run_topaz(labels, run, diameter, factor, 300, pi)
    out = scores(read_picks(run / "topaz_picks.txt"), target_truth("test"), diameter, None)
    best = out["box_best_f1"]
    out.update(box_f1=best, box_precision=float("nan"), box_recall=float("nan"), n_picks=float("nan"))
    return {**out, "train_s": r["train_s"], "train_peak_mib": r["train_peak_mib"],
            "pick_s_per_micrograph": r["pick_s_per_micrograph"], "pick_peak_mib": r["pick_peak_mib"],
            "threshold": "best (oracle)"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tools", nargs="+", default=["fewshot", "pu", "topaz"])
    ap.add_argument("--keep", action="store_true",
                    help="keep the other tools' and seeds' runs from bench/results/fewshot_vs_topaz.json")
    ap.add_argument("--repick", action="store_true",
                    help="few-shot: pick again with the models of the last run (in bench/work), keeping its training "
                         "figures (for a change that is made at picking only)")
    ap.add_argument("--refit", action="store_true",
                    help="with --repick: finish each model again first as training now finishes it (for a change to "
                         "the steps after its networks' training: the count, the spacing, the calibrated cut)")
    args = ap.parse_args()
    rows, before = [], {}
    if args.keep or args.repick:
        import json

        previous = json.loads((Path(__file__).resolve().parent / "results" / "fewshot_vs_topaz.json").read_text())
        before = {r["seed"]: r for r in previous["runs"] if r["tool"] == "fewshot"}
    if args.keep:
        rows = [r for r in previous["runs"] if not (r["tool"] in args.tools and r["seed"] in args.seeds)]
    for seed in args.seeds:
        labels, diameter = exemplars_for(seed)
        run = WORK / "fewshot_vs_topaz" / f"s{seed}"
        run.mkdir(parents=True, exist_ok=True)
        for tool in args.tools:
            t0 = time.time()
            fn = {"fewshot": lambda: run_fewshot(labels, run, diameter, seed, before[seed] if args.repick else None,
                                                   args.refit),
                  "pu": lambda: run_pu(labels, run, diameter, seed),
                  "topaz": lambda: run_topaz_box(labels, run, diameter)}[tool]
            rows.append({"tool": tool, "seed": seed, **fn()})
            print(rows[-1], f"{time.time() - t0:.0f} s", flush=True)
    df = pd.DataFrame(rows)
    seeds, tools = sorted(set(df.seed)), [t for t in ("fewshot", "pu", "topaz") if t in set(df.tool)]
    names = {"fewshot": "fewpick few-shot (MAE)", "pu": "fewpick PU picker", "topaz": "Topaz 0.3.20"}
    md = [f"{N_LABELS} labeled {TARGET} particles on one reference micrograph ({REFERENCE}, 4096² px, realistic preset, "
          f"distractors ribosome/CCT/RuvAB/enolase); scored on {len(target_truth('test'))} {TARGET} in 4 test "
          f"micrographs. Box protocol: boxes of the particle diameter, IoU ≥ 0.5. Mean ± sd over seeds {seeds}.",
          "",
          "| picker | threshold | box precision | box recall | box F1 | box best F1 | AUPRC (centre) | picked twice | "
          "train s | pick s / micrograph | peak MiB train / pick |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]

    def ms(col, sub, fmt="{:.3f}"):
        v = sub[col].astype(float)
        return "-" if v.isna().all() else (fmt.format(v.mean()) + (" ± " + fmt.format(v.std()) if len(v) > 1 else ""))

    def twice(sub):
        v = sub.get("duplicate_rate", pd.Series(dtype=float)).astype(float)
        return "-" if v.isna().all() or sub.tool.iloc[0] == "topaz" else f"{100 * v.mean():.1f} %"

    for tool in tools:
        sub = df[df.tool == tool]
        md.append(f"| {names[tool]} | {sub.threshold.iloc[0].split(' ')[0]} | {ms('box_precision', sub)} | "
                  f"{ms('box_recall', sub)} | {ms('box_f1', sub)} | {ms('box_best_f1', sub)} | {ms('auprc', sub)} | "
                  f"{twice(sub)} | {ms('train_s', sub, '{:.0f}')} | {ms('pick_s_per_micrograph', sub, '{:.2f}')} | "
                  f"{sub.train_peak_mib.mean():.0f} / {sub.pick_peak_mib.mean():.0f} |")
    md += ["", "Topaz has no automatic threshold here: its F1 is at the best threshold, chosen with the answers "
               "(an upper bound). fewpick few-shot's F1 is at its own default threshold (no count given), the PU picker's at its default "
               "one (the cut `fewpick pick` makes when given none). Picked twice: of the picks at that cut, those "
               "beyond the first within D/2 of one target particle."]
    if args.keep:
        md += ["", f"This run re-measured {', '.join(names[t] for t in args.tools)} on seeds {args.seeds}; the other "
                   "rows are kept from the previous run of this script (bench/results/fewshot_vs_topaz.json)."]
    if args.repick:
        md += ["", "The few-shot models were those of the previous run, "
                   + ("finished again as training now finishes them (`--refit`: the count, the spacing, the calibrated "
                      "cut) and " if args.refit else "")
                   + "picked again (`--repick`); its train seconds and memory are that run's."]
    write_results("fewshot_vs_topaz", {"runs": rows}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
