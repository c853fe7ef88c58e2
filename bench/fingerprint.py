"""A seeded fingerprint of what fewpick computes: every trainer on small simulated data, every picker, the
exploration, the evaluation and the exchange formats, run through the command line as a user runs them.

Each output is reduced to a hash: picks tables by their numbers (every column, to the last bit), model files by
their network weights and stored settings, exploration runs by their arrays. A change that should not change
behaviour (a move, a rename, a new module boundary) must leave every hash as it was:

    python bench/fingerprint.py --out bench/results/fingerprint.json            # record
    python bench/fingerprint.py --check bench/results/fingerprint.json          # compare, exit 1 on a change

A minute or two on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fewpick.io import read_picks, write_picks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

FEWPICK = [sys.executable, "-c", "from fewpick.cli import main; main()"]


def run(*args: str) -> None:
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run([*FEWPICK, *map(str, args)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"fewpick {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def picks_digest(path: Path, work: Path) -> dict:
    """Rows and a hash of every column of a picks file; micrograph paths relative to the work folder."""
    table = read_picks(path)
    cols = sorted(table.columns)
    arrays = []
    for c in cols:
        values = table[c].to_numpy()
        arrays.append(values.astype(float) if values.dtype.kind in "fiub"
                      else np.array([str(v).replace(f"{work}/", "") for v in values]))
    return {"rows": len(table), "hash": digest(*arrays)}


def _tensors(obj, prefix=""):
    if isinstance(obj, torch.Tensor):
        yield prefix, obj.detach().cpu().numpy()
    elif isinstance(obj, np.ndarray):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            yield from _tensors(obj[k], f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}/{i}")


def model_digest(path: Path) -> dict:
    bundle = torch.load(path, map_location="cpu", weights_only=False)
    named = list(_tensors(bundle))
    settings = bundle.get("settings", {}) if isinstance(bundle, dict) else {}
    return {"tensors": len(named), "weights": digest(*[a for _, a in named]),
            "settings": hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the fingerprint here (JSON)")
    ap.add_argument("--check", type=Path, help="compare with this fingerprint; exit 1 where any hash differs")
    ap.add_argument("--keep", type=Path, help="keep the work folder here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    work = Path(args.keep or tempfile.mkdtemp(prefix="fewpick-fingerprint-"))
    work.mkdir(parents=True, exist_ok=True)
    w = lambda name: work / name  # noqa: E731
    result: dict[str, dict] = {}

    # micrographs, labels, classic pickers
    run("simulate", "micrographs", "--out", w("mics"), "--count", 3, "--size", 768, "--seed", 3, "--preset", "realistic",
        "--species", "cct,enolase", "--particles", 40)
    run("convert", w("mics"), w("truth.star"), "--where", "species=cct")
    run("convert", w("mics"), w("labels.star"), "--where", "species=cct", "--sample", 12, "--seed", 0)
    run("simulate", "micrographs", "--out", w("simple"), "--count", 2, "--size", 512, "--seed", 5, "--preset", "simple")
    run("pick", w("mics"), "--method", "dog", "-d", "183A", "--out", w("dog.star"))
    run("pick", w("simple"), "--method", "dog", "-d", 40, "--out", w("dog_simple.star"))
    run("pick", w("mics"), "-d", "183A", "--out", w("general.star"))  # no model: the general particle model
    run("pick", w("mics"), "-d", "183A", "-n", 20, "--out", w("general_count.star"))
    run("simulate", "map", "--species", "cct", "--pixel-size", 2.4, "--out", w("cct.mrc"))
    run("pick", w("mics/mic_000.mrc"), "--method", "template", "--template", w("cct.mrc"), "-d", "183A",
        "--angular-step", 60, "--out", w("template.star"))
    for name in ("truth", "labels", "dog", "dog_simple", "general", "general_count", "template"):
        result[f"picks/{name}"] = picks_digest(w(f"{name}.star"), work)

    # PU picker
    run("train", w("mics"), "--labels", w("labels.star"), "-d", "183A",
        "--expected-particles", 20, "--steps", 60, "--steps-per-epoch", 30, "--out", w("pu.pt"))
    result["model/pu"] = model_digest(w("pu.pt"))
    run("pick", w("mics"), "--model", w("pu.pt"), "--out", w("pu.star"))
    run("pick", w("mics"), "--model", w("pu.pt"), "--threshold", "-1e9", "--out", w("pu_all.star"))
    run("pick", w("mics"), "--model", w("pu.pt"), "--threshold", "auto", "--max-picks", 10, "--out", w("pu_auto.star"))
    for name in ("pu", "pu_all", "pu_auto"):
        result[f"picks/{name}"] = picks_digest(w(f"{name}.star"), work)

    # few-shot picker (its scoring is chosen at training; --exact forces the encoder)
    truth = read_picks(w("truth.star"))
    inside = truth[(truth["micrograph"] == "mic_000") & truth["x"].between(100, 667) & truth["y"].between(100, 667)]
    write_picks(inside.head(10), w("exemplars.star"))
    run("fewshot", "train", w("mics/mic_000.mrc"), "--exemplars", w("exemplars.star"), "-d", "183A",
        "--pretrain-steps", 40, "--steps", 30, "--distill-steps", 30, "--out", w("fewshot.pt"))
    result["model/fewshot"] = model_digest(w("fewshot.pt"))
    run("fewshot", "pick", w("mics"), "--model", w("fewshot.pt"), "--out", w("fewshot.star"))
    run("fewshot", "pick", w("mics"), "--model", w("fewshot.pt"), "--exact", "--threshold", "-1e9", "--out", w("fewshot_exact.star"))
    run("pick", w("mics/mic_002.mrc"), "--model", w("fewshot.pt"), "--threshold", "auto", "--out", w("fewshot_auto.star"))
    for name in ("fewshot", "fewshot_exact", "fewshot_auto"):
        result[f"picks/{name}"] = picks_digest(w(f"{name}.star"), work)

    # evaluation
    run("evaluate", w("pu_all.star"), w("truth.star"), "--radius", 76, "--box", 152, "--json", w("eval.json"))
    report = json.loads(w("eval.json").read_text())
    result["evaluate/pu_all"] = {"hash": hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest()[:16]}

    # exchange formats: the PU picks through every writer and back
    for suffix in ("cs", "tsv", "csv"):
        run("convert", w("pu.star"), w(f"pu.{suffix}"), "--box-size", 152, "--images", w("mics"))
        result[f"convert/{suffix}"] = picks_digest(w(f"pu.{suffix}"), work)
    for fmt in ("cbox", "box", "mod", "coords"):  # one micrograph a file: a folder of them
        run("convert", w("pu.star"), f"{w('pu_' + fmt)}/", "--to", fmt, "--box-size", 152, "--images", w("mics"))
        result[f"convert/{fmt}"] = picks_digest(w(f"pu_{fmt}"), work)

    # tomograms: localization and exploration
    run("simulate", "tomograms", "--out", w("tomos"), "--count", 2, "--size", 128, "--depth", 48, "--seed", 2,
        "--preset", "easy")
    run("convert", w("tomos/tomo_000_truth.star"), w("tlabels.star"), "--where", "species=ribosome", "--sample", 6, "--seed", 0)
    run("tomo", "train", w("tomos/tomo_000.mrc"), "--labels", w("tlabels.star"), "-d", "260A", "--epochs", 2,
        "--steps-per-epoch", 4, "--box", 32, "--out", w("tomo.pt"))
    result["model/tomo"] = model_digest(w("tomo.pt"))
    run("tomo", "pick", w("tomos"), "--model", w("tomo.pt"), "--out", w("tomo.star"))
    run("tomo", "pick", w("tomos"), "--model", w("tomo.pt"), "--threshold", 0, "--out", w("tomo_all.star"))
    for name in ("tomo", "tomo_all"):
        result[f"picks/{name}"] = picks_digest(w(f"{name}.star"), work)
    run("explore", "run", w("tomos/tomo_000.mrc"), "--out", w("explore"), "--mode", "3d", "--epochs", 2)
    arrays = sorted(w("explore").glob("*.npy"))
    result["explore/arrays"] = {"files": [a.name for a in arrays], "hash": digest(*[np.load(a) for a in arrays])}
    for star in sorted(w("explore").glob("*.star")):
        result[f"explore/{star.stem}"] = picks_digest(star, work)

    seconds = time.time() - t0
    print(json.dumps(result, indent=1))
    print(f"{len(result)} entries in {seconds:.0f} s (work folder {work})", file=sys.stderr)
    m = machine()
    here = f"{m['cpu']}, {m['cores']} cores"
    if args.out:
        payload = {"command": " ".join(["python", *sys.argv]), "machine": here,
                   "torch": torch.__version__, "seconds": round(seconds), "fingerprint": result}
        args.out.write_text(json.dumps(payload, indent=1) + "\n")
    if args.check:
        stored = json.loads(args.check.read_text())
        old = stored["fingerprint"]
        if stored.get("machine") != here:  # the CPU's kernels round differently: trained weights may differ
            print(f"note: recorded on {stored.get('machine')}, checked on {here}", file=sys.stderr)
        changed = sorted(k for k in set(old) | set(result) if old.get(k) != result.get(k))
        for k in changed:
            print(f"changed: {k}: {old.get(k)} -> {result.get(k)}", file=sys.stderr)
        if changed:
            raise SystemExit(1)
        print(f"fingerprint unchanged ({len(result)} entries)", file=sys.stderr)


if __name__ == "__main__":
    main()
