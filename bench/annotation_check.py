"""What the CryoPPP annotation of the two crowded real sets counts as "picked twice": the curated masks (one
filled disk per particle, drawn on a 256 × 256 copy) against the centres derived from them.

    .venv/bin/python bench/annotation_check.py [--sets 10059 10947] [--seeds 0 1 2]

Two questions, each from the masks alone, nothing trained here:

1. *Do the centres count every disk?* The disks' radius is read as the median distance from an annotated
   centre to the mask's edge (the distance transform at the centres). The mask's area divided by one disk's
   area is the fewest disks that can cover it (overlapping disks cover less), against the centres annotated.
2. *Where do the second picks on one annotated particle lie?* The PU models kept by
   ``bench/default_threshold.py`` (15 labels, trained without a count, seeds as given) pick the test
   micrographs at their default cut, as ``fewpick pick`` does. A pick is a second pick when a better one lies
   within D/2 of the same annotated centre, as the benchmarks count duplicates. "Deep" means that the mask's
   edge lies at least three quarters of a disk radius away: a disk is centred within a quarter radius of the
   point. Compared with the first picks on annotated particles, and with points at the same distances from
   annotated centres in random directions (the control).

A second pick that lies deep in the mask as often as a first pick does sits on a disk that the annotation drew
but gave no centre of its own (disks that overlap heavily merge into one centre when the centres are derived).
Writes bench/results/annotation_check.{json,md}.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.ndimage as ndi
from PIL import Image
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.evaluate import duplicates  # noqa: E402
from fewpick.io import read_picks  # noqa: E402
from real2d import DATA, FEWPICK, load_set  # noqa: E402

WORK = Path(__file__).resolve().parent / "work" / "default_threshold"
DEEP = 0.75  # of a disk radius: the mask's edge at least this far away
SIDE = 1024  # the CryoPPP micrographs' side, px


def edge_map(rs, split: str, stem: str) -> tuple[np.ndarray, float]:
    """The distance (micrograph px) from each pixel of one micrograph's curated mask to the mask's edge (0 outside
    it), and the mask's scale (mask px per micrograph px)."""
    m = np.asarray(Image.open(DATA / f"cryoppp_{rs.name}" / split / "masks" / f"{stem}.png"))
    m = (m[..., 0] if m.ndim == 3 else m) > 0
    scale = m.shape[0] / SIDE
    return ndi.distance_transform_edt(m) / scale, scale


def edge_distance(edges: np.ndarray, scale: float, xy: np.ndarray) -> np.ndarray:
    """The edge map :func:`edge_map` read at each point (x, y, micrograph px)."""
    ij = np.clip((np.asarray(xy)[:, ::-1] * scale).astype(int), 0, np.array(edges.shape) - 1)
    return edges[ij[:, 0], ij[:, 1]]


def disk_count(rs) -> dict:
    """The disks' radius, and the fewest disks that cover the masks against the centres, per split."""
    out = {}
    for split, mics, truth in (("train", rs.train, rs.train_truth), ("test", rs.test, rs.test_truth)):
        radii, areas, centres = [], [], []
        for p in mics:
            edges, scale = edge_map(rs, split, p.stem)
            t = truth[truth.micrograph == p.stem][["x", "y"]].to_numpy(float)
            radii.append(edge_distance(edges, scale, t))
            areas.append(np.count_nonzero(edges) / scale**2)
            centres.append(len(t))
        r = float(np.median(np.concatenate(radii)))
        fewest = np.array(areas) / (np.pi * r**2)
        out[split] = {"radius": r, "centres": float(np.mean(centres)), "fewest_disks": float(np.mean(fewest)),
                      "fewest_per_centre": float(np.sum(fewest) / np.sum(centres))}
    return out


