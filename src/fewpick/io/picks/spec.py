"""What a picks file format is to fewpick: a name, its suffixes, a reader and a writer, and a few facts the
dispatch needs (one file per micrograph or many, 3D or not). Each format module defines one
:class:`PicksFormat`; :mod:`fewpick.io.picks.formats` lists them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

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


Reader = Callable[[Path, "Mapping[str, ImageInfo] | None"], pd.DataFrame]
Writer = Callable[[pd.DataFrame, Path, Destination], None]


@dataclass(frozen=True)
class PicksFormat:
    """One picks file format.

    ``read(path, images)`` returns a checked picks table (:func:`fewpick.io.picks.table.finish`);
    ``write(picks, tmp, destination)`` writes ``picks`` into the temporary file ``tmp``.
    """

    name: str
    program: str  # who reads it, for help texts ("" where the format is generic)
    suffixes: tuple[str, ...]  # the first is the one written
    read: Reader
    write: Writer
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
