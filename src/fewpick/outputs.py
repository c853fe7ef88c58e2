"""Writing outputs safely: checked before the work starts, and written atomically (a crash never leaves a half
file that looks whole)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from fewpick.errors import InputError

MODEL_SUFFIXES = (".pt", ".pth")  # what model files are named


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file keeps the target's suffix (some writers look at it).
    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def check_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
                 folder: bool = False, suffixes: Sequence[str] = ()) -> Path:
    """Refuse, before any work starts, an output that could not be written or whose writing would destroy an
    input: a folder where a file goes (or a file where a folder goes), one of ``inputs`` (the same file by
    another name too), a name without one of ``suffixes`` (when given: a model written over ``picks.star``), or
    a place without a writable folder above it. Returns ``path``."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(path, f"give this output a name ending in {' or '.join(suffixes)}")
    if folder and path.exists() and not path.is_dir():
        raise InputError(path, "is a file; the output here is a folder")
    if not folder and path.is_dir():
        raise InputError(path, "is a folder; give the output a file name")
    for given in inputs:
        if given is not None and _same_file(Path(given), path):
            raise InputError(path, "is also an input of this command: writing the output would replace it; "
                                   "give the output another name")
    ancestor = path if folder else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(path, f"cannot be written: {ancestor} is a file, not a folder")
    try:  # permissions alone do not tell (a read-only file system, or root): try
        fd, probe = tempfile.mkstemp(prefix=".fewpick-probe.", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError:
        raise InputError(path, f"cannot be written: the folder {ancestor} is not writable") from None
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False
