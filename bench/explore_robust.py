"""Tomogram exploration across the conditions a user meets: does it find the classes in tomograms it was not
tuned on?

    .venv/bin/python bench/explore_robust.py [--conditions default voxel5 ...] [--seed 21] [--keep]

Simulates one tomogram per condition (the realistic preset, 512×512×200 voxels, with one setting changed:
voxel size, ice thickness, defocus, dose, tilt range and step, crowding, residual misalignment, a membrane,
other species), runs ``fewpick explore TOMO --tilt-series TS --tilt-angles TLT --out RUN`` with its defaults (the
radius the command picks from the voxel size) and, for the default condition, ``--mode 3d`` as well; then scores
the run against the exact truth, per species, as a user ticking classes would get it:

- *best class*: the class with the highest precision for the species, its recall;
- *all classes it leads*: every class whose commonest member is the species, ticked together: precision, recall;
- *candidates on a particle* (and so the fraction on background), and, per species, the fraction of its
  particles that got a candidate at all.

Scoring (``run_and_score`` of bench/explore_bench.py): a candidate belongs to a particle when it lies within
that particle's radius (filament points: the filament's radius), else it is background. Results: one row per
condition in bench/results/explore_robust.{json,md}, with the median, minimum and maximum over the conditions.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_results  # noqa: E402
from explore_bench import run_and_score  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work" / "explore_robust"
FEWPICK = str(Path(sys.executable).parent / "fewpick")

# one change to the realistic preset per condition (lengths in Å, as TomogramPreset takes them)
CONDITIONS: dict[str, dict] = {
    "default": {},
    "voxel5": {"voxel_size": 5.0},
    "voxel15": {"voxel_size": 15.0, "shape": (134, 342, 342)},  # about the same field of view as the default
    "thin_ice": {"slab_fraction": 0.45},
    "thick_ice": {"slab_fraction": 0.95},
    "defocus2um": {"defocus": (15000.0, 25000.0)},
    "defocus6um": {"defocus": (50000.0, 70000.0)},
    "dose60": {"total_dose": 60.0},
    "tilt40": {"tilt_range": 40.0},
    "tilt60step3": {"tilt_step": 3.0},
    "crowded": {"n_particles": 420},
    "sparse": {"n_particles": 120},
    "aligned": {"alignment_error": 0.0},
    "misaligned": {"alignment_error": 2.0},
    "membrane": {"membrane_probability": 1.0},
    "no_membrane": {"membrane_probability": 0.0},
    "dengue_glua3": {"species": ("ribosome", "cct", "dengue", "glua3")},
}
SIZES = {"mtor": "mTOR-sized", "ruvab": "RuvAB-sized"}


def simulate(name: str, seed: int, changes: dict | None = None) -> tuple[Path, float]:
    """Simulate (once; cached under bench/work) the realistic preset with ``changes`` (default: the condition
    ``name``'s): the tomogram, its tilt series and angles and the truth; the path stem and the voxel size."""
    from fewpick.io import write_mrc, write_picks, write_tilt_angles
    from fewpick.simulate.tomogram import TOMO_PRESETS, simulate_tomogram

    d = WORK / "data"
    stem = d / f"{name}_{seed}"
    info = Path(f"{stem}.json")
    if info.is_file():
        return stem, json.loads(info.read_text())["voxel_size"]
    d.mkdir(parents=True, exist_ok=True)
    preset = replace(TOMO_PRESETS["realistic"], name=name, **(CONDITIONS[name] if changes is None else changes))
    sim = simulate_tomogram(preset, seed=seed, name=stem.name)
    order = np.argsort(sim.angles)
    write_mrc(f"{stem}.mrc", sim.tomogram, sim.voxel_size)
    write_mrc(f"{stem}.st", sim.tilt_series[order], sim.voxel_size)
    write_tilt_angles(f"{stem}.tlt", sim.angles[order])
    truth = sim.truth.copy()
    truth["micrograph"] = stem.name
    write_picks(truth, f"{stem}_truth.csv")
    info.write_text(json.dumps({"voxel_size": sim.voxel_size, "preset": {k: v for k, v in asdict(preset).items()}},
                               default=list))
    return stem, sim.voxel_size


def coverage(lab: np.ndarray, particle: np.ndarray, truth) -> dict:
    """Per species: the fraction of its particles with at least one candidate on them."""
    out = {}
    for sp, n in truth["species"].value_counts().items():
        hit = set(particle[lab == sp])
        out[sp] = len(hit) / n
    return out


def explore_row(name: str, seed: int, mode: str, threads: int = 2, changes: dict | None = None) -> dict:
    """Simulate the condition ``name`` (or ``changes``; cached), run ``fewpick explore`` on it with its defaults in
    ``mode`` (2d3d or 3d) and score the run against the truth: one row."""
    stem, voxel = simulate(name, seed, changes)
    out = WORK / f"run_{name}_{seed}_{mode}"
    if out.exists():
        shutil.rmtree(out)
    cmd = [FEWPICK, "explore", f"{stem}.mrc", "--out", str(out), "--threads", str(threads)]
    cmd += ["--tilt-series", f"{stem}.st", "--tilt-angles", f"{stem}.tlt"] if mode == "2d3d" else ["--mode", "3d"]
    wall, rss, manifest, cands, lab, particle, res, truth = run_and_score(cmd, out, stem)
    return {"condition": name, "mode": mode, "seed": seed, "voxel_size": voxel, "radius": manifest["settings"]["radius"],
            "candidates": len(cands), "classes": int(cands["label"].nunique()), "on_particle": 1 - res["junk_fraction"],
            "wall_s": wall, "peak_rss_mib": rss, "coverage": coverage(lab, particle, truth), **res}


def run_one(name: str, seed: int, mode: str, threads: int = 2) -> dict:
    row = explore_row(name, seed, mode, threads)
    print(f"{name} {mode}: {row['candidates']} candidates, {100 * row['on_particle']:.0f} % on a particle, {row['wall_s']:.0f} s; "
          + ", ".join(f"{s} best P{v['precision']:.2f}/R{v['recall']:.2f}, led P{v['led_precision']:.2f}/"
                      f"R{v['led_recall']:.2f}" for s, v in row["species"].items() if s in ("ribosome", "cct")),
          flush=True)
    return row


def _fmt(v, digits=2):
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def table(rows: list[dict]) -> str:
    head = ("| condition | mode | voxel Å | candidates | on a particle | ribosome best class P / R | ribosome all it "
            "leads P / R | CCT best class P / R | CCT all it leads P / R | mTOR-sized with a candidate | "
            "RuvAB-sized with a candidate | run s |")
    lines = [head, "|" + "---|" * 12]

    def pr(r, sp, kind):
        v = r["species"].get(sp)
        if not v:
            return "–"
        return (f"{_fmt(v['precision'])} / {_fmt(v['recall'])}" if kind == "best"
                else f"{_fmt(v['led_precision'])} / {_fmt(v['led_recall'])}")

    for r in rows:
        lines.append(f"| {r['condition']} | {r['mode']} | {r['voxel_size']:g} | {r['candidates']} | "
                     f"{_fmt(r['on_particle'])} | {pr(r, 'ribosome', 'best')} | {pr(r, 'ribosome', 'led')} | "
                     f"{pr(r, 'cct', 'best')} | {pr(r, 'cct', 'led')} | {_fmt(r['coverage'].get('mtor'))} | "
                     f"{_fmt(r['coverage'].get('ruvab'))} | {r['wall_s']:.0f} |")
    # the spread over the 2d3d conditions
    main = [r for r in rows if r["mode"] == "2d3d"]
    if len(main) > 1:
        def stat(get):
            vals = np.array([x for x in map(get, main) if x is not None and not np.isnan(x)], float)
            return (f"{np.median(vals):.2f} ({vals.min():.2f}–{vals.max():.2f})" if len(vals) else "–")

        def sp(name, key):
            return lambda r: r["species"].get(name, {}).get(key)

        lines += ["", f"Spread over the {len(main)} conditions (median, min–max):", "",
                  "| measure | median (min–max) |", "|---|---|",
                  f"| candidates on a particle | {stat(lambda r: r['on_particle'])} |",
                  f"| ribosome, all classes it leads: precision | {stat(sp('ribosome', 'led_precision'))} |",
                  f"| ribosome, all classes it leads: recall | {stat(sp('ribosome', 'led_recall'))} |",
                  f"| CCT, all classes it leads: precision | {stat(sp('cct', 'led_precision'))} |",
                  f"| CCT, all classes it leads: recall | {stat(sp('cct', 'led_recall'))} |",
                  f"| mTOR particles with a candidate | {stat(lambda r: r['coverage'].get('mtor'))} |",
                  f"| RuvAB particles with a candidate | {stat(lambda r: r['coverage'].get('ruvab'))} |",
                  f"| run seconds | {stat(lambda r: r['wall_s'])} |"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--no-3d", action="store_true", help="skip the --mode 3d row of the default condition")
    ap.add_argument("--threads", type=int, default=2, help="explore's --threads (2: the whole machine)")
    ap.add_argument("--keep", action="store_true", help="keep the rows already in the results (other conditions)")
    args = ap.parse_args()
    path = RESULTS / "explore_robust.json"
    rows = json.loads(path.read_text())["rows"] if args.keep and path.is_file() else []
    todo = [(c, "2d3d") for c in args.conditions]
    if "default" in args.conditions and not args.no_3d:
        todo.append(("default", "3d"))
    for name, mode in todo:
        row = run_one(name, args.seed, mode, args.threads)
        rows = [r for r in rows if (r["condition"], r["mode"], r["seed"]) != (name, mode, args.seed)] + [row]
        order = {c: i for i, c in enumerate(CONDITIONS)}
        rows.sort(key=lambda r: (order.get(r["condition"], 99), r["mode"] != "2d3d"))
        note = ("Simulated tomograms (realistic preset, one setting changed per condition; seed "
                f"{args.seed}), `fewpick explore` with its defaults. 'best class': the class with the highest precision "
                "for the species; 'all it leads': every class whose commonest member is the species, ticked together.")
        write_results("explore_robust", {"rows": rows, "conditions": {k: {kk: list(vv) if isinstance(vv, tuple)
                                                                             else vv for kk, vv in v.items()}
                                                                         for k, v in CONDITIONS.items()}},
                      note + "\n\n" + table(rows))


if __name__ == "__main__":
    main()
