"""The picks table and its file formats.

One table everywhere (:mod:`~fewpick.io.picks.table`): a :class:`pandas.DataFrame` with columns
``micrograph, x, y[, z], score[, label]`` plus any extra columns a file brought along, in pixels of the original
image (x = column, y = row, z = section, origin at the first pixel's centre).

Formats, one module each, listed in :mod:`~fewpick.io.picks.catalog` and read and written through
:mod:`~fewpick.io.picks.formats`:

========  ==========================================================================
star      RELION STAR (:mod:`~fewpick.io.picks.star`; RELION 5 tomography included)
cs        cryoSPARC particle/pick file (:mod:`~fewpick.io.picks.cs`); needs the micrographs' sizes
cbox      crYOLO ``.cbox`` (:mod:`~fewpick.io.picks.cbox`; 2D and 3D); needs a box size to write
mod       IMOD point model (:mod:`~fewpick.io.picks.mod`), one file per micrograph or tomogram
box       EMAN box (:mod:`~fewpick.io.picks.box`), one file per micrograph; needs a box size to write
tsv       Topaz (:mod:`~fewpick.io.picks.text`): ``image_name x_coord y_coord [z_coord] score``
csv       CSV with a header (:mod:`~fewpick.io.picks.text`); common column spellings are recognised
coords    plain ``x y [z]`` per line (:mod:`~fewpick.io.picks.coords`), one file per micrograph/tomogram
========  ==========================================================================

A path that is a folder (or ends with ``/``, or has no suffix) means one file per micrograph,
named by the micrograph's stem.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fewpick.io.picks.catalog import (
        all_formats,
        detect_format,
        format_names,
        formats_help,
        get_format,
        register_format,
        suffix_formats,
        suffixes_help,
        unregister_format,
    )
    from fewpick.io.picks.formats import part_path, per_micrograph, read_picks, write_picks
    from fewpick.io.picks.spec import Destination, PicksFormat
    from fewpick.io.picks.table import CORE, check_inside, empty_picks, has_z, make_picks, select_picks, transform_picks

# each name and the module it comes from: imported on first use, so that importing the package (e.g. for
# the command line's help) does not load pandas or the image readers
_EXPORTS = {
    "all_formats": "fewpick.io.picks.catalog",
    "detect_format": "fewpick.io.picks.catalog",
    "format_names": "fewpick.io.picks.catalog",
    "formats_help": "fewpick.io.picks.catalog",
    "get_format": "fewpick.io.picks.catalog",
    "register_format": "fewpick.io.picks.catalog",
    "suffix_formats": "fewpick.io.picks.catalog",
    "suffixes_help": "fewpick.io.picks.catalog",
    "unregister_format": "fewpick.io.picks.catalog",
    "part_path": "fewpick.io.picks.formats",
    "per_micrograph": "fewpick.io.picks.formats",
    "read_picks": "fewpick.io.picks.formats",
    "write_picks": "fewpick.io.picks.formats",
    "Destination": "fewpick.io.picks.spec",
    "PicksFormat": "fewpick.io.picks.spec",
    "CORE": "fewpick.io.picks.table",
    "check_inside": "fewpick.io.picks.table",
    "empty_picks": "fewpick.io.picks.table",
    "has_z": "fewpick.io.picks.table",
    "make_picks": "fewpick.io.picks.table",
    "select_picks": "fewpick.io.picks.table",
    "transform_picks": "fewpick.io.picks.table",
}
__all__ = ["CORE", "Destination", "PicksFormat", "all_formats", "check_inside", "detect_format", "empty_picks", "format_names", "formats_help", "get_format", "has_z", "make_picks", "part_path", "per_micrograph", "read_picks", "register_format", "select_picks", "suffix_formats", "suffixes_help", "transform_picks", "unregister_format", "write_picks"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
