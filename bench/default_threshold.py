"""What a user gets at the default threshold, on the real sets: box F1 at each candidate default cut beside the
best-threshold box F1 of the same model, and the duplicates (a particle picked twice) at each cut.

    .venv/bin/python bench/default_threshold.py [--sets ...] [--tools pu fewshot] [--seeds 0 1 2]

Each model is trained as ``bench/real2d.py`` trains it (15 labels, the expected count of the training
micrographs), then picks every peak of the test micrographs (``--threshold -1e9``); the cuts
are applied afterwards, so one training serves every policy:

- ``model``: the model's own default, as ``fewpick pick`` applies it (for a model trained with an expected
  count: one score set where the test micrographs' peaks pooled give that count per micrograph);
- ``calibrated``: the model's stored cut (the training micrographs' k-th best peak, k the expected count);
- ``auto``: the picker's own rule on each micrograph's peaks (``--threshold auto``);
- ``count``: each micrograph's k-th best peak;
- ``pooled``: the cut that keeps k × (number of micrographs) of all the test micrographs' peaks together.

Writes bench/results/default_threshold.{json,md}; runs are kept in bench/work/default_threshold/. A few-shot
model kept there from before the general model's count (every kept one with ``--refit``) is finished as
training now finishes it (``fewshot.refit``: the count, the spacing of picks and the calibrated cut; the networks
do not depend on them). ``--without-count --from-count``: the few-shot models without a count are those trained
with one, the count cleared and those steps redone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import refit_fewshot, write_results  # noqa: E402
from fewpick.evaluate import duplicates, evaluate  # noqa: E402
from fewpick.io import read_picks, write_picks  # noqa: E402
from fewpick.pickers.threshold import cut_at_count  # noqa: E402
from real2d import FEWPICK, SETS_ALL, draw_exemplars, draw_labels, load_set  # noqa: E402

WORK = Path(__file__).resolve().parent / "work" / "default_threshold"
POLICIES = ("model", "calibrated", "auto", "count", "pooled")
REFIT = False  # --refit: finish every kept few-shot model again
FROM_COUNT = False  # --from-count: few-shot models without a count copied from those trained with one


def fewpick(*args) -> None:
    proc = subprocess.run([str(FEWPICK), *map(str, args)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"fewpick {' '.join(map(str, args))} failed:\n{proc.stderr[-2000:]}")


def train_and_pick(rs, tool: str, seed: int, run: Path, with_count: bool = True) -> tuple[pd.DataFrame, dict]:
    """The model's every peak on the test micrographs, and what the model stored. ``with_count=False``: trained
    without the expected count, as a user who does not know it."""
    run.mkdir(parents=True, exist_ok=True)
    model = run / f"{tool}.pt"
    count = ["-n", rs.expected] if with_count else []
    counted_twin = WORK / rs.name / f"{tool}_s{seed}" / f"{tool}.pt"
    if not model.is_file() and not with_count and tool == "fewshot" and FROM_COUNT and counted_twin.is_file():
        without_count(counted_twin, model)
    if not model.is_file():
        if tool == "pu":
            write_picks(draw_labels(rs, "15", seed), run / "labels.star")
            fewpick("train", *rs.train, "--labels", run / "labels.star", "-d", f"{rs.diameter:g}", *count,
                    "--seed", seed, "--out", model)
        else:
            write_picks(draw_exemplars(rs, seed), run / "exemplars.star")
            fewpick("fewshot", "train", rs.reference, "--exemplars", run / "exemplars.star", "-d", f"{rs.diameter:g}",
                    *[a for p in rs.pretrain for a in ("--pretrain-images", p)], *count, "--seed", seed,
                    "--out", model)
    elif tool == "fewshot" and (REFIT or "general_count" not in torch.load(model, map_location="cpu",
                                                                           weights_only=False)):
        # finished as training now finishes it
        refit_fewshot(model, Path(rs.reference), [Path(p) for p in rs.pretrain], run / "exemplars.star")
        for name in ("test_all.star", "test_default.star", "test_auto.star"):
            (run / name).unlink(missing_ok=True)
    verb = ["pick"] if tool == "pu" else ["fewshot", "pick"]
    every = run / "test_all.star"
    if not every.is_file():
        fewpick(*verb, *rs.test, "--model", model, "-t", "-1e9", "--out", every)
    default = run / "test_default.star"
    if not default.is_file():
        fewpick(*verb, *rs.test, "--model", model, "--out", default)
    auto = run / "test_auto.star"
    if not auto.is_file():
        fewpick(*verb, *rs.test, "--model", model, "-t", "auto", "--out", auto)
    bundle = torch.load(model, map_location="cpu", weights_only=False)
    stored = {"threshold": bundle.get("threshold"), "default": read_picks(default), "auto": read_picks(auto),
              "estimated": bundle.get("estimated_particles")}
    return read_picks(every), stored


def without_count(source: Path, path: Path) -> None:
    """The few-shot model at ``source`` (trained with the expected count) as if trained without it, at ``path``:
    its networks and exemplars copied, the count cleared and the steps after the networks redone (:func:`refit_fewshot`
    follows, as for every model ``--refit`` finishes). The networks do not depend on the count."""
    import shutil
    from dataclasses import replace

    from fewpick.pickers import fewshot

    model = fewshot.load_model(source, "cpu")
    model.settings = replace(model.settings, expected_particles=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source.parent / "exemplars.star", path.parent / "exemplars.star")
    fewshot.save_model(model, path)


def cuts(test: pd.DataFrame, calibrated: float | None, k: int) -> dict:
    """Each policy's cut for each test micrograph."""
    groups = dict(tuple(test.groupby("micrograph")))
    pooled = cut_at_count([g.score.to_numpy(float) for g in groups.values()], k)
    cal = calibrated if calibrated is not None else float("nan")
    return {name: {"calibrated": cal,
                   "count": cut_at_count([g.score.to_numpy(float)], k), "pooled": pooled}
            for name, g in groups.items()}


