"""The PU picker with and without the general particle model's score added to its network's, on the real sets:
AUPRC, best box F1, box F1 at the model's own default cut, and the duplicates there; beside the default, the same
models cut at the count the test micrographs hold (what a count given right for them would keep).

    .venv/bin/python bench/general_score.py [--sets ...] [--seeds 0 1 2] [--labels 15] [--without-count]

The general model's score is added after the network's training (``fewpick.pickers.pu.general.fit_general``),
so one network serves both rows: each is trained as ``bench/default_threshold.py`` trains it (15 labels drawn
with the seed, the training micrographs' expected count unless ``--without-count``; ``fewpick train
--no-general``), in that benchmark's run folders (bench/work/default_threshold/SET/pu_sN[_nocount], reused where
a network is there; ``--labels 100`` or ``all``: bench/work/general_score/), then finished once without and once
with the general model (:func:`fewpick.pickers.pu.train.refit`) and picks the test micrographs.

``--simulated D [D ...]`` adds single-species simulated sets (the ribosome at D px across, the simulator's
realistic conditions: four 1536² training micrographs and two test micrographs of 40 particles each;
bench/work/general_score/simD/).

``--mtor``: instead, bench/pu_vs_topaz.py's simulated set (mTOR among four other complexes, two of its size;
bench/pu_data.py makes it), with ``--labels`` mTOR labels (bench/work/general_score/mtor/).

``--small``: instead, sparse simulated sets of small or faint particles (``SMALL``: enolase, GluA3, CCT, RuvAB
and mTOR at 30–60 px, realistic or hard conditions; bench/work/general_score/sim_SPECIES.../).

``--init general``: the networks start from the general model's weights (``fewpick train --init general``; run
folders with ``_init-general`` appended; results ``general_score[...]_init-general``).

``--time``: instead, the seed-0 network of each real set picks a 4096² micrograph (one of its test micrographs
tiled, as bench/pick_speed.py times it: reading included, every peak kept, 2 threads, best of 3; the C allocator
set as the command line sets it, :func:`fewpick.allocator.keep_freed_memory`) without and with the general
model; writes bench/results/general_score_time.{json,md}.

Writes bench/results/general_score[_simulated][_nocount][_LABELS].{json,md}.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.evaluate import evaluate  # noqa: E402
from fewpick.io import read_micrograph, read_picks, write_picks  # noqa: E402
from fewpick.pickers import pu  # noqa: E402
from fewpick.pickers.pu.train import refit  # noqa: E402
from fewpick.pickers.threshold import Count  # noqa: E402
from real2d import FEWPICK, SETS_ALL, RealSet, default_cut_scores, draw_labels, load_set  # noqa: E402

HERE = Path(__file__).resolve().parent


#: ``--small``: sparse micrographs of small or faint particles (species, px across, placed per 1536² micrograph,
#: the simulator's conditions), where most of the general model's peaks are background
SMALL = (("enolase", 30.0, 150, "realistic"), ("enolase", 40.0, 100, "realistic"), ("glua3", 40.0, 80, "realistic"),
         ("cct", 40.0, 60, "hard"), ("ruvab", 36.0, 100, "hard"), ("mtor", 60.0, 120, "hard"))


def simulated_set(diameter: float, species: str = "ribosome", particles: int = 40,
                  conditions: str = "realistic") -> RealSet:
    """One species at ``diameter`` px in the simulator's ``conditions``, ``particles`` placed per 1536²
    micrograph (some fall on carbon and are dropped; written once, then read back). The ribosome sets at the
    defaults are named "simulated D px"; the others name the species, the count and the conditions."""
    import pandas as pd

    from fewpick.io import write_mrc
    from fewpick.simulate.micrograph import PRESETS, simulate_micrograph
    from fewpick.simulate.species import load_species

    default = (species, particles, conditions) == ("ribosome", 40, "realistic")
    name = (f"simulated {diameter:g} px" if default
            else f"simulated {species} {diameter:g} px, {particles} per micrograph, {conditions}")
    folder = HERE / "work" / "general_score" / (f"sim{diameter:g}" if default
                                                else f"sim_{species}{diameter:g}_{particles}_{conditions}")
    folder.mkdir(parents=True, exist_ok=True)
    px = load_species(species).diameter / diameter
    preset = replace(PRESETS[conditions], pixel_size=px, species=(species,))
    files, truths = [], []
    for i in range(6):
        path, truth = folder / f"mic{i}.mrc", folder / f"mic{i}_truth.star"
        if not truth.is_file():
            sim = simulate_micrograph((1536, 1536), particles, preset, seed=1000 + i)
            write_mrc(path, sim.image, px)
            write_picks(sim.truth.assign(micrograph=path.stem), truth)
        files.append(path)
        truths.append(read_picks(truth).assign(micrograph=path.stem))
    return RealSet(name, diameter, files[:4], files[4:], pd.concat(truths[:4]),
                   pd.concat(truths[4:]), pretrain=files[:4])


def small_sets() -> list[RealSet]:
    """The sparse simulated sets of small or faint particles (:data:`SMALL`)."""
    return [simulated_set(d, species, n, conditions) for species, d, n, conditions in SMALL]


def mtor_set() -> RealSet:
    """bench/pu_vs_topaz.py's set: the mTOR particles are the ones to pick."""
    from pu_data import DATA, target_truth

    train, test = target_truth("train"), target_truth("test")
    return RealSet("simulated mTOR", float(train.diameter_px.iloc[0]), sorted((DATA / "train").glob("*.mrc")),
                   sorted((DATA / "test").glob("*.mrc")), train, test)


