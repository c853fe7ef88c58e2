"""Train the general particle model shipped with fewpick, and measure it on the real sets.

    .venv/bin/python bench/general_model.py [--micrographs 600] [--steps 8000] [--seed 0] [--install]

The general model is the PU picker's network (:class:`fewpick.nn.cnn.PickerCNN`, the PU picker's default width
and blocks, so that PU training can start from it) trained with every particle labelled on simulated
micrographs that span the conditions a user meets:

- particles: six of the simulator's structures (80 to 2,300 kDa, round and elongated; not the virus), one or two species per
  micrograph (both labelled), 20 to 90 px across at the simulated pixel size, so that every binning factor from 2 to 6 occurs;
- the diameter the network is told: the structure's largest diameter times 0.8 to 1.5 (users measure
  differently, and many give the box they extract);
- crowding from a few particles to particles touching (the disks of the largest diameter covering up to 45 %); defocus 0.5 to 3.5 µm; ice 150 to 600 Å; dose 20 to
  60 e/Å²; carbon edges, ice contamination and protein aggregates (not particles) in some;
- raw counts, or low-passed and saved as 8 bits (as denoised micrographs are shared).

Each micrograph is binned and normalised as the PU picker does it (:func:`fewpick.pickers.pu.data.prepare`);
pixels within the PU picker's label radius of a true centre are positives, all others negatives; the loss is
the mean binary cross-entropy of the positives plus that of the negatives (each class weighs half).

``--install`` writes the model into the package (``src/fewpick/pickers/pu/general_2d.pt``). Every run measures the
model with no label at all on the real sets' test micrographs and on two simulated ribosome sets (crowded at
176 px, sparse at 60 px; ``--simulated``): AUPRC (matching radius D/2) beside the difference-of-Gaussians
picker, box F1 and duplicates at the default cut; it writes bench/results/general_model.{json,md}. The training
micrographs are cached under bench/work/general/. ``--small`` adds sparse simulated sets of small or faint
particles (enolase, GluA3, CCT, RuvAB, mTOR at 30–60 px; bench/general_score.py's ``SMALL``) and writes general_model_small instead
(``--sets`` with no name and ``--simulated`` with none measure those alone). ``--results NAME`` writes
bench/results/NAME.{json,md} instead (a model measured beside the shipped one).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.geometry import Geometry  # noqa: E402
from fewpick.ops.filters import normalize  # noqa: E402
from fewpick.pickers.pu.data import positive_mask, prepare  # noqa: E402
from fewpick.pickers.pu.settings import PUSettings  # noqa: E402
from fewpick.simulate.micrograph import PRESETS, simulate_micrograph  # noqa: E402
from fewpick.simulate.species import available_species, load_species  # noqa: E402
from real2d import SETS_ALL  # noqa: E402

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "general"
INSTALL = HERE.parent / "src" / "fewpick" / "pickers" / "pu" / "general_2d.pt"
DATA_VERSION = 2  # of draw_conditions and make_item: the cache's files are named by it
SIDE = 768  # simulated micrographs are SIDE × SIDE px
MAX_ATOMS = 15e6  # fewer particles where they would hold more atoms than this (the simulation's time)
SKIPPED = ("dengue",)  # a 13,000 kDa virus of 500 Å: a minute per micrograph, for a shape the others span


def draw_conditions(rng: np.random.Generator) -> dict:
    """One micrograph's conditions, drawn at random (see the module)."""
    keys = [k for k in available_species() if k not in SKIPPED]
    chosen = tuple(rng.choice(keys, size=int(rng.integers(1, 3)), replace=False))
    diameter_px = float(np.exp(rng.uniform(np.log(20), np.log(90))))  # of the first species, simulated px
    pixel_size = load_species(chosen[0]).diameter / diameter_px
    lo_df = rng.uniform(5000, 25000)
    preset = replace(PRESETS["realistic"], name="general", pixel_size=pixel_size, species=chosen,
                     defocus=(lo_df, lo_df + rng.uniform(1000, 10000)), astigmatism=rng.uniform(0, 1200),
                     b_factor=(rng.uniform(30, 150),) * 2, dose=rng.uniform(20, 60),
                     ice_thickness=(rng.uniform(150, 600),) * 2, ice_variation=rng.uniform(0.02, 0.3),
                     carbon_probability=0.3, contamination=(0, int(rng.integers(0, 5))),
                     aggregates=(0, int(rng.integers(0, 8))))
    crowding = rng.uniform(0.03, 0.45)  # share of the area the particles' disks would cover
    n = int(crowding * SIDE * SIDE / (np.pi * (diameter_px / 2) ** 2)) + 3
    n = min(n, int(MAX_ATOMS / max(len(load_species(k).xyz) for k in chosen)))
    return {"preset": preset, "n": n, "told": float(np.exp(rng.uniform(np.log(0.8), np.log(1.5)))), "eight_bit": bool(rng.random() < 0.4),
            "lowpass": rng.uniform(0.02, 0.08)}


