"""Probe every verb with what a careless or unlucky user types: bad images, labels and models, outputs that exist,
are read-only, are folders or are inputs, and numbers that are NaN, infinite, zero, negative, huge or not numbers.

Every probe must be clean: either it succeeds (exit 0), or it fails with exit status 2 and one line (``error: …``,
the last line printed, after at most the model's summary; or the command line's own usage message), never a
traceback; every file that existed before is byte-identical
afterwards (the probe's own output may be replaced when it succeeds), and a failed probe leaves no new file
behind. Probes run in this process (the command line's own runner), each with a time limit.

    python bench/fuzz_cli.py            # every probe (about a thousand); writes bench/results/fuzz_cli.{json,md}
    python bench/fuzz_cli.py --fast     # a fixed sample, as make test runs it (tests/test_fuzz.py)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import write_results  # noqa: E402

FLOATS = ["nan", "inf", "-inf", "0", "-1", "1e9", "abc", ""]
INTS = ["-1", "0", "1000000000000", "2.5", "abc"]
LIMIT_S = 120  # a probe that runs longer is a failure (something unbounded was accepted)

# one valid, quick invocation of each verb ({d}: the probe's folder); the probes change one thing in it
BASES = {
    "pick": ["pick", "{d}/good.mrc", "--method", "dog", "-d", "32", "--out", "{d}/out.star"],
    "pick --model": ["pick", "{d}/good.mrc", "--model", "{d}/pu.pt", "--out", "{d}/out.star"],
    "train": ["train", "{d}/good.mrc", "--labels", "{d}/labels.star", "-d", "32", "-n", "25", "--steps", "2",
              "--steps-per-epoch", "1", "--out", "{d}/m.pt"],
    "evaluate": ["evaluate", "{d}/labels.star", "{d}/truth.star", "--radius", "16"],
    "convert": ["convert", "{d}/labels.star", "{d}/out.csv"],
    "overlay": ["overlay", "{d}/good.mrc", "--picks", "{d}/labels.star", "-d", "32", "--out", "{d}/o.png"],
    "simulate micrographs": ["simulate", "micrographs", "--out", "{d}/sim", "--count", "1", "--size", "128",
                             "--preset", "simple", "--particle-diameter", "16", "--particles", "3"],
    "simulate map": ["simulate", "map", "--species", "enolase", "--out", "{d}/map.mrc", "--pixel-size", "6"],
    "fewshot pretrain": ["fewshot", "pretrain", "{d}/good.mrc", "-d", "32", "--steps", "2", "--out", "{d}/enc.pt"],
    "fewshot train": ["fewshot", "train", "{d}/good.mrc", "-e", "{d}/labels.star", "-d", "32", "--pretrain-steps",
                      "2", "--steps", "2", "--distill-steps", "0", "--out", "{d}/fs.pt"],
    "fewshot pick": ["fewshot", "pick", "{d}/good.mrc", "--model", "{d}/fs.pt", "--out", "{d}/out.star"],
    "tomo train": ["tomo", "train", "{d}/tomo.mrc", "--labels", "{d}/tlabels.star", "-d", "10", "--epochs", "1",
                   "--steps-per-epoch", "1", "--box", "32", "--depth", "3", "--out", "{d}/t.pt"],
    "tomo pick": ["tomo", "pick", "{d}/tomo.mrc", "--model", "{d}/t.pt", "--out", "{d}/out.star"],
}
# verbs that serve a page (forever) or need a project: probed with bad files only
FILE_ONLY = {
    "label": ["label", "{d}/good.mrc", "-d", "32", "--out", "{d}/l.star", "--port", "0"],
    "explore serve": ["explore", "serve", "{d}/norun"],
    "explore run": ["explore", "run", "{d}/tomo.mrc", "--out", "{d}/run"],
    "copick picks": ["copick", "picks", "{d}/copick.json", "--object", "x", "--out", "{d}/out.star"],
    "copick add": ["copick", "add", "{d}/labels.star", "{d}/copick.json", "--object", "x"],
    "copick tomograms": ["copick", "tomograms", "{d}/copick.json", "--out", "{d}/tomos"],
}
# options whose values are not numbers a user types, or that only change how a verb runs
SKIP = {"--port", "--workers", "--threads", "--lambdas"}

BAD_IMAGES = ["empty.mrc", "garbage.mrc", "truncated.mrc", "nan.mrc", "tiny.mrc", "missing.mrc", "adir.mrc",
              "garbage.png", "tomo.mrc"]
BAD_VOLUMES = ["empty.mrc", "garbage.mrc", "truncated.mrc", "nan3d.mrc", "missing.mrc", "good.mrc"]
BAD_LABELS = ["empty.star", "garbage.star", "dup.star", "nocoord.star", "text.csv", "nan.star", "outside.star",
              "missing.star", "good.mrc"]
BAD_MODELS = ["empty.pt", "garbage.pt", "missing.pt", "labels.star", "t.pt", "pu.pt", "fs.pt"]
BAD_OUTPUTS = ["{d}/good.mrc", "{d}/labels.star", "{d}/adir.mrc", "{d}/afile/x", "/proc/fewpick/x"]


def make_fixture(d: Path) -> None:
    """The files every probe starts from: good ones (micrograph, labels, truth, a small tomogram and its labels,
    three tiny models) and bad ones."""
    from typer.testing import CliRunner

    from fewpick.cli import app
    from fewpick.io import make_picks, write_mrc, write_picks
    from fewpick.simulate import SimpleMicrographConfig, simulate_simple_micrograph

    cfg = SimpleMicrographConfig(size=(256, 256), diameter=32.0, n_particles=25, snr=0.1)
    image, centres, _ = simulate_simple_micrograph(cfg, seed=5)
    write_mrc(d / "good.mrc", image.astype(np.float32), 1.0)
    write_picks(make_picks("good", centres[:, 0], centres[:, 1]), d / "truth.star")
    write_picks(make_picks("good", centres[:12, 0], centres[:12, 1]), d / "labels.star")
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(40, 96, 96)).astype(np.float32)
    tc = rng.uniform(20, 76, size=(6, 3))
    tc[:, 2] = rng.uniform(15, 25, 6)
    for x, y, z in tc:
        zz, yy, xx = np.ogrid[:40, :96, :96]
        vol[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 < 25] += 3.0
    write_mrc(d / "tomo.mrc", vol, 10.0)
    write_picks(make_picks("tomo", tc[:, 0], tc[:, 1], z=tc[:, 2]), d / "tlabels.star")
    # bad images
    (d / "empty.mrc").write_bytes(b"")
    (d / "garbage.mrc").write_bytes(rng.bytes(3000))
    (d / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(200))
    (d / "truncated.mrc").write_bytes((d / "good.mrc").read_bytes()[:60000])
    bad = image.astype(np.float32).copy()
    bad[5, 5] = np.nan
    write_mrc(d / "nan.mrc", bad, 1.0)
    bad3 = vol.copy()
    bad3[3, 3, 3] = np.inf
    write_mrc(d / "nan3d.mrc", bad3, 10.0)
    write_mrc(d / "tiny.mrc", rng.normal(size=(8, 8)).astype(np.float32), 1.0)
    (d / "adir.mrc").mkdir()
    (d / "afile").write_text("a file where a folder is expected\n")
    # bad labels
    (d / "empty.star").write_text("")
    (d / "garbage.star").write_bytes(rng.bytes(500))
    (d / "dup.star").write_text("data_particles\n\nloop_\n_rlnMicrographName #1\n_rlnCoordinateX #2\n"
                                "_rlnCoordinateY #3\n_rlnCoordinateX #4\ngood\t10\t20\t30\n")
    (d / "nocoord.star").write_text("data_particles\n\nloop_\n_rlnMicrographName #1\n_rlnAngleRot #2\ngood\t10\n")
    (d / "text.csv").write_text("micrograph,x,y\ngood,ten,20\n")
    (d / "nan.star").write_text("data_particles\n\nloop_\n_rlnMicrographName #1\n_rlnCoordinateX #2\n"
                                "_rlnCoordinateY #3\ngood\tnan\t20\ngood\t30\t40\n")
    (d / "outside.star").write_text("data_particles\n\nloop_\n_rlnMicrographName #1\n_rlnCoordinateX #2\n"
                                    "_rlnCoordinateY #3\ngood\t-500\t20\ngood\t3000\t40\n")
    # bad models, and three tiny good ones
    (d / "empty.pt").write_bytes(b"")
    (d / "garbage.pt").write_bytes(rng.bytes(4000))
    runner = CliRunner()
    for verb in ("train", "fewshot train", "tomo train"):
        args = [a.format(d=d) for a in BASES[verb]]
        args[args.index("--out") + 1] = str(d / {"train": "pu.pt", "fewshot train": "fs.pt", "tomo train": "t.pt"}[verb])
        r = runner.invoke(app, args)
        assert r.exit_code == 0, (verb, r.output)
    for p in d.glob("*.ckpt"):
        p.unlink()


def numeric_options(verb_args: list[str]) -> dict[str, str]:
    """The numeric options of the command that ``verb_args`` starts with: option → 'int' or 'float'."""
    import inspect

    import typer.main

    from fewpick.cli import app

    cmd = typer.main.get_command(app)
    words = [w for w in verb_args if not w.startswith(("-", "{"))]
    while hasattr(cmd, "commands"):
        cmd = cmd.commands[words.pop(0)]
    func = inspect.unwrap(cmd.callback)
    out = {}
    for par in inspect.signature(func).parameters.values():
        ann = str(par.annotation)
        decls = [x for x in getattr(par.default, "param_decls", ()) or () if x.startswith("--")]
        if not decls or decls[0] in SKIP or "List" in ann or "Tuple" in ann:
            continue
        if ann in ("int", "Optional[int]"):
            out[decls[0]] = "int"
        elif ann in ("float", "Optional[float]"):
            out[decls[0]] = "float"
    return out


def with_option(args: list[str], option: str, value: str) -> list[str]:
    args = list(args)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    return args


def replace_value(args: list[str], old: str, new: str) -> list[str]:
    return [new if a == old else a for a in args]


def output_of(base: list[str]) -> str | None:
    """What an invocation writes: its --out, or convert's second argument."""
    if "--out" in base:
        return base[base.index("--out") + 1]
    return base[2] if base[0] == "convert" else None


