"""Model files: one way to write and read every trained thing fewpick saves.

A model file is a ``torch.save``'d dict with ``format`` (what it is), ``format_version``, ``fewpick_version``,
``settings`` (the dataclass that defines the model, less the run-time knobs) and the payload (weights as CPU
tensors, and whatever else the model needs). It is written atomically (a crash never leaves half a file) and
read with ``weights_only=True`` (no code runs while loading).

Versions move: when what a format stores changes, its version goes up by one and the format's module gives a
migration from the version before (``migrations={1: from_1}``: a function from the stored dict of version 1 to
that of version 2). :func:`load` brings an older file forward one step at a time, so a reader only ever sees the
current version; a file without a way forward (or from a newer fewpick) is refused with one clear error.

Run-time knobs (CPU threads, the device) are not stored: they belong to the machine that runs the model.
Settings are read back the same way for every model: a knob of an older file is dropped, any other key that
the settings do not know is refused with one clear error (the file was written by a newer fewpick).
"""

from __future__ import annotations

import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from fewpick.errors import InputError, first_line
from fewpick.outputs import atomic_path

RUNTIME_KNOBS = ("threads", "train_threads", "device")

T = TypeVar("T")


def settings_dict(settings: Any) -> dict:
    """The settings as stored: every field of the dataclass except the run-time knobs."""
    return {k: v for k, v in asdict(settings).items() if k not in RUNTIME_KNOBS}


def settings_from(cls: type[T], stored: dict, path: str | os.PathLike, what: str, **runtime) -> T:
    """Rebuild settings of ``cls`` from a file's ``stored`` dict, with ``runtime`` knobs set for this machine."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(k for k in stored if k not in known and k not in RUNTIME_KNOBS)
    if unknown:
        raise InputError(path, f"{what} file has settings this fewpick does not know ({', '.join(unknown)}): it was "
                               "written by a newer fewpick; update fewpick or train it again")
    kept = {k: v for k, v in stored.items() if k in known and k not in RUNTIME_KNOBS}
    kept.update({k: v for k, v in runtime.items() if k in known and v is not None})
    try:
        return cls(**kept)
    except TypeError as exc:
        raise InputError(path, f"{what} file lacks settings ({exc}); train it again") from None


def save(path: str | os.PathLike, fmt: str, version: int, settings: Any, **payload) -> Path:
    """Write a model file (atomically); ``settings`` is a dataclass (stored without run-time knobs) or None."""
    import torch

    from fewpick import __version__

    bundle = {"format": fmt, "format_version": version, "fewpick_version": __version__, **payload}
    if settings is not None:
        bundle["settings"] = settings_dict(settings)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(bundle, tmp)
    return path


Migration = Callable[[dict], dict]


def load(path: str | os.PathLike, fmt: str, version: int, what: str,
         migrations: Mapping[int, Migration] | None = None) -> dict:
    """Read a model file written by :func:`save`, brought forward to ``version`` by ``migrations`` (version →
    the function that turns a dict of that version into one of the next): one clear error (naming the file) for
    a missing file, anything that is not such a bundle, another kind of model, or a version it cannot read."""
    import torch

    from fewpick import __version__

    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"no such {what} file")
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(path, f"not a fewpick {what} file ({first_line(exc)})") from None
    if not isinstance(bundle, dict) or bundle.get("format") != fmt:
        found = bundle.get("format") if isinstance(bundle, dict) else None
        raise InputError(path, f"not a fewpick {what} file" + (f" (it is a {found!r} file)" if found else ""))
    migrations = migrations or {}
    at = written = bundle.get("format_version")
    while isinstance(at, int) and at < version and at in migrations:
        bundle = migrations[at](bundle)
        at = bundle["format_version"] = at + 1
    if at != version:
        raise InputError(path, f"{what} file format {written} (written by fewpick "
                               f"{bundle.get('fewpick_version')}); this fewpick {__version__} reads format "
                               f"{version}: train it again")
    return bundle


def format_of(path: str | os.PathLike) -> str | None:
    """The ``format`` a model file declares (``None`` for anything that is not a fewpick model file)."""
    import torch

    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    return bundle.get("format") if isinstance(bundle, dict) else None
