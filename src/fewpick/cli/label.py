"""fewpick label: the labelling page."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from fewpick.cli.common import (
    app,
    chosen_device,
    console,
    device_option,
    err_console,
    handle_errors,
)


class LabelPicker(str, Enum):
    fewshot = "fewshot"
    pu = "pu"


@app.command()
@handle_errors
def label(
    micrographs: List[Path] = typer.Argument(..., help="Micrographs to label and review (files or folders)."),
    particle_diameter: str = typer.Option(..., "--particle-diameter", "-d", help="Particle diameter: pixels (68) or physical (120A, 12nm)."),
    out: Path = typer.Option(..., "--out", "-o", help="Labels file (RELION STAR, original pixels), saved after every click; an existing one is loaded to go on from."),
    picker: LabelPicker = typer.Option(LabelPicker.fewshot, "--picker", help="Picker the page trains by default (it offers both)."),
    expected_particles: Optional[float] = typer.Option(None, "--expected-particles", "-n", min=0.1, max=1e6, help="Expected particles per micrograph, if known (the page asks too; without it, the PU picker has fewpick's general particle model count them)."),
    model_out: Optional[Path] = typer.Option(None, "--model-out", help="Where the trained model goes (default: beside OUT, OUT_model.pt)."),
    picks_out: Optional[Path] = typer.Option(None, "--picks-out", help="Where 'Save picks' writes (default: beside OUT, OUT_picks.star)."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", min=0.01, max=1000.0, help="Å/px, overriding the header."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (127.0.0.1: this machine only; reach it from elsewhere through an SSH tunnel). Any other address lets others on the network open the page."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free one)."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    device: str = device_option(),
):
    """Label particles by clicking on your micrographs, train a picker from them, review its picks with a score
    threshold, pick every micrograph and save the picks — in a page in your browser.

    Example: [bold]fewpick label mics/ --particle-diameter 68 --out labels.star[/], then open the address it prints; from a laptop: ssh -L 8000:localhost:8000 server first
    """
    from fewpick.geometry import parse_length
    from fewpick.io import image_info, list_images
    from fewpick.web.label import LabelSession, LabelSettings, make_server
    from fewpick.web.server import announce

    files = list_images(micrographs)
    diameter = parse_length(particle_diameter, pixel_size or image_info(files[0]).pixel_size, "--particle-diameter")
    settings = LabelSettings(diameter=diameter, picker=picker.value, expected_particles=expected_particles,
                             threads=threads, device=str(chosen_device(device)))
    session = LabelSession(files, out, settings, model_out=model_out, picks_out=picks_out, pixel_size=pixel_size)
    for why in session.bad.values():
        err_console.print(f"skipped: {why}", highlight=False)
    server = make_server(session, host, port)
    console.print(f"{len(session.paths)} micrographs, {session.label_count()} labels so far -> {out}", highlight=False)
    announce(server, host, "the labelling page", lambda m: console.print(m, highlight=False))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
