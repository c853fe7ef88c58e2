"""fewpick tomo: particle and filament localization in tomograms."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional, Tuple

import typer

from fewpick.cli.common import (
    app,
    batch_settings,
    chosen_device,
    console,
    device_option,
    err_console,
    first_readable,
    handle_errors,
    hms,
    parse_threshold,
    resume_option,
    run_batch,
    scheduler_option,
    strict_option,
    train_resume_option,
    workers_option,
)
from fewpick.errors import InputError
from fewpick.io.picks.catalog import formats_help
from fewpick.outputs import MODEL_SUFFIXES, check_output

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
    expected_particles: Optional[float] = typer.Option(None, "--expected-particles", "-n", min=0.1, max=1e6, help="Expected particles per tomogram (sets π). Default: twice the labels, capped by an estimate from half the labels held out (where labels already cover most particles)."),
    epochs: int = typer.Option(6, "--epochs", min=1, max=100_000, help="Epochs (the learning rate drops ×0.1 every 5)."),
    self_training: Optional[int] = typer.Option(None, "--self-training", min=0, max=100_000, help="The last epochs also learn from the model's own confident picks on the training tomograms, picked again at the start of each of them (0: labels only; particles, not filaments). Default: 2 with fewer than 12 labels, else 0."),
    steps_per_epoch: int = typer.Option(30, "--steps-per-epoch", min=1, max=1_000_000, help="Batches of subtomograms per epoch."),
    box: int = typer.Option(64, "--box", min=16, max=1024, help="Training subtomogram side (binned voxels)."),
    depth: int = typer.Option(5, "--depth", min=1, max=256, help="Training subtomogram depth (binned sections)."),
    blocks: int = typer.Option(4, "--blocks", min=2, max=6, help="U-Net encoder blocks (4 for small proteins, 5 for large)."),
    loss: TomoLoss = typer.Option(TomoLoss.pu_focal, "--loss", help="Heat-map loss."),
    contrast: TomoContrast = typer.Option(TomoContrast.debiased, "--contrast", help="Voxel contrastive regularisation."),
    lambdas: Tuple[float, float, float] = typer.Option((1.6, 8.0, 1.6), "--lambdas", help="λ1 λ2 λ3: annotated, unlabeled, pseudo-label contrastive weights, against the heat-map loss per positive voxel (the paper's 0.1 0.5 0.1, ×16)."),
    seed: int = typer.Option(0, "--seed", min=0, max=1_000_000_000, help="Random seed."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    device: str = device_option(),
    resume: bool = train_resume_option(),
):
    """Train a localization model from a few labeled centres (2D U-Net + 3D fusion, PU focal loss, debiased contrast).

    Example: [bold]fewpick tomo train tomos/ --labels run/selected.star --particle-diameter 32 --out ribosome.pt[/]
    """
    from fewpick.geometry import parse_length
    from fewpick.io import list_images, read_picks, read_volume
    from fewpick.pickers import tomo

    files = list_images(tomograms, suffixes=(".mrc", ".rec", ".map"))
    if not files:
        raise InputError(None, "no tomograms found in " + ", ".join(map(str, tomograms)))
    check_output(out, inputs=[*files, labels], suffixes=MODEL_SUFFIXES)
    dev = chosen_device(device)
    ims = [read_volume(f) for f in files]
    diameter = parse_length(particle_diameter, ims[0].pixel_size, "--particle-diameter", ims[0].shape)
    labs = read_picks(labels, require_rows=True)
    settings = tomo.TomoSettings(diameter=diameter, filament=filament, expected_particles=expected_particles,
                                 epochs=epochs, steps_per_epoch=steps_per_epoch, box=box, depth=depth, blocks=blocks,
                                 loss=loss.value, contrast=contrast.value, lambdas=(lambdas[0], lambdas[1], lambdas[2]), seed=seed,
                                 threads=threads, self_training=self_training)

    def report(rec):
        if rec.get("first_step"):
            what = "estimating the particle count" if rec.get("stage") == "prior" else "training"
            err_console.print(f"  {what}: first step {rec['seconds']:.1f} s, about {hms(rec['eta_s'])} left"
                              f"{' in all' if rec.get('stage') == 'prior' else ''}", highlight=False)
            return
        if rec.get("stage") == "prior":
            err_console.print(f"  estimating the particle count (a quick model on half the labels): epoch "
                              f"{rec['epoch']}/{rec['prior_epochs']}  loss {rec['loss']:.4f}  {rec['seconds']:.0f} s, "
                              f"about {hms(rec['eta_s'])} left in all", highlight=False)
            return
        if rec.get("stage") == "prior-scoring":
            err_console.print(f"  estimating the particle count: scored {rec['tomogram']}/{rec['tomograms']} "
                              f"training tomograms  {rec['seconds']:.0f} s, about {hms(rec['eta_s'])} left in all",
                              highlight=False)
            return
        if rec.get("stage") == "labels":
            err_console.print(f"  {rec['labels']} labels mark {rec['particles']} particles: labels closer than the "
                              "particle's radius to each other are taken as one, at their mean", highlight=False)
            return
        if rec.get("stage") == "self-training":
            which = f" (epoch {rec['round']} of {rec['rounds']})" if rec.get("rounds", 1) > 1 else ""
            err_console.print(f"  self-training{which}: {rec['picks']} confident picks join the {rec['labels']} labels "
                              f"({rec['particles']:.0f} particles assumed)", highlight=False)
            return
        if "estimated" in rec:
            err_console.print(f"  prior: {rec['estimated']:.0f} particles assumed in {rec['tomograms']} training "
                              f"tomograms, {rec['labels']} of them labeled (held-out estimate, at most twice the "
                              f"labels)  {rec['seconds']:.0f} s", highlight=False)
            return
        err_console.print(f"  epoch {rec['epoch']}/{rec['epochs']}  loss {rec['loss']:.4f} (heat map {rec['heat']:.4f}, "
                          f"contrast {rec['contrast']:.4f})  {rec['seconds']:.0f} s, {hms(rec['eta_s'])} left",
                          highlight=False)

    model = tomo.train(ims, labs, settings, source=labels, progress=report, device=dev,
                       checkpoint=str(out) + ".ckpt", resume=resume, out=out)
    console.print(f"{tomo.model_summary(model)} -> {out}", highlight=False)


@tomo_app.command("pick")
@handle_errors
def tomo_pick(
    tomograms: List[Path] = typer.Argument(..., help="Tomograms (files or folders)."),
    model_path: Path = typer.Option(..., "--model", "-m", help="Model from 'fewpick tomo train'."),
    out: str = typer.Option(..., "--out", "-o", help=f"Picks file (.star: RELION, voxels and RELION 5's centred ångströms; .cbox .csv .tsv) or a folder/ for one file per tomogram (--format: {formats_help(volumes=True)})."),
    threshold: Optional[str] = typer.Option(None, "--threshold", "-t", help="Heat-map probability a pick must reach, 'auto' (each tomogram's split between its particles and the rest: Otsu's split of the peaks, raised above lookalike species when a mixture of two shows them) or 'calibrated' (the level set on the training tomograms with --expected-particles). Default: calibrated for a model trained with --expected-particles, else auto."),
    radius: Optional[float] = typer.Option(None, "--radius", min=0.5, max=1e4, help="NMS radius in voxels (default: the particle radius)."),
    fmt: Optional[str] = typer.Option(None, "--format", help=f"Output format when OUT is a folder or its suffix does not say: {formats_help(volumes=True)}."),
    box_size: Optional[float] = typer.Option(None, "--box-size", min=1.0, max=1e5, help="Box edge for .cbox output (default: the particle diameter)."),
    heat_maps: Optional[Path] = typer.Option(None, "--heat-maps", help="Also write each heat map (binned) as MRC into this folder."),
    link: Optional[float] = typer.Option(None, "--link", min=0.1, max=1e4, help="Filament models: join points closer than this, voxels (default: the filament diameter)."),
    max_residual: float = typer.Option(3.0, "--max-residual", min=0.0, help="Filament models: largest RMS distance of the points from their quadratic fit, voxels."),
    max_curvature: float = typer.Option(0.05, "--max-curvature", min=0.0, help="Filament models: largest curvature of the fit, 1/voxels."),
    step: float = typer.Option(2.0, "--step", min=0.1, max=1e4, help="Filament models: spacing of the output points along each filament, voxels."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    device: str = device_option(),
    resume: bool = resume_option("tomograms"),
    strict: bool = strict_option(),
    workers: Optional[int] = workers_option(),
    scheduler: Optional[str] = scheduler_option(),
):
    """Find every particle of the trained kind in whole tomograms (filament models: points along each filament,
    with rlnHelicalTubeID).

    Example: [bold]fewpick tomo pick tomos/ --model ribosome.pt --out picks.star[/]
    """
    options = dict(locals())  # for --resume: what decides the picks
    import torch

    from fewpick.batch import check_batch_output
    from fewpick.io import list_images, read_volume, write_mrc
    from fewpick.pickers import tomo

    files = list_images(tomograms, suffixes=(".mrc", ".rec", ".map"))
    if not files:
        raise InputError(None, "no tomograms found in " + ", ".join(map(str, tomograms)))
    check_batch_output(out, files, fmt, kind="tomograms", inputs=[model_path])
    if heat_maps:
        check_output(heat_maps, inputs=files, folder=True)

    def read(f):
        im = read_volume(f)
        tomo.check_isotropic(im.path)
        return im

    if len(files) == 1:  # a lone bad tomogram: one line, before the model loads
        first_readable(files, read, strict)
    torch.set_num_threads(threads)
    model = tomo.load_model(model_path, chosen_device(device))
    thr = model.resolve_threshold(parse_threshold(threshold))

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

    run_batch(files, read, pick_one, out, fmt, box_size or model.settings.diameter, resume, strict,
               what="tomograms", workers=workers, scheduler=scheduler, settings=batch_settings(tomo_pick, options))
