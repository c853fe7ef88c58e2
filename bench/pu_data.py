"""Data for the PU-picker benchmarks: realistic simulated micrographs, one target species among distractors.

    .venv/bin/python bench/pu_data.py [--train 10] [--test 4] [--extra 3] [--size 4096]

Writes bench/work/pu_sim/{train,test,extra}/ (not committed: regenerate with this command; the seeds fix it).
``extra`` holds more training micrographs, used only by bench/pu_losses.py so that 1000 targets can be labeled
(the Topaz comparison trains on ``train`` alone).
Target: mTOR–mLST8 (4JSV, 294 kDa), 40 % of the particles; distractors: ribosome, CCT, RuvAB, enolase.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from fewpick.io import read_picks
from fewpick.simulate import write_micrographs

DATA = Path(__file__).resolve().parent / "work" / "pu_sim"
SPECIES = ("mtor", "ribosome", "cct", "ruvab", "enolase")
WEIGHTS = (0.4, 0.15, 0.15, 0.15, 0.15)
TARGET = "mtor"


def target_truth(*splits: str) -> pd.DataFrame:
    """The target particles of one or more splits (``train``, ``test``, ``extra``)."""
    t = pd.concat([read_picks(DATA / s) for s in splits], ignore_index=True)
    return t[t.species == TARGET].reset_index(drop=True)


def expected_per_micrograph(*splits: str) -> int:
    """Target particles per training micrograph (what a user would pass as --expected-particles)."""
    splits = splits or ("train",)
    return int(round(len(target_truth(*splits)) / sum(len(list((DATA / s).glob("*.mrc"))) for s in splits)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=10)
    ap.add_argument("--test", type=int, default=4)
    ap.add_argument("--extra", type=int, default=3)
    ap.add_argument("--only", choices=("train", "test", "extra"), nargs="+", default=("train", "test", "extra"))
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    for split, count, seed in (("train", args.train, 1001), ("test", args.test, 2002), ("extra", args.extra, 3003)):
        if split not in args.only or count < 1:
            continue
        truth = write_micrographs(DATA / split, count, args.size, "realistic", seed, species=SPECIES, weights=WEIGHTS,
                                  prefix=split)
        n = (truth.species == TARGET).sum()
        print(f"{split}: {count} micrographs, {len(truth)} particles, {n} {TARGET}")


if __name__ == "__main__":
    main()
