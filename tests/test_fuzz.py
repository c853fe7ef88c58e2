"""The fast part of the command-line fuzz (bench/fuzz_cli.py --fast): a fixed sample of its probes (bad images,
labels and models, outputs that exist, are folders, inputs or unwritable, and nonsense numbers), every one clean:
a success, or exit status 2 with one line; no traceback; no existing file changed; nothing left by a failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_a_sample_of_the_fuzz_probes_is_clean(tmp_path):
    bench = Path(__file__).resolve().parents[1] / "bench" / "fuzz_cli.py"
    res = subprocess.run([sys.executable, str(bench), "--fast", "--work", str(tmp_path)], capture_output=True,
                         text=True, timeout=900)
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["probes"] >= 50, res.stdout[-2000:]
    assert res.returncode == 0 and summary["clean"] == summary["probes"], res.stdout[-3000:]
