"""fewpick copick: tomograms out of and picks into copick projects."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fewpick.cli.common import (
    app,
    console,
    err_console,
    handle_errors,
)

# ---------------------------------------------------------------- copick projects

copick_app = typer.Typer(no_args_is_help=True, help="copick projects (CZ cryo-ET Data Portal layout): tomograms out, "
                                                    "picks in and out.")
app.add_typer(copick_app, name="copick")


@copick_app.command("tomograms")
@handle_errors
def copick_tomograms(
    config: Path = typer.Argument(..., help="The project's copick configuration file (JSON)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write <run>.mrc into."),
    voxel_spacing: float = typer.Option(10.0, "--voxel-spacing", min=0.01, max=1000.0, help="Which tomograms: their voxel spacing in Å."),
    tomo_type: str = typer.Option("wbp", "--tomo-type", help="Which tomograms: their type (wbp, denoised, …)."),
    run: Optional[List[str]] = typer.Option(None, "--run", help="Only these runs (repeatable; default: all)."),
):
    """Write a copick project's tomograms as MRC files named by their run, for every other verb.

    Example: [bold]fewpick copick tomograms copick.json --out Tomograms/ --voxel-spacing 10 --tomo-type wbp[/]
    """
    from fewpick.io.copick import export_tomograms

    written = export_tomograms(config, out, voxel_spacing, tomo_type, run)
    console.print(f"{len(written)} tomograms -> {out}/", highlight=False)


@copick_app.command("picks")
@handle_errors
def copick_picks(
    config: Path = typer.Argument(..., help="The project's copick configuration file (JSON)."),
    object_name: str = typer.Option(..., "--object", help="The pickable object, e.g. ribosome."),
    out: str = typer.Option(..., "--out", "-o", help="Picks file to write (any format), in voxels of --voxel-spacing."),
    voxel_spacing: float = typer.Option(10.0, "--voxel-spacing", min=0.01, max=1000.0, help="Voxel spacing in Å of the tomograms the picks are for."),
    user: Optional[str] = typer.Option(None, "--user", help="Only this user's picks."),
    session: Optional[str] = typer.Option(None, "--session", help="Only this session's picks."),
    run: Optional[List[str]] = typer.Option(None, "--run", help="Only these runs (repeatable; default: all)."),
):
    """Read a copick project's picks of one object (e.g. to train on them).

    Example: [bold]fewpick copick picks copick.json --object ribosome --user curator --out labels.star[/]
    """
    from fewpick.io import write_picks
    from fewpick.io.copick import read_copick_picks

    picks = read_copick_picks(config, object_name, voxel_spacing, user_id=user, session_id=session, runs=run)
    written = write_picks(picks, out)
    console.print(f"{len(picks)} picks -> {written[0] if len(written) == 1 else out}", highlight=False)


@copick_app.command("add")
@handle_errors
def copick_add(
    picks_file: Path = typer.Argument(..., metavar="PICKS", help="Tomogram picks (any format), in voxels of --voxel-spacing; their tomogram names are the runs."),
    config: Path = typer.Argument(..., help="The project's copick configuration file (JSON)."),
    object_name: str = typer.Option(..., "--object", help="The pickable object they are, e.g. ribosome."),
    voxel_spacing: float = typer.Option(10.0, "--voxel-spacing", min=0.01, max=1000.0, help="Voxel spacing in Å of the tomograms the picks were made on."),
    user: str = typer.Option("fewpick", "--user", help="User id to store them under."),
    session: str = typer.Option("0", "--session", help="Session id to store them under."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace picks this user and session already stored."),
):
    """Store tomogram picks in a copick project (positions in Å), one pick set per run.

    Example: [bold]fewpick copick add particles.star copick.json --object ribosome --voxel-spacing 10[/]
    """
    from fewpick.io import read_picks
    from fewpick.io.copick import write_copick_picks

    picks = read_picks(picks_file)
    if not len(picks):
        err_console.print(f"[yellow]warning:[/] {picks_file} holds no picks; nothing stored", highlight=False)
        return
    counts = write_copick_picks(picks, config, object_name, voxel_spacing, user_id=user, session_id=session,
                                overwrite=overwrite)
    console.print(f"{sum(counts.values())} picks in {len(counts)} runs -> {config} ({object_name}, user {user}, "
                  f"session {session})", highlight=False)
