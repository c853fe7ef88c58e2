"""Helpers shared by the benchmarks: machine description, peak memory, result files, few-shot models finished
again."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1), "python": platform.python_version(),
            "platform": platform.platform()}


def peak_rss_mib_of(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd`` under /usr/bin/time -v: (wall seconds, peak RSS MiB, stdout)."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=True)
    wall = rss = float("nan")
    for line in proc.stderr.splitlines():
        line = line.strip()
        if line.startswith("Maximum resident set size"):
            rss = int(line.split(":")[1]) / 1024
        if line.startswith("Elapsed (wall clock)"):
            parts = line.split(": ", 1)[1].split(":")
            wall = sum(float(p) * 60**i for i, p in enumerate(reversed(parts)))
    return wall, rss, proc.stdout


def self_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_results(name: str, data: dict, table_md: str, folder: Path | None = None) -> None:
    folder = Path(folder) if folder is not None else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine(), "command": " ".join([Path(sys.executable).name, *sys.argv]), **data}
    (folder / f"{name}.json").write_text(json.dumps(data, indent=2, default=float) + "\n")
    m = data["machine"]
    header = (f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}  \n"
              f"Command: `{data['command']}`\n\n")
    (folder / f"{name}.md").write_text(header + table_md + "\n")


def refit_fewshot(path: Path, reference: Path, pretrain: list[Path], exemplars: Path) -> None:
    """The few-shot model at ``path`` finished again as training finishes it now (``fewshot.refit``: its count,
    spacing and calibrated cut; the networks do not depend on them), from the spacing as given: for a change to
    those steps, without training again. ``reference``, ``pretrain`` and ``exemplars``: the files it was trained
    on."""
    from dataclasses import fields, replace

    from fewpick.io import read_micrograph, read_picks
    from fewpick.pickers import fewshot

    model = fewshot.load_model(path, "cpu")
    given = next(f.default for f in fields(fewshot.FewShotSettings) if f.name == "suppress")
    model.settings = replace(model.settings, suppress=given)
    fewshot.refit(model, read_micrograph(reference), read_picks(exemplars), [read_micrograph(p) for p in pretrain],
                  exemplars)
    fewshot.save_model(model, path)
