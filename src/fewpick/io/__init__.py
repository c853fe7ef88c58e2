"""Readers and writers for the field's image and coordinate formats."""

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

__all__ = [
    "Image", "ImageInfo", "image_info", "check_finite", "list_images", "match_names", "micrograph_key", "pair_names", "read_image", "read_micrograph",
    "read_tilt_angles", "read_volume", "write_image", "write_mrc", "write_tilt_angles", "format_names", "check_inside",
    "detect_format", "empty_picks", "make_picks", "read_picks", "select_picks", "transform_picks", "write_picks",
]