def eight_bit(image: np.ndarray, diameter_px: float, lowpass: float, rng: np.random.Generator) -> np.ndarray:
    """A denoised-looking 8-bit copy: Gaussian low-pass (σ = ``lowpass`` diameters), clipped at random
    percentiles, quantised to 256 levels."""
    from scipy import ndimage

    x = ndimage.gaussian_filter(normalize(image), lowpass * diameter_px)
    lo, hi = np.percentile(x, [rng.uniform(0, 1), 100 - rng.uniform(0, 1)])
    return np.round(np.clip((x - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8).astype(np.float32)


def make_item(seed: int) -> dict:
    """One simulated micrograph, binned for the network as the PU picker bins it, with its label mask."""
    rng = np.random.default_rng(seed)
    c = draw_conditions(rng)
    sim = simulate_micrograph((SIDE, SIDE), c["n"], c["preset"], seed=seed)
    told = load_species(c["preset"].species[0]).diameter / c["preset"].pixel_size * c["told"]
    image = eight_bit(sim.image, told, c["lowpass"], rng) if c["eight_bit"] else sim.image
    settings = PUSettings(diameter=told)
    geo = settings.geometry()
    binned = prepare(image, geo.factor)
    centres = geo.to_working(sim.truth[["y", "x"]].to_numpy(float), Geometry.scale(image.shape, binned.shape))
    return {"image": binned.astype(np.float32), "centres": centres.astype(np.float32),
            "radius": np.float32(settings.label_radius()), "factor": geo.factor, "eight_bit": c["eight_bit"],
            "species": ",".join(c["preset"].species)}


def dataset(count: int, seed: int) -> list[dict]:
    """``count`` training micrographs (seeds ``seed·100000 + i``), cached one file each."""
    WORK.mkdir(parents=True, exist_ok=True)
    items, t0 = [], time.perf_counter()
    for i in range(count):
        path = WORK / f"mic_v{DATA_VERSION}_{seed}_{i:05d}.npz"
        if not path.exists():
            item = make_item(seed * 100000 + i)
            np.savez_compressed(path, **item)
        with np.load(path) as d:
            items.append({k: d[k] for k in d.files})
        if (i + 1) % 25 == 0:
            left = (time.perf_counter() - t0) / (i + 1) * (count - i - 1)
            print(f"simulated {i + 1}/{count} ({left:.0f} s left)", flush=True)
    return items


def batches(items: list[dict], masks: list[np.ndarray], batch: int, tile: int, rng: np.random.Generator):
    while True:
        xs, ms = [], []
        for _ in range(batch):
            i = int(rng.integers(len(items)))
            im, m = items[i]["image"], masks[i]
            y0 = int(rng.integers(0, max(1, im.shape[0] - tile + 1)))
            x0 = int(rng.integers(0, max(1, im.shape[1] - tile + 1)))
            x, mm = im[y0 : y0 + tile, x0 : x0 + tile], m[y0 : y0 + tile, x0 : x0 + tile]
            k = int(rng.integers(4))
            x, mm = np.rot90(x, k), np.rot90(mm, k)
            if rng.random() < 0.5:
                x, mm = x[:, ::-1], mm[:, ::-1]
            if x.shape != (tile, tile):
                x = np.pad(x, ((0, tile - x.shape[0]), (0, tile - x.shape[1])))
                mm = np.pad(mm, ((0, tile - mm.shape[0]), (0, tile - mm.shape[1])))
            xs.append(np.ascontiguousarray(x))
            ms.append(np.ascontiguousarray(mm))
        yield torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ms))


