"""Does a PU network pre-trained on other real data sets help? Leave-one-set-out on the real sets of
bench/real2d.py.

    .venv/bin/python bench/real2d_pretrain.py [--targets 10059 10947 apoferritin_ab] [--steps 2000] [--labels 15 all]

For each target set, a PU network is first trained on every labelled micrograph of the *other* real sets (each
binned by the factor the PU picker chooses for its particle, so that a particle spans ~16 binned px in all of them;
all labels; π the labelled fraction), then the target's picker is trained as usual, from those weights instead of
random ones (15 labels, bench/real2d.py's draw for the seed, or all training labels) and scored on the target's test
micrographs. The target set is never seen in pre-training. Rows go into bench/results/real2d_ablations.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fewpick.geometry import Geometry  # noqa: E402
from fewpick.io import read_micrograph  # noqa: E402
from fewpick.io.images import Image  # noqa: E402
from fewpick.ops.peaks import ball  # noqa: E402
from fewpick.ops.resample import bin_image  # noqa: E402
from fewpick.pickers import pu  # noqa: E402
from real2d import DATA, WORK, _csv_truth  # noqa: E402
from real2d_ablations import load_rows, train_rows, write_rows  # noqa: E402

DIAMETERS = {"10059": 36.0, "10947": 60.0, "apoferritin": 68.0}
FAMILY = {"10059": "10059", "10947": "10947", "apoferritin_ab": "apoferritin", "apoferritin_ba": "apoferritin"}


def labelled(family: str) -> list[tuple[Path, pd.DataFrame]]:
    """Every labelled micrograph of a set and its particles (original pixels)."""
    if family == "apoferritin":
        root = DATA / "empiar10146_apoferritin"
        return [(root / "images" / f"{s}.bin_avg.png", _csv_truth(root / "labels" / f"{s}.csv", f"{s}.bin_avg"))
                for s in ("May08_03.13.02", "May08_07.10.35")]
    root = DATA / f"cryoppp_{family}"
    return [(p, _csv_truth(root / split / "labels" / f"{p.stem}.csv", p.stem))
            for split in ("train", "valid", "test") for p in sorted((root / split / "images").glob("*.png"))]


def pooled(families: list[str], settings: pu.PUSettings) -> tuple[list[Image], pd.DataFrame]:
    """The micrographs of ``families``, each binned so its particle is ~``settings.binned_diameter`` px, with
    their labels on the binned grid (names prefixed by the set)."""
    images, tables = [], []
    for fam in families:
        geo = pu.PUSettings(diameter=DIAMETERS[fam], binned_diameter=settings.binned_diameter).geometry()
        for path, truth in labelled(fam):
            data = read_micrograph(path).data
            binned = bin_image(data, geo.factor)
            scale = Geometry.scale(data.shape, binned.shape)
            name = f"{fam}_{path.stem}"
            images.append(Image(binned, None, Path(name)))
            tables.append(pd.DataFrame({"micrograph": name, "x": truth.x.to_numpy(float) / scale[1],
                                        "y": truth.y.to_numpy(float) / scale[0]}))
    return images, pd.concat(tables, ignore_index=True)


def pretrain(target: str, steps: int, seed: int = 0) -> Path:
    out = WORK / "pretrain" / f"without_{FAMILY[target]}_{steps}.pt"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    base = pu.PUSettings(diameter=16.0)
    families = [f for f in DIAMETERS if f != FAMILY[target]]
    images, labels = pooled(families, base)
    # every particle is labelled: π is the labelled fraction of each micrograph (label disks), averaged
    s = pu.PUSettings(diameter=base.binned_diameter, bin_factor=1, steps=steps, seed=seed, threads=1,
                      min_distance=0.5)
    disk = float(ball(s.label_radius(), 2).sum())
    counts = labels.micrograph.value_counts()
    pi = float(np.mean([counts.get(im.name, 0) * disk / im.data.size for im in images]))
    s = replace(s, pi=pi)
    t0 = time.time()
    pu.train(images, labels, s, out)
    print(f"pre-trained without {FAMILY[target]} on {', '.join(families)}: {len(images)} micrographs, "
          f"{len(labels)} particles, π {pi:.3f}, {time.time() - t0:.0f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", nargs="+", default=["10059", "10947", "apoferritin_ab"])
    ap.add_argument("--labels", nargs="+", default=["15", "all"])
    ap.add_argument("--steps", type=int, default=2000, help="pre-training steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pretrain-only", action="store_true")
    args = ap.parse_args()
    for target in args.targets:
        init = pretrain(target, args.steps)
        if args.pretrain_only:
            continue
        for n in args.labels:
            name = f"pretrained{args.steps}"
            new = train_rows(target, name, {}, args.seed, n, init=init,
                             note=f"started from a network pre-trained on the other real sets ({args.steps} steps)")
            rows = load_rows()
            keys = {(r["set"], r.get("labels", "15"), r["change"], r["seed"]) for r in new}
            write_rows([r for r in rows if (r["set"], r.get("labels", "15"), r["change"], r["seed"]) not in keys] + new)
            for r in new:
                print(f"{target} {n} labels, {r['change']}: AUPRC {r['auprc']:.3f}, best F1 {r['best_f1']:.3f}, "
                      f"train {r['train_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
