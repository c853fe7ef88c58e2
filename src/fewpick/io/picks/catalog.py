"""The picks file formats fewpick knows: one table, :data:`BUILT_IN`, and :func:`register_format` for more.

A new format is one module with a reader and a writer and one row here (or, from outside the package, one
:func:`register_format` call); reading, writing, the batch runner and the help texts all look formats up here.
Listing them imports nothing heavy: a format's module is imported when a file of it is read or written.
"""

from __future__ import annotations

import os
from pathlib import Path

from fewpick.errors import InputError
from fewpick.io.images import IMAGE_SUFFIXES
from fewpick.io.picks.spec import PicksFormat
from fewpick.registry import Registry

_P = "fewpick.io.picks."
BUILT_IN = (
    PicksFormat("star", "RELION", (".star",), _P + "star", part_suffix="_pick.star"),
    PicksFormat("box", "EMAN", (".box",), _P + "box", one_per_image=True, volumes=False),
    PicksFormat("tsv", "Topaz", (".tsv", ".txt"), _P + "text", read="read_tsv", write="write_tsv"),
    PicksFormat("csv", "", (".csv",), _P + "text", read="read_csv", write="write_csv"),
    PicksFormat("coords", "", (".coords",), _P + "coords", one_per_image=True),
    PicksFormat("cs", "cryoSPARC", (".cs",), _P + "cs", volumes=False),
    PicksFormat("cbox", "crYOLO", (".cbox",), _P + "cbox", one_per_image=True),
    PicksFormat("mod", "IMOD", (".mod",), _P + "mod", one_per_image=True),
)
FORMATS: Registry[PicksFormat] = Registry("picks format", lambda f: f.name, lambda f: (f.name, *f.suffixes), BUILT_IN)


def register_format(fmt: PicksFormat) -> PicksFormat:
    """Make ``fmt`` known to every reader, writer and help text; a name or suffix already taken is refused."""
    return FORMATS.register(fmt)


def unregister_format(name: str) -> None:
    """Forget a registered format (the built-in ones stay)."""
    FORMATS.unregister(name)


def all_formats() -> list[PicksFormat]:
    return FORMATS.entries()


def format_names() -> tuple[str, ...]:
    return FORMATS.names()


def get_format(name: str) -> PicksFormat:
    return FORMATS[name]


def suffix_formats() -> dict[str, str]:
    """Every suffix that names a format, and the format's name."""
    return {s: f.name for f in FORMATS.entries() for s in f.suffixes}


def formats_help(volumes: bool = False) -> str:
    """The formats for a help text: ``star (RELION), cs (cryoSPARC), …`` (``volumes``: those that hold 3D picks)."""
    return ", ".join(f.help() for f in FORMATS.entries() if f.volumes or not volumes)


def suffixes_help(volumes: bool = False) -> str:
    """The suffixes written, for a help text: ``.star .cs …``."""
    return " ".join(f.suffix for f in FORMATS.entries() if f.volumes or not volumes)


def detect_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format named by ``fmt`` or by the file's suffix."""
    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        raise InputError(path, "is an image's name: picks files end in " + ", ".join(suffix_formats()))
    if fmt:
        fmt = fmt.lower().lstrip(".")
        if fmt not in FORMATS:
            raise InputError(None, f"unknown picks format {fmt!r}; choose one of {', '.join(format_names())}")
        return fmt
    by_suffix = suffix_formats()
    suffix = Path(path).suffix.lower()
    if suffix not in by_suffix:
        raise InputError(path, f"cannot tell the picks format from the suffix {suffix!r}; "
                               f"use one of {', '.join(by_suffix)} or give the format")
    return by_suffix[suffix]
