"""Tomogram exploration of small complexes: several species 10–15 voxels across, ``--mode 3d`` at the defaults.

    .venv/bin/python bench/explore_small.py [--seeds 21 22] [--modes 3d 2d3d]

Simulates tomograms of the realistic preset at 12 Å voxels holding only species that are 10–15 voxels across
there (CCT 15.2, mTOR 14.8, RuvAB 10.7 voxels; 853, 294 and 212 kDa; mTOR and CCT are the same size, so only
their shape and density tell them apart), plus the preset's filaments and membranes; runs ``fewpick explore
TOMO --mode 3d --out RUN`` with every default (the radius from the voxel size) and scores it against the exact
truth as `bench/explore_robust.py` does:

- per species, the fraction of its particles with a candidate on them;
- *all classes it leads*: every class whose commonest member is the species, ticked together: precision, recall;
- candidates on background (neither a particle nor a filament).

Results: bench/results/explore_small.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from explore_robust import explore_row  # noqa: E402

SPECIES = ("cct", "mtor", "ruvab")
CHANGES = {"voxel_size": 12.0, "species": SPECIES}
NAMES = {"cct": "CCT", "mtor": "mTOR", "ruvab": "RuvAB"}


def run_one(seed: int, mode: str, threads: int) -> dict:
    row = explore_row("small12", seed, mode, threads, CHANGES)
    print(f"seed {seed} {mode}: {row['candidates']} candidates, {100 * row['junk_fraction']:.0f} % on background, "
          f"{row['wall_s']:.0f} s; " + ", ".join(f"{s} covered {row['coverage'].get(s, 0):.2f} led "
                                                  f"P{v['led_precision']:.2f}/R{v['led_recall']:.2f}"
                                                  for s, v in row["species"].items() if s in SPECIES), flush=True)
    return row


def table(rows: list[dict]) -> str:
    head = ("| seed | mode | candidates | classes | on background | "
            + " | ".join(f"{NAMES[s]}: with a candidate, led classes P / R" for s in SPECIES) + " | run s |")
    lines = [head, "|" + "---|" * (6 + len(SPECIES))]
    for r in rows:
        cells = []
        for s in SPECIES:
            v = r["species"].get(s)
            led = f"{v['led_precision']:.2f} / {v['led_recall']:.2f} ({v['led_classes']})" if v else "–"
            cells.append(f"{r['coverage'].get(s, 0):.2f}, {led}")
        lines.append(f"| {r['seed']} | {r['mode']} | {r['candidates']} | {r['classes']} | {r['junk_fraction']:.2f} | "
                     + " | ".join(cells) + f" | {r['wall_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[21, 22])
    ap.add_argument("--modes", nargs="+", default=["3d"], choices=["3d", "2d3d"])
    ap.add_argument("--threads", type=int, default=2, help="explore's --threads (2: the whole machine)")
    args = ap.parse_args()
    rows = [run_one(seed, mode, args.threads) for seed in args.seeds for mode in args.modes]
    note = ("Simulated tomograms (realistic preset at 12 Å voxels; species CCT, mTOR and RuvAB only, 15.2, 14.8 and "
            "10.7 voxels across; filaments and membranes as the preset makes them), `fewpick explore` with its "
            "defaults. 'with a candidate': the fraction of the species' particles with a candidate on them; 'led "
            "classes': every class whose commonest member is the species, ticked together (their number in "
            "brackets). 'on background': candidates on neither a particle nor a filament.")
    write_results("explore_small", {"rows": rows, "changes": {k: list(v) if isinstance(v, tuple) else v
                                                              for k, v in CHANGES.items()}},
                  note + "\n\n" + table(rows))


if __name__ == "__main__":
    main()
