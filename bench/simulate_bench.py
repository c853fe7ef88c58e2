"""Simulator benchmark: speed and memory at the issue's sizes, SNR per species, pictures.

    .venv/bin/python bench/simulate_bench.py

Writes bench/results/simulate.{json,md} and docs/sim_micrograph.png, docs/sim_tomogram.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mib_of, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

MIC_CMD = ("import time; from fewpick.simulate import simulate_micrograph as s; t=time.time(); "
           "r=s((4096,4096),300,'realistic',seed=2); print(time.time()-t, len(r.truth))")
TOMO_CMD = ("import time; from fewpick.simulate import simulate_tomogram as s; t=time.time(); "
            "r=s('realistic',seed=1); print(time.time()-t, r.tomogram.shape, len(r.angles))")


def pictures() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fewpick.ops.filters import gaussian_lowpass, normalize
    from fewpick.ops.resample import bin_image
    from fewpick.simulate import simulate_micrograph, simulate_tomogram

    sim = simulate_micrograph((2048, 2048), 80, "realistic", seed=21)
    shown = normalize(bin_image(sim.image, 2), clip=4)
    fig, ax = plt.subplots(1, 2, figsize=(13, 6.6), dpi=110)
    ax[0].imshow(shown, cmap="gray", vmin=-3, vmax=3)
    ax[0].set_title(f"realistic preset, 2048² px at {sim.pixel_size} Å/px, defocus "
                    f"{sim.params['defocus_u'] / 1e4:.1f} µm (binned ×2)", fontsize=9)
    ax[1].imshow(gaussian_lowpass(shown, 1.5), cmap="gray", vmin=-2, vmax=2)
    colours = {"ribosome": "#ff5252", "cct": "#ffd740", "mtor": "#40c4ff", "ruvab": "#e040fb", "enolase": "#69f0ae"}
    for species, colour in colours.items():
        t = sim.truth[sim.truth.species == species]
        ax[1].plot(t.x / 2, t.y / 2, "+", color=colour, ms=7, mew=1.5, label=species)
    ax[1].legend(loc="lower right", fontsize=8)
    ax[1].set_title("low-passed, with the true centres", fontsize=9)
    for a in ax:
        a.set_axis_off()
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "sim_micrograph.png")
    plt.close(fig)

    tomo = simulate_tomogram("realistic", seed=3)
    v = tomo.tomogram
    nz, ny, nx = v.shape
    xy = gaussian_lowpass(v[nz // 2 - 3 : nz // 2 + 4].mean(0), 1.0)
    xz = gaussian_lowpass(v[:, ny // 2 - 3 : ny // 2 + 4, :].mean(1), 1.0)
    fig, ax = plt.subplots(2, 1, figsize=(7, 10), dpi=110, gridspec_kw={"height_ratios": [ny, nz]})
    for a, img, title in ((ax[0], xy, f"xy slice z={nz // 2} (7-slice average)"),
                          (ax[1], xz, f"xz slice y={ny // 2}: missing-wedge streaks")):
        a.imshow(img, cmap="gray", vmin=np.percentile(img, 1), vmax=np.percentile(img, 99))
        a.set_title(title, fontsize=9)
        a.set_axis_off()
    fig.suptitle(f"simulated tomogram, {nx}×{ny}×{nz} voxels of {tomo.voxel_size:g} Å, {len(tomo.angles)} tilts",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "sim_tomogram.png")
    plt.close(fig)


def main() -> None:
    from fewpick.simulate import particle_snr, simulate_micrograph

    runs = []
    for _ in range(2):
        wall, rss, out = peak_rss_mib_of([PY, "-c", MIC_CMD])
        runs.append(("micrograph 4096² px, 300 particles (realistic)", float(out.split()[0]), wall, rss))
        wall, rss, out = peak_rss_mib_of([PY, "-c", TOMO_CMD])
        runs.append(("tomogram 512×512×200 from 61 tilts + WBP (realistic)", float(out.split()[0]), wall, rss))
    speed = pd.DataFrame(runs, columns=["task", "simulate_s", "process_wall_s", "peak_rss_mib"])
    speed = speed.groupby("task", sort=False).agg(["min", "max"]).round(1)

    snr_rows = []
    for preset in ("easy", "realistic", "hard"):
        tables = [particle_snr(simulate_micrograph((1536, 1536), 60, preset, seed=s, keep_clean=True)) for s in range(5)]
        d = pd.concat(tables)
        for species, g in d.groupby("species"):
            snr_rows.append((preset, species, len(g), g.snr.median(), g.snr.quantile(0.25), g.snr.quantile(0.75)))
    snr = pd.DataFrame(snr_rows, columns=["preset", "species", "particles", "snr_median", "snr_q25", "snr_q75"])
    pictures()

    md = ["## Speed and memory (2 cores; bars: micrograph ≤ 20 s, tomogram ≤ 60 s, ≤ 4 GB)", "",
          "| task | simulate s (min–max of 2) | process wall s | peak RSS MiB |", "|---|---|---|---|"]
    for task, row in speed.iterrows():
        md.append(f"| {task} | {row[('simulate_s', 'min')]}–{row[('simulate_s', 'max')]} | "
                  f"{row[('process_wall_s', 'min')]}–{row[('process_wall_s', 'max')]} | "
                  f"{row[('peak_rss_mib', 'max')]:.0f} |")
    md += ["", "## Per-particle SNR (signal variance / variance of everything else, in the particle's disc;"
           " 5 micrographs of 1536² px per preset)", "",
           "| preset | species | particles | median SNR | IQR |", "|---|---|---|---|---|"]
    for r in snr.itertuples():
        md.append(f"| {r.preset} | {r.species} | {r.particles} | {r.snr_median:.3f} | {r.snr_q25:.3f}–{r.snr_q75:.3f} |")
    speed_json = [{"task": t, "simulate_s": [r[("simulate_s", "min")], r[("simulate_s", "max")]],
                   "process_wall_s": [r[("process_wall_s", "min")], r[("process_wall_s", "max")]],
                   "peak_rss_mib": r[("peak_rss_mib", "max")]} for t, r in speed.iterrows()]
    write_results("simulate", {"speed": speed_json, "snr": snr.to_dict(orient="records")}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