def network(rs, seed: int, labels: str, with_count: bool, init: str = "none") -> tuple[Path, Path]:
    """The run's model file (trained here if missing, its network starting from ``init``) and its labels."""
    if rs.name == "simulated mTOR":
        run = HERE / "work" / "general_score" / "mtor" / f"pu_{labels}_s{seed}{'' if with_count else '_nocount'}"
    elif rs.name.startswith("simulated"):
        run = rs.train[0].parent / f"pu_{labels}_s{seed}{'' if with_count else '_nocount'}"  # beside its micrographs
    elif labels == "15":
        run = HERE / "work" / "default_threshold" / rs.name / (f"pu_s{seed}" if with_count else f"pu_s{seed}_nocount")
    else:
        run = HERE / "work" / "general_score" / rs.name / f"pu_{labels}_s{seed}{'' if with_count else '_nocount'}"
    if init != "none":
        run = run.with_name(f"{run.name}_init-{init}")
    run.mkdir(parents=True, exist_ok=True)
    model, lab = run / "pu.pt", run / "labels.star"
    if not model.is_file():
        write_picks(draw_labels(rs, labels, seed), lab)
        count = ["-n", str(rs.expected)] if with_count else []
        proc = subprocess.run([str(FEWPICK), "train", *map(str, rs.train), "--labels", str(lab), "-d",
                               f"{rs.diameter:g}", *count, "--seed", str(seed), "--no-general", "--init", init,
                               "--out", str(model)],
                              capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"training failed:\n{proc.stderr[-2000:]}")
    if init == "none" and pu.load_model(model, "cpu").settings.start != "none":  # e.g. bench/default_threshold.py's
        raise SystemExit(f"{model} did not start from random weights: move it away to train a random start there")
    return model, lab


def measure(rs, seed: int, labels: str, with_count: bool, init: str = "none") -> list[dict]:
    model_file, lab = network(rs, seed, labels, with_count, init)
    train = [read_micrograph(p) for p in rs.train]
    test = [read_micrograph(p) for p in rs.test]
    rows = []
    for general in (False, True):
        t0 = time.perf_counter()
        model = pu.load_model(model_file, "cpu")
        model.settings = replace(model.settings, general_score=general)
        refit(model, train, read_picks(lab))
        every = model.pick_images(test, -1e9)
        default = model.pick_images(test)
        scored = default_cut_scores(every, default, rs)
        # the same cut at the count the test micrographs hold: what a count given right for them would keep
        present = model.pick_images(test, Count(len(rs.test_truth) / len(test)))
        at_present = evaluate(present, rs.test_truth, box=rs.diameter)["all_picks"]["f1"] if len(present) else 0.0
        rows.append({"set": rs.name, "seed": seed, "labels": labels, "count": with_count, "init": init,
                     "start": model.settings.start, "general": general,
                     "general_weight": model.general_weight, "general_count": model.general_count,
                     **scored, "ratio_at_present": at_present / max(scored["best_box_f1"], 1e-9),
                     "n_true": len(rs.test_truth), "seconds": time.perf_counter() - t0})
    return rows