def train_general(items: list[dict], steps: int, seed: int, batch: int = 16, tile: int = 64, lr: float = 2e-3):
    from fewpick.pickers.pu.files import build_network
    from fewpick.training import fit, seeded

    settings = PUSettings(diameter=16.0)
    rng, _ = seeded(seed)
    net = build_network(settings)
    masks = [positive_mask(it["image"].shape, it["centres"], float(it["radius"])) for it in items]
    draw = batches(items, masks, batch, tile, rng)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    m = net.receptive_field // 2

    def step(_):
        x, mask = next(draw)
        z = net(x)[:, 0, m:-m, m:-m]
        pos = mask[:, m:-m, m:-m]
        bce = F.binary_cross_entropy_with_logits(z, pos.float(), reduction="none")
        loss = 0.5 * (bce[pos].mean() if pos.any() else 0.0) + 0.5 * bce[~pos].mean()
        return {"loss": loss}

    def report(entry):
        print(f"step {entry['step']}/{steps} loss {entry['loss']:.4f} ({entry['eta_s']:.0f} s left)", flush=True)

    history = fit(net, opt, step, steps=steps, every=max(1, steps // 20), sched=sched, generators=(rng,),
                  checkpoint=WORK / f"train_{seed}.ckpt", resume="auto", config={"steps": steps, "n": len(items), "data": DATA_VERSION},
                  progress=report)
    return net, settings, history


def save_general(net, history: list, items: list[dict], path: Path) -> None:
    """The network as a PU model file for a particle of the working diameter (see
    :func:`fewpick.pickers.pu.general.general_model`): peaks half a radius apart (crowded micrographs), no
    edge band, no rotational average, no calibrated cut."""
    from fewpick.geometry import WORKING_DIAMETER
    from fewpick.ops.peaks import ball
    from fewpick.pickers.pu.files import save_model
    from fewpick.pickers.pu.model import PUModel

    settings = PUSettings(diameter=WORKING_DIAMETER, bin_factor=1, min_distance=0.5, edge_margin=0.0,
                          correlation=False)
    pi = float(np.mean([len(it["centres"]) * ball(float(it["radius"]), 2).sum() / it["image"].size for it in items]))
    save_model(PUModel(net.eval(), settings, pi, None, history, threshold=None), path)


def zero_label(path: Path, sets: list[str], simulated: list[float] = (), small: bool = False) -> list[dict]:
    """The general model (``path``) and difference-of-Gaussians with no label on each real set's test micrographs,
    on the simulated ribosome sets of ``simulated`` diameters (bench/general_score.py's: sparse at 60 px) and with
    ``small`` on bench/general_score.py's sparse sets of small or faint particles (``SMALL``):
    AUPRC and best F1 (matching radius D/2) over every peak; box F1 (boxes of D, IoU ≥ 0.5) and the duplicates
    at the default cut (each micrograph split by the automatic rule) and, for the general model, at the set's
    expected count (``--expected-particles``); the mean picks its automatic cut keeps on the training
    micrographs beside their annotated count."""
    from fewpick.evaluate import duplicates, evaluate
    from fewpick.io import read_micrograph
    from fewpick.pickers.classic import ClassicPicker, ClassicSettings
    from fewpick.pickers.pu.general import general_model
    from general_score import simulated_set, small_sets
    from real2d import load_set

    rows = []
    for rs in [*map(load_set, sets), *map(simulated_set, simulated), *(small_sets() if small else ())]:
        name = rs.name
        images = [read_micrograph(p) for p in rs.test]
        row = {"set": name, "diameter": rs.diameter, "expected": rs.expected}
        pickers = {"general": general_model(rs.diameter, path=path),
                   "general, expected count": general_model(rs.diameter, rs.expected, path=path),
                   "difference of Gaussians": ClassicPicker(ClassicSettings(diameter=rs.diameter))}
        for tool, picker in pickers.items():
            t = time.perf_counter()
            every = picker.pick_images(images, -1e9)
            seconds = time.perf_counter() - t
            kept = picker.pick_images(images)  # the default cut
            ev = evaluate(every, rs.test_truth, radius=rs.diameter / 2)
            box = evaluate(kept, rs.test_truth, box=rs.diameter)["all_picks"]
            best_box = evaluate(every, rs.test_truth, box=rs.diameter)["best"]
            row[tool] = {"auprc": ev["auprc"], "best_f1": ev["best"]["f1"] if ev["best"] else 0.0,
                         "box_f1_default": box["f1"], "picks_default": len(kept),
                         "best_box_f1": best_box["f1"] if best_box else 0.0,
                         "duplicates_default": duplicates(kept, rs.test_truth, rs.diameter / 2)["rate"],
                         "seconds_per_micrograph": seconds / len(images)}
        # what the automatic cut keeps on the training micrographs, against their annotated count: a count estimate
        general = pickers["general"]
        row["count_estimate"] = float(np.mean([len(general.pick(read_micrograph(p))) for p in rs.train]))
        print(name, {k: round(v["auprc"], 3) for k, v in row.items() if isinstance(v, dict)},
              f"count {row['count_estimate']:.0f} of {rs.expected}", flush=True)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    out = ["| set | picker | AUPRC | best F1 | box F1 at the default cut (picks) | best box F1 | duplicates at the "
           "default | s / micrograph |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for tool in ("general", "general, expected count", "difference of Gaussians"):
            v = r[tool]
            out.append(f"| {r['set']} | {tool} | {v['auprc']:.3f} | {v['best_f1']:.3f} | {v['box_f1_default']:.3f} "
                       f"({v['picks_default']}) | {v['best_box_f1']:.3f} | {100 * v['duplicates_default']:.1f} % | "
                       f"{v['seconds_per_micrograph']:.2f} |")
    out += ["", "Particles per training micrograph: annotated, and kept by the general model's automatic cut (a count "
            "estimate where none is given).", "", "| set | annotated | automatic cut |", "|---|---|---|"]
    out += [f"| {r['set']} | {r['expected']} | {r['count_estimate']:.0f} |" for r in rows]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--micrographs", type=int, default=600)
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--install", action="store_true", help="write the model into the package")
    ap.add_argument("--model", type=Path, help="measure this model file (no training)")
    ap.add_argument("--sets", nargs="*", default=list(SETS_ALL))
    ap.add_argument("--simulated", type=float, nargs="*", default=[176.0, 60.0], metavar="D",
                    help="simulated ribosome sets at these diameters (px) too")
    ap.add_argument("--small", action="store_true",
                    help="the sparse simulated sets of small or faint particles too; results general_model_small")
    ap.add_argument("--results", help="name of the results files (default: general_model, or general_model_small)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    training = {}
    path = args.model
    if path is None:
        t0 = time.perf_counter()
        items = dataset(args.micrographs, args.seed)
        t_sim = time.perf_counter() - t0
        net, _, history = train_general(items, args.steps, args.seed)
        t_train = time.perf_counter() - t0 - t_sim
        path = INSTALL if args.install else WORK / f"general_2d_s{args.seed}.pt"
        save_general(net, history, items, path)
        training = {"micrographs": args.micrographs, "steps": args.steps, "seed": args.seed,
                    "simulation_s": t_sim, "training_s": t_train, "data_version": DATA_VERSION}
        print(f"simulated in {t_sim:.0f} s, trained in {t_train:.0f} s: {path}")
    rows = zero_label(path, args.sets, args.simulated, args.small)
    write_results(args.results or ("general_model_small" if args.small else "general_model"),
                  {"model": str(path), "training": training, "rows": rows}, table(rows))


if __name__ == "__main__":
    main()
