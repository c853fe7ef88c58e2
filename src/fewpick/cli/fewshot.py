"""fewpick fewshot: pre-train, train and pick with the few-shot picker."""

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
    console,
    device_option,
    err_console,
    first_readable,
    handle_errors,
    hms,
    parse_threshold,
    prefix_option,
    resume_option,
    run_batch,
    scheduler_option,
    strict_option,
    train_resume_option,
    training_progress,
    workers_option,
)
from fewpick.errors import InputError
from fewpick.io.picks.catalog import suffixes_help
from fewpick.outputs import MODEL_SUFFIXES, check_output

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
    steps: int = typer.Option(6000, "--steps", min=1, max=10_000_000, help="Optimiser steps of masked reconstruction."),
    window_ratio: float = typer.Option(1.2, "--window-ratio", min=0.5, help="Window side as a multiple of the particle diameter."),
    max_images: int = typer.Option(40, "--max-images", min=1, max=100_000, help="Use at most this many micrographs (an even spread)."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", min=0.01, max=1000.0, help="Å/px, overriding the header."),
    seed: int = typer.Option(0, "--seed", min=0, max=1_000_000_000, help="Random seed."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    device: str = device_option(),
    resume: bool = train_resume_option(),
):
    """Pre-train the masked autoencoder on unlabeled micrographs (reconstruction only).

    Example: [bold]fewpick fewshot pretrain mics/ --particle-diameter 120A --out encoder.pt[/]
    """
    from fewpick.geometry import parse_length
    from fewpick.io import list_images, read_micrograph
    from fewpick.io.images import evenly_spread
    from fewpick.pickers import fewshot as fs

    files = list_images(images)
    check_output(out, inputs=files, suffixes=MODEL_SUFFIXES)
    dev = chosen_device(device)
    files = evenly_spread(files, max_images)
    ims = [read_micrograph(f, pixel_size=pixel_size) for f in files]
    diameter = parse_length(particle_diameter, ims[0].pixel_size, "--particle-diameter", ims[0].shape)
    settings = _fewshot_settings(diameter, window_ratio=window_ratio, pretrain_steps=steps, seed=seed,
                                 train_threads=threads)
    with training_progress("pre-training", steps) as progress:
        net, info = fs.pretrain(ims, settings, progress=lambda e: progress.update(
            progress.task_ids[0], completed=e["step"], info=f"loss {e['loss']:.4f}  {hms(e['eta_s'])} left"),
            device=dev, checkpoint=str(out) + ".ckpt", resume=resume)
    fs.save_pretrained(net, settings, info, out)
    from fewpick.training import drop_checkpoints

    drop_checkpoints(str(out) + ".ckpt")
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
    exemplar_count: Optional[int] = typer.Option(None, "--exemplar-count", "-m", min=2, max=100_000, help="Use this many exemplars, drawn at random from the file."),
    scs: SCSMode = typer.Option(SCSMode.adjusted, "--scs", help="Self-cross similarity loss: PU-adjusted, unadjusted, or none (ablation)."),
    pi: Optional[float] = typer.Option(None, "--pi", help="π̂: fraction of random windows that hold a particle (default 0.05)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="α: weight of cross- against self-similarity (default 0.5)."),
    tau: Optional[float] = typer.Option(None, "--tau", help="τ: floor of the SCS loss (default 0)."),
    beta: Optional[float] = typer.Option(None, "--beta", help="β: weight of the SCS loss against reconstruction (default 10)."),
    unlabeled: Optional[int] = typer.Option(None, "--unlabeled", min=1, max=4096, help="n: random unlabeled windows per step (default 64)."),
    blobs: Optional[float] = typer.Option(None, "--blobs", min=0.0, max=1.0, help="Fraction of the unlabeled windows centred on particle-sized blobs (hard examples; default 0.125)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, max=10_000_000, help="Fine-tuning steps (default 1000)."),
    pretrain_steps: Optional[int] = typer.Option(None, "--pretrain-steps", min=1, max=10_000_000, help="Pre-training steps when pre-training here (default 6000)."),
    distill_steps: Optional[int] = typer.Option(None, "--distill-steps", min=0, max=10_000_000, help="Steps fitting the fast scoring network to the encoder (default 600; 0: none, the encoder scores every window when picking)."),
    window_ratio: Optional[float] = typer.Option(None, "--window-ratio", min=0.5, help="Window side as a multiple of the particle diameter (default 1.2)."),
    expected_particles: Optional[float] = typer.Option(None, "--expected-particles", "-n", min=0.0, help="Particles per micrograph, if known: sets the default score cut (that many picks per micrograph, or more where fewpick's general particle model clearly counts more) and, on crowded micrographs, lets picks lie closer together. Default: counted by fewpick's general particle model on the reference and the pre-training micrographs."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", min=0.01, max=1000.0, help="Å/px, overriding the header."),
    seed: int = typer.Option(0, "--seed", min=0, max=1_000_000_000, help="Random seed (also for --exemplar-count)."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch while training."),
    device: str = device_option(),
    resume: bool = train_resume_option("OUT.pretrain.ckpt, OUT.ckpt"),
):
    """Train the few-shot picker on one reference micrograph and its exemplars.

    Example: [bold]fewpick fewshot train mics/mic_001.mrc --exemplars clicks.star --particle-diameter 150 --pretrain-images mics/ --out fewshot.pt[/]
    """
    from fewpick.geometry import parse_length
    from fewpick.io import list_images, read_micrograph, read_picks, select_picks
    from fewpick.pickers import fewshot as fs
    from fewpick.workflows import StagedProgress, counted_words, fewshot_stages

    if pretrained is not None and (pretrain_images or no_pretrain):
        raise InputError(None, "--pretrained excludes --pretrain-images and --no-pretrain")
    pre_files = list_images(pretrain_images) if pretrain_images else []
    check_output(out, inputs=[reference, exemplars, pretrained, *pre_files], suffixes=MODEL_SUFFIXES)
    dev = chosen_device(device)
    ref = read_micrograph(reference, pixel_size=pixel_size)
    diameter = parse_length(particle_diameter, ref.pixel_size, "--particle-diameter", ref.shape)
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
                   for f in pre_files]
    staged = StagedProgress(fewshot_stages(settings, pretrain=not (pretrained or no_pretrain)))
    with training_progress("training", staged.total) as progress:
        def report(e):
            if e.get("stage") == "count":
                console.print(f"no --expected-particles: {counted_words(e)}", highlight=False)
                return
            done = staged.done(e)
            info = f"{e['stage']} loss {e['loss']:.4f}" + (f"  SCS {e['scs']:.3f}" if "scs" in e else "")
            progress.update(progress.task_ids[0], completed=done, info=f"{info}  {hms(e['eta_s'])} left in {e['stage']}")

        model = fs.train(ref, ex, settings, out, pretrain_images=pre_ims, pretrained_path=pretrained,
                         no_pretrain=no_pretrain, exemplars_source=exemplars, progress=report, device=dev,
                         resume=resume)
    console.print(f"{fs.model_summary(model)} -> {out}", highlight=False)


@fewshot_app.command("pick")
@handle_errors
def fewshot_pick(
    images: List[Path] = typer.Argument(..., help="Micrographs (files or folders) to pick, the reference included or not."),
    model: Path = typer.Option(..., "--model", "-m", help="Model from 'fewpick fewshot train'."),
    out: str = typer.Option(..., "--out", "-o", help=f"Picks file ({suffixes_help()}) or a folder/ for one file per micrograph."),
    threshold: Optional[str] = typer.Option(None, "--threshold", "-t", help="A score (-1…1; -1e9 keeps every peak), 'auto' (each micrograph cut where its scores are sparsest), 'count' (one score for all, set so that the micrographs get the expected particle count each, or at the gap where their scores fall into two clear groups near that count) or 'calibrated' (the cut set on the training micrographs). Default: count with the particles per micrograph given with --expected-particles when the model was trained; without them, calibrated (set on the training micrographs for the count fewpick's general particle model made), or the gap where the scores fall into two clear groups near that count; auto for a model trained before that count."),
    stride: Optional[int] = typer.Option(None, "--stride", min=1, help="Sliding stride in resampled px (default window/6, i.e. 4 of 24)."),
    match: Optional[MatchMode] = typer.Option(None, "--match", help="Score: max (default) or mean cosine similarity to the exemplars."),
    exact: bool = typer.Option(False, "--exact", help="Score every window with the encoder itself, not the faster scoring the model chose at training (its fast network, the correlation with the exemplars' average alone, or the encoder on the windows its fast network ranks higher); slower; also implied by --stride or --match other than the model's."),
    score_maps: Optional[Path] = typer.Option(None, "--score-maps", help="Folder to write each micrograph's similarity map (PNG and MRC)."),
    max_picks: Optional[int] = typer.Option(None, "--max-picks", min=1, max=10_000_000, help="At most this many picks per micrograph."),
    min_distance: Optional[float] = typer.Option(None, "--min-distance", min=0.05, max=4.0, help="Closest two picks may lie, as a fraction of the particle radius (default: the model's)."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", min=0.01, max=1000.0, help="Å/px, overriding the header."),
    fmt: Optional[str] = typer.Option(None, "--format", help=f"Output format if the suffix does not say: {PICK_FORMATS}."),
    box_size: Optional[float] = typer.Option(None, "--box-size", min=1.0, max=1e5, help="Box edge for .box and .cbox output (default: the particle diameter)."),
    micrograph_prefix: Optional[str] = prefix_option(),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    device: str = device_option(),
    resume: bool = resume_option(),
    strict: bool = strict_option(),
    workers: Optional[int] = workers_option(),
    scheduler: Optional[str] = scheduler_option(),
):
    """Pick particles with a few-shot model: score every window (the fast network, the correlation with the exemplars' average, or the encoder), match the exemplars, cut per micrograph.

    Example: [bold]fewpick fewshot pick mics/ --model fewshot.pt --out picks.star --score-maps maps/[/]
    """
    options = dict(locals())  # for --resume: what decides the picks
    from fewpick.batch import check_batch_output, threshold_for_batch
    from fewpick.io import list_images, read_micrograph
    from fewpick.pickers import fewshot as fs

    files = list_images(images)
    check_batch_output(out, files, fmt, inputs=[model])
    if score_maps:
        check_output(score_maps, inputs=files, folder=True)
    read = functools.partial(read_micrograph, pixel_size=pixel_size)
    first_readable(files, read, strict)  # a lone bad micrograph: one line, before the model loads
    m = fs.load_model(model, chosen_device(device))
    m.settings.threads = 1 if (workers or scheduler) else threads  # one torch thread per Dask worker
    m.exact = exact
    if min_distance is not None:
        m.settings.suppress = min_distance / 2  # the model stores it as a fraction of the diameter
    err_console.print(fs.model_summary(m), highlight=False)
    # None: the model's default (the expected count on these micrographs, else auto)
    thr, how = threshold_for_batch(m, parse_threshold(threshold), files, read,
                                   match=match.value if match else None, stride=stride)
    if how:
        err_console.print(how, highlight=False)

    def pick_one(im):
        keep = {} if score_maps else None
        picks = fs.pick_micrograph(m, im, thr, match=match.value if match else None, stride=stride,
                                   max_picks=max_picks, keep_map=keep)
        if score_maps:
            fs.write_score_map(keep, Path(score_maps), im.name, image=im.data, picks=picks,
                               diameter=m.settings.diameter)
        return picks

    run_batch(files, read, pick_one, out, fmt,
               box_size or m.settings.diameter, resume, strict, workers=workers, scheduler=scheduler,
               micrograph_prefix=micrograph_prefix, pixel_size=pixel_size,
               settings=batch_settings(fewshot_pick, options))