def measure(rs, tool, seed, with_count: bool = True) -> dict:
    run = WORK / rs.name / (f"{tool}_s{seed}" if with_count else f"{tool}_s{seed}_nocount")
    t0 = time.time()
    test, stored = train_and_pick(rs, tool, seed, run, with_count)
    box = evaluate(test, rs.test_truth, box=rs.diameter)
    row = {"set": rs.name, "tool": tool, "seed": seed, "auprc": evaluate(test, rs.test_truth, radius=rs.diameter / 2)["auprc"],
           "best_box_f1": box["best"]["f1"], "best_n": box["best"]["n_pred"], "n_true": len(rs.test_truth)}
    k = stored["estimated"] or rs.expected  # the count the model assumed where it counted itself
    row["count_used"] = stored["estimated"]
    per = cuts(test, stored["threshold"], k)
    for policy in POLICIES:
        if policy in ("model", "auto"):  # as the picker applies them itself
            kept = stored["default" if policy == "model" else "auto"]
        else:
            cut = test.micrograph.map(lambda m: per[m][policy])
            kept = test[test.score >= cut]
        b = evaluate(kept, rs.test_truth, box=rs.diameter)["all_picks"] if len(kept) else {"f1": 0.0, "n_pred": 0}
        d = duplicates(kept, rs.test_truth, rs.diameter / 2)
        row[policy] = {"box_f1": b["f1"], "n": int(b["n_pred"]), "ratio": b["f1"] / max(row["best_box_f1"], 1e-9),
                       "duplicate_rate": d["rate"]}
    row["seconds"] = time.time() - t0
    return row


def table(rows: list[dict]) -> str:
    head = "| set | picker | seed | AUPRC | best box F1 (picks) | " + " | ".join(POLICIES) + " |"
    lines = [head, "|" + "---|" * (5 + len(POLICIES))]
    for r in rows:
        cells = [f"{r[p]['box_f1']:.3f} ({r[p]['ratio']:.2f}×, {r[p]['n']}, dup {100 * r[p]['duplicate_rate']:.1f} %)"
                 for p in POLICIES]
        counted = f" ({r['count_used']:.0f} per micrograph)" if r.get("count_used") is not None else ""
        lines.append(f"| {r['set']} | {r['tool']}{counted} | {r['seed']} | {r['auprc']:.3f} | {r['best_box_f1']:.3f} "
                     f"({r['best_n']} of {r['n_true']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS_ALL))
    ap.add_argument("--tools", nargs="+", default=["pu", "fewshot"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--fewshot-seeds", type=int, nargs="+", default=[0], help="the few-shot picker's (slower)")
    ap.add_argument("--out", default="default_threshold")
    ap.add_argument("--without-count", action="store_true",
                    help="train without --expected-particles (the pickers count with the general model); "
                         "count and pooled then use the model's own count")
    ap.add_argument("--refit", action="store_true",
                    help="finish every kept few-shot model again as training now finishes it (after a change to "
                         "the steps after its networks' training)")
    ap.add_argument("--from-count", action="store_true",
                    help="with --without-count: a few-shot model not yet there is the one trained with the count, "
                         "its count cleared and the steps after its networks redone (implies --refit)")
    args = ap.parse_args()
    global REFIT, FROM_COUNT
    REFIT, FROM_COUNT = args.refit or args.from_count, args.from_count
    rows = []
    for seed in args.seeds:
        for name in args.sets:
            rs = load_set(name)
            for tool in args.tools:
                if tool == "fewshot" and seed not in args.fewshot_seeds:
                    continue
                r = measure(rs, tool, seed, not args.without_count)
                rows.append(r)
                print(f"{name} {tool} s{seed}: best {r['best_box_f1']:.3f}; " + ", ".join(
                    f"{p} {r[p]['box_f1']:.3f}" for p in POLICIES), flush=True)
    intro = ("Box F1 (boxes of D, IoU ≥ 0.5) on the test micrographs at each candidate default cut, its ratio to the "
             "same model's best-threshold box F1, the picks kept and the duplicate rate (picks beyond the first "
             "within D/2 of one true particle). 15 labels (few-shot: 15 exemplars on one micrograph), "
             + ("the expected count of the training micrographs." if not args.without_count else
                "no expected count given: each picker counts the particles with the general model (that count "
                "beside each row; count and pooled use it)."))
    write_results(args.out, {"runs": rows}, intro + "\n\n" + table(rows))


if __name__ == "__main__":
    main()
