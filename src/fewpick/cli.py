"""The ``fewpick`` command line: a thin Typer layer over the library.

Each verb parses its options and calls library functions with the same defaults.
Errors the user can act on print one line, ``error: <file>: <problem>``, and exit 2.
"""

from __future__ import annotations

import functools
import json
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional, Tuple

import typer
from rich.console import Console
from rich.table import Table

from fewpick import __version__
from fewpick.errors import FewpickError, InputError

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="fewpick",
    help="Find protein particles in cryo-EM micrographs and tomograms from very few labels.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
simulate_app = typer.Typer(help="Simulate micrographs or tomograms with exact ground truth.", no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")


def _device_option():
    return typer.Option("auto", "--device", help="Where the network runs: auto (a CUDA GPU when PyTorch sees one, else the CPU), cpu, cuda or cuda:N.")


def _device(spec: str):
    """Resolve --device once per command (one clear error for a GPU that is not there) and say which is used."""
    from fewpick.device import device_name, resolve_device

    dev = resolve_device(spec)
    if dev.type != "cpu" or spec not in ("auto", "cpu"):
        err_console.print(f"device: {device_name(dev)}", highlight=False)
    return dev


def _resume_option():
    return typer.Option(False, "--resume", help="Skip the micrographs whose picks an earlier, interrupted run of this command already wrote.")


def _prefix_option():
    return typer.Option(None, "--micrograph-prefix", metavar="FOLDER/",
                        help="Name micrographs in RELION and cryoSPARC files as FOLDER/ + the file name (e.g. MotionCorr/job002/Movies/), to match a processing project; default: the path as given.")


from fewpick.io.picks import formats_help, suffixes_help  # noqa: E402  (the help texts name every known format)

PICK_FORMATS = formats_help()


def _strict_option():
    return typer.Option(False, "--strict", help="Stop at the first unreadable or bad micrograph (default: list it in the failures file and go on).")


def _workers_option():
    return typer.Option(None, "--workers", min=1, help="Pick on a local Dask cluster of this many worker processes (one torch thread each).")


def _scheduler_option():
    return typer.Option(None, "--scheduler", help="Pick on an existing Dask cluster: its scheduler address (tcp://HOST:8786) or scheduler file.")


def _hms(seconds: float) -> str:
    if seconds != seconds:
        return ""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _training_progress(what: str, total: int):
    """The progress bar of every training verb: steps done, the latest losses and the time left."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn(what), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err_console)
    progress.add_task(what, total=total, info="")
    return progress


def _train_resume_option(what: str = "OUT.ckpt"):
    return typer.Option(False, "--resume", help=f"Continue an interrupted training from its checkpoint ({what}).")


def _run_batch(files, read, pick_one, out: str | Path, fmt, box_size, resume: bool, strict: bool, what: str = "micrographs",
               workers: Optional[int] = None, scheduler: Optional[str] = None, micrograph_prefix: Optional[str] = None,
               pixel_size: Optional[float] = None):
    """The one picking loop of every pick verb (:func:`fewpick.batch.pick_files`), with a progress bar that shows
    the rate and the time left, one line per bad file, and a summary; on Dask workers with --workers or
    --scheduler."""
    if workers and scheduler:
        raise InputError(None, "--workers starts a local cluster and --scheduler uses an existing one: give one")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from fewpick.batch import dask_client, pick_files

    with dask_client(workers, scheduler) as client, Progress(TextColumn("picking"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("pick", total=len(files), info="")

        def update(e):
            left = f"{_hms(e['eta_s'])} left" if e["eta_s"] == e["eta_s"] else ""
            progress.update(task, completed=e["done"], info=f"{e['per_second']:.2f} {what}/s  {left}")

        result = pick_files(files, read, pick_one, out, fmt=fmt, box_size=box_size, resume=resume, strict=strict,
                            progress=update, kind=what, client=client, micrograph_prefix=micrograph_prefix,
                            pixel_size=pixel_size, report=lambda line: err_console.print(f"[yellow]warning:[/] {line}", highlight=False))
    if not result.picked and not result.skipped:
        raise InputError(None, f"no {what} could be picked; the reasons are in {result.failures_file}")
    done = len(result.picked) + len(result.skipped)
    where = result.written[0] if len(result.written) == 1 and result.parts != Path(out) else f"{len(result.written)} files in {result.parts}"
    extra = f" ({len(result.skipped)} already done)" if result.skipped else ""
    console.print(f"{result.n_picks} picks in {done} {what}{extra} -> {where}", highlight=False)
    if result.parts != Path(out):
        console.print(f"per-{what[:-1]} picks in {result.parts}/", highlight=False)
    if result.failed:
        err_console.print(f"[yellow]warning:[/] {len(result.failed)} of {len(files)} {what} failed; listed in "
                          f"{result.failures_file} (fix them and run again with --resume)", highlight=False)
    return result


def handle_errors(func):
    """Turn :class:`FewpickError` into one line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FewpickError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _version(value: bool):
    if value:
        console.print(f"fewpick {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Show the version and exit.")):
    """Find protein particles in cryo-EM micrographs and tomograms from very few labels."""


def _threshold(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise InputError(None, f"--threshold must be a number or 'auto', got {text!r}") from None


class ClassicMethod(str, Enum):
    dog = "dog"
    template = "template"


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
    count: int = typer.Option(4, "--count", min=1, help="Number of micrographs."),
    size: int = typer.Option(1024, "--size", min=64, help="Edge length in pixels (square micrographs)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives identical files."),
    preset: Preset = typer.Option(Preset.realistic, "--preset", help="easy|realistic|hard: atomic models, ice, CTF, "
                                  "shot noise (1.2 Å/px); simple: fast synthetic blobs for quick checks."),
    particles: Optional[int] = typer.Option(None, "--particles", min=0, help="Particles per micrograph (default: ~300 per 4096² px; fewer if they do not fit)."),
    species: Optional[str] = typer.Option(None, "--species", help="Comma-separated species (ribosome, cct, mtor, ruvab, glua3, enolase, dengue)."),
    clean: bool = typer.Option(False, "--clean", help="Also write the noise-free image <stem>_clean.mrc."),
    diameter: float = typer.Option(48.0, "--particle-diameter", min=4, help="simple preset only: particle diameter in pixels."),
    snr: float = typer.Option(0.01, "--snr", min=1e-6, help="simple preset only: per-particle signal-to-noise ratio."),
):
    """Simulate micrographs with exact ground truth (species, orientation, defocus per particle).

    Example: [bold]fewpick simulate micrographs --out sim --count 4 --size 4096 --seed 1 --preset realistic[/]
    """
    from fewpick.simulate import SimpleMicrographConfig, write_micrographs, write_simulated_micrographs

    if preset == Preset.simple:
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
    count: int = typer.Option(1, "--count", min=1, help="Number of tomograms."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives identical files."),
    preset: TomoPreset = typer.Option(TomoPreset.realistic, "--preset", help="Dose, B-factor, crowding, filaments, membranes."),
    size: Optional[int] = typer.Option(None, "--size", min=64, help="x and y size in voxels (default 512)."),
    depth: Optional[int] = typer.Option(None, "--depth", min=16, help="z size in voxels (default 200)."),
):
    """Simulate tilt series (±60°, dose-symmetric) and their WBP tomograms with exact ground truth.

    Example: [bold]fewpick simulate tomograms --out tomos --count 2 --seed 1[/]
    """
    from fewpick.simulate import write_tomograms

    truth = write_tomograms(out, count, preset.value, seed, size, depth)
    console.print(f"wrote {count} tomograms with {len(truth)} truth rows to {out}/")


