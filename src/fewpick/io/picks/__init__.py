"""The picks table and its file formats.

One table everywhere (:mod:`~fewpick.io.picks.table`): a :class:`pandas.DataFrame` with columns
``micrograph, x, y[, z], score[, label]`` plus any extra columns a file brought along, in pixels of the original
image (x = column, y = row, z = section, origin at the first pixel's centre).

Formats, one module each, chosen by suffix or by name (:mod:`~fewpick.io.picks.formats`):

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

from fewpick.io.picks.formats import (
    all_formats,
    detect_format,
    format_names,
    formats_help,
    get_format,
    part_path,
    per_micrograph,
    read_picks,
    register_format,
    suffix_formats,
    suffixes_help,
    unregister_format,
    write_picks,
)
from fewpick.io.picks.spec import Destination, PicksFormat
from fewpick.io.picks.table import (
    CORE,
    check_inside,
    empty_picks,
    has_z,
    make_picks,
    select_picks,
    transform_picks,
)

__all__ = ["CORE", "Destination", "PicksFormat", "all_formats", "check_inside", "detect_format", "empty_picks",
           "format_names", "formats_help", "get_format", "has_z", "make_picks", "part_path", "per_micrograph",
           "read_picks", "register_format", "select_picks", "suffix_formats", "suffixes_help", "transform_picks",
           "unregister_format", "write_picks"]