def probes(fast: bool = False) -> list[tuple[str, list[str], str | None]]:
    """(name, arguments, the probe's own output) for every probe; ``fast``: a fixed sample of them."""
    out = []
    for verb, base in BASES.items():
        output = output_of(base)
        for option, kind in numeric_options(base).items():
            for value in (INTS if kind == "int" else FLOATS):
                out.append((f"{verb} {option} {value!r}", with_option(base, option, value), output))
        if "-d" in base:
            for value in ("0", "-3", "nan", "0.5", "1e9", "abc", "12parsec", "120A"):
                out.append((f"{verb} -d {value!r}", replace_value(base, base[base.index("-d") + 1], value), output))
        if output is not None:
            for bad in BAD_OUTPUTS:
                out.append((f"{verb} --out {bad}", replace_value(base, output, bad), bad))
    for verb, base in {**BASES, **FILE_ONLY}.items():
        for original in [a for a in base if a.startswith("{d}/") and a != output_of(base)]:
            name = original[4:]
            if name.endswith(".pt"):
                bads = BAD_MODELS
            elif name in ("tomo.mrc",):
                bads = BAD_VOLUMES
            elif name.endswith((".mrc", ".png")):
                bads = BAD_IMAGES
            elif name.endswith((".star", ".csv", ".json")) or name == "norun":
                bads = BAD_LABELS + ["adir.mrc"]
            else:
                continue
            for bad in bads:
                if bad == name:
                    continue
                out.append((f"{verb} {name} -> {bad}", replace_value(base, original, "{d}/" + bad), output_of(base)))
    if fast:
        rng = np.random.default_rng(0)
        keep = sorted(rng.choice(len(out), size=min(60, len(out)), replace=False))
        out = [out[i] for i in keep]
    return out


