"""What every verb shares: the application, the consoles, one-line errors, the options that recur and the
picking loop with its progress."""

from __future__ import annotations

import functools
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from fewpick import __version__
from fewpick.errors import FewpickError, FewpickWarning, InputError
from fewpick.io.picks.catalog import formats_help

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


def device_option():
    return typer.Option("auto", "--device", help="Where the network runs: auto (a CUDA GPU when PyTorch sees one, else the CPU), cpu, cuda or cuda:N.")


def chosen_device(spec: str):
    """Resolve --device once per command (one clear error for a GPU that is not there) and say which is used."""
    from fewpick.device import device_name, resolve_device

    dev = resolve_device(spec)
    if dev.type != "cpu" or spec not in ("auto", "cpu"):
        err_console.print(f"device: {device_name(dev)}", highlight=False)
    return dev


def resume_option(what: str = "micrographs"):
    return typer.Option(False, "--resume", help=f"Skip the {what} whose picks an earlier, interrupted run of this command already wrote (refused if the options or the model changed).")


def prefix_option():
    return typer.Option(None, "--micrograph-prefix", metavar="FOLDER/",
                        help="Name micrographs in RELION and cryoSPARC files as FOLDER/ + the file name (e.g. MotionCorr/job002/Movies/), to match a processing project; default: the path as given.")


# the help texts name every known format
PICK_FORMATS = formats_help()


def strict_option():
    return typer.Option(False, "--strict", help="Stop at the first unreadable or bad micrograph (default: list it in the failures file and go on).")


def workers_option():
    return typer.Option(None, "--workers", min=1, help="Pick on a local Dask cluster of this many worker processes (one torch thread each).")


def scheduler_option():
    return typer.Option(None, "--scheduler", help="Pick on an existing Dask cluster: its scheduler address (tcp://HOST:8786) or scheduler file.")


def plural(n: int, noun: str) -> str:
    """``1 micrograph``, ``2 micrographs``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def hms(seconds: float) -> str:
    if seconds != seconds:
        return ""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_bar(what: str, unit: str, *columns, transient: bool = False, every: float = 30.0):
    """A progress bar on stderr (``what``, the bar, done/total ``unit``, ``columns``, the time elapsed and left for
    the whole run); where stderr is not a terminal (a log file, ``nohup``), a plain line every ``every`` seconds
    and at the end instead."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    class Logged(Progress):
        last = -float("inf")

        def update(self, task_id, **kwargs):
            super().update(task_id, **kwargs)
            if self.console.is_terminal:
                return
            task = self._tasks[task_id]
            now = time.monotonic()
            if now - self.last < every and not task.finished:
                return
            self.last = now
            left = task.time_remaining
            info = str(task.fields.get("info", "")).strip()
            self.console.print(f"{what}: {task.completed:g}/{task.total:g} {unit}" + (f"  {info}" if info else "")
                               + f"  {hms(task.elapsed or 0)} elapsed"
                               + (f", {hms(left)} left" if left is not None and not task.finished else ""),
                               highlight=False, soft_wrap=True)

    return Logged(TextColumn(what), BarColumn(), TextColumn(f"{{task.completed}}/{{task.total}} {unit}"), *columns,
                  TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=err_console,
                  transient=transient, disable=not err_console.is_terminal)


def training_progress(what: str, total: int):
    """The progress bar of every training verb: steps done, the latest losses and the time left."""
    from rich.progress import TextColumn

    progress = progress_bar(what, "steps", TextColumn("{task.fields[info]}"))
    progress.add_task(what, total=total, info="")
    return progress


def train_resume_option(what: str = "OUT.ckpt"):
    return typer.Option(False, "--resume", help=f"Continue an interrupted training from its checkpoint ({what}).")


def first_readable(files, read, strict: bool):
    """The first file that ``read`` accepts (its header sets the pixel size the others must match, and a single
    bad file is refused here in one line before any model is loaded); the batch reports the others."""
    for path in files:
        try:
            return read(path)
        except InputError:
            if strict or path == files[-1]:
                raise
    raise InputError(None, "no micrographs given")


# a pick verb's options that change how it runs, not what it picks
RUN_TIME_OPTIONS = frozenset({"images", "tomograms", "out", "resume", "strict", "workers", "scheduler", "threads",
                              "device"})


def batch_settings(verb, options: dict) -> dict:
    """What decides a pick verb's picks, for ``--resume`` to compare: its options by their names (``--box-size``)
    but those of :data:`RUN_TIME_OPTIONS`, a file given (the model, a template) by its checksum."""
    import hashlib

    out = {}
    for key, value in options.items():
        if key in RUN_TIME_OPTIONS:
            continue
        if isinstance(value, Path) and value.is_file():
            value = f"{value.name} sha256:{hashlib.sha256(value.read_bytes()).hexdigest()[:16]}"
        elif isinstance(value, Enum):
            value = value.value
        out[option_name(verb, key)] = value
    return out