@simulate_app.command("map")
@handle_errors
def simulate_map(
    species: str = typer.Option(..., "--species", help="One of the simulator's species: ribosome, cct, mtor, ruvab, glua3, enolase, dengue."),
    out: Path = typer.Option(..., "--out", help="MRC file to write."),
    pixel_size: float = typer.Option(1.2, "--pixel-size", help="Å per voxel (that of your micrographs; the simulator's micrographs are 1.2 Å/px)."),
    resolution: Optional[float] = typer.Option(None, "--resolution", help="Low-pass to this many Å (default: 2 voxels)."),
):
    """Write a species' 3D density map (from its atomic model), e.g. a template for 'pick --method template'.

    Example: [bold]fewpick simulate map --species cct --out cct_map.mrc[/]
    """
    from fewpick.io import write_mrc
    from fewpick.simulate.species import species_map

    vol = species_map(species, pixel_size, resolution=resolution)
    write_mrc(out, vol, pixel_size)
    console.print(f"{species}: {vol.shape[0]}³ voxels of {pixel_size:g} Å -> {out}")


# ---------------------------------------------------------------- pick


@app.command()
@handle_errors
def pick(
    images: List[Path] = typer.Argument(..., help="Micrographs (MRC, TIFF, PNG, JPEG) or folders of them."),
    out: str = typer.Option(..., "--out", "-o", help=f"Picks file ({suffixes_help()}) or a folder/ for one file per micrograph."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A model from 'fewpick train': pick with it (its diameter and binning)."),
    method: ClassicMethod = typer.Option(ClassicMethod.dog, "--method", help="Without --model. dog: difference of Gaussians; template: FFT cross-correlation."),
    particle_diameter: Optional[str] = typer.Option(None, "--particle-diameter", "-d", help="Particle diameter: pixels (68, 68px) or physical (120A, 12nm). Needed without --model."),
    threshold: Optional[str] = typer.Option(None, "--threshold", "-t", help="Score threshold, or 'auto'. A very low value (-1e9) keeps every peak. Default: auto for classic methods; with --model, the model's own (calibrated on its training micrographs)."),
    template: Optional[Path] = typer.Option(None, "--template", help="Template for --method template: a 2D image or a 3D map (MRC)."),
    angular_step: float = typer.Option(30.0, "--angular-step", min=1.0, max=180.0, help="Template orientations, degrees apart."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Å/px of the micrographs, overriding the header."),
    bright: bool = typer.Option(False, "--bright-particles", help="Particles are brighter than the background (e.g. negative stain)."),
    max_picks: Optional[int] = typer.Option(None, "--max-picks", min=1, help="At most this many picks per micrograph."),
    border: float = typer.Option(0.0, "--border", min=0.0, help="Ignore peaks within this many pixels of the edge."),
    bin_factor: Optional[int] = typer.Option(None, "--bin", min=1, help="Binning factor (default: particle about 16 px after binning)."),
    fmt: Optional[str] = typer.Option(None, "--format", help=f"Output format if the suffix does not say: {PICK_FORMATS}."),
    box_size: Optional[float] = typer.Option(None, "--box-size", help="Box edge for .box and .cbox output (default: the particle diameter)."),
    micrograph_prefix: Optional[str] = _prefix_option(),
    device: str = _device_option(),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default 2; 1 per worker with --workers or --scheduler)."),
    resume: bool = _resume_option(),
    strict: bool = _strict_option(),
    workers: Optional[int] = _workers_option(),
    scheduler: Optional[str] = _scheduler_option(),
):
    """Pick particles with a trained model, or with a classic method (no training).

    Example: [bold]fewpick pick mics/ --model picker.pt --out picks.star[/]
    or: [bold]fewpick pick sim/*.mrc --method dog --particle-diameter 48 --out picks.star[/]
    """
    import numpy as np

    from fewpick.geometry import parse_length
    from fewpick.io import list_images, read_image, read_micrograph
    from fewpick.pickers.classic import ClassicPicker, ClassicSettings, prepare_templates

    # a run-time choice, whatever the model was trained with: one torch thread per Dask worker by default
    threads = threads or (1 if (workers or scheduler) else 2)
    kind = None
    if model is not None:
        from fewpick.pickers import registry

        # a file of no known kind goes to the PU picker's loader, whose errors say what is wrong with it
        kind = registry.kind_of(model) or registry.get("pu")
        if kind.volumes:
            raise InputError(model, f"a {kind.description} model picks tomograms: use 'fewpick tomo pick'")
        if kind.name == "fewshot":  # a few-shot model given to the plain verb: same as 'fewshot pick'
            return fewshot_pick(images=images, model=model, out=out, threshold=threshold, stride=None,
                                match=None, exact=False, score_maps=None, max_picks=max_picks, min_distance=None, pixel_size=pixel_size, fmt=fmt,
                                box_size=box_size, micrograph_prefix=micrograph_prefix, threads=threads, device=device,
                                resume=resume, strict=strict, workers=workers, scheduler=scheduler)
    files = list_images(images)
    first = _first_readable(files, pixel_size, strict)
    trained = None
    if model is not None and kind is not None:
        trained = kind.load_module().load_model(model, _device(device))
        trained.settings.threads = threads
        diameter = trained.settings.diameter
        thr = _threshold(threshold) if threshold is not None else None  # the model's calibrated default
        err_console.print(registry.summary(trained, kind), highlight=False)
    else:
        if particle_diameter is None:
            raise InputError(None, "give --particle-diameter (or --model)")
        diameter = parse_length(particle_diameter, first.pixel_size, "--particle-diameter")
        thr = _threshold(threshold) if threshold is not None else "auto"
    settings = ClassicSettings(diameter=diameter, method=method.value, threshold=thr, dark=not bright,
                               bin_factor=bin_factor, max_picks=max_picks, border=border)
    templates = None
    if trained is None and method == ClassicMethod.template:
        if template is None:
            raise InputError(None, "--method template needs --template FILE (a 2D image or a 3D map)")
        t_img = read_image(template)
        if not np.isfinite(t_img.data).all():
            raise InputError(template, "template holds NaN or infinite values")
        templates = prepare_templates(t_img.data, settings, t_img.pixel_size, first.pixel_size, angular_step)
    # what 'read' keeps of the first micrograph: not its pixels, which would travel to every Dask worker with it
    ref_px, ref_name = first.pixel_size, first.name
    del first

    def read(path):
        image = read_micrograph(path, pixel_size=pixel_size)
        if ref_px and image.pixel_size and abs(image.pixel_size - ref_px) > 1e-3 * ref_px:
            raise InputError(path, f"pixel size {image.pixel_size:g} Å differs from {ref_px:g} Å of {ref_name}")
        return image

    picker = trained if trained is not None else ClassicPicker(settings, templates)

    def pick_one(image):
        return picker.pick(image, thr, max_picks)

    _run_batch(files, read, pick_one, out, fmt, box_size or diameter, resume, strict, workers=workers,
               scheduler=scheduler, micrograph_prefix=micrograph_prefix, pixel_size=pixel_size)




def _first_readable(files, pixel_size, strict: bool):
    """The first micrograph that reads (its header sets the pixel size the others must match); the batch
    itself reports the ones that do not."""
    from fewpick.io import read_micrograph

    for path in files:
        try:
            return read_micrograph(path, pixel_size=pixel_size)
        except InputError:
            if strict or path == files[-1]:
                raise
    raise InputError(None, "no micrographs given")


# ---------------------------------------------------------------- train


class PUMethod(str, Enum):
    pn = "pn"
    upu = "upu"
    nnpu = "nnpu"
    ge_kl = "ge-kl"
    ge_binomial = "ge-binomial"


@app.command()
@handle_errors
def train(
    images: List[Path] = typer.Argument(..., help="Training micrographs (files or folders); those without labels add unlabeled regions."),
    labels: Path = typer.Option(..., "--labels", "-l", help="Labeled particle centres (any picks format), naming micrographs by stem."),
    particle_diameter: str = typer.Option(..., "--particle-diameter", "-d", help="Particle diameter: pixels (68) or physical (120A, 12nm)."),
    out: Path = typer.Option(..., "--out", "-o", help="Model file to write (self-describing: network, binning, diameter, π)."),
    expected_particles: Optional[float] = typer.Option(None, "--expected-particles", "-n", help="Expected particles per micrograph; sets π (disk area, 2D)."),
    pi: Optional[float] = typer.Option(None, "--pi", help="Class prior π directly (fraction of unlabeled pixels that are particles), in (0, 0.5)."),
    method: PUMethod = typer.Option(PUMethod.ge_binomial, "--method", help="Positive-unlabeled objective."),
    ge_weight: float = typer.Option(1.0, "--ge-weight", help="λ: weight of the GE-KL / GE-binomial term."),
    slack: float = typer.Option(0.0, "--slack", help="β of nnPU: how far below 0 the negative risk may go."),
    autoencoder: float = typer.Option(0.0, "--autoencoder", help="Weight a of the reconstruction error (0 = classifier only; the Topaz paper uses N/10)."),
    steps: int = typer.Option(1500, "--steps", min=1, help="Optimiser steps (learning rate decays to 0 over them)."),
    steps_per_epoch: int = typer.Option(100, "--steps-per-epoch", min=1, help="Steps between checkpoints / validation."),
    val_images: Optional[List[Path]] = typer.Option(None, "--val-images", help="Held-out micrographs for the AUPRC shown each epoch."),
    val_labels: Optional[Path] = typer.Option(None, "--val-labels", help="Their particle centres."),
    resume: bool = _train_resume_option(),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Å/px, overriding the header."),
    bin_factor: Optional[int] = typer.Option(None, "--bin", min=1, help="Binning factor (default: the finest that brings the particle to 12-16 px)."),
    min_distance: Optional[float] = typer.Option(None, "--min-distance", min=0.05, max=2.0, help="Closest two picks may lie, as a fraction of the particle radius. Default: from the expected count, half the radius on crowded micrographs, the whole radius on sparse ones."),
    correlation: bool = typer.Option(True, "--correlation/--no-correlation", help="After training, test whether the labelled particles' rotational average agrees with the network (round particles); if so, centre and rescore picks on it."),
    edge_margin: Optional[float] = typer.Option(None, "--edge-margin", min=0.0, max=1.0, help="Drop picks closer than this many particle diameters to the micrograph edge. Default: from the labels — where many labels leave the edges empty, picks more than a radius closer to the edge than the closest label are dropped; with few labels, none."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    device: str = _device_option(),
):
    """Train a positive-unlabeled CNN picker from a few labeled particles.

    Example: [bold]fewpick train mics/ --labels labels.star --particle-diameter 68 --expected-particles 150 --out picker.pt[/]
    """
    from fewpick.geometry import parse_length
    from fewpick.io import list_images, read_micrograph, read_picks
    from fewpick.pickers import pu

    dev = _device(device)
    files = list_images(images)
    ims = [read_micrograph(f, pixel_size=pixel_size) for f in files]
    diameter = parse_length(particle_diameter, ims[0].pixel_size, "--particle-diameter")
    labs = read_picks(labels, require_rows=True)
    settings = pu.PUSettings(diameter=diameter, method=method.value, pi=pi, expected_particles=expected_particles,
                             bin_factor=bin_factor, ge_weight=ge_weight, slack=slack, autoencoder=autoencoder,
                             steps=steps, steps_per_epoch=steps_per_epoch, min_distance=min_distance,
                             correlation=correlation, edge_margin=edge_margin, seed=seed, threads=threads)
    v_ims = v_labs = None
    if val_images or val_labels:
        if not (val_images and val_labels):
            raise InputError(None, "--val-images and --val-labels go together")
        v_ims = [read_micrograph(f, pixel_size=pixel_size) for f in list_images(val_images)]
        v_labs = read_picks(val_labels, require_rows=True)
    with _training_progress("training", steps) as progress:
        def report(entry):
            info = f"loss {entry['loss']:.4f}" + (f"  val AUPRC {entry['val_auprc']:.3f}" if "val_auprc" in entry else "")
            progress.update(progress.task_ids[0], completed=entry["step"], info=f"{info}  {_hms(entry['eta_s'])} left")

        model = pu.train(ims, labs, settings, out, labels_source=labels, val_images=v_ims, val_labels=v_labs,
                         resume=resume, progress=report, device=dev)
    console.print(f"{pu.model_summary(model)} -> {out}", highlight=False)


# ---------------------------------------------------------------- evaluate


def _print_report(report: dict, title: str) -> None:
    best = report["best"] or {"threshold": float("nan"), "precision": 0, "recall": 0, "f1": 0}
    allp = report["all_picks"]
    table = Table(title=title, show_header=True, header_style="bold")
    for col in ("", "threshold", "precision", "recall", "F1", "picks"):
        table.add_column(col, justify="right")
    table.add_row("best F1", f"{best['threshold']:.4g}", f"{best['precision']:.3f}", f"{best['recall']:.3f}",
                  f"{best['f1']:.3f}", str(best.get("n_pred", "")))
    table.add_row("all picks", "-", f"{allp['precision']:.3f}", f"{allp['recall']:.3f}", f"{allp['f1']:.3f}",
                  str(allp["n_pred"]))
    if "at_threshold" in report:
        a = report["at_threshold"]
        table.add_row("at threshold", f"{a['threshold']:.4g}", f"{a['precision']:.3f}", f"{a['recall']:.3f}",
                      f"{a['f1']:.3f}", str(a["n_pred"]))
    console.print(table)


@app.command()
@handle_errors
def evaluate(
    pred: Path = typer.Argument(..., help="Picks to score (any picks format, or a folder of per-micrograph files)."),
    truth: Path = typer.Argument(..., help="Ground-truth coordinates (any picks format, or a folder)."),
    radius: Optional[float] = typer.Option(None, "--radius", "-r", help="Matching radius in pixels (usually the particle radius)."),
    box: Optional[float] = typer.Option(None, "--box", help="Also score with the box protocol: boxes of this edge, IoU >= 0.5."),
    threshold: Optional[float] = typer.Option(None, "--threshold", "-t", help="Also report precision/recall/F1 at this score."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full report (with the curve) as JSON."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the precision-recall curve as PNG."),
):
    """Score picks against ground truth: AUPRC, best F1, precision and recall.

    Matching is one-to-one within each micrograph by optimal assignment.

    Example: [bold]fewpick evaluate picks.star sim/ --radius 24 --json metrics.json --plot pr.png[/]
    """
    from fewpick.evaluate import evaluate as run_evaluate, plot_pr
    from fewpick.io import read_picks
    from fewpick.outputs import atomic_path

    if radius is None and box is None:
        raise InputError(None, "give --radius (centre distance) and/or --box (IoU protocol)")
    p = read_picks(pred)
    t = read_picks(truth, require_rows=True)
    report = run_evaluate(p, t, radius=radius, box=None if radius is not None else box, threshold=threshold)
    if radius is not None and box is not None:
        report["box_protocol"] = run_evaluate(p, t, box=box, threshold=threshold)
    crit = f"radius {radius:g} px" if radius is not None else f"box {box:g} px, IoU >= 0.5"
    _print_report(report, f"{pred.name} vs {truth.name} ({crit})")
    console.print(f"AUPRC {report['auprc']:.4f}  best F1 {report['best']['f1'] if report['best'] else 0:.4f}  "
                  f"true {report['n_true']}  picks {report['n_pred']}  micrographs {report['n_micrographs']}",
                  highlight=False)
    if report["n_micrographs_without_picks"]:
        console.print(f"note: {report['n_micrographs_without_picks']} micrograph(s) of the truth have no picks", highlight=False)
    if report["n_pred_ignored"]:
        console.print(f"note: {report['n_pred_ignored']} picks are on micrographs the truth does not cover; ignored", highlight=False)
    if "box_protocol" in report:
        b = report["box_protocol"]
        console.print(f"box protocol (edge {box:g} px, IoU >= 0.5): AUPRC {b['auprc']:.4f}  best F1 "
                      f"{b['best']['f1'] if b['best'] else 0:.4f}  all-picks F1 {b['all_picks']['f1']:.4f}", highlight=False)
    if json_out:
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(report, indent=2))
    if plot:
        plot_pr(report, plot, title=f"{pred.name} ({crit})")


# ---------------------------------------------------------------- convert


@app.command()
@handle_errors
def convert(
    src: Path = typer.Argument(..., metavar="IN", help="Picks file or folder to read."),
    dst: str = typer.Argument(..., metavar="OUT", help="File to write (format from the suffix), or a folder/ for one file per micrograph."),
    scale: float = typer.Option(1.0, "--scale", help="Multiply coordinates by this (e.g. the binning factor of binned picks)."),
    flip_y: Optional[float] = typer.Option(None, "--flip-y", metavar="HEIGHT", help="Flip y: y -> HEIGHT - 1 - y (HEIGHT in output pixels)."),
    box_size: Optional[float] = typer.Option(None, "--box-size", help="Box edge in pixels, for writing .box and .cbox files."),
    src_fmt: Optional[str] = typer.Option(None, "--from", help=f"Input format if its suffix does not say: {PICK_FORMATS}."),
    dst_fmt: Optional[str] = typer.Option(None, "--to", help=f"Output format if its suffix does not say: {PICK_FORMATS}."),
    images: Optional[List[Path]] = typer.Option(None, "--images", help="The micrographs or tomograms the picks belong to (files or folders; only their headers are read). Needed to write cryoSPARC .cs files and RELION 5 centred coordinates, and to read the latter; RELION files then name micrographs by their path."),
    micrograph_prefix: Optional[str] = _prefix_option(),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Å/px of the --images, overriding their headers."),
    where: Optional[List[str]] = typer.Option(None, "--where", help="Keep rows with COLUMN=VALUE (repeatable), e.g. species=ribosome."),
    sample: Optional[int] = typer.Option(None, "--sample", min=1, help="Then keep N random rows (e.g. to make a small label set)."),
    seed: int = typer.Option(0, "--seed", help="Random seed for --sample."),
):
    """Convert picks between RELION STAR, cryoSPARC .cs, crYOLO .cbox, IMOD .mod, EMAN .box, Topaz TSV, CSV and
    .coords; optionally select and subsample rows.

    Example: [bold]fewpick convert picks.star boxes/ --to box --box-size 64 --scale 4[/]
    or: [bold]fewpick convert picks.star picks.cs --images mics/[/]
    or: [bold]fewpick convert labels/ labels.star --where label=1 --sample 20[/]
    """
    from fewpick.io import image_info, list_images, read_picks, select_picks, transform_picks, write_picks

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


# ---------------------------------------------------------------- overlay


@app.command()
@handle_errors
def overlay(
    image: Path = typer.Argument(..., help="A micrograph."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG to write."),
    picks: Optional[Path] = typer.Option(None, "--picks", help="Picks to draw (circles)."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Ground truth to draw (crosses)."),
    particle_diameter: str = typer.Option("40", "--particle-diameter", "-d", help="Circle diameter: pixels (68, 68px) or physical (120A, 12nm)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", "-t", help="Draw only picks scoring at least this."),
):
    """Draw picks (and truth) over a micrograph as a PNG.

    Example: [bold]fewpick overlay sim/sim_000.mrc --picks picks.star --truth sim/sim_000_truth.star --out overlay.png[/]
    """
    from fewpick.geometry import parse_length
    from fewpick.io import check_inside, read_micrograph, read_picks
    from fewpick.report import overlay_png, rows_for

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
    expected_particles: Optional[float] = typer.Option(None, "--expected-particles", "-n", help="Expected particles per micrograph (the PU picker needs it; the page asks otherwise)."),
    model_out: Optional[Path] = typer.Option(None, "--model-out", help="Where the trained model goes (default: beside OUT, OUT_model.pt)."),
    picks_out: Optional[Path] = typer.Option(None, "--picks-out", help="Where 'Save picks' writes (default: beside OUT, OUT_picks.star)."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Å/px, overriding the header."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (127.0.0.1: this machine only; reach it from elsewhere through an SSH tunnel). Any other address lets others on the network open the page."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free one)."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    device: str = _device_option(),
):
    """Label particles by clicking on your micrographs, train a picker from them, review its picks with a score
    threshold, pick every micrograph and save the picks — in a page in your browser.

    Example: [bold]fewpick label mics/ --particle-diameter 68 --out labels.star[/]; from a laptop: ssh -L 8000:localhost:8000 server, then open http://localhost:8000/
    """
    from fewpick.geometry import parse_length
    from fewpick.io import image_info, list_images
    from fewpick.label import LabelSession, LabelSettings, make_server
    from fewpick.webserver import announce

    files = list_images(micrographs)
    diameter = parse_length(particle_diameter, pixel_size or image_info(files[0]).pixel_size, "--particle-diameter")
    settings = LabelSettings(diameter=diameter, picker=picker.value, expected_particles=expected_particles,
                             threads=threads, device=str(_device(device)))
    session = LabelSession(files, out, settings, model_out=model_out, picks_out=picks_out, pixel_size=pixel_size)
    for why in session.bad.values():
        err_console.print(f"skipped: {why}", highlight=False)
    server = make_server(session, host, port)
    console.print(f"{len(session.paths)} micrographs, {session.label_count()} labels so far -> {out}", highlight=False)
    announce(host, server.server_address[1], "the labelling page", lambda m: console.print(m, highlight=False))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# ---------------------------------------------------------------- few-shot (cryoMAE-class)

fewshot_app = typer.Typer(help="Few-shot picking with a masked autoencoder: label ~15 particles on one micrograph.",
                          no_args_is_help=True)
app.add_typer(fewshot_app, name="fewshot")


class SCSMode(str, Enum):
    adjusted = "adjusted"
    unadjusted = "unadjusted"
    none = "none"


class MatchMode(str, Enum):
    max = "max"
    mean = "mean"


def _fewshot_settings(diameter: float, **kw):
    from fewpick.pickers import fewshot as fs

    return fs.FewShotSettings(diameter=diameter, **{k: v for k, v in kw.items() if v is not None})


@fewshot_app.command("pretrain")
@handle_errors
def fewshot_pretrain(
    images: List[Path] = typer.Argument(..., help="Unlabeled micrographs (files or folders) to learn from."),
    particle_diameter: str = typer.Option(..., "--particle-diameter", "-d", help="Particle diameter: pixels (68) or physical (120A, 12nm); sets the window."),
    out: Path = typer.Option(..., "--out", "-o", help="Pre-trained encoder file to write (reusable with 'fewshot train --pretrained')."),
    steps: int = typer.Option(6000, "--steps", min=1, help="Optimiser steps of masked reconstruction."),
    window_ratio: float = typer.Option(1.2, "--window-ratio", min=0.5, help="Window side as a multiple of the particle diameter."),
    max_images: int = typer.Option(40, "--max-images", min=1, help="Use at most this many micrographs (an even spread)."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Å/px, overriding the header."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    device: str = _device_option(),
    resume: bool = _train_resume_option(),
):
    """Pre-train the masked autoencoder on unlabeled micrographs (reconstruction only).

    Example: [bold]fewpick fewshot pretrain mics/ --particle-diameter 120A --out encoder.pt[/]
    """
    import numpy as np

    from fewpick.geometry import parse_length
    from fewpick.io import list_images, read_micrograph
    from fewpick.pickers import fewshot as fs

    dev = _device(device)
    files = list_images(images)
    if len(files) > max_images:
        files = [files[i] for i in np.linspace(0, len(files) - 1, max_images).round().astype(int)]
    ims = [read_micrograph(f, pixel_size=pixel_size) for f in files]
    diameter = parse_length(particle_diameter, ims[0].pixel_size, "--particle-diameter")
    settings = _fewshot_settings(diameter, window_ratio=window_ratio, pretrain_steps=steps, seed=seed,
                                 train_threads=threads)
    with _training_progress("pre-training", steps) as progress:
        net, info = fs.pretrain(ims, settings, progress=lambda e: progress.update(
            progress.task_ids[0], completed=e["step"], info=f"loss {e['loss']:.4f}  {_hms(e['eta_s'])} left"),
            device=dev, checkpoint=str(out) + ".ckpt", resume=resume)
    fs.save_pretrained(net, settings, info, out)
    console.print(f"encoder pre-trained on {len(ims)} micrograph(s), window {settings.window:.0f} px -> {out}",
                  highlight=False)


@fewshot_app.command("train")
@handle_errors
def fewshot_train(
    reference: Path = typer.Argument(..., help="The reference micrograph holding the exemplars."),
    exemplars: Path = typer.Option(..., "--exemplars", "-e", help="Exemplar particle centres on the reference (any picks format, e.g. an exploration export)."),
    particle_diameter: str = typer.Option(..., "--particle-diameter", "-d", help="Particle diameter: pixels (68) or physical (120A, 12nm)."),
    out: Path = typer.Option(..., "--out", "-o", help="Model file to write (encoder, exemplars, settings)."),
    pretrained: Optional[Path] = typer.Option(None, "--pretrained", help="Encoder from 'fewpick fewshot pretrain' (skips pre-training)."),
    pretrain_images: Optional[List[Path]] = typer.Option(None, "--pretrain-images", help="Micrographs or folders to pre-train on (repeatable; default: the reference alone)."),
    no_pretrain: bool = typer.Option(False, "--no-pretrain", help="Fine-tune from random weights (ablation)."),
    exemplar_count: Optional[int] = typer.Option(None, "--exemplar-count", "-m", min=2, help="Use this many exemplars, drawn at random from the file."),
    scs: SCSMode = typer.Option(SCSMode.adjusted, "--scs", help="Self-cross similarity loss: PU-adjusted, unadjusted, or none (ablation)."),
    pi: Optional[float] = typer.Option(None, "--pi", help="π̂: fraction of random windows that hold a particle (default 0.05)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="α: weight of cross- against self-similarity (default 0.5)."),
    tau: Optional[float] = typer.Option(None, "--tau", help="τ: floor of the SCS loss (default 0)."),
    beta: Optional[float] = typer.Option(None, "--beta", help="β: weight of the SCS loss against reconstruction (default 10)."),
    unlabeled: Optional[int] = typer.Option(None, "--unlabeled", min=1, help="n: random unlabeled windows per step (default 64)."),
    blobs: Optional[float] = typer.Option(None, "--blobs", min=0.0, max=1.0, help="Fraction of the unlabeled windows centred on particle-sized blobs (hard examples; default 0.125)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Fine-tuning steps (default 1000)."),
    pretrain_steps: Optional[int] = typer.Option(None, "--pretrain-steps", min=1, help="Pre-training steps when pre-training here (default 6000)."),
    distill_steps: Optional[int] = typer.Option(None, "--distill-steps", min=0, help="Steps fitting the fast scoring network to the encoder (default 600; 0: none, the encoder scores every window when picking)."),
    window_ratio: Optional[float] = typer.Option(None, "--window-ratio", min=0.5, help="Window side as a multiple of the particle diameter (default 1.2)."),
    expected_particles: Optional[float] = typer.Option(None, "--expected-particles", "-n", min=0.0, help="Particles per micrograph, if known: sets the default score cut (the reference's best that many picks) and, on crowded micrographs, lets picks lie closer together."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Å/px, overriding the header."),
    seed: int = typer.Option(0, "--seed", help="Random seed (also for --exemplar-count)."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch while training."),
    device: str = _device_option(),
    resume: bool = _train_resume_option("OUT.pretrain.ckpt, OUT.ckpt"),
):
    """Train the few-shot picker on one reference micrograph and its exemplars.

    Example: [bold]fewpick fewshot train mics/mic_001.mrc --exemplars clicks.star --particle-diameter 150 --pretrain-images mics/ --out fewshot.pt[/]
    """
    from fewpick.geometry import parse_length
    from fewpick.io import list_images, read_micrograph, read_picks, select_picks
    from fewpick.pickers import fewshot as fs

    if pretrained is not None and (pretrain_images or no_pretrain):
        raise InputError(None, "--pretrained excludes --pretrain-images and --no-pretrain")
    dev = _device(device)
    ref = read_micrograph(reference, pixel_size=pixel_size)
    diameter = parse_length(particle_diameter, ref.pixel_size, "--particle-diameter")
    ex = read_picks(exemplars, require_rows=True)
    if exemplar_count is not None:
        ex = select_picks(ex, (), exemplar_count, seed) if len(ex) > exemplar_count else ex
    settings = _fewshot_settings(diameter, scs=scs.value, pi=pi, alpha=alpha, tau=tau, beta=beta, unlabeled=unlabeled,
                                 blobs=blobs, finetune_steps=steps, pretrain_steps=pretrain_steps, window_ratio=window_ratio,
                                 distill_steps=distill_steps,
                                 expected_particles=expected_particles,
                                 seed=seed, train_threads=threads)
    pre_ims = None
    if pretrain_images:
        pre_ims = [ref if f.resolve() == reference.resolve() else read_micrograph(f, pixel_size=pixel_size)
                   for f in list_images(pretrain_images)]
    before = {"pretrain": 0, "finetune": 0 if (pretrained or no_pretrain) else settings.pretrain_steps}
    before["distill"] = before["finetune"] + settings.finetune_steps
    total = before["distill"] + settings.distill_steps
    with _training_progress("training", total) as progress:
        def report(e):
            done = e["step"] + before[e["stage"]]
            info = f"{e['stage']} loss {e['loss']:.4f}" + (f"  SCS {e['scs']:.3f}" if "scs" in e else "")
            progress.update(progress.task_ids[0], completed=done, info=f"{info}  {_hms(e['eta_s'])} left in {e['stage']}")

        model = fs.train(ref, ex, settings, out, pretrain_images=pre_ims, pretrained_path=pretrained,
                         no_pretrain=no_pretrain, exemplars_source=exemplars, progress=report, device=dev,
                         resume=resume)
    console.print(f"{fs.model_summary(model)} -> {out}", highlight=False)


@fewshot_app.command("pick")
@handle_errors
def fewshot_pick(
    images: List[Path] = typer.Argument(..., help="Micrographs (files or folders) to pick, the reference included or not."),
    model: Path = typer.Option(..., "--model", "-m", help="Model from 'fewpick fewshot train'."),
    out: str = typer.Option(..., "--out", "-o", help="Picks file (.star .box .tsv .csv .coords) or a folder/ for one file per micrograph."),
    threshold: Optional[str] = typer.Option(None, "--threshold", "-t", help="A score (-1…1; -1e9 keeps every peak) or 'auto' (each micrograph cut where its scores are sparsest). Default: the model's own, calibrated on the reference with --expected-particles; 'auto' for a model trained without it."),
    stride: Optional[int] = typer.Option(None, "--stride", min=1, help="Sliding stride in resampled px (default window/6, i.e. 4 of 24)."),
    match: Optional[MatchMode] = typer.Option(None, "--match", help="Score: max (default) or mean cosine similarity to the exemplars."),
    exact: bool = typer.Option(False, "--exact", help="Score every window with the encoder itself, not the faster scoring the model chose at training (its fast network, the correlation with the exemplars' average alone, or the encoder on the windows its fast network ranks higher); slower; also implied by --stride or --match other than the model's."),
    score_maps: Optional[Path] = typer.Option(None, "--score-maps", help="Folder to write each micrograph's similarity map (PNG and MRC)."),
    max_picks: Optional[int] = typer.Option(None, "--max-picks", min=1, help="At most this many picks per micrograph."),
    min_distance: Optional[float] = typer.Option(None, "--min-distance", min=0.05, max=4.0, help="Closest two picks may lie, as a fraction of the particle radius (default: the model's)."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Å/px, overriding the header."),
    fmt: Optional[str] = typer.Option(None, "--format", help=f"Output format if the suffix does not say: {PICK_FORMATS}."),
    box_size: Optional[float] = typer.Option(None, "--box-size", help="Box edge for .box and .cbox output (default: the particle diameter)."),
    micrograph_prefix: Optional[str] = _prefix_option(),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    device: str = _device_option(),
    resume: bool = _resume_option(),
    strict: bool = _strict_option(),
    workers: Optional[int] = _workers_option(),
    scheduler: Optional[str] = _scheduler_option(),
):
    """Pick particles with a few-shot model: score every window (the fast network, the correlation with the exemplars' average, or the encoder), match the exemplars, cut per micrograph.

    Example: [bold]fewpick fewshot pick mics/ --model fewshot.pt --out picks.star --score-maps maps/[/]
    """
    from fewpick.io import list_images, read_micrograph
    from fewpick.pickers import fewshot as fs

    m = fs.load_model(model, _device(device))
    m.settings.threads = 1 if (workers or scheduler) else threads  # one torch thread per Dask worker
    m.exact = exact
    if min_distance is not None:
        m.settings.suppress = min_distance / 2  # the model stores it as a fraction of the diameter
    files = list_images(images)
    err_console.print(fs.model_summary(m), highlight=False)
    thr = _threshold(threshold) if threshold is not None else None  # the model's calibrated cut, else auto

    def pick_one(im):
        keep = {} if score_maps else None
        picks = fs.pick_micrograph(m, im, thr, match=match.value if match else None, stride=stride,
                                   max_picks=max_picks, keep_map=keep)
        if score_maps:
            fs.write_score_map(keep, Path(score_maps), im.name)
        return picks

    _run_batch(files, functools.partial(read_micrograph, pixel_size=pixel_size), pick_one, out, fmt,
               box_size or m.settings.diameter, resume, strict, workers=workers, scheduler=scheduler,
               micrograph_prefix=micrograph_prefix, pixel_size=pixel_size)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="fewpick")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


# ---------------------------------------------------------------- tomogram exploration (MiLoPYP-class)

from typer.core import TyperGroup  # noqa: E402


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
    radius: Optional[float] = typer.Option(None, "--radius", "-r", help="Candidate NMS radius in voxels: about the smallest particle's radius, smaller for crowded tomograms (default 60 Å in voxels from the header, else 6)."),
    box: Optional[float] = typer.Option(None, "--box", help="Side of each candidate's image in voxels (default 6 × radius)."),
    background: float = typer.Option(0.35, "--background", min=0.01, max=1.0, help="Fraction of the candidates allowed on background: the cut is set where a copy of the tomogram with scrambled Fourier phases (its noise, no particles) gives this many peaks per candidate. Lower: fewer, surer candidates."),
    features: ExploreFeatures = typer.Option(ExploreFeatures.pca, "--features", help="What the map is made of: the images' principal components and rotational averages, the candidates' scores and the 3D rotational averages of the tomogram around each (no training; purer classes in our benchmark), or self-supervised SimSiam embeddings."),
    classes: Optional[int] = typer.Option(None, "--classes", min=1, help="h: classes on the map, more than the kinds of particle you expect (default one per 6 candidates, 8–60)."),
    clusters: Optional[int] = typer.Option(None, "--clusters", min=1, help="k: k-means over-clusters (default min(10 h, candidates/5))."),
    epochs: int = typer.Option(30, "--epochs", min=1, help="SimSiam training epochs."),
    neighbors: int = typer.Option(40, "--neighbors", min=2, help="UMAP neighbours."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    force: bool = typer.Option(False, "--force", help="Start the run folder again even if it holds another run."),
    device: str = _device_option(),
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
    if radius is None:
        from fewpick.io import read_volume

        voxel = read_volume(tomos[0]).pixel_size
        radius = max(2.0, round(60.0 / voxel)) if voxel else 6.0
    settings = ExploreSettings(radius=radius, mode=mode.value, box=box, background=background, features=features.value,
                               classes=classes, clusters=clusters,
                               epochs=epochs, neighbors=neighbors, seed=seed, threads=threads)

    def report(stage, info):
        if stage == "begin":
            err_console.print(f"{info['stage']}: {info['what']}…", highlight=False)
        elif stage == "tomogram":
            err_console.print(f"  tomogram {info['i']}/{info['n']} ({info['name']})  {info['seconds']:.0f} s, "
                              f"{_hms(info['eta_s'])} left", highlight=False)
        elif stage == "epoch":
            if info.get("first_step"):
                return
            err_console.print(f"  epoch {info['epoch']}/{epochs}  loss {info['loss']:.3f}  {info['seconds']:.0f} s, "
                              f"{_hms(info['eta_s'])} left", highlight=False)
        else:
            extra = f", {info['count']} candidates" if "count" in info else ""
            err_console.print(f"{stage}: {info['seconds']:.1f} s{extra}", highlight=False)

    run = explore(tomos, out, settings, tilt_series=ts, tilt_angles=tlt or None, force=force, progress=report,
                  device=_device(device))
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
):
    """Serve the run's interactive page: the map coloured by class, thumbnails on hover, select classes or
    lasso a region, export the chosen particles' 3D coordinates to RUN/selected.star and RUN/selected/*.coords.

    Example: [bold]fewpick explore serve run/ --port 8000[/]; from a laptop: ssh -L 8000:localhost:8000 server,
    then open http://localhost:8000/
    """
    from fewpick.explore.serve import make_server
    from fewpick.webserver import announce

    def exported(result):
        console.print(f"exported {result['count']} particles -> {result['star']}", highlight=False)

    server = make_server(run_folder, host, port, on_export=exported)
    announce(host, server.server_address[1], run_folder, lambda m: console.print(m, highlight=False))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# ---------------------------------------------------------------- tomogram localization (MiLoPYP-class)

tomo_app = typer.Typer(no_args_is_help=True, help="Few-shot particle localization in tomograms "
                                                  "(fewpick tomo train | fewpick tomo pick).")
app.add_typer(tomo_app, name="tomo")


class TomoLoss(str, Enum):
    pu_focal = "pu-focal"
    bce = "bce"


class TomoContrast(str, Enum):
    debiased = "debiased"
    biased = "biased"
    none = "none"


@tomo_app.command("train")
@handle_errors
def tomo_train(
    tomograms: List[Path] = typer.Argument(..., help="Tomograms (files or folders of .mrc/.rec); those without labels are skipped."),
    labels: Path = typer.Option(..., "--labels", "-l", help="Labeled centres x, y, z in the tomograms' voxels (any picks format; e.g. an exploration export RUN/selected.star)."),
    particle_diameter: str = typer.Option(..., "--particle-diameter", "-d", help="Particle diameter: voxels (32) or physical (320A, 32nm)."),
    out: Path = typer.Option(..., "--out", "-o", help="Model file to write."),
    filament: bool = typer.Option(False, "--filament", help="Filaments: labels are points clicked along them; points less than 3 diameters apart are joined into centre lines (true positives, no soft positives)."),
    expected_particles: Optional[float] = typer.Option(None, "--expected-particles", "-n", help="Expected particles per tomogram (sets π). Default: twice the labels, capped by an estimate from half the labels held out (where labels already cover most particles)."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Epochs (the learning rate drops ×0.1 every 5)."),
    steps_per_epoch: int = typer.Option(30, "--steps-per-epoch", min=1, help="Batches of subtomograms per epoch."),
    box: int = typer.Option(64, "--box", min=16, help="Training subtomogram side (binned voxels)."),
    depth: int = typer.Option(5, "--depth", min=1, help="Training subtomogram depth (binned sections)."),
    blocks: int = typer.Option(4, "--blocks", min=2, max=6, help="U-Net encoder blocks (4 for small proteins, 5 for large)."),
    loss: TomoLoss = typer.Option(TomoLoss.pu_focal, "--loss", help="Heat-map loss."),
    contrast: TomoContrast = typer.Option(TomoContrast.debiased, "--contrast", help="Voxel contrastive regularisation."),
    lambdas: Tuple[float, float, float] = typer.Option((1.6, 8.0, 1.6), "--lambdas", help="λ1 λ2 λ3: annotated, unlabeled, pseudo-label contrastive weights, against the heat-map loss per positive voxel (the paper's 0.1 0.5 0.1, ×16)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    device: str = _device_option(),
    resume: bool = _train_resume_option(),
):
    """Train a localization model from a few labeled centres (2D U-Net + 3D fusion, PU focal loss, debiased contrast).

    Example: [bold]fewpick tomo train tomos/ --labels run/selected.star --particle-diameter 32 --out ribosome.pt[/]
    """
    from fewpick.geometry import parse_length
    from fewpick.io import list_images, read_picks, read_volume
    from fewpick.pickers import tomo

    dev = _device(device)
    files = list_images(tomograms, suffixes=(".mrc", ".rec", ".map"))
    if not files:
        raise InputError(None, "no tomograms found in " + ", ".join(map(str, tomograms)))
    ims = [read_volume(f) for f in files]
    diameter = parse_length(particle_diameter, ims[0].pixel_size, "--particle-diameter")
    labs = read_picks(labels, require_rows=True)
    settings = tomo.TomoSettings(diameter=diameter, filament=filament, expected_particles=expected_particles,
                                 epochs=epochs, steps_per_epoch=steps_per_epoch, box=box, depth=depth, blocks=blocks,
                                 loss=loss.value, contrast=contrast.value, lambdas=tuple(lambdas), seed=seed,
                                 threads=threads)

    def report(rec):
        if rec.get("first_step"):
            what = "estimating the particle count" if rec.get("stage") == "prior" else "training"
            err_console.print(f"  {what}: first step {rec['seconds']:.1f} s, about {_hms(rec['eta_s'])} left"
                              f"{' in all' if rec.get('stage') == 'prior' else ''}", highlight=False)
            return
        if rec.get("stage") == "prior":
            err_console.print(f"  estimating the particle count (a quick model on half the labels): epoch "
                              f"{rec['epoch']}/{rec['prior_epochs']}  loss {rec['loss']:.4f}  {rec['seconds']:.0f} s, "
                              f"about {_hms(rec['eta_s'])} left in all", highlight=False)
            return
        if "estimated" in rec:
            err_console.print(f"  prior: {rec['estimated']:.0f} particles assumed in {rec['tomograms']} training "
                              f"tomograms, {rec['labels']} of them labeled (held-out estimate, at most twice the "
                              f"labels)  {rec['seconds']:.0f} s", highlight=False)
            return
        err_console.print(f"  epoch {rec['epoch']}/{epochs}  loss {rec['loss']:.4f} (heat map {rec['heat']:.4f}, "
                          f"contrast {rec['contrast']:.4f})  {rec['seconds']:.0f} s, {_hms(rec['eta_s'])} left",
                          highlight=False)

    model = tomo.train(ims, labs, settings, source=labels, progress=report, device=dev,
                       checkpoint=str(out) + ".ckpt", resume=resume, out=out)
    console.print(f"{tomo.model_summary(model)} -> {out}", highlight=False)


@tomo_app.command("pick")
@handle_errors
def tomo_pick(
    tomograms: List[Path] = typer.Argument(..., help="Tomograms (files or folders)."),
    model_path: Path = typer.Option(..., "--model", "-m", help="Model from 'fewpick tomo train'."),
    out: str = typer.Option(..., "--out", "-o", help="Picks file (.star: RELION, voxels and RELION 5's centred ångströms; .cbox .csv .tsv) or a folder/ for one file per tomogram (--format star, mod, cbox, coords, csv, tsv)."),
    threshold: str = typer.Option("auto", "--threshold", "-t", help="Heat-map probability a pick must reach, or 'auto' (each tomogram's split between its particles and the rest: Otsu's split of the peaks, raised above lookalike species when a mixture of two shows them; with a model trained with --expected-particles, its calibrated level)."),
    radius: Optional[float] = typer.Option(None, "--radius", help="NMS radius in voxels (default: the particle radius)."),
    fmt: Optional[str] = typer.Option(None, "--format", help=f"Output format when OUT is a folder or its suffix does not say: {formats_help(volumes=True)}."),
    box_size: Optional[float] = typer.Option(None, "--box-size", help="Box edge for .cbox output (default: the particle diameter)."),
    heat_maps: Optional[Path] = typer.Option(None, "--heat-maps", help="Also write each heat map (binned) as MRC into this folder."),
    link: Optional[float] = typer.Option(None, "--link", help="Filament models: join points closer than this, voxels (default: the filament diameter)."),
    max_residual: float = typer.Option(3.0, "--max-residual", help="Filament models: largest RMS distance of the points from their quadratic fit, voxels."),
    max_curvature: float = typer.Option(0.05, "--max-curvature", help="Filament models: largest curvature of the fit, 1/voxels."),
    step: float = typer.Option(2.0, "--step", help="Filament models: spacing of the output points along each filament, voxels."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    device: str = _device_option(),
    resume: bool = _resume_option(),
    strict: bool = _strict_option(),
    workers: Optional[int] = _workers_option(),
    scheduler: Optional[str] = _scheduler_option(),
):
    """Find every particle of the trained kind in whole tomograms (filament models: points along each filament,
    with rlnHelicalTubeID).

    Example: [bold]fewpick tomo pick tomos/ --model ribosome.pt --out picks.star[/]
    """
    import torch

    from fewpick.io import list_images, read_volume, write_mrc
    from fewpick.pickers import tomo

    torch.set_num_threads(threads)
    model = tomo.load_model(model_path, _device(device))
    thr = _threshold(threshold)
    files = list_images(tomograms, suffixes=(".mrc", ".rec", ".map"))
    if not files:
        raise InputError(None, "no tomograms found in " + ", ".join(map(str, tomograms)))
    def read(f):
        im = read_volume(f)
        tomo.check_isotropic(im.path)
        return im

    def pick_one(im):
        heat = tomo.heat_map(model, im.data)
        if heat_maps:
            write_mrc(Path(heat_maps) / f"{im.name}_heat.mrc", heat, (im.pixel_size or 0) * model.settings.bin or None)
        fil = {"max_residual": max_residual, "max_curvature": max_curvature, "step": step}
        if link:
            fil["link"] = link
        picks = tomo.pick_tomogram(model, im, thr, radius, heat=heat, filament=fil)
        err_console.print(f"{im.name}: {len(picks)} picks", highlight=False)
        return picks

    _run_batch(files, read, pick_one, out, fmt, box_size or model.settings.diameter, resume, strict,
               what="tomograms", workers=workers, scheduler=scheduler)


# ---------------------------------------------------------------- copick projects

copick_app = typer.Typer(no_args_is_help=True, help="copick projects (CZ cryo-ET Data Portal layout): tomograms out, "
                                                    "picks in and out.")
app.add_typer(copick_app, name="copick")


@copick_app.command("tomograms")
@handle_errors
def copick_tomograms(
    config: Path = typer.Argument(..., help="The project's copick configuration file (JSON)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write <run>.mrc into."),
    voxel_spacing: float = typer.Option(10.0, "--voxel-spacing", help="Which tomograms: their voxel spacing in Å."),
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
    voxel_spacing: float = typer.Option(10.0, "--voxel-spacing", help="Voxel spacing in Å of the tomograms the picks are for."),
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
    voxel_spacing: float = typer.Option(10.0, "--voxel-spacing", help="Voxel spacing in Å of the tomograms the picks were made on."),
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
