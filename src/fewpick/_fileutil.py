"""Writing files atomically: a crash never leaves a half file that looks whole."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


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


def load_torch_bundle(path: str | os.PathLike, fmt: str, version: int, what: str) -> dict:
    """Read a model file saved as a dict with ``format``/``format_version``/``fewpick_version``; one clear
    error (naming the file) for a missing file, anything that is not such a bundle, another kind of model,
    or another format version."""
    import torch

    from fewpick import __version__
    from fewpick.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"no such {what} file")
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(path, f"not a fewpick {what} file ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(bundle, dict) or bundle.get("format") != fmt:
        found = bundle.get("format") if isinstance(bundle, dict) else None
        raise InputError(path, f"not a fewpick {what} file" + (f" (it is a {found!r} file)" if found else ""))
    if bundle.get("format_version") != version:
        raise InputError(path, f"{what} file format {bundle.get('format_version')} (written by fewpick "
                               f"{bundle.get('fewpick_version')}); this fewpick {__version__} reads format "
                               f"{version}: train it again")
    return bundle