def second_picks(rs, picks: pd.DataFrame, radius: float, rng: np.random.Generator) -> dict:
    """Edge distances of the first and second picks on annotated particles, and of the control points."""
    first, second, control = [], [], []
    for p in rs.test:
        edges, scale = edge_map(rs, "test", p.stem)
        t = rs.test_truth[rs.test_truth.micrograph == p.stem][["x", "y"]].to_numpy(float)
        mine = picks[picks.micrograph.astype(str).map(lambda m: Path(m).stem) == p.stem]
        xy = mine.sort_values("score", ascending=False)[["x", "y"]].to_numpy(float)
        d, nearest = cKDTree(t).query(xy, distance_upper_bound=rs.diameter / 2)
        on = np.isfinite(d)
        seen: set[int] = set()
        is_second = np.zeros(len(xy), bool)
        for k in np.flatnonzero(on):
            is_second[k] = nearest[k] in seen
            seen.add(int(nearest[k]))
        edge = edge_distance(edges, scale, xy)
        first.append(edge[on & ~is_second])
        second.append(edge[is_second])
        offsets = d[is_second]
        angle = rng.uniform(0, 2 * np.pi, len(offsets))
        around = t[rng.integers(0, len(t), len(offsets))] + offsets[:, None] * np.c_[np.cos(angle), np.sin(angle)]
        inside = (around >= 0).all(axis=1) & (around < SIDE).all(axis=1)
        control.append(edge_distance(edges, scale, around[inside]))
    deep = DEEP * radius
    share = {k: float(np.mean(np.concatenate(v) >= deep)) if sum(map(len, v)) else float("nan")
             for k, v in (("first", first), ("second", second), ("control", control))}
    return {"second": int(sum(map(len, second))), "first": int(sum(map(len, first))),
            **{f"deep_{k}": v for k, v in share.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["10059", "10947"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for name in args.sets:
        rs = load_set(name)
        disks = disk_count(rs)
        for seed in args.seeds:
            run = WORK / name / f"pu_s{seed}_nocount_init-general"
            out = run / "test_default.star"
            if not out.is_file():
                subprocess.run([str(FEWPICK), "pick", *map(str, rs.test), "--model", str(run / "pu.pt"), "--out",
                                str(out)], check=True, capture_output=True)
            picks = read_picks(out)
            dup = duplicates(picks, rs.test_truth, rs.diameter / 2)
            rows.append({"set": name, "seed": seed, "picks": dup["n_pred"], "duplicate_rate": dup["rate"],
                         **second_picks(rs, picks, disks["test"]["radius"], rng), "disks": disks})
            print(rows[-1], flush=True)
    write_results("annotation_check", {"rows": rows}, table(rows))


def table(rows: list[dict]) -> str:
    lines = ["The curated masks of the two crowded sets against the centres derived from them. Radius: the median "
             "distance from an annotated centre to the mask's edge. Fewest disks: the mask's area over one disk's "
             "(overlaps make the true number larger).", "",
             "| set | split | disk radius (px) | annotated centres per micrograph | fewest disks per micrograph | ÷ centres |",
             "|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["set"] for r in rows):
        disks = next(r["disks"] for r in rows if r["set"] == name)
        for split, d in disks.items():
            lines.append(f"| {name} | {split} | {d['radius']:.1f} | {d['centres']:.0f} | {d['fewest_disks']:.0f} "
                         f"| {d['fewest_per_centre']:.2f} |")
    lines += ["", "PU models (15 labels, no count) at their default cut on the test micrographs. Deep: the mask's "
              f"edge at least {DEEP:g} disk radii away (a disk centred within a quarter radius). Control: points "
              "at the second picks' distances from randomly chosen annotated centres, in random directions.", "",
              "| set | seed | picks | picked twice | second picks | deep: first picks | deep: second picks "
              "| deep: control | second picks not deep, of all picks |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['seed']} | {r['picks']} | {100 * r['duplicate_rate']:.1f} % | {r['second']} "
                     f"| {r['deep_first']:.2f} | {r['deep_second']:.2f} | {r['deep_control']:.2f} "
                     f"| {100 * r['second'] * (1 - r['deep_second']) / r['picks']:.1f} % |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
