"""Batch picking at scale: serial, on Dask workers, killed and resumed, with corrupt files mixed in.

    .venv/bin/python bench/pu_data.py        # the simulated 4096² micrographs (bench/work/pu_sim), once
    .venv/bin/python bench/batch.py [--count 200] [--runs serial2 serial1 workers1 workers2 resume]

The simulated micrographs are linked under ``count`` names (``mic_000.mrc`` …) into bench/work/batch/mics/,
with 5 corrupt files beside them (random bytes, a truncated MRC, an empty file, text, a header without data).
A PU model (100 labels, default settings) is trained once. Each run is ``fewpick pick mics/ --model …
--threshold -1e9`` on this machine:

- ``serial2`` / ``serial1``: one process, 2 or 1 torch threads;
- ``workers1`` / ``workers2``: ``--workers N`` (a local Dask cluster, one torch thread per worker);
- ``resume``: ``serial2`` killed once 40 % of the micrographs are written, then run again with ``--resume``;
- ``split2``: what the two cores allow two processes, without Dask: two ``--threads 1`` runs at once, each on
  half of the micrographs (the rate is all micrographs over the slower run's seconds).

Reported: micrographs per second, peak memory of the main process and of each worker (sampled every 0.2 s),
whether the picks equal the serial run's (the same positions; the largest score difference), and the failures
listed.
Writes bench/results/batch.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.io import read_picks, write_picks  # noqa: E402

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "batch"
SIM = HERE / "work" / "pu_sim"
FEWPICK = Path(sys.executable).parent / "fewpick"
CORRUPT = ("bad_random.mrc", "bad_truncated.mrc", "bad_empty.mrc", "bad_text.mrc", "bad_header_only.mrc")


def prepare(count: int) -> tuple[Path, Path]:
    sources = sorted(p for split in ("train", "test", "extra") for p in (SIM / split).glob("*.mrc"))
    if not sources:
        raise SystemExit("no simulated micrographs: run bench/pu_data.py first")
    mics = WORK / "mics"
    mics.mkdir(parents=True, exist_ok=True)
    for old in mics.iterdir():
        old.unlink()
    for i in range(count):
        (mics / f"mic_{i:03d}.mrc").symlink_to(sources[i % len(sources)])
    rng = np.random.default_rng(0)
    raw = sources[0].read_bytes()
    (mics / CORRUPT[0]).write_bytes(rng.bytes(4096))
    (mics / CORRUPT[1]).write_bytes(raw[: len(raw) // 3])
    (mics / CORRUPT[2]).write_bytes(b"")
    (mics / CORRUPT[3]).write_text("this is not a micrograph\n")
    (mics / CORRUPT[4]).write_bytes(raw[:1024])
    model = WORK / "picker.pt"
    if not model.is_file():
        truth = pd.concat([read_picks(p) for p in sorted((SIM / "train").glob("*_truth.star"))], ignore_index=True)
        target = truth[truth.species == "mtor"]
        write_picks(target.sample(100, random_state=0), WORK / "labels.star")
        n = len(target) / len(list((SIM / "train").glob("*.mrc")))
        subprocess.run([str(FEWPICK), "train", str(SIM / "train"), "--labels", str(WORK / "labels.star"),
                        "--particle-diameter", str(float(target.diameter_px.iloc[0])), "--expected-particles",
                        f"{n:.0f}", "--out", str(model)], check=True)
    return mics, model


class Memory:
    """Peak resident memory of a process and each of its descendants, sampled in a thread."""

    def __init__(self, pid: int):
        import psutil

        self.root, self.peaks, self._stop = psutil.Process(pid), {}, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                try:
                    rss = p.memory_info().rss / 2**20
                    name = "main" if p.pid == self.root.pid else " ".join(p.cmdline())
                except psutil.Error:
                    continue
                key = (p.pid, name)
                self.peaks[key] = max(self.peaks.get(key, 0.0), rss)
            time.sleep(0.2)

    def stop(self) -> dict:
        self._stop.set()
        self.thread.join()
        main = max((v for (pid, n), v in self.peaks.items() if n == "main"), default=float("nan"))
        workers = [v for (pid, n), v in self.peaks.items() if "spawn_main" in n]  # the Dask worker processes
        return {"main_peak_mib": main, "worker_peak_mib": max(workers) if workers else None,
                "workers_seen": len(workers)}


def run(cmd: list[str], kill_at: int | None = None, parts: Path | None = None) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    mem = Memory(proc.pid)
    killed = False
    if kill_at is not None:
        while proc.poll() is None:
            if len([p for p in parts.glob("*.star") if not p.name.startswith(".")]) >= kill_at:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.05)
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    info = mem.stop()
    if proc.returncode and not killed:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return {"seconds": seconds, "stdout": out.strip(), "killed": killed, **info}


def split_run(mics: Path, base: list[str], out: Path, options: list[str]) -> dict:
    """Two runs at once on the two halves of the micrographs (by name), then their picks and failures joined
    into ``out`` and its failures file, as one run would write them."""
    files = sorted(mics.iterdir())
    halves = [files[0::2], files[1::2]]
    base = [a for a in base if a != str(mics)]  # the folder, replaced by each half's files
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*base[:2], *map(str, half), *base[2:], "--out", str(out.with_name(f"{out.stem}_{i}.star")),
                               *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, half in enumerate(halves)]
    mems = [Memory(p.pid) for p in procs]
    for p in procs:
        p.communicate()
    seconds = time.perf_counter() - t0
    peaks = [m.stop()["main_peak_mib"] for m in mems]
    parts = [out.with_name(f"{out.stem}_{i}.star") for i in range(2)]
    write_picks(pd.concat([read_picks(p) for p in parts], ignore_index=True), out)
    fails = [out.with_name(f"{out.stem}_{i}_failures.txt") for i in range(2)]
    out.with_name(f"{out.stem}_failures.txt").write_text("".join(f.read_text() for f in fails if f.is_file()))
    return {"seconds": seconds, "stdout": "", "killed": False, "main_peak_mib": max(peaks), "worker_peak_mib": None,
            "workers_seen": 0}


def score_gap(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """The largest score difference when both runs hold the same picks (micrographs and positions), else NaN.
    Rows are compared in (micrograph, x, y) order: scores that differ in the 6th digit (1 against 2 torch
    threads sum in another order) may swap neighbours in a file sorted by score."""
    key = ["micrograph", "x", "y"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    if len(a) != len(b) or list(a.micrograph) != list(b.micrograph):
        return float("nan")
    if not np.allclose(a[["x", "y"]].to_numpy(), b[["x", "y"]].to_numpy()):
        return float("nan")
    return float(np.abs(a.score.to_numpy() - b.score.to_numpy()).max())


def _same(gap: float | None) -> str:
    if gap is None:
        return "–"
    if gap != gap:
        return "NO"
    return "yes" if gap == 0 else f"yes (scores within {gap:.0e})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--runs", nargs="+", default=["serial2", "serial1", "workers1", "workers2", "resume", "split2"])
    ap.add_argument("--machines", type=int, default=10, help="for the estimate of 20,000 micrographs")
    args = ap.parse_args()
    mics, model = prepare(args.count)
    runs_dir = WORK / "runs"
    base = [str(FEWPICK), "pick", str(mics), "--model", str(model), "--threshold", "-1e9"]
    options = {"serial2": ["--threads", "2"], "serial1": ["--threads", "1"], "workers1": ["--workers", "1"],
               "workers2": ["--workers", "2"], "resume": ["--threads", "2"], "split2": ["--threads", "1"]}
    rows = {}
    for name in args.runs:
        out = runs_dir / f"{name}.star"
        for old in [out, runs_dir / f"{name}_failures.txt"]:
            old.unlink(missing_ok=True)
        parts = runs_dir / f"{name}_micrographs"
        if parts.is_dir():
            for p in parts.iterdir():
                p.unlink()
        cmd = [*base, "--out", str(out), *options[name]]
        if name == "split2":
            r = split_run(mics, base, out, options[name])
        elif name == "resume":
            first = run(cmd, kill_at=int(0.4 * args.count), parts=parts)
            done = len([p for p in parts.glob("*.star") if not p.name.startswith(".")])
            second = run([*cmd, "--resume"])
            r = {**second, "seconds": first["seconds"] + second["seconds"], "killed_after": done,
                 "first_run_s": first["seconds"], "resumed_run_s": second["seconds"]}
        else:
            r = run(cmd)
        failures = (runs_dir / f"{name}_failures.txt").read_text().splitlines()
        r["failures"] = sorted(line.split("\t")[0] for line in failures)
        r["picked"] = read_picks(out).micrograph.nunique()
        r["per_second"] = args.count / r["seconds"]
        rows[name] = r
        print(name, {k: v for k, v in r.items() if k != "stdout"}, flush=True)
    ref = read_picks(runs_dir / "serial2.star") if "serial2" in rows else None
    for name, r in rows.items():
        r["score_gap_to_serial2"] = None if ref is None else score_gap(ref, read_picks(runs_dir / f"{name}.star"))
        r["corrupt_listed"] = r["failures"] == sorted(Path(c).stem for c in CORRUPT)
    md = [f"{args.count} links to {len(set(os.path.realpath(p) for p in mics.glob('mic_*.mrc')))} simulated 4096² "
          f"micrographs plus {len(CORRUPT)} corrupt files; PU model (100 labels); `fewpick pick … --threshold -1e9`. "
          "Peak memory sampled every 0.2 s.", "",
          "| run | options | seconds | micrographs / s | main peak MiB | worker peak MiB | micrographs picked | "
          "corrupt files listed | same picks as serial2 |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        wpk = f"{r['worker_peak_mib']:.0f}" if r.get("worker_peak_mib") else "–"
        opts = " ".join(options[name]) + (f" (killed after {r['killed_after']}, then --resume)" if name == "resume" else "")
        opts += " (two processes at once, each on half the files; no Dask)" if name == "split2" else ""
        md.append(f"| {name} | `{opts}` | {r['seconds']:.0f} | {r['per_second']:.2f} | {r['main_peak_mib']:.0f} | {wpk} | "
                  f"{r['picked']} | {'yes' if r['corrupt_listed'] else 'no: ' + ', '.join(r['failures'])} | "
                  f"{_same(r['score_gap_to_serial2'])} |")
    bars = {}
    if {"workers1", "workers2"} <= rows.keys():
        bars["2 workers / 1 worker (≥ 1.7)"] = rows["workers2"]["per_second"] / rows["workers1"]["per_second"]
    if {"workers2", "serial2"} <= rows.keys():
        bars["2 workers / serial at 2 threads (≥ 1)"] = rows["workers2"]["per_second"] / rows["serial2"]["per_second"]
    if {"workers1", "serial1"} <= rows.keys():
        bars["1 worker / serial at 1 thread (≥ 0.9)"] = rows["workers1"]["per_second"] / rows["serial1"]["per_second"]
    if {"split2", "serial1"} <= rows.keys():
        bars["two processes without Dask / serial at 1 thread (what 2 cores allow)"] = (
            rows["split2"]["per_second"] / rows["serial1"]["per_second"])
    if bars:
        md += ["", "| ratio | measured |", "|---|---|"] + [f"| {k} | {v:.2f} |" for k, v in bars.items()]
    best = max(rows.values(), key=lambda r: r["per_second"])["per_second"]
    hours = 20000 / (args.machines * best) / 3600
    md += ["", f"20,000 micrographs on {args.machines} such 2-core machines at the best rate here "
               f"({best:.2f} micrographs / s each): {hours:.1f} h of picking (reading from a shared file system "
               "that keeps up; the model is sent to each worker once)."]
    write_results("batch", {"count": args.count, "runs": {k: {kk: vv for kk, vv in v.items() if kk != "stdout"}
                                                          for k, v in rows.items()}, "ratios": bars,
                            "estimate_20000_hours": hours}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
