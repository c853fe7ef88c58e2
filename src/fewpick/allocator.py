"""How the C allocator hands memory back to the system, tuned for training and applying networks on the CPU.

PyTorch allocates the activations of every training step afresh and frees them at its end. With the GNU C
library's defaults, blocks of a few megabytes are mapped from the system and unmapped when freed, and free memory
at the top of the heap is returned at once, so each step faults the same memory in again page by page, time spent
in the kernel (measured in docs/decisions.md, "The command line keeps freed memory for reuse").
:func:`keep_freed_memory` lets the process keep and reuse up to half a gigabyte of freed memory instead. It
changes no result (the networks compute the same numbers), only where their memory comes from, at the cost of a
little more peak memory. Blocks larger than the mapping threshold (volumes, a heat map's activations) are still
mapped and returned when freed.

The command line sets it when it starts, and the Dask workers it starts for batch picking get it through their
environment (:func:`environment`); a program calling the library can call :func:`keep_freed_memory` once itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3

TRIM_THRESHOLD = 512 << 20  # free memory kept at the top of the heap before any is returned
# blocks at least this large are mapped on their own and returned when freed: a training step's activations stay
# below it; a heat map's (whole tomogram slices) and volumes are above, so they do not fragment the heap
MMAP_THRESHOLD = 32 << 20


def keep_freed_memory() -> bool:
    """Keep freed memory in the process for reuse (see the module); True where it was set (Linux with the GNU C
    library), False elsewhere, where nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # another C library (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # both, in this order: setting either turns off glibc's own sliding mapping threshold
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def environment() -> dict[str, str]:
    """The same setting as environment variables, for a process about to be started (the GNU C library reads them
    at its start; elsewhere they are ignored)."""
    return {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
