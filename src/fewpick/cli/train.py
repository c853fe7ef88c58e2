"""fewpick train: the PU picker from a few labelled particles."""

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
    handle_errors,
    hms,
    train_resume_option,
    training_progress,
)
from fewpick.errors import InputError
from fewpick.outputs import MODEL_SUFFIXES, check_output

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
    expected_particles: Optional[float] = typer.Option(None, "--expected-particles", "-n", min=0.1, max=1e6, help="Expected particles per micrograph: how much of each micrograph the picker should take for particles, and the default threshold (that many picks per micrograph, or more where fewpick's general particle model clearly counts more; where the scores of the micrographs picked fall into two clear groups near that count, the gap between them). Default: counted by fewpick's general particle model on the training micrographs."),
    pi: Optional[float] = typer.Option(None, "--pi", help="Class prior π directly (fraction of unlabeled pixels that are particles), in (0, 0.5)."),
    method: PUMethod = typer.Option(PUMethod.ge_binomial, "--method", help="Positive-unlabeled objective."),
    ge_weight: float = typer.Option(1.0, "--ge-weight", help="λ: weight of the GE-KL / GE-binomial term."),
    slack: float = typer.Option(0.0, "--slack", help="β of nnPU: how far below 0 the negative risk may go."),
    autoencoder: float = typer.Option(0.0, "--autoencoder", help="Weight a of the reconstruction error (0 = classifier only; the Topaz paper uses N/10)."),
    steps: int = typer.Option(1500, "--steps", min=1, max=10_000_000, help="Optimiser steps (learning rate decays to 0 over them)."),
    steps_per_epoch: int = typer.Option(100, "--steps-per-epoch", min=1, max=1_000_000, help="Steps between checkpoints / validation."),
    val_images: Optional[List[Path]] = typer.Option(None, "--val-images", help="Held-out micrographs for the AUPRC shown each epoch."),
    val_labels: Optional[Path] = typer.Option(None, "--val-labels", help="Their particle centres."),
    resume: bool = train_resume_option(),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", min=0.01, max=1000.0, help="Å/px, overriding the header."),
    bin_factor: Optional[int] = typer.Option(None, "--bin", min=1, max=256, help="Binning factor (default: the finest that brings the particle to 12-16 px)."),
    min_distance: Optional[float] = typer.Option(None, "--min-distance", min=0.05, max=2.0, help="Closest two picks may lie, as a fraction of the particle radius (default 1: never two picks on one particle, touching particles both kept)."),
    correlation: bool = typer.Option(True, "--correlation/--no-correlation", help="After training, test whether the labelled particles' rotational average agrees with the network (round particles); if so, centre and rescore picks on it."),
    edge_margin: Optional[float] = typer.Option(None, "--edge-margin", min=0.0, max=1.0, help="Drop picks closer than this many particle diameters to the micrograph edge. Default: from the labels — where many labels leave the edges empty, picks more than a radius closer to the edge than the closest label are dropped; with few labels, none."),
    general_score: bool = typer.Option(True, "--general/--no-general", help="Use fewpick's general particle model (trained on simulated micrographs of many particles) after training: its count of the particles guides the default threshold, and where the network did not start from it (--init), its score is added to the network's: better ranked and better centred picks from few labels. Left out where the expected count is under half of the particles it finds (one complex among others wanted). --no-general: the trained network alone."),
    init: str = typer.Option("general", "--init", help="Where the network starts: 'general' (fewpick's general particle model, trained on simulated micrographs of many particles; random weights where your labels mark every particle of their micrographs or your expected count is under half of the particles it finds), 'none' (random weights) or a model file of 'fewpick train' with the same network."),
    seed: int = typer.Option(0, "--seed", min=0, max=1_000_000_000, help="Random seed."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for torch."),
    device: str = device_option(),
):
    """Train a positive-unlabeled CNN picker from a few labeled particles.

    Example: [bold]fewpick train mics/ --labels labels.star --particle-diameter 68 --expected-particles 150 --out picker.pt[/]
    """
    from fewpick.geometry import parse_length
    from fewpick.io import list_images, read_micrograph, read_picks
    from fewpick.pickers import pu
    from fewpick.workflows import counted_words

    files = list_images(images)
    start = None if init == "none" else init if init == "general" else Path(init)
    check_output(out, inputs=[*files, labels, *(val_images or []), val_labels,
                              start if isinstance(start, Path) else None], suffixes=MODEL_SUFFIXES)
    dev = chosen_device(device)
    ims = [read_micrograph(f, pixel_size=pixel_size) for f in files]
    diameter = parse_length(particle_diameter, ims[0].pixel_size, "--particle-diameter", ims[0].shape)
    labs = read_picks(labels, require_rows=True)
    settings = pu.PUSettings(diameter=diameter, method=method.value, pi=pi, expected_particles=expected_particles,
                             bin_factor=bin_factor, ge_weight=ge_weight, slack=slack, autoencoder=autoencoder,
                             steps=steps, steps_per_epoch=steps_per_epoch, min_distance=min_distance,
                             spacing=1.0 if min_distance is None else min_distance,
                             correlation=correlation, general_score=general_score, edge_margin=edge_margin,
                             seed=seed, threads=threads)
    v_ims = v_labs = None
    if val_images or val_labels:
        if not (val_images and val_labels):
            raise InputError(None, "--val-images and --val-labels go together")
        v_ims = [read_micrograph(f, pixel_size=pixel_size) for f in list_images(val_images)]
        v_labs = read_picks(val_labels, require_rows=True)
    with training_progress("training", steps) as progress:
        def report(entry):
            if entry.get("stage") == "count":
                console.print(f"no --expected-particles: {counted_words(entry)}", highlight=False)
                return
            info = f"loss {entry['loss']:.4f}" + (f"  val AUPRC {entry['val_auprc']:.3f}" if "val_auprc" in entry else "")
            progress.update(progress.task_ids[0], completed=entry["step"], info=f"{info}  {hms(entry['eta_s'])} left")

        model = pu.train(ims, labs, settings, out, labels_source=labels, val_images=v_ims, val_labels=v_labs,
                         resume=resume, progress=report, device=dev, init=start)
    console.print(f"{pu.model_summary(model)} -> {out}", highlight=False)
