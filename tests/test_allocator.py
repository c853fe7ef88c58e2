"""The allocator setting the command line makes at start: freed memory is kept and reused, not faulted in again."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from fewpick.allocator import keep_freed_memory
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):  # a training step's pattern: blocks of a few MiB allocated, then all freed
    a = [np.ones(1 << 20) for _ in range(10)]
    del a
before = faults()
a = [np.ones(1 << 20) for _ in range(10)]
print(faults() - before)
"""


def _faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # glibc's defaults (Dask's
    # local cluster, started in an earlier test, leaves its workers' settings in this process's environment)
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting is for the GNU C library on Linux")
def test_freed_memory_is_reused_without_page_faults():
    default, kept = _faults("default"), _faults("keep")
    assert default > 1000  # the same 80 MiB faulted in again, page by page
    assert kept < default / 10


def test_the_command_line_sets_it(monkeypatch):
    import fewpick.cli as cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(cli, "app", lambda **kw: calls.append(kw))
    cli.main()
    assert calls == [1, {"prog_name": "fewpick"}]
