"""fewpick pick: with a trained model of any picker, or a classic method (no training)."""

from __future__ import annotations

import functools
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from fewpick.cli.common import (
    PICK_FORMATS,
    app,
    batch_settings,
    chosen_device,
    device_option,
    err_console,
    first_readable,
    handle_errors,
    parse_threshold,
    prefix_option,
    resume_option,
    run_batch,
    scheduler_option,
    strict_option,
    workers_option,
)
from fewpick.errors import InputError
from fewpick.io.picks.catalog import suffixes_help


class PickMethod(str, Enum):
    general = "general"
    dog = "dog"
    template = "template"



# ---------------------------------------------------------------- pick


@app.command()
@handle_errors
def pick(
    images: List[Path] = typer.Argument(..., help="Micrographs (MRC, TIFF, PNG, JPEG) or folders of them."),
    out: str = typer.Option(..., "--out", "-o", help=f"Picks file ({suffixes_help()}) or a folder/ for one file per micrograph."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A model from 'fewpick train': pick with it (its diameter and binning)."),
    method: PickMethod = typer.Option(PickMethod.general, "--method", help="Without --model. general: fewpick's general particle model (trained on simulated micrographs of many particles; no labels needed); dog: difference of Gaussians; template: FFT cross-correlation."),
    particle_diameter: Optional[str] = typer.Option(None, "--particle-diameter", "-d", help="Particle diameter: pixels (68, 68px) or physical (120A, 12nm). Needed without --model."),
    expected_particles: Optional[float] = typer.Option(None, "--expected-particles", "-n", min=0.1, max=1e6, help="With --method general: about how many particles a micrograph holds; the default threshold then keeps that many per micrograph (one score for all of them) instead of splitting each micrograph's scores."),
    threshold: Optional[str] = typer.Option(None, "--threshold", "-t", help="A score, 'auto' (each micrograph split by the picker's own rule), 'count' (one score for all, set so that the micrographs get the model's expected particle count each, or at the gap where their scores fall into two clear groups near that count) or 'calibrated' (the model's cut, set on its training micrographs). A very low value (-1e9) keeps every peak. Default: auto, or count with --expected-particles; with --model, count for a model trained with an expected count, else its calibrated cut (or the gap where the scores fall into two clear groups near the count it made)."),
    template: Optional[Path] = typer.Option(None, "--template", help="Template for --method template: a 2D image or a 3D map (MRC)."),
    angular_step: float = typer.Option(30.0, "--angular-step", min=1.0, max=180.0, help="Template orientations, degrees apart."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", min=0.01, max=1000.0, help="Å/px of the micrographs, overriding the header."),
    bright: bool = typer.Option(False, "--bright-particles", help="Particles are brighter than the background (e.g. negative stain)."),
    max_picks: Optional[int] = typer.Option(None, "--max-picks", min=1, max=10_000_000, help="At most this many picks per micrograph."),
    border: float = typer.Option(0.0, "--border", min=0.0, help="Ignore peaks within this many pixels of the edge (--method dog or template)."),
    bin_factor: Optional[int] = typer.Option(None, "--bin", min=1, max=256, help="Binning factor (default: particle about 16 px after binning)."),
    fmt: Optional[str] = typer.Option(None, "--format", help=f"Output format if the suffix does not say: {PICK_FORMATS}."),
    box_size: Optional[float] = typer.Option(None, "--box-size", min=1.0, max=1e5, help="Box edge for .box and .cbox output (default: the particle diameter)."),
    micrograph_prefix: Optional[str] = prefix_option(),
    device: str = device_option(),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default 2; 1 per worker with --workers or --scheduler)."),
    resume: bool = resume_option(),
    strict: bool = strict_option(),
    workers: Optional[int] = workers_option(),
    scheduler: Optional[str] = scheduler_option(),
):
    """Pick particles with a trained model, or with a classic method (no training).

    Example: [bold]fewpick pick mics/ --model picker.pt --out picks.star[/]
    or, with no labels: [bold]fewpick pick mics/ --particle-diameter 48 --out picks.star[/]
    """
    options = dict(locals())  # for --resume: what decides the picks
    import numpy as np

    from fewpick.batch import check_batch_output, threshold_for_batch
    from fewpick.geometry import parse_length
    from fewpick.io import list_images, read_image, read_micrograph
    from fewpick.pickers.classic import ClassicPicker, ClassicSettings, prepare_templates

    # a run-time choice, whatever the model was trained with: one torch thread per Dask worker by default
    threads = threads or (1 if (workers or scheduler) else 2)
    kind = None
    if model is not None and expected_particles is not None:
        raise InputError(None, "--expected-particles goes with --method general (a model knows its own count)")
    if border and (model is not None or method == PickMethod.general):
        raise InputError(None, "--border goes with --method dog or --method template")
    if model is not None:
        from fewpick.pickers import registry

        # a file of no known kind goes to the PU picker's loader, whose errors say what is wrong with it
        kind = registry.kind_of(model) or registry.get("pu")
        if kind.volumes:
            raise InputError(model, f"a {kind.description} model picks tomograms: use 'fewpick tomo pick'")
        if kind.name == "fewshot":  # a few-shot model given to the plain verb: same as 'fewshot pick'
            from fewpick.cli.fewshot import fewshot_pick

            return fewshot_pick(images=images, model=model, out=out, threshold=threshold, stride=None,
                                match=None, exact=False, score_maps=None, max_picks=max_picks, min_distance=None, pixel_size=pixel_size, fmt=fmt,
                                box_size=box_size, micrograph_prefix=micrograph_prefix, threads=threads, device=device,
                                resume=resume, strict=strict, workers=workers, scheduler=scheduler)
    files = list_images(images)
    check_batch_output(out, files, fmt, inputs=[model, template])
    first = first_readable(files, functools.partial(read_micrograph, pixel_size=pixel_size), strict)
    trained = None
    if model is None and expected_particles is not None and method != PickMethod.general:
        raise InputError(None, "--expected-particles goes with --method general")
    if kind is not None:  # a model was given
        trained = kind.load_module().load_model(model, chosen_device(device))
        trained.settings.threads = threads
        diameter = trained.settings.diameter
        err_console.print(registry.summary(trained, kind), highlight=False)
    else:
        if particle_diameter is None:
            raise InputError(None, "give --particle-diameter (or --model)")
        diameter = parse_length(particle_diameter, first.pixel_size, "--particle-diameter", first.shape)
        if method == PickMethod.general:
            from fewpick.pickers.pu.general import general_model, general_summary

            trained = general_model(diameter, expected_particles, chosen_device(device), threads, bin_factor)
            err_console.print(general_summary(trained), highlight=False)
    thr = parse_threshold(threshold)  # None: the picker's default
    settings = ClassicSettings(diameter=diameter, method="dog" if method == PickMethod.general else method.value,
                               threshold="auto" if thr is None else thr,
                               dark=not bright,
                               bin_factor=bin_factor, max_picks=max_picks, border=border)
    templates = None
    if trained is None and method == PickMethod.template:
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
    thr, how = threshold_for_batch(picker, thr, files, read)  # refused here if the picker cannot apply it
    if how:
        err_console.print(how, highlight=False)

    def pick_one(image):
        return picker.pick(image, thr, max_picks)

    run_batch(files, read, pick_one, out, fmt, box_size or diameter, resume, strict, workers=workers,
               scheduler=scheduler, micrograph_prefix=micrograph_prefix, pixel_size=pixel_size,
               settings=batch_settings(pick, options))
