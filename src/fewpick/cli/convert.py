"""fewpick convert: picks between the field's formats, selected and subsampled."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fewpick.cli.common import (
    PICK_FORMATS,
    app,
    console,
    handle_errors,
    prefix_option,
)
from fewpick.errors import InputError

# ---------------------------------------------------------------- convert


@app.command()
@handle_errors
def convert(
    src: Path = typer.Argument(..., metavar="IN", help="Picks file or folder to read."),
    dst: str = typer.Argument(..., metavar="OUT", help="File to write (format from the suffix), or a folder/ for one file per micrograph."),
    scale: float = typer.Option(1.0, "--scale", min=1e-6, max=1e6, help="Multiply coordinates by this (e.g. the binning factor of binned picks)."),
    flip_y: Optional[float] = typer.Option(None, "--flip-y", metavar="HEIGHT", help="Flip y: y -> HEIGHT - 1 - y (HEIGHT in output pixels)."),
    box_size: Optional[float] = typer.Option(None, "--box-size", min=1.0, max=1e5, help="Box edge in pixels, for writing .box and .cbox files."),
    src_fmt: Optional[str] = typer.Option(None, "--from", help=f"Input format if its suffix does not say: {PICK_FORMATS}."),
    dst_fmt: Optional[str] = typer.Option(None, "--to", help=f"Output format if its suffix does not say: {PICK_FORMATS}."),
    images: Optional[List[Path]] = typer.Option(None, "--images", help="The micrographs or tomograms the picks belong to (files or folders; only their headers are read). Needed to write cryoSPARC .cs files and RELION 5 centred coordinates, and to read the latter; RELION files then name micrographs by their path."),
    micrograph_prefix: Optional[str] = prefix_option(),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", min=0.01, max=1000.0, help="Å/px of the --images, overriding their headers."),
    where: Optional[List[str]] = typer.Option(None, "--where", help="Keep rows with COLUMN=VALUE (repeatable), e.g. species=ribosome."),
    sample: Optional[int] = typer.Option(None, "--sample", min=1, max=100_000_000, help="Then keep N random rows (e.g. to make a small label set)."),
    seed: int = typer.Option(0, "--seed", min=0, max=1_000_000_000, help="Random seed for --sample."),
):
    """Convert picks between RELION STAR, cryoSPARC .cs, crYOLO .cbox, IMOD .mod, EMAN .box, Topaz TSV, CSV and
    .coords; optionally select and subsample rows.

    Example: [bold]fewpick convert picks.star boxes/ --to box --box-size 64 --scale 4[/]
    or: [bold]fewpick convert picks.star picks.cs --images mics/[/]
    or: [bold]fewpick convert labels/ labels.star --where label=1 --sample 20[/]
    """
    from fewpick.io import image_info, list_images, read_picks, select_picks, transform_picks, write_picks
    from fewpick.io.picks import detect_format, per_micrograph
    from fewpick.outputs import check_output

    if per_micrograph(dst):
        check_output(dst, inputs=[src], folder=True)
    else:
        detect_format(dst, dst_fmt)
        check_output(dst, inputs=[src])
    infos = None
    if images:
        files = list_images(images)
        if not files:
            raise InputError(None, "--images: no micrographs or tomograms found in " + ", ".join(map(str, images)))
        infos = {i.name: i for i in (image_info(f, pixel_size=pixel_size) for f in files)}
    try:
        picks = select_picks(read_picks(src, src_fmt, images=infos), where or (), sample, seed)
        picks = transform_picks(picks, scale=scale, flip_y_height=flip_y)
    except InputError as exc:
        raise InputError(exc.path or src, exc.problem) from None
    written = write_picks(picks, dst, dst_fmt, box_size=box_size, images=infos, micrograph_prefix=micrograph_prefix)
    console.print(f"{len(picks)} picks -> {written[0] if len(written) == 1 else f'{len(written)} files in {dst}'}")
