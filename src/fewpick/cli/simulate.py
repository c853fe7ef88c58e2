"""fewpick simulate: micrographs, tomograms and density maps with exact truth."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from fewpick.cli.common import (
    app,
    console,
    handle_errors,
)
from fewpick.errors import InputError
from fewpick.outputs import check_output

simulate_app = typer.Typer(help="Simulate micrographs or tomograms with exact ground truth.", no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")


class Preset(str, Enum):
    simple = "simple"
    easy = "easy"
    realistic = "realistic"
    hard = "hard"


class TomoPreset(str, Enum):
    easy = "easy"
    realistic = "realistic"
    hard = "hard"



# ---------------------------------------------------------------- simulate


@simulate_app.command("micrographs")
@handle_errors
def simulate_micrographs(
    out: Path = typer.Option(..., "--out", help="Output folder: <stem>.mrc and <stem>_truth.star per micrograph."),
    count: int = typer.Option(4, "--count", min=1, max=100_000, help="Number of micrographs."),
    size: int = typer.Option(1024, "--size", min=64, max=8192, help="Edge length in pixels (square micrographs)."),
    seed: int = typer.Option(0, "--seed", min=0, max=1_000_000_000, help="Random seed; the same seed gives identical files."),
    preset: Preset = typer.Option(Preset.realistic, "--preset", help="easy|realistic|hard: atomic models, ice, CTF, "
                                  "shot noise (1.2 Å/px); simple: fast synthetic blobs for quick checks."),
    particles: Optional[int] = typer.Option(None, "--particles", min=0, max=1_000_000, help="Particles per micrograph (default: ~300 per 4096² px; fewer if they do not fit)."),
    species: Optional[str] = typer.Option(None, "--species", help="Comma-separated species (ribosome, cct, mtor, ruvab, glua3, enolase, dengue)."),
    clean: bool = typer.Option(False, "--clean", help="Also write the noise-free image <stem>_clean.mrc."),
    diameter: float = typer.Option(48.0, "--particle-diameter", min=4, help="simple preset only: particle diameter in pixels."),
    snr: float = typer.Option(0.01, "--snr", min=1e-6, help="simple preset only: per-particle signal-to-noise ratio."),
):
    """Simulate micrographs with exact ground truth (species, orientation, defocus per particle).

    Example: [bold]fewpick simulate micrographs --out sim --count 4 --size 4096 --seed 1 --preset realistic[/]
    """
    from fewpick.simulate import SimpleMicrographConfig, write_micrographs, write_simulated_micrographs

    check_output(out, folder=True)
    if preset == Preset.simple:
        if diameter > size / 2:
            raise InputError(None, f"--particle-diameter {diameter:g} px does not fit micrographs of {size} px "
                                   "(at most half their edge)")
        cfg = SimpleMicrographConfig(size=(size, size), diameter=diameter,
                                     n_particles=80 if particles is None else particles, snr=snr)
        truth = write_simulated_micrographs(out, count, cfg, seed=seed, clean=clean)
    else:
        names = tuple(s.strip() for s in species.split(",")) if species else None
        truth = write_micrographs(out, count, size, preset.value, seed, particles, clean, names)
    console.print(f"wrote {count} micrographs with {len(truth)} particles to {out}/")


@simulate_app.command("tomograms")
@handle_errors
def simulate_tomograms(
    out: Path = typer.Option(..., "--out", help="Output folder: <stem>.mrc (tomogram), .st + .tlt (tilt series), _truth.star."),
    count: int = typer.Option(1, "--count", min=1, max=100_000, help="Number of tomograms."),
    seed: int = typer.Option(0, "--seed", min=0, max=1_000_000_000, help="Random seed; the same seed gives identical files."),
    preset: TomoPreset = typer.Option(TomoPreset.realistic, "--preset", help="Dose, B-factor, crowding, filaments, membranes."),
    size: Optional[int] = typer.Option(None, "--size", min=64, max=1024, help="x and y size in voxels (default 512)."),
    depth: Optional[int] = typer.Option(None, "--depth", min=16, max=512, help="z size in voxels (default 200)."),
):
    """Simulate tilt series (±60°, dose-symmetric) and their WBP tomograms with exact ground truth.

    Example: [bold]fewpick simulate tomograms --out tomos --count 2 --seed 1[/]
    """
    from fewpick.simulate import write_tomograms

    check_output(out, folder=True)
    truth = write_tomograms(out, count, preset.value, seed, size, depth)
    console.print(f"wrote {count} tomograms with {len(truth)} truth rows to {out}/")


@simulate_app.command("map")
@handle_errors
def simulate_map(
    species: str = typer.Option(..., "--species", help="One of the simulator's species: ribosome, cct, mtor, ruvab, glua3, enolase, dengue."),
    out: Path = typer.Option(..., "--out", help="MRC file to write."),
    pixel_size: float = typer.Option(1.2, "--pixel-size", min=0.3, max=50.0, help="Å per voxel (that of your micrographs; the simulator's micrographs are 1.2 Å/px)."),
    resolution: Optional[float] = typer.Option(None, "--resolution", min=0.1, max=1000.0, help="Low-pass to this many Å (default: 2 voxels)."),
):
    """Write a species' 3D density map (from its atomic model), e.g. a template for 'pick --method template'.

    Example: [bold]fewpick simulate map --species cct --out cct_map.mrc[/]
    """
    from fewpick.io import write_mrc
    from fewpick.simulate.species import species_map

    check_output(out, suffixes=(".mrc", ".map"))

    vol = species_map(species, pixel_size, resolution=resolution)
    write_mrc(out, vol, pixel_size)
    console.print(f"{species}: {vol.shape[0]}³ voxels of {pixel_size:g} Å -> {out}")