def run_batch(files, read, pick_one, out: str | Path, fmt, box_size, resume: bool, strict: bool, what: str = "micrographs",
               workers: Optional[int] = None, scheduler: Optional[str] = None, micrograph_prefix: Optional[str] = None,
               pixel_size: Optional[float] = None, settings: Optional[dict] = None):
    """The one picking loop of every pick verb (:func:`fewpick.batch.pick_files`), with a progress bar that shows
    the rate and the time left, one line per bad file, and a summary; on Dask workers with --workers or
    --scheduler."""
    if workers and scheduler:
        raise InputError(None, "--workers starts a local cluster and --scheduler uses an existing one: give one")
    from rich.progress import TextColumn

    from fewpick.batch import dask_client, pick_files

    with dask_client(workers, scheduler) as client, \
            progress_bar("picking", what, TextColumn("{task.fields[info]}"), transient=True) as progress:
        task = progress.add_task("pick", total=len(files), info="")

        def update(e):
            progress.update(task, completed=e["done"], info=f"{e['per_second']:.2f} {what}/s")

        result = pick_files(files, read, pick_one, out, fmt=fmt, box_size=box_size, resume=resume,
                            strict=strict or len(files) == 1,  # one file: its own error, in one line
                            progress=update, kind=what, client=client, micrograph_prefix=micrograph_prefix,
                            pixel_size=pixel_size, settings=settings, report=lambda line: err_console.print(f"[yellow]warning:[/] {line}", highlight=False))
    if not result.picked and not result.skipped:
        raise InputError(None, f"no {what} could be picked; the reasons are in {result.failures_file}")
    done = len(result.picked) + len(result.skipped)
    where = (result.written[0] if len(result.written) == 1 and result.parts != Path(out)
             else f"{plural(len(result.written), 'file')} in {result.parts}")
    extra = f" ({len(result.skipped)} already done)" if result.skipped else ""
    console.print(f"{plural(result.n_picks, 'pick')} in {plural(done, what[:-1])}{extra} -> {where}", highlight=False)
    if result.parts != Path(out):
        console.print(f"per-{what[:-1]} picks in {result.parts}/", highlight=False)
    if result.failed:
        err_console.print(f"[yellow]warning:[/] {len(result.failed)} of {len(files)} {what} failed; listed in "
                          f"{result.failures_file} (fix them and run again with --resume)", highlight=False)
    return result


def option_name(func, parameter: str) -> str:
    """How the user spells a verb's parameter: its first option name (``--box-size``), else its own name."""
    import inspect

    default = inspect.signature(func).parameters[parameter].default
    decls = [d for d in getattr(default, "param_decls", ()) or () if d.startswith("--")]
    return decls[0] if decls else parameter.upper()


def check_finite(func, values: dict) -> None:
    """Refuse NaN and infinite numbers in any option (no option of any verb means them)."""
    import math

    for key, value in values.items():
        numbers = value if isinstance(value, (tuple, list)) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            raise InputError(None, f"{option_name(func, key)} must be a finite number, got {value!r}")
        if any(type(v) is int and abs(v) > 2**31 for v in numbers):
            raise InputError(None, f"{option_name(func, key)} {value} is out of range")


def handle_errors(func):
    """Check every number the user typed (:func:`check_finite`) and turn :class:`FewpickError` into one line on
    stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import warnings

        shown = warnings.showwarning

        def show(message, category, *rest, **kw):
            if issubclass(category, FewpickWarning):
                err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
            else:
                shown(message, category, *rest, **kw)

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("once", FewpickWarning)  # training checks its labels twice
                warnings.showwarning = show
                check_finite(func, kwargs)
                return func(*args, **kwargs)
        except FewpickError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            import inspect

            hint = ("; the same command with --resume continues from where it stopped (the checkpoint or the "
                    "picks written so far)" if "resume" in inspect.signature(func).parameters else "")
            err_console.print(f"interrupted{hint}", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None

    return wrapper


def _version(value: bool):
    if value:
        console.print(f"fewpick {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Show the version and exit.")):
    """Find protein particles in cryo-EM micrographs and tomograms from very few labels."""


def parse_threshold(text: str | None):
    """``--threshold``'s text as a :data:`fewpick.pickers.threshold.Threshold` (None: the model's default)."""
    from fewpick.pickers.threshold import as_threshold

    try:
        return as_threshold(text)
    except InputError:
        raise InputError(None, f"--threshold must be a number, 'auto', 'count' or 'calibrated', got {text!r}") from None
