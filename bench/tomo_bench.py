"""Few-shot tomogram localization benchmark (issue 7): globular targets with few labels, against baselines.

    .venv/bin/python bench/tomo_bench.py [--species ribosome cct] [--labels 50 200 10] [--seeds 0 1 2] [--keep]

Simulates realistic 512×512×200 tomograms (4 species + microtubules): four for training (labels are drawn
from their truth; a model trains on the tomograms its labels fall in) and two held out for testing. For
every species, label count and seed it runs the contract's CLI (``fewpick tomo train`` under /usr/bin/time
for time and peak memory, then ``fewpick tomo pick`` at the model's own threshold, timed, and again at threshold
0 for every peak) and scores, at a matching radius of half the particle diameter, the picks a user gets (each
tomogram's automatic cut for the models here, trained without a count) and the best cut over every peak. Baselines, each at its own standard cut and at
the best cut: the exploration's candidate finder with the particle's radius (band-passed energy + 3D NMS) and 3D template
matching with the true species map (bench/template_matching.py). ``--ablations``: seed 001's ablations.
``--train-args "..."``: more options for every ``fewpick tomo train`` (with ``--results NAME``, the models are
kept under that name).
``--rescore``: score the kept picks of the last run again, without training or picking.

Writes bench/results/tomo.{json,md} (``--results NAME``: NAME.{json,md}).
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
TRAIN_ARGS: list[str] = []  # --train-args
RESULTS_NAME = "tomo"  # --results
# seed 001's ablations: the full loss, without the contrastive term, plain (biased) contrast, BCE for PU focal
VARIANTS = {"full": [], "no-contrast": ["--contrast", "none"], "biased-contrast": ["--contrast", "biased"],
            "bce": ["--loss", "bce"]}
METHODS = {"dog_baseline": "DoG + NMS", "tm_baseline": "template matching (true map)"}  # the baselines' names


def simulate(seed: int) -> Path:
    from fewpick.io import write_mrc, write_picks
    from fewpick.simulate import simulate_tomogram

    d = WORK / "data"
    name = f"tomo_{seed}"
    if not (d / f"{name}_truth.csv").exists() or not (d / f"{name}_params.json").exists():
        sim = simulate_tomogram("realistic", seed=seed, name=name)
        write_mrc(d / f"{name}.mrc", sim.tomogram, sim.voxel_size)
        truth = sim.truth.copy()
        truth["micrograph"] = name
        write_picks(truth, d / f"{name}_truth.csv")
        (d / f"{name}_params.json").write_text(json.dumps(sim.params))
    return d / f"{name}.mrc"


def every_truth(seeds) -> pd.DataFrame:
    """Every simulated particle and filament point of the tomograms ``seeds``."""
    from fewpick.io import read_picks

    return pd.concat([read_picks(WORK / "data" / f"tomo_{s}_truth.csv") for s in seeds], ignore_index=True)


def truth_of(species: str, seeds) -> pd.DataFrame:
    t = every_truth(seeds)
    return t[t["species"] == species].reset_index(drop=True)


def kept_runs(runs, seeds, names=("model_{tag}.pt", "labels_{tag}.star")):
    """For each ``species:labels`` run and seed whose kept files in bench/work/tomo (``names``, ``{tag}`` standing
    for ``<species>_<labels>_<seed>``) all exist: ``(species, labels, seed, files, test truth, matching radius)``;
    the others are reported and left out."""
    for run in runs:
        sp, n = run.split(":")
        truth = truth_of(sp, TEST_SEEDS)
        radius = float(truth["diameter_px"].iloc[0]) / 2
        for seed in seeds:
            tag = f"{sp}_{n}_{seed}"
            files = [WORK / name.format(tag=tag) for name in names]
            if not all(f.exists() for f in files):
                print(f"{tag}: no kept {', '.join(f.name for f in files)} (run bench/tomo_bench.py first); left out")
                continue
            yield sp, int(n), seed, files, truth, radius


def score(picks: pd.DataFrame, truth: pd.DataFrame, radius: float) -> dict:
    from fewpick.evaluate import evaluate

    r = evaluate(picks, truth, radius=radius)
    a = r["all_picks"]
    return {"precision": a["precision"], "recall": a["recall"], "f1": a["f1"], "n_pred": a["n_pred"],
            "best_f1": (r["best"] or {}).get("f1", 0.0)}


def draw_labels(pool: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """The ``n`` labels of draw ``seed`` from a species' particles in the training tomograms (``pool``)."""
    rng = np.random.default_rng(1000 * seed + n)
    return pool.iloc[np.sort(rng.choice(len(pool), size=min(n, len(pool)), replace=False))]


