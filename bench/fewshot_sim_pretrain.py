"""Does a few-shot encoder pre-trained on simulated micrographs learn the particle on real data? The encoder's own
scoring against the correlation with the exemplars' rotational average alone, on the real sets.

    .venv/bin/python bench/fewshot_sim_pretrain.py [--micrographs 300] [--steps 12000] [--sets ...] [--seeds 0 1 2]
        [--starts ...] [--name fewshot_sim_pretrain]

1. An encoder (the few-shot picker's masked autoencoder, its default architecture) is pre-trained by masked
   reconstruction on simulated micrographs drawn as bench/general_model.py draws them (six structures, 20–90 px,
   defocus, ice, dose, crowding, carbon, contamination, raw or 8-bit denoised), each resampled at the few-shot
   scale of the diameter a user would give for it, so that one encoder serves every particle size.
2. On each real set and label draw (``--seeds``: 15 exemplars on the reference micrograph, drawn as
   bench/default_threshold.py draws them; the expected count), the picker is trained as ``fewshot train`` trains
   it, without the fast network, its pre-training on the set's micrographs starting from random weights
   (``random start``) or from that encoder (``from simulated``), or skipped (``simulated only``).
3. Each model picks the test micrographs at its default cut scored three ways (``scoring_override``): by the
   encoder at every window, by the correlation alone, and as the model chooses. Box F1 (boxes of D, IoU ≥ 0.5) at
   the default cut and AUPRC (D/2) of every peak; then the means over the draws.

Writes bench/results/NAME.{json,md}; the simulated micrographs, the encoder and each draw's exemplars are kept in
bench/work/fewshot_sim_pretrain/.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.evaluate import evaluate  # noqa: E402
from fewpick.io import Image, read_micrograph, read_picks  # noqa: E402
from fewpick.pickers import fewshot  # noqa: E402
from general_model import draw_conditions, eight_bit  # noqa: E402
from real2d import SETS_ALL, draw_exemplars, load_set  # noqa: E402

# the module (the package's ``train`` is its function of that name)
fewshot_train = importlib.import_module("fewpick.pickers.fewshot.train")
HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "fewshot_sim_pretrain"
SIDE = 768
STARTS = ("random start", "from simulated", "simulated only")


def simulated(count: int, seed: int) -> list[tuple[Image, float]]:
    """``count`` simulated micrographs (cached), each as (image, the diameter in px a user would give for it)."""
    from fewpick.simulate.micrograph import simulate_micrograph
    from fewpick.simulate.species import load_species

    WORK.mkdir(parents=True, exist_ok=True)
    out, t0 = [], time.perf_counter()
    for i in range(count):
        path = WORK / f"sim_{seed}_{i:04d}.npz"
        if not path.exists():
            rng = np.random.default_rng(seed * 100000 + i)
            c = draw_conditions(rng)
            sim = simulate_micrograph((SIDE, SIDE), c["n"], c["preset"], seed=seed * 100000 + i)
            told = load_species(c["preset"].species[0]).diameter / c["preset"].pixel_size * c["told"]
            image = eight_bit(sim.image, told, c["lowpass"], rng) if c["eight_bit"] else sim.image
            np.savez_compressed(path, image=image.astype(np.float32), told=np.float32(told))
        with np.load(path) as d:
            out.append((Image(d["image"], None, Path(path.stem)), float(d["told"])))
        if (i + 1) % 25 == 0:
            print(f"simulated {i + 1}/{count} ({(time.perf_counter() - t0) / (i + 1) * (count - i - 1):.0f} s left)",
                  flush=True)
    return out


def sim_encoder(count: int, steps: int, seed: int):
    """The encoder pre-trained on the simulated micrographs, each at the few-shot scale of its own diameter."""
    path = WORK / f"encoder_{count}_{steps}_{seed}.pt"
    if path.is_file():
        net, _, info = fewshot.load_pretrained(path, "cpu")
        return net, info
    sims = simulated(count, seed)
    base = fewshot.FewShotSettings(diameter=40.0, pretrain_steps=steps, seed=seed)
    prepared = [fewshot.prepare(im, replace(base, diameter=told).scale) for im, told in sims]
    t0 = time.perf_counter()
    net, info = fewshot.pretrain([im for im, _ in sims], base, prepared=prepared, device="cpu")
    info = {**info, "seconds": time.perf_counter() - t0}
    fewshot.save_pretrained(net, base, info, path)
    return net, info


def exemplars_for(rs, seed: int) -> Path:
    """The seed's 15 exemplars on the set's reference micrograph (drawn as bench/default_threshold.py draws them)."""
    from fewpick.io import write_picks

    path = WORK / rs.name / f"s{seed}" / "exemplars.star"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_picks(draw_exemplars(rs, seed), path)
    return path


def trained(rs, encoder, continue_pretraining: bool, seed: int = 0, steps: int | None = None) -> fewshot.FewShotModel:
    """The set's few-shot model as ``fewshot train`` trains it (the seed's exemplars, the expected count, no fast
    network), its pre-training on the set's micrographs starting from ``encoder`` (random weights where None) or
    skipped."""
    import copy

    source = exemplars_for(rs, seed)
    exemplars = read_picks(source)
    reference = read_micrograph(rs.reference)
    others = fewshot_train.other_micrographs(reference, [read_micrograph(p) for p in rs.pretrain])
    settings = fewshot.FewShotSettings(diameter=rs.diameter, expected_particles=rs.expected, seed=seed)
    settings = replace(settings, pretrain_steps=steps) if steps else settings
    ref_img = fewshot.prepare(reference, settings.scale)
    on_reference = fewshot.exemplars_on(reference, exemplars, source)
    settings, estimated, beside = fewshot_train.counted(settings, [reference, *others], ref_img.shape, on_reference)
    net, info = (copy.deepcopy(encoder), {"file": "simulated"}) if encoder is not None else (None, {})
    if continue_pretraining:
        images = [reference, *others]
        prepared = [ref_img, *[fewshot.prepare(im, settings.scale) for im in others]]
        net, info = fewshot.pretrain(images, settings, net=net, prepared=prepared, device="cpu")
    model = fewshot.finetune(reference, exemplars, settings, net=net, pretrained=info,
                             exemplars_source=source, prepared=ref_img, device="cpu")
    return fewshot_train.finish_count(model, reference, others, on_reference, estimated, beside)


def scored(model: fewshot.FewShotModel, rs, tests) -> dict:
    out = {}
    for how in ("encoder", "correlation", None):
        if how is None and model.scoring() in out:  # the model's own choice, scored above
            out["own"] = out[model.scoring()]
            continue
        m = replace(model, scoring_override=how)
        default = fewshot.pick_images(m, tests)
        every = fewshot.pick_images(m, tests, -1e9)
        out[how or "own"] = {"box_f1": evaluate(default, rs.test_truth, box=rs.diameter)["all_picks"]["f1"],
                             "auprc": evaluate(every, rs.test_truth, radius=rs.diameter / 2)["auprc"]}
    out["scoring"] = model.scoring()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--micrographs", type=int, default=300)
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", nargs="+", default=list(SETS_ALL))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="label draws (exemplars) per set")
    ap.add_argument("--starts", nargs="+", default=list(STARTS), choices=STARTS, help="the encoder's starts compared")
    ap.add_argument("--name", default="fewshot_sim_pretrain", help="results file name under bench/results/")
    ap.add_argument("--user-steps", type=int, help="pre-training steps on the set's micrographs (default: the picker's)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    encoder, info = sim_encoder(a.micrographs, a.steps, a.seed)
    print(f"encoder: {a.steps} steps on {a.micrographs} simulated micrographs, {info.get('seconds', 0):.0f} s",
          flush=True)
    rows = []
    for name in a.sets:
        rs = load_set(name)
        tests = [read_micrograph(p) for p in rs.test]
        for seed in a.seeds:
            for start, model in (("random start", lambda: trained(rs, None, True, seed, a.user_steps)),
                                 ("from simulated", lambda: trained(rs, encoder, True, seed, a.user_steps)),
                                 ("simulated only", lambda: trained(rs, encoder, False, seed))):
                if start not in a.starts:
                    continue
                t0 = time.perf_counter()
                m = model()
                row = {"set": name, "seed": seed, "start": start, "train_s": time.perf_counter() - t0,
                       **scored(m, rs, tests)}
                rows.append(row)
                print(row, flush=True)
    md = [f"Encoder pre-trained on {a.micrographs} simulated micrographs for {a.steps} steps "
          f"({info.get('seconds', 0):.0f} s); 15 exemplars per draw (seeds {', '.join(map(str, a.seeds))}), the "
          "expected count, no fast network. Box F1 at the default cut / AUPRC of every peak, scored by the encoder at "
          "every window, by the correlation with the exemplars' rotational average alone, and as the model chooses.",
          "", "| set | seed | encoder's start | encoder | correlation | the model's choice |", "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[k]['box_f1']:.3f} / {r[k]['auprc']:.3f}" for k in ("encoder", "correlation", "own")]
        md.append(f"| {r['set']} | {r['seed']} | {r['start']} | " + " | ".join(cells[:2])
                  + f" | {cells[2]} ({r['scoring']}) |")
    md += ["", "Means over the draws:", "", "| set | encoder's start | encoder | correlation | encoder − correlation, box F1 |",
           "|---|---|---|---|---|"]
    for name in a.sets:
        for start in a.starts:
            sel = [r for r in rows if r["set"] == name and r["start"] == start]
            if not sel:
                continue
            mean = {k: {m: float(np.mean([r[k][m] for r in sel])) for m in ("box_f1", "auprc")}
                    for k in ("encoder", "correlation")}
            cells = [f"{mean[k]['box_f1']:.3f} / {mean[k]['auprc']:.3f}" for k in ("encoder", "correlation")]
            diff = mean["encoder"]["box_f1"] - mean["correlation"]["box_f1"]
            md.append(f"| {name} | {start} | {cells[0]} | {cells[1]} | {diff:+.3f} |")
    write_results(a.name, {"rows": rows, "encoder": {k: v for k, v in info.items() if k != "history"}}, "\n".join(md))

if __name__ == "__main__":
    main()
