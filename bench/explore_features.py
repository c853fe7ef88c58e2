"""Which features separate the species in exploration: measured on the robustness benchmark's runs.

    .venv/bin/python bench/explore_features.py   # after bench/explore_robust.py

For every 2d3d run folder that bench/explore_robust.py left in bench/work/explore_robust, the same candidates
and the same images are described seven ways — the images' principal components (32), their rotational
averages (16 rings, standardised), both side by side, both with the candidates' standardised log scores, and these
with the 3D rotational averages of the tomogram around each candidate (its band-passed energy, its density, or
both: the default of ``--features pca``) — then laid out by
UMAP and grouped into the default number of classes exactly as ``fewpick explore`` does, and scored as the
robustness benchmark scores them (every class a species leads, ticked together: precision, recall).
Writes bench/results/explore_features.{json,md}: per condition and the median over conditions.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from explore_bench import label, score  # noqa: E402
from explore_robust import CONDITIONS, WORK  # noqa: E402


def _f(v) -> str:
    return "–" if v is None or v != v else f"{v:.2f}"


VARIANTS = ("components", "rotational averages", "components + rotational averages",
            "components + rotational averages + score", "+ 3D energy profile", "+ 3D density profile",
            "+ 3D energy and density profiles (default)")


def features(inputs: np.ndarray, cands, variant: str, context: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    from fewpick.explore.cluster import pca_features, strength
    from fewpick.explore.run import PCA_COMPONENTS

    if variant == "components":
        return pca_features(inputs, PCA_COMPONENTS, radial=False)
    if variant == "rotational averages":
        return pca_features(inputs, 0)
    if variant == "components + rotational averages":
        return pca_features(inputs, PCA_COMPONENTS)
    groups = cands["micrograph"].astype(str).to_numpy()
    z = strength(cands["score"].to_numpy(float), groups)
    energy, density = context
    extra = {"+ 3D energy profile": (energy,), "+ 3D density profile": (density,),
             "+ 3D energy and density profiles (default)": (energy, density)}.get(variant, ())
    return pca_features(inputs, PCA_COMPONENTS, scores=z, context=extra)


def main() -> None:
    from fewpick.explore.candidates import context_profiles
    from fewpick.explore.cluster import overcluster, umap_2d
    from fewpick.explore.run import classes_for
    from fewpick.io import read_picks, read_volume

    warnings.simplefilter("ignore")
    rows = []
    for name in CONDITIONS:
        run = WORK / f"run_{name}_21_2d3d"
        if name == "membrane" or not (run / "inputs.npy").is_file():  # membrane: the default tomogram again
            continue
        settings = json.loads((run / "run.json").read_text())["settings"]
        cands = read_picks(run / "candidates.star")
        truth = read_picks(WORK / "data" / f"{name}_21_truth.csv")
        inputs = np.load(run / "inputs.npy").astype(np.float32)
        lab, particle = label(cands, truth)
        h = classes_for(len(cands), settings.get("classes"))
        tomo = read_volume(WORK / "data" / f"{name}_21.mrc")
        context = context_profiles(np.asarray(tomo.data), cands[["x", "y", "z"]].to_numpy(float), settings["radius"])
        for v in VARIANTS:
            xy = umap_2d(features(inputs, cands, v, context), settings["neighbors"], settings["seed"])
            classes, _ = overcluster(xy, h, settings.get("clusters"), settings["seed"])
            res = score(classes, lab, particle, truth)["species"]
            row = {"condition": name, "features": v, "classes": h,
                   **{f"{sp}_{k}": res.get(sp, {}).get(f"led_{k}") for sp in ("ribosome", "cct")
                      for k in ("precision", "recall")}}
            rows.append(row)
            print(name, v, {k: round(x, 2) for k, x in row.items() if isinstance(x, float)}, flush=True)
    keys = [f"{sp}_{k}" for sp in ("ribosome", "cct") for k in ("precision", "recall")]
    md = ["| condition | features | classes | ribosome P / R | CCT P / R |", "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['condition']} | {r['features']} | {r['classes']} | {_f(r['ribosome_precision'])} / "
                  f"{_f(r['ribosome_recall'])} | {_f(r['cct_precision'])} / {_f(r['cct_recall'])} |")
    summary = ["| features | ribosome P | ribosome R | CCT P | CCT R | conditions with both species at P ≥ 0.8 and "
               "R ≥ 0.6 |", "|---|---|---|---|---|---|"]
    for v in VARIANTS:
        sel = [r for r in rows if r["features"] == v]
        med = {k: np.nanmedian([np.nan if r[k] is None else r[k] for r in sel]) for k in keys}
        ok = sum(all((r[k] or 0) >= (0.8 if k.endswith("precision") else 0.6) for k in keys) for r in sel)
        summary.append(f"| {v} | {med['ribosome_precision']:.2f} | {med['ribosome_recall']:.2f} | "
                       f"{med['cct_precision']:.2f} | {med['cct_recall']:.2f} | {ok} of {len(sel)} |")
    note = ("The candidates and images of each robustness run (bench/results/explore_robust.md), described seven "
            "ways, then UMAP and the default number of classes as `fewpick explore` makes them. P / R: every class "
            "the species leads, ticked together. Medians over the conditions:")
    write_results("explore_features", {"rows": rows}, note + "\n\n" + "\n".join(summary) + "\n\n" + "\n".join(md))


if __name__ == "__main__":
    main()