def timing() -> None:
    import resource

    from fewpick.allocator import keep_freed_memory
    from pick_speed import tiled_micrograph, time_pick

    keep_freed_memory()  # as the command line runs
    rows = []
    for name in ("10059", "10947", "apoferritin_ab"):
        rs = load_set(name)
        model_file, lab = network(rs, 0, "15", True)
        train = [read_micrograph(p) for p in rs.train]
        for general in (False, True):
            model = pu.load_model(model_file, "cpu")
            model.settings = replace(model.settings, general_score=general)
            refit(model, train, read_picks(lab))
            sec, n = time_pick(model, tiled_micrograph(name), 3)
            rows.append({"set": name, "general": general, "seconds": sec, "peaks": n})
            print(rows[-1], flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    md = ["PU picking of one 4096×4096 float32 MRC (a test micrograph of the set tiled), reading included, every "
          "peak kept, 2 threads, best of 3, the C allocator set as the command line sets it (freed memory kept "
          f"for reuse), without and with the general model's score; peak memory of the process {peak:.0f} MiB:", "",
          "| set | general model | s per micrograph | peaks |", "|---|---|---|---|"]
    md += [f"| {r['set']} | {'added' if r['general'] else 'no'} | {r['seconds']:.2f} | {r['peaks']} |" for r in rows]
    write_results("general_score_time", {"runs": rows, "peak_mib": peak}, "\n".join(md))


def used(row: dict) -> str:
    """How a row's model uses the general model after training: its score added, left out (weight 0: the labels
    cover the particles, or only some of them are wanted), or, for a network that started from it, its count only
    (its score is not added again)."""
    if not row["general"]:
        return "no"
    if row.get("start") == "general":
        return "count only"
    return "added" if row["general_weight"] > 0 else "left out"


def table(rows: list[dict]) -> str:
    lines = ["| set | seed | general model | weight | AUPRC | best box F1 | box F1 at the default (picks) | "
             "default ÷ best | ÷ best at the count present | picked twice |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['seed']} | {used(r)} | {r['general_weight']:.2f} | "
                     f"{r['auprc']:.3f} | {r['best_box_f1']:.3f} | {r['default_box_f1']:.3f} ({r['default_n']}) | "
                     f"{r['ratio']:.2f} | {r['ratio_at_present']:.2f} | {100 * r['duplicate_rate']:.1f} % |")
    lines += ["", "Means over the seeds:", "",
              "| set | general model | AUPRC | best box F1 | box F1 at the default | default ÷ best | ÷ best at the count "
              "present | picked twice |", "|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["set"] for r in rows):
        for general in (False, True):
            sel = [r for r in rows if r["set"] == name and r["general"] == general]
            mean = {k: float(np.mean([r[k] for r in sel])) for k in
                    ("auprc", "best_box_f1", "default_box_f1", "ratio", "ratio_at_present", "duplicate_rate")}
            lines.append(f"| {name} | {used(sel[0])} | {mean['auprc']:.3f} | {mean['best_box_f1']:.3f} | "
                         f"{mean['default_box_f1']:.3f} | {mean['ratio']:.2f} | {mean['ratio_at_present']:.2f} | "
                         f"{100 * mean['duplicate_rate']:.1f} % |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS_ALL))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--labels", default="15", help="labels drawn per run: a number or 'all'")
    ap.add_argument("--without-count", action="store_true", help="train without --expected-particles")
    ap.add_argument("--simulated", type=float, nargs="+", metavar="D",
                    help="instead: simulated ribosome sets at these diameters (px)")
    ap.add_argument("--mtor", action="store_true", help="instead: the simulated set of mTOR among other complexes")
    ap.add_argument("--small", action="store_true",
                    help="instead: the sparse simulated sets of small or faint particles (SMALL)")
    ap.add_argument("--time", action="store_true", help="instead: picking time on a 4096² micrograph")
    ap.add_argument("--init", default="none", choices=["none", "general"], help="where the networks start")
    args = ap.parse_args()
    if args.time:
        return timing()
    sets = ([mtor_set()] if args.mtor else [simulated_set(d) for d in args.simulated] if args.simulated
            else small_sets() if args.small
            else [load_set(n) for n in args.sets])
    rows = []
    for seed in args.seeds:
        for rs in sets:
            name = rs.name
            for r in measure(rs, seed, args.labels, not args.without_count, args.init):
                rows.append(r)
                print(f"{name} s{seed} general={r['general']}: AUPRC {r['auprc']:.3f}, best box F1 "
                      f"{r['best_box_f1']:.3f}, at the default {r['default_box_f1']:.3f}", flush=True)
    intro = (f"{args.labels} labels per run, "
             + ("no expected count given (the PU picker counts the particles with the general model)"
                if args.without_count else "the training micrographs' expected count given")
             + (", the networks started from the general model's weights where it serves (else from random weights: "
                "the general model column says \"count only\" where it was the start)" if args.init == "general" else "")
             + ". Box F1: boxes of D, IoU ≥ 0.5; AUPRC: matching radius D/2; picked twice: picks beyond the first "
               "within D/2 of one true particle, at the default cut. Weight: the general model's logits per unit "
               "of the network's (0: left out). At the count present: the same models cut where the test "
               "micrographs' peaks give as many picks as they hold particles (a count given right for them).")
    name = ("general_score" + ("_mtor" if args.mtor else "_simulated" if args.simulated else "_small" if args.small else "")
            + ("_nocount" if args.without_count else "")
            + ("" if args.labels == "15" else f"_{args.labels}") + ("" if args.init == "none" else f"_init-{args.init}"))
    write_results(name, {"runs": rows}, intro + "\n\n" + table(rows))


if __name__ == "__main__":
    main()
