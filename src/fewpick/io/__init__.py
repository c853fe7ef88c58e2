"""Readers and writers for the field's image and coordinate formats."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fewpick.io.images import (
        Image,
        ImageInfo,
        check_finite,
        image_info,
        list_images,
        match_names,
        micrograph_key,
        pair_names,
        read_image,
        read_micrograph,
        read_tilt_angles,
        read_volume,
        write_image,
        write_mrc,
        write_tilt_angles,
    )
    from fewpick.io.picks import (
        check_inside,
        detect_format,
        empty_picks,
        format_names,
        make_picks,
        read_picks,
        select_picks,
        transform_picks,
        write_picks,
    )

# each name and the module it comes from: imported on first use, so that importing the package (e.g. for
# the command line's help) does not load pandas or the image readers
_EXPORTS = {
    "Image": "fewpick.io.images",
    "ImageInfo": "fewpick.io.images",
    "check_finite": "fewpick.io.images",
    "image_info": "fewpick.io.images",
    "list_images": "fewpick.io.images",
    "match_names": "fewpick.io.images",
    "micrograph_key": "fewpick.io.images",
    "pair_names": "fewpick.io.images",
    "read_image": "fewpick.io.images",
    "read_micrograph": "fewpick.io.images",
    "read_tilt_angles": "fewpick.io.images",
    "read_volume": "fewpick.io.images",
    "write_image": "fewpick.io.images",
    "write_mrc": "fewpick.io.images",
    "write_tilt_angles": "fewpick.io.images",
    "check_inside": "fewpick.io.picks",
    "detect_format": "fewpick.io.picks",
    "empty_picks": "fewpick.io.picks",
    "format_names": "fewpick.io.picks",
    "make_picks": "fewpick.io.picks",
    "read_picks": "fewpick.io.picks",
    "select_picks": "fewpick.io.picks",
    "transform_picks": "fewpick.io.picks",
    "write_picks": "fewpick.io.picks",
}
__all__ = ["Image", "ImageInfo", "check_finite", "check_inside", "detect_format", "empty_picks", "format_names", "image_info", "list_images", "make_picks", "match_names", "micrograph_key", "pair_names", "read_image", "read_micrograph", "read_picks", "read_tilt_angles", "read_volume", "select_picks", "transform_picks", "write_image", "write_mrc", "write_picks", "write_tilt_angles"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