def snapshot(d: Path) -> dict[str, str]:
    files = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        files[rel] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return files


class TimeLimit(Exception):
    pass


def run_probe(args: list[str], d: Path, output: str | None) -> dict:
    """Run one probe in ``d`` and judge it (see the module)."""
    from typer.testing import CliRunner

    from fewpick.cli import app

    before = snapshot(d)
    argv = [a.format(d=d) for a in args]
    own = output.format(d=d) if output else None

    def stop(*_):
        raise TimeLimit()

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(LIMIT_S)
    t0 = time.perf_counter()
    try:
        r = CliRunner().invoke(app, argv)
        code, text, exc = r.exit_code, r.output, r.exception
    except TimeLimit:
        code, text, exc = None, "", TimeLimit()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - t0
    after = snapshot(d)
    problems = []
    if isinstance(exc, TimeLimit):
        problems.append(f"ran over {LIMIT_S} s")
    elif exc is not None and not isinstance(exc, SystemExit):
        problems.append(f"raised {type(exc).__name__}: {str(exc)[:200]}")
    if "Traceback" in text:
        problems.append("printed a traceback")
    if code not in (0, None):
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        usage = "Invalid value" in text or "No such option" in text or "Missing" in text or "Usage:" in text
        if code != 2:
            problems.append(f"exit status {code}")
        errors = [ln for ln in lines if ln.startswith("error:")]
        # informational lines (a model's summary) may come first; the failure itself is one line, the last
        if not usage and not (len(errors) == 1 and lines[-1].startswith("error:")
                              and not any(ln.startswith("warning:") for ln in lines)):
            problems.append("no one-line error")
    owned = {str(Path(own).relative_to(d))} if own and own.startswith(str(d)) else set()
    if own and code == 0 and own.startswith(str(d)):  # a successful probe's own outputs sit beside its --out
        stem = Path(own).with_suffix("").name
        owned |= {k for k in after if k.startswith(stem)}
    for name, digest in before.items():
        if after.get(name) != digest and not (code == 0 and name in owned):
            problems.append(f"changed {name}")
    new = sorted(k for k in set(after) - set(before) if not k.endswith("failures.txt"))  # the failures file: a report
    if code not in (0,) and new:
        problems.append(f"left {', '.join(new[:3])}")
    return {"args": [a.replace("{d}/", "") for a in args], "exit": code, "seconds": round(seconds, 2),
            "clean": not problems, "problems": problems, "message": " ".join(text.split())[:300]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="a fixed sample of the probes (make test)")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--work", type=Path, default=None, help="folder for the fixture (default: a temporary one)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    work = Path(args.work or tempfile.mkdtemp(prefix="fewpick-fuzz-"))
    pristine = work / "pristine"
    if pristine.exists():
        shutil.rmtree(pristine)
    pristine.mkdir(parents=True)
    make_fixture(pristine)
    todo = probes(args.fast)
    rows = []
    t0 = time.perf_counter()
    d = work / "probe"
    for i, (name, argv, output) in enumerate(todo):
        if d.exists():
            shutil.rmtree(d)
        shutil.copytree(pristine, d, symlinks=True)
        row = {"probe": name, **run_probe(argv, d, output)}
        rows.append(row)
        if not row["clean"]:
            print(f"NOT CLEAN {name}: {'; '.join(row['problems'])} | {row['message'][:160]}", flush=True)
        if (i + 1) % 50 == 0:
            print(f"{i + 1}/{len(todo)} probes, {time.perf_counter() - t0:.0f} s", flush=True)
    clean = sum(r["clean"] for r in rows)
    summary = {"probes": len(rows), "clean": clean, "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(summary))
    if not args.fast:
        by_verb: dict[str, list] = {}
        for r in rows:
            by_verb.setdefault(" ".join(w for w in r["args"][:2] if not w.startswith("-") and "." not in w), []).append(r)
        lines = [f"{clean} of {len(rows)} probes clean (exit 0, or exit 2 with one line; no traceback; every "
                 "existing file byte-identical; nothing left behind by a failure), in "
                 f"{summary['seconds']:.0f} s.", "",
                 "| verb | probes | clean | failed as expected | succeeded |", "|---|---|---|---|---|"]
        for verb, rs in sorted(by_verb.items()):
            lines.append(f"| {verb} | {len(rs)} | {sum(r['clean'] for r in rs)} | "
                         f"{sum(r['exit'] not in (0, None) for r in rs)} | {sum(r['exit'] == 0 for r in rs)} |")
        bad = [r for r in rows if not r["clean"]]
        if bad:
            lines += ["", "Not clean:", ""] + [f"- `{r['probe']}`: {'; '.join(r['problems'])}" for r in bad]
        # one compact row per probe: what it ran, how it ended and, for a failure, the first words of its message
        compact = [{"probe": r["probe"], "exit": r["exit"], "clean": r["clean"],
                    **({"problems": r["problems"]} if r["problems"] else {}),
                    **({"message": r["message"][:120]} if r["exit"] not in (0, None) else {})} for r in rows]
        write_results("fuzz_cli", {**summary, "rows": compact}, "\n".join(lines), args.results)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if clean == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
