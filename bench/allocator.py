"""The command line's allocator setting (:mod:`fewpick.allocator`): `fewpick tomo train` as the benchmark runs it
(CCT, 10 labels on the four training tomograms of `tomo_bench.py`, seed 0), with the setting (the command as
installed) and without (the same command started without it), alternating, wall time and peak memory.

    .venv/bin/python bench/allocator.py [--repeats 1] [--epochs 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tomo_bench  # noqa: E402
from _common import peak_rss_mib_of, write_results  # noqa: E402
from fewpick.io import write_picks  # noqa: E402

WITHOUT = "from fewpick.cli.common import app; import fewpick.cli, sys; app(sys.argv[1:], prog_name='fewpick')"


def _summary(values: list[float]) -> str:
    each = " / ".join(f"{v:.0f}" for v in values)
    return f"{statistics.median(values):.0f} ({each})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=6)
    a = ap.parse_args()
    for s in tomo_bench.TRAIN_SEEDS:
        tomo_bench.simulate(s)
    pool = tomo_bench.truth_of("cct", tomo_bench.TRAIN_SEEDS)
    labels = tomo_bench.WORK / "labels_allocator.star"
    write_picks(tomo_bench.draw_labels(pool, 10, 0)[["micrograph", "x", "y", "z"]], labels)
    tomos = [str(tomo_bench.WORK / "data" / f"tomo_{s}.mrc") for s in tomo_bench.TRAIN_SEEDS]
    args = ["tomo", "train", *tomos, "--labels", str(labels), "--particle-diameter",
            f"{float(pool['diameter_px'].iloc[0]):g}", "--seed", "0", "--epochs", str(a.epochs),
            "--out", str(tomo_bench.WORK / "model_allocator.pt")]
    runs = {"default allocator": [], "freed memory kept (the command line)": []}
    for _ in range(a.repeats):
        for name, cmd in ((list(runs)[0], [sys.executable, "-c", WITHOUT]), (list(runs)[1], [tomo_bench.FEWPICK])):
            s, mib, _ = peak_rss_mib_of([*cmd, *args])
            runs[name].append({"seconds": s, "peak_mib": mib})
            print(f"{name}: {s:.0f} s, {mib:.0f} MiB", flush=True)
    rows = ["| allocator | runs | train s (each) | peak MiB (each) |", "|---|---|---|---|"]
    for name, r in runs.items():
        rows.append(f"| {name} | {len(r)} | {_summary([x['seconds'] for x in r])} | "
                    f"{_summary([x['peak_mib'] for x in r])} |")
    table = ("`fewpick tomo train`, CCT, 10 labels on four 512×512×200 tomograms (binned ×2), "
             f"{a.epochs} epochs, seed 0; median (each run), the two settings alternating.\n\n" + "\n".join(rows) + "\n")
    write_results("allocator", {"runs": runs}, table)


if __name__ == "__main__":
    main()
