"""fewpick overlay: picks drawn over a micrograph."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fewpick.cli.common import (
    app,
    console,
    handle_errors,
)
from fewpick.errors import InputError

# ---------------------------------------------------------------- overlay


PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")


@app.command()
@handle_errors
def overlay(
    image: Path = typer.Argument(..., help="A micrograph, or a tomogram (its picks in a slab of sections and over the projection along z)."),
    out: Path = typer.Option(..., "--out", "-o", help="Picture to write: PNG (.png) or JPEG (.jpg)."),
    picks: Optional[Path] = typer.Option(None, "--picks", help="Picks to draw (circles)."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Ground truth to draw (crosses)."),
    particle_diameter: str = typer.Option("40", "--particle-diameter", "-d", help="Circle diameter: pixels (68, 68px) or physical (120A, 12nm)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", "-t", help="Draw only picks scoring at least this."),
    z: Optional[float] = typer.Option(None, "--z", min=0, help="Tomograms: the section the slab is centred on (default: the picks' median z)."),
    slab: Optional[float] = typer.Option(None, "--slab", min=1, max=10_000, help="Tomograms: the slab's thickness in voxels (default: one particle diameter)."),
):
    """Draw picks (and truth) over a micrograph, or over a slab of a tomogram and its projection, as a PNG or
    JPEG picture.

    Example: [bold]fewpick overlay sim/mic_000.mrc --picks picks.star --truth sim/mic_000_truth.star --out overlay.png[/]
    or: [bold]fewpick overlay tomos/tomo_000.mrc --picks particles.star -d 26 --out look.png[/]
    """
    from fewpick.geometry import parse_length
    from fewpick.io import check_inside, image_info, read_micrograph, read_picks, read_volume
    from fewpick.outputs import check_output
    from fewpick.report import overlay_png, overlay_volume_png, rows_for

    if out.suffix.lower() not in PICTURE_SUFFIXES:
        raise InputError(out, "give the picture a .png or .jpg name")
    check_output(out, inputs=[image, picks, truth])
    if len(image_info(image).shape) == 3:
        vol = read_volume(image)
        diameter = parse_length(particle_diameter, vol.pixel_size, "--particle-diameter", vol.shape)
        p = read_picks(picks) if picks else None
        t = read_picks(truth) if truth else None
        drawn = overlay_volume_png(vol, out, picks=p, truth=t, diameter=diameter, threshold=threshold, z=z, slab=slab)
        console.print(f"{len(drawn)} picks drawn in the slab -> {out}")
        return
    img = read_micrograph(image)
    diameter = parse_length(particle_diameter, img.pixel_size, "--particle-diameter")
    p = read_picks(picks) if picks else None
    t = read_picks(truth) if truth else None
    for table, source in ((p, picks), (t, truth)):
        mine = rows_for(table, img.name)
        if mine is not None and len(mine):
            check_inside(mine.assign(micrograph=img.name), {img.name: img.shape}, source)
    n = overlay_png(img, out, picks=p, truth=t, diameter=diameter, threshold=threshold)
    console.print(f"{n} picks drawn -> {out}")
