"""fewpick explore: tomogram exploration and its page."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

# ---------------------------------------------------------------- tomogram exploration (MiLoPYP-class)
from typer.core import TyperGroup  # noqa: E402

from fewpick.cli.common import (
    app,
    chosen_device,
    console,
    device_option,
    err_console,
    handle_errors,
    hms,
)
from fewpick.errors import InputError


class _ExploreGroup(TyperGroup):
    """``fewpick explore TOMOGRAMS...`` runs the exploration; ``fewpick explore serve RUN`` (and other
    subcommands) stay subcommands: a first argument that names no subcommand means ``run``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


explore_app = typer.Typer(cls=_ExploreGroup, no_args_is_help=True,
                          help="Tomogram exploration: candidates, self-supervised embeddings, a 2D map with classes "
                               "(fewpick explore TOMOGRAMS... --out RUN).")
app.add_typer(explore_app, name="explore")


class ExploreMode(str, Enum):
    twod3d = "2d3d"
    threed = "3d"


class ExploreFeatures(str, Enum):
    simsiam = "simsiam"
    pca = "pca"


@explore_app.command("run")
@handle_errors
def explore_run(
    tomograms: List[Path] = typer.Argument(..., help="Tomograms (files or folders of .mrc/.rec)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (created; resumed when it holds this run)."),
    tilt_series: Optional[List[Path]] = typer.Option(None, "--tilt-series", help="Aligned tilt series, one per tomogram (files or folders; 2d3d mode)."),
    tilt_angles: Optional[List[Path]] = typer.Option(None, "--tilt-angles", help="IMOD .tlt files, one per tilt series (files or folders)."),
    mode: ExploreMode = typer.Option(ExploreMode.twod3d, "--mode", help="Candidate images: averaged low-tilt projections (2d3d) or a tomogram slab (3d)."),
    radius: Optional[str] = typer.Option(None, "--radius", "-r", help="About the smallest particle's radius, smaller for crowded tomograms: voxels (6) or physical (60A, 6nm). Default 60 Å (6 voxels where the header gives no voxel size)."),
    box: Optional[float] = typer.Option(None, "--box", help="Side of each candidate's image in voxels (default 6 × radius)."),
    background: float = typer.Option(0.5, "--background", min=0.01, max=1.0, help="Fraction of the candidates allowed on background: the cut is set where a copy of the tomogram with scrambled Fourier phases (its noise, no particles) gives this many peaks per candidate. Lower: fewer, surer candidates."),
    features: ExploreFeatures = typer.Option(ExploreFeatures.pca, "--features", help="What the map is made of: the images' principal components and rotational averages, the candidates' scores and the 3D rotational averages of the tomogram around each (no training; purer classes in our benchmark), or self-supervised SimSiam embeddings."),
    classes: Optional[int] = typer.Option(None, "--classes", min=1, max=10_000, help="h: classes on the map, more than the kinds of particle you expect (default one per 6 candidates, 8–60)."),
    clusters: Optional[int] = typer.Option(None, "--clusters", min=1, max=100_000, help="k: k-means over-clusters (default min(10 h, candidates/5))."),
    epochs: int = typer.Option(30, "--epochs", min=1, max=100_000, help="SimSiam training epochs."),
    neighbors: int = typer.Option(40, "--neighbors", min=2, max=10_000, help="UMAP neighbours."),
    seed: int = typer.Option(0, "--seed", min=0, max=1_000_000_000, help="Random seed."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    force: bool = typer.Option(False, "--force", help="Start the run folder again even if it holds another run."),
    device: str = device_option(),
):
    """Explore tomograms without labels: what is abundant in them, as classes on a 2D map.

    Example: [bold]fewpick explore tomos/ --tilt-series tomos/ --tilt-angles tomos/ --out run/[/] then [bold]fewpick explore serve run/[/]
    """
    from fewpick.explore.run import ExploreSettings, explore
    from fewpick.io import list_images

    tomos = list_images(tomograms, suffixes=(".mrc", ".rec", ".map"))
    from fewpick.io.images import tilt_series_files

    ts = tilt_series_files(tilt_series) if tilt_series else None
    tlt = []
    for p in tilt_angles or []:
        tlt += sorted(p.glob("*.tlt")) if p.is_dir() else [p]
    if ts is not None:  # a folder holding both may list the tomograms as tilt series too
        names = {t.resolve() for t in tomos}
        ts = [p for p in ts if p.resolve() not in names]
    if not tomos:
        raise InputError(None, "no tomograms found in " + ", ".join(map(str, tomograms)))
    from fewpick.geometry import parse_length
    from fewpick.io import image_info

    first = image_info(tomos[0])
    if radius is None:
        voxel = first.pixel_size
        radius_vox = max(2.0, round(60.0 / voxel)) if voxel else 6.0
    else:
        radius_vox = parse_length(radius, first.pixel_size, "--radius", first.shape, minimum=1.0)
    settings = ExploreSettings(radius=radius_vox, mode=mode.value, box=box, background=background, features=features.value,
                               classes=classes, clusters=clusters,
                               epochs=epochs, neighbors=neighbors, seed=seed, threads=threads)

    def report(stage, info):
        if stage == "begin":
            err_console.print(f"{info['stage']}: {info['what']}…", highlight=False)
        elif stage == "tomogram":
            err_console.print(f"  tomogram {info['i']}/{info['n']} ({info['name']})  {info['seconds']:.0f} s, "
                              f"{hms(info['eta_s'])} left", highlight=False)
        elif stage == "epoch":
            if info.get("first_step"):
                return
            err_console.print(f"  epoch {info['epoch']}/{epochs}  loss {info['loss']:.3f}  {info['seconds']:.0f} s, "
                              f"{hms(info['eta_s'])} left", highlight=False)
        else:
            extra = f", {info['count']} candidates" if "count" in info else ""
            err_console.print(f"{stage}: {info['seconds']:.1f} s{extra}", highlight=False)

    run = explore(tomos, out, settings, tilt_series=ts, tilt_angles=tlt or None, force=force, progress=report,
                  device=chosen_device(device))
    m = run.load()
    console.print(f"{m['stages']['candidates']['count']} candidates in {len(tomos)} tomogram(s), "
                  f"{len(m['stages']['classes']['sizes'])} classes -> {run.folder}/ (candidates.star, gallery.png)",
                  highlight=False)


@explore_app.command("serve")
@handle_errors
def explore_serve(
    run_folder: Path = typer.Argument(..., metavar="RUN", help="A finished run folder (from fewpick explore)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (127.0.0.1: this machine only; "
                                                          "reach it from elsewhere through an SSH tunnel). Any "
                                                          "other address lets others on the network open the page."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free one)."),
    picks: Optional[Path] = typer.Option(None, "--picks", help="Picks of 'fewpick tomo pick' (a picks file or a folder of them) to draw in the page's tomogram viewer beside the candidates."),
):
    """Serve the run's interactive page: the map coloured by class, thumbnails on hover, select classes or
    lasso a region, export the chosen particles' 3D coordinates to RUN/selected.star and RUN/selected/*.coords
    (given the particle diameter on the page, one point per particle); with --picks, the tomogram viewer also draws the picks of 'fewpick tomo pick'.

    Example: [bold]fewpick explore serve run/ --port 8000[/], then open the address it prints (it carries the
    page's key); from a laptop: ssh -L 8000:localhost:8000 server first
    """
    from fewpick.web.explore import make_server
    from fewpick.web.server import announce

    def exported(result):
        merged = (f" ({result['candidates']} candidates, those on one particle merged)"
                  if result.get("candidates", result["count"]) > result["count"] else "")
        console.print(f"exported {result['count']} particles{merged} -> {result['star']}", highlight=False)

    server = make_server(run_folder, host, port, on_export=exported, picks=picks)
    shown = server.view.get("picks")  # type: ignore[attr-defined]
    if shown and shown["elsewhere"]:
        console.print(f"{shown['elsewhere']} picks of {picks} lie on tomograms this run does not hold: not shown",
                      highlight=False)
    announce(server, host, str(run_folder), lambda m: console.print(m, highlight=False))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
