"""fewpick evaluate: picks against the truth, precision, recall and the PR curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from fewpick.cli.common import (
    app,
    console,
    handle_errors,
)
from fewpick.errors import InputError

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
    d = report.get("duplicates")
    if d:
        where = "at the threshold" if "at_threshold" in report else "of all picks"
        console.print(f"duplicates {where}: {d['duplicates']} picks on {d['particles']} particles already picked "
                      f"({100 * d['rate']:.1f} % of {d['n_pred']} picks)", highlight=False)


@app.command()
@handle_errors
def evaluate(
    pred: Path = typer.Argument(..., help="Picks to score (any picks format, or a folder of per-micrograph files)."),
    truth: Path = typer.Argument(..., help="Ground-truth coordinates (any picks format, or a folder)."),
    radius: Optional[float] = typer.Option(None, "--radius", "-r", min=0.1, max=1e5, help="Matching radius in pixels (usually the particle radius)."),
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
    from fewpick.outputs import atomic_path, check_output

    if radius is None and box is None:
        raise InputError(None, "give --radius (centre distance) and/or --box (IoU protocol)")
    if json_out:
        check_output(json_out, inputs=[pred, truth], suffixes=(".json",))
    if plot:
        check_output(plot, inputs=[pred, truth], suffixes=(".png",))
    p = read_picks(pred)
    t = read_picks(truth, require_rows=True)
    volumes = "z" in t.columns and t["z"].notna().any()
    unit, images = ("voxels", "tomograms") if volumes else ("px", "micrographs")
    report = run_evaluate(p, t, radius=radius, box=None if radius is not None else box, threshold=threshold)
    if radius is not None and box is not None:
        report["box_protocol"] = run_evaluate(p, t, box=box, threshold=threshold)
    crit = f"radius {radius:g} {unit}" if radius is not None else f"box {box:g} {unit}, IoU >= 0.5"
    _print_report(report, f"{pred.name} vs {truth.name} ({crit})")
    console.print(f"AUPRC {report['auprc']:.4f}  best F1 {report['best']['f1'] if report['best'] else 0:.4f}  "
                  f"true {report['n_true']}  picks {report['n_pred']}  {images} {report['n_micrographs']}",
                  highlight=False)
    if report["n_micrographs_without_picks"]:
        console.print(f"note: {report['n_micrographs_without_picks']} of the truth's {images} have no picks", highlight=False)
    if report["n_pred_ignored"]:
        console.print(f"note: {report['n_pred_ignored']} picks are on {images} the truth does not cover; ignored", highlight=False)
    if "box_protocol" in report:
        b = report["box_protocol"]
        console.print(f"box protocol (edge {box:g} {unit}, IoU >= 0.5): AUPRC {b['auprc']:.4f}  best F1 "
                      f"{b['best']['f1'] if b['best'] else 0:.4f}  all-picks F1 {b['all_picks']['f1']:.4f}", highlight=False)
    if json_out:
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(report, indent=2))
    if plot:
        plot_pr(report, plot, title=f"{pred.name} ({crit})")