def run_fewpick(species: str, n: int, seed: int, diameter: float, test_truth: pd.DataFrame,
                variant: str = "full") -> dict:
    from fewpick.io import write_picks

    pool = truth_of(species, TRAIN_SEEDS)
    labels = draw_labels(pool, n, seed)
    tag = f"{species}_{n}_{seed}"
    lab_path = WORK / f"labels_{tag}.star"
    write_picks(labels[["micrograph", "x", "y", "z"]], lab_path)
    tomos = [str(WORK / "data" / f"{m}.mrc") for m in sorted(labels["micrograph"].unique())]
    if TRAIN_ARGS and variant == "full":
        variant = RESULTS_NAME  # models trained with other options are kept under the results' name
    model = WORK / (f"model_{tag}.pt" if variant == "full" else f"model_{tag}_{variant}.pt")
    meta = model.with_suffix(".json")
    if KEEP and model.exists() and meta.exists():  # --keep: reuse a model trained by the same code
        train_s, train_mib = json.loads(meta.read_text())[:2]
    else:
        train_s, train_mib, _ = peak_rss_mib_of([FEWPICK, "tomo", "train", *tomos, "--labels", str(lab_path),
                                                 "--particle-diameter", f"{diameter:g}", "--out", str(model),
                                                 "--seed", str(seed), *VARIANTS.get(variant, TRAIN_ARGS)])
        meta.write_text(json.dumps([train_s, train_mib]))
    assumed = particles_assumed(model, n)
    present = int(pool["micrograph"].isin(labels["micrograph"].unique()).sum())  # in the training tomograms used
    out = WORK / f"picks_{model.stem[6:]}.star"
    tests = [str(WORK / "data" / f"tomo_{s}.mrc") for s in TEST_SEEDS]
    pick_s, pick_mib, _ = pick_both(model, tests, out)
    res = score_peaks(out, test_truth, diameter)
    print(f"{model.stem[6:]}: F1 {res['f1']:.3f} (P {res['precision']:.3f} R {res['recall']:.3f}), train {train_s:.0f} s "
          f"{train_mib:.0f} MiB, pick {pick_s / len(tests):.1f} s/tomogram {pick_mib:.0f} MiB", flush=True)
    return {"species": species, "labels": n, "seed": seed, "variant": variant, "training_tomograms": len(tomos),
            "particles_assumed": assumed, "particles_present": present, **res,
            "train_s": train_s, "train_peak_mib": train_mib, "pick_s_per_tomogram": pick_s / len(tests),
            "pick_peak_mib": pick_mib}


def particles_assumed(model: Path, labels: int) -> float | None:
    """The particle count behind the model's prior π, summed over its training tomograms: saved in the model
    since the held-out estimate; before it, always twice the labels (``None`` with --expected-particles)."""
    import torch

    bundle = torch.load(model, map_location="cpu", weights_only=False)
    if bundle.get("particles"):
        return float(sum(bundle["particles"]))
    return None if bundle["settings"].get("expected_particles") else 2.0 * labels


def every_peak(picks: Path) -> Path:
    """Where :func:`pick_both` keeps every peak beside the picks ``picks``."""
    return picks.with_name(picks.stem + "_every" + picks.suffix)


def pick_both(model: Path, tomograms: list[str], out: Path) -> tuple[float, float, str]:
    """``fewpick tomo pick`` at the model's own threshold into ``out`` (timed: seconds, peak MiB, its output), then
    every peak (threshold 0) into :func:`every_peak`, for the best cut."""
    timed = peak_rss_mib_of([FEWPICK, "tomo", "pick", *tomograms, "--model", str(model), "--out", str(out)])
    peak_rss_mib_of([FEWPICK, "tomo", "pick", *tomograms, "--model", str(model), "--out", str(every_peak(out)),
                     "--threshold", "0"])
    return timed


