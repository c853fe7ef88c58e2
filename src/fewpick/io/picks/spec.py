"""What a picks file format is to fewpick: a name, its suffixes, the module that reads and writes it, and a few
facts the dispatch needs (one file per micrograph or many, 3D or not). :mod:`fewpick.io.picks.catalog` lists the
formats; the modules are imported only when a file of theirs is read or written, so that listing the formats
(for a help text) stays light."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    import pandas as pd

    from fewpick.io.images import ImageInfo


@dataclass(frozen=True)
class Destination:
    """Where and how a writer writes: ``path`` is the file the user asked for (named in errors), while the
    writer fills a temporary file next to it, renamed into place once complete."""

    path: Path
    box_size: float | None = None  # box edge (pixels) for the box formats
    images: Mapping[str, ImageInfo] | None = None  # the images the picks belong to, by name
    prefix: str | None = None  # how RELION and cryoSPARC name micrographs: prefix + file name


Reader = Callable[[Path, "Mapping[str, ImageInfo] | None"], "pd.DataFrame"]
Writer = Callable[["pd.DataFrame", Path, Destination], None]


@dataclass(frozen=True)
class PicksFormat:
    """One picks file format.

    ``read(path, images)`` returns a checked picks table (:func:`fewpick.io.picks.table.finish`);
    ``write(picks, tmp, destination)`` writes ``picks`` into the temporary file ``tmp``. Each is a function, or
    the name of one in ``module``.
    """

    name: str
    program: str  # who reads it, for help texts ("" where the format is generic)
    suffixes: tuple[str, ...]  # the first is the one written
    module: str = ""  # the module of the reader and the writer named below
    read: Reader | str = "read"
    write: Writer | str = "write"
    one_per_image: bool = False  # a file holds one micrograph's (or tomogram's) picks
    part_suffix: str | None = None  # a per-micrograph file's ending, when not the suffix (RELION's _pick.star)
    volumes: bool = True  # can hold tomogram picks (x, y, z)

    @property
    def suffix(self) -> str:
        return self.suffixes[0]

    def part(self) -> str:
        """How a file of one micrograph's picks in a folder of them ends."""
        return self.part_suffix or self.suffix

    def help(self) -> str:
        return f"{self.name} ({self.program})" if self.program else self.name

    def _function(self, which: Any) -> Any:
        return which if callable(which) else getattr(importlib.import_module(self.module), which)

    def reader(self) -> Reader:
        return self._function(self.read)

    def writer(self) -> Writer:
        return self._function(self.write)