def score_peaks(path: Path, test_truth: pd.DataFrame, diameter: float) -> dict:
    """F1 of the picks in ``path`` (the model's own threshold: each tomogram's automatic cut for a model trained
    without a count), and the best-threshold F1 of every peak (:func:`every_peak`)."""
    from fewpick.io import read_picks

    res = score(read_picks(path), test_truth, diameter / 2)
    res["best_f1"] = score(read_picks(every_peak(path)), test_truth, diameter / 2)["best_f1"]
    return res


def rescore(name: str) -> tuple[list, list]:
    """The rows of an earlier run (bench/results/``name``.json), scored again from their kept picks: for a
    change to the scoring only (the timings stay those of the run)."""
    from _common import RESULTS

    data = json.loads((RESULTS / f"{name}.json").read_text())
    rows = []
    for r in data["rows"]:
        tt = truth_of(r["species"], TEST_SEEDS)
        tag = f"{r['species']}_{r['labels']}_{r['seed']}" + ("" if r["variant"] == "full" else f"_{r['variant']}")
        model = WORK / f"model_{tag}.pt"
        assumed = {"particles_assumed": particles_assumed(model, r["labels"])} if model.exists() else {}
        rows.append({**r, **assumed, **score_peaks(WORK / f"picks_{tag}.star", tt, float(tt["diameter_px"].iloc[0]))})
    return rows, data.get("baselines", [])


def baseline_scores(picks: pd.DataFrame, keep: np.ndarray, truth: pd.DataFrame, radius: float) -> dict:
    """A baseline's F1 at its own cut (the picks in ``keep``) and at the best cut over all its picks."""
    auto = score(picks[keep], truth, radius)
    return {"best_f1": score(picks, truth, radius)["best_f1"], "auto_precision": auto["precision"],
            "auto_recall": auto["recall"], "auto_f1": auto["f1"]}


def dog_baseline(species: str, diameter: float, test_truth: pd.DataFrame) -> dict:
    """The exploration's candidate detector with the particle's radius; its own cut is the exploration's (the
    background estimate from a phase-scrambled copy)."""
    from fewpick.explore.candidates import candidate_peaks
    from fewpick.io import make_picks, read_volume

    tables, cuts, t0 = [], [], time.perf_counter()
    for s in TEST_SEEDS:
        vol = read_volume(WORK / "data" / f"tomo_{s}.mrc")
        xyz, sc, cut = candidate_peaks(np.asarray(vol.data), diameter / 2)
        tables.append(make_picks(vol.name, xyz[:, 0], xyz[:, 1], xyz[:, 2], score=sc))
        cuts.append(np.full(len(sc), cut))
    picks = pd.concat(tables, ignore_index=True)
    keep = picks["score"].to_numpy() >= np.concatenate(cuts)
    return {"species": species, "method": METHODS["dog_baseline"], **baseline_scores(picks, keep, test_truth, diameter / 2),
            "seconds_per_tomogram": (time.perf_counter() - t0) / len(TEST_SEEDS)}


def tm_baseline(species: str, diameter: float, test_truth: pd.DataFrame, step: float = 30.0) -> dict:
    """3D template matching with the true species map (bench/template_matching.py), binned so the particle
    is ~8 voxels; its own cut is pytom-match-pick's (one expected false peak)."""
    from fewpick.io import make_picks, read_volume
    from template_matching import match

    tables, keep, infos = [], [], []
    for s in TEST_SEEDS:
        vol = read_volume(WORK / "data" / f"tomo_{s}.mrc")
        p = json.loads((WORK / "data" / f"tomo_{s}_params.json").read_text())
        zyx, sc, info = match(np.asarray(vol.data), species, p["voxel_size"], p["defocus_mean"], p["b_factor"],
                              bin=max(1, int(round(diameter / 8))), step_deg=step)
        tables.append(make_picks(vol.name, zyx[:, 2], zyx[:, 1], zyx[:, 0], score=sc))
        keep.append(sc >= info["threshold"])
        infos.append(info)
    picks = pd.concat(tables, ignore_index=True)
    return {"species": species, "method": METHODS["tm_baseline"],
            **baseline_scores(picks, np.concatenate(keep), test_truth, diameter / 2),
            "orientations": infos[0]["orientations"], "angular_step_deg": step, "bin": infos[0]["bin"],
            "seconds_per_tomogram": float(np.mean([i["seconds"] for i in infos]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--species", nargs="+", default=["ribosome", "cct"])
    ap.add_argument("--labels", type=int, nargs="+", default=[50, 200, 10])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--keep", action="store_true", help="reuse models already trained in bench/work/tomo "
                    "(picking and scoring again; for a change that touches picking only)")
    ap.add_argument("--ablations", action="store_true", help="seed 001's ablations instead: every variant "
                    f"({', '.join(VARIANTS)}) for the given species, label counts and seeds; writes tomo_ablations.*")
    ap.add_argument("--results", default="tomo", help="name of the results in bench/results (default tomo; e.g. "
                    "tomo_mtor for a run on other species)")
    ap.add_argument("--rescore", action="store_true", help="no training or picking: score the kept picks of the "
                    "last run again (after a change to the automatic threshold)")
    ap.add_argument("--train-args", default="", help="more options for every `fewpick tomo train`, e.g. "
                    "\"--self-training 4\" (use with --results)")
    a = ap.parse_args()
    global KEEP, TRAIN_ARGS, RESULTS_NAME
    KEEP, TRAIN_ARGS, RESULTS_NAME = a.keep, a.train_args.split(), a.results
    for s in TRAIN_SEEDS + TEST_SEEDS:
        simulate(s)
    if a.ablations:
        ablations(a)
        return
    rows, base = rescore(a.results) if a.rescore else ([], [])
    if a.rescore:
        a.seeds = sorted({r["seed"] for r in rows})
        report(rows, base, a)
        return
    from _common import RESULTS

    old = RESULTS / f"{a.results}.json"
    cached = json.loads(old.read_text()).get("baselines", []) if KEEP and old.exists() else []
    for sp in a.species:
        test_truth = truth_of(sp, TEST_SEEDS)
        diameter = float(test_truth["diameter_px"].iloc[0])
        for fn in (dog_baseline, tm_baseline):
            hit = [b for b in cached if b["species"] == sp and b["method"] == METHODS[fn.__name__]]  # no model
            base.append(hit[0] if hit else fn(sp, diameter, test_truth))
            print(f"{sp} {base[-1]['method']}: F1 {base[-1]['auto_f1']:.3f} at its own cut, "
                  f"{base[-1]['best_f1']:.3f} at the best", flush=True)
    # label counts outermost: with few cores, the 50-label rows (the bar) come first; the table is
    # written after every model, so a run cut short keeps what it measured (and --keep resumes it)
    for n in a.labels:
        for sp in a.species:
            test_truth = truth_of(sp, TEST_SEEDS)
            diameter = float(test_truth["diameter_px"].iloc[0])
            for seed in a.seeds:
                rows.append(run_fewpick(sp, n, seed, diameter, test_truth))
                report(rows, base, a, quiet=True)
    report(rows, base, a)


def report(rows: list, base: list, a, quiet: bool = False) -> None:
    df = pd.DataFrame(rows).sort_values(["species", "labels", "seed"], key=lambda c: c.map(
        {sp: i for i, sp in enumerate(a.species)}) if c.name == "species" else c, kind="stable")
    md = ["## Globular targets: F1 on two held-out 512×512×200 tomograms (matching radius = particle radius)", "",
          "| species | labels | seeds | particles assumed / present | fewpick F1 (auto threshold) | precision | "
          "recall | best-threshold F1 | train s | train peak MiB | pick s / tomogram | pick peak MiB |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (sp, n), g in df.groupby(["species", "labels"], sort=False):
        assumed = g.get("particles_assumed", pd.Series(dtype=float)).dropna()
        present = g.get("particles_present", pd.Series(dtype=float)).dropna()
        counts = (f"{assumed.mean():.0f} / {present.mean():.0f}" if len(assumed) == len(g) and len(present) == len(g)
                  else "not recorded")
        md.append(f"| {sp} | {n} | {len(g)} | {counts} | {g.f1.mean():.3f} ± {g.f1.std(ddof=0):.3f} | {g.precision.mean():.3f} | "
                  f"{g.recall.mean():.3f} | {g.best_f1.mean():.3f} ± {g.best_f1.std(ddof=0):.3f} | "
                  f"{g.train_s.mean():.0f} | {g.train_peak_mib.max():.0f} | {g.pick_s_per_tomogram.mean():.1f} | "
                  f"{g.pick_peak_mib.max():.0f} |")
    md += ["", f"{len(a.seeds)} seeds ({', '.join(map(str, a.seeds))}): label draws and training seeds; mean ± sd. "
           "Particles assumed: the count behind the prior π in the training tomograms (twice the labels, or the "
           "held-out estimate where lower; with self-training, below 12 labels, the labels plus twice the confident "
           "picks), mean over seeds; present: the species' particles there.",
           f"Training tomograms: simulated seeds {TRAIN_SEEDS}; test: {TEST_SEEDS} (realistic preset).", "",
           "## Baselines on the same test tomograms (no labels)", "",
           "| species | method | F1 at its own cut | precision | recall | F1 at the best (oracle) cut | s / tomogram |",
           "|---|---|---|---|---|---|---|"]
    for b in base:
        md.append(f"| {b['species']} | {b['method']} | {b['auto_f1']:.3f} | {b['auto_precision']:.3f} | "
                  f"{b['auto_recall']:.3f} | {b['best_f1']:.3f} | {b['seconds_per_tomogram']:.1f} |")
    md += ["", "Own cuts: the candidate finder, its background cut from a phase-scrambled copy (the exploration's filter; results written before this cut existed used mean + 0.5 sd of the peaks); template matching, "
           "pytom-match-pick's level of one expected false peak over all voxels and orientations. Template matching "
           "knows the exact structure, the defocus and the missing wedge, and searches "
           f"{next((b['orientations'] for b in base if 'orientations' in b), '?')} orientations "
           f"({next((b['angular_step_deg'] for b in base if 'orientations' in b), '?')}° apart)."]
    write_results(a.results, {"rows": rows, "baselines": base}, "\n".join(md))
    if not quiet:
        print("\n".join(md))


def ablations(a) -> None:
    rows = rescore("tomo_ablations")[0] if a.rescore else []
    if a.rescore:
        a.seeds = sorted({r["seed"] for r in rows})
        ablation_report(rows, a)
        return
    for sp in a.species:
        test_truth = truth_of(sp, TEST_SEEDS)
        diameter = float(test_truth["diameter_px"].iloc[0])
        for n in a.labels:
            for variant in VARIANTS:
                for seed in a.seeds:
                    rows.append(run_fewpick(sp, n, seed, diameter, test_truth, variant))
                    ablation_report(rows, a, quiet=True)  # after every model: a run cut short keeps its rows
    ablation_report(rows, a)


def ablation_report(rows: list, a, quiet: bool = False) -> None:
    from fewpick.pickers.tomo import TomoSettings

    df = pd.DataFrame(rows)
    md = ["## Ablations (seed 001): F1 on two held-out 512×512×200 tomograms", "",
          "| species | labels | variant | seeds | F1 (auto threshold) | precision | recall | best-threshold F1 | "
          "train s |", "|---|---|---|---|---|---|---|---|---|"]
    for (sp, n, v), g in df.groupby(["species", "labels", "variant"], sort=False):
        md.append(f"| {sp} | {n} | {v} | {len(g)} | {g.f1.mean():.3f} ± {g.f1.std(ddof=0):.3f} | "
                  f"{g.precision.mean():.3f} | {g.recall.mean():.3f} | {g.best_f1.mean():.3f} ± "
                  f"{g.best_f1.std(ddof=0):.3f} | {g.train_s.mean():.0f} |")
    lam = "/".join(f"{w:g}" for w in TomoSettings(diameter=1).lambdas)
    md += ["", f"Variants: full = PU focal loss + debiased voxel contrast (λ {lam}, the default); no-contrast = "
           "`--contrast none`; biased-contrast = `--contrast biased` (plain InfoNCE negatives); bce = `--loss bce` "
           "(labeled Gaussians against everything else as negative).",
           f"Seeds {', '.join(map(str, a.seeds))}: label draws and training seeds; mean ± sd."]
    write_results("tomo_ablations", {"rows": rows}, "\n".join(md))
    if not quiet:
        print("\n".join(md))


if __name__ == "__main__":
    main()
