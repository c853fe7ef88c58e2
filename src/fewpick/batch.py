"""Picking many micrographs (or tomograms) in one run that survives bad files and interruptions.

:func:`pick_files` is the one loop behind every ``pick`` verb: it reads each file, picks it, and writes that
file's picks at once (atomically), so a crash loses at most the file being picked. With ``resume`` the files
whose picks are already written are skipped. A file that cannot be read or picked is reported in one line and
listed in the failures file, and the batch goes on (``strict`` stops at the first). Memory holds one image
at a time; the combined picks file is assembled from the per-file picks at the end.

Layout for ``out = picks.star`` (a file): the per-file picks go to ``picks_micrographs/<name>.star``
(``picks_tomograms/`` for tomograms; STAR,
lossless, also what RELION reads per micrograph), the combined file to ``picks.star`` (any format), failures to
``picks_failures.txt``. For ``out = picks/`` (a folder): the per-file picks are the output, in the folder's
format; failures go to ``picks/failures.txt``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import pandas as pd

from fewpick import allocator
from fewpick.errors import FewpickError, InputError, first_line
from fewpick.io.images import ImageInfo, image_info, micrograph_key
from fewpick.io.picks import (
    detect_format,
    get_format,
    make_picks,
    part_path,
    per_micrograph,
    read_picks,
    write_picks,
)
from fewpick.outputs import atomic_path, check_output


@dataclass
class BatchResult:
    """What a batch did: files picked now, skipped as already done, failed (name → reason), and where the
    picks are."""

    picked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    n_picks: int = 0  # in the combined file; with a folder output, of the files picked now
    written: list[Path] = field(default_factory=list)
    parts: Path | None = None
    failures_file: Path | None = None
    seconds: float = 0.0


def layout(out: str | os.PathLike, fmt: str | None = None, kind: str = "micrographs"
           ) -> tuple[Path, str, Path | None, Path]:
    """(folder of the per-file picks, their format, the combined file or None, the failures file)."""
    out = Path(out)
    if per_micrograph(out):
        part_fmt = detect_format("x.star", fmt) if fmt else "star"
        return out, part_fmt, None, out / "failures.txt"
    detect_format(out, fmt)  # an unknown suffix is refused before any work
    return out.parent / f"{out.stem}_{kind}", "star", out, out.parent / f"{out.stem}_failures.txt"


def check_batch_output(out: str | os.PathLike, files: Sequence[str | os.PathLike], fmt: str | None = None,
                       kind: str = "micrographs", inputs: Sequence[str | os.PathLike | None] = ()) -> None:
    """Refuse, before any picking, an output (the combined file, the folder of per-file picks) that cannot be
    written or would replace one of ``files`` or the other ``inputs`` (:func:`fewpick.outputs.check_output`)."""
    parts, _, combined, _ = layout(out, fmt, kind)
    every = [*files, *inputs]
    if combined is not None:
        check_output(combined, inputs=every)
    check_output(parts, inputs=every, folder=True)


def threshold_for_batch(picker, threshold, files: Sequence, read: Callable, sample: int = 8, **score_options):
    """The threshold a batch applies, and a sentence saying how it was set (None when given as is).

    A :class:`~fewpick.pickers.threshold.Count` gets one score, set on up to ``sample`` of ``files`` spread
    evenly over them (:meth:`~fewpick.pickers.base.PickerBase.count_cut`): every micrograph is then cut alike,
    each can be picked on its own (on Dask workers too), and a resumed run cuts where the first one did.
    Files that cannot be read are left out of the sample (the batch reports them); ``score_options`` go to the
    picker's ``score_map`` as they will when picking."""
    from fewpick.pickers.threshold import Count

    threshold = picker.resolve_threshold(threshold)
    if not isinstance(threshold, Count):
        return threshold, None
    from fewpick.io.images import evenly_spread

    images = []
    for path in evenly_spread(files, sample):
        try:
            images.append(read(path))
        except FewpickError:
            continue
    if not images:
        return threshold, None
    cut, kept, far = picker.count_cut_kept(images, threshold.per_image, threshold.split, threshold.otherwise,
                                           **score_options)
    where = f"threshold {cut:.3g}, set on {len(images)} of the {len(files)} micrographs"
    counted = "counted" if threshold.otherwise is not None else "expected"
    if kept is not None:
        said = (f"{where}: the gap in their scores between particles and background, about {kept:.0f} picks per "
                f"micrograph ({threshold.per_image:.0f} {counted})")
    elif threshold.otherwise is not None:
        said = (f"threshold {cut:.3g}, the model's own (set on its training micrographs): the scores of {len(images)} "
                f"of the {len(files)} micrographs show no clear gap between particles and background near the "
                f"{threshold.per_image:.0f} per micrograph it counted")
    else:
        said = f"{where}: the {threshold.per_image:.0f} best picks per micrograph expected"
    if far is not None:
        at = rounded_down(far[0])
        said += (f". Their scores do split clearly between two groups, at {at}: about {far[1]:.0f} picks per "
                 f"micrograph, too far from the {threshold.per_image:.0f} {counted} to be taken. If these "
                 f"micrographs hold about {far[1]:.0f} particles each, pick with the threshold {at}")
    return replace(threshold, score=cut), said


def rounded_down(value: float, digits: int = 4) -> str:
    """``value`` written with ``digits`` significant digits (at least its whole part), rounded down: a cut typed
    back as written keeps every score the exact one keeps."""
    if not math.isfinite(value) or value == 0:
        return f"{value:g}"
    places = max(digits - 1 - math.floor(math.log10(abs(value))), 0)  # whole numbers kept whole
    return f"{math.floor(value * 10.0 ** places) / 10.0 ** places:.{places}f}"


def pick_files(
    files: Sequence[str | os.PathLike],
    read: Callable[[Path], object],
    pick_one: Callable[[object], pd.DataFrame],
    out: str | os.PathLike,
    *,
    fmt: str | None = None,
    box_size: float | None = None,
    resume: bool = False,
    strict: bool = False,
    progress: Callable[[dict], None] | None = None,
    report: Callable[[str], None] | None = None,
    kind: str = "micrographs",
    client=None,
    micrograph_prefix: str | None = None,
    pixel_size: float | None = None,
    settings: Mapping[str, object] | None = None,
) -> BatchResult:
    """Pick every file and write the picks as they come (see the module).

    Parameters
    ----------
    files
        Micrographs or tomograms, picked in this order.
    read
        ``path → image`` (raises :class:`~fewpick.errors.InputError` for a bad file).
    pick_one
        ``image → picks table`` in the image's original pixels; its ``micrograph`` column names the file.
    out
        A picks file (the combined picks; per-file picks beside it) or a folder (per-file picks only).
    resume
        Skip the files whose per-file picks are already written (by an earlier, interrupted run).
    strict
        Stop at the first bad file (raise its error) instead of listing it and going on.
    progress
        Called after each file with ``done``, ``total``, ``per_second`` and ``eta_s`` (seconds left).
    report
        Called with one line per failed file.
    kind
        ``micrographs`` or ``tomograms``: names the folder of per-file picks beside a combined file.
    micrograph_prefix
        Name micrographs in RELION and cryoSPARC files as this prefix + the file name (see
        :func:`~fewpick.io.picks.write_picks`).
    pixel_size
        The pixel size in Å where the files' headers give none or a wrong one.
    settings
        What decides the picks (options, the model file's checksum), kept beside the per-file picks: ``resume``
        refuses to go on when they differ from those of the run it resumes (the picks would mix two settings).
    client
        A Dask ``distributed.Client`` (see :func:`dask_client`): ``read`` and ``pick_one`` (with the model they
        hold) go to each worker once; each file is picked and its picks written there (the output folder must be
        reachable from the workers, like the files), and the outcomes come back in the files' order. At most a
        few files per worker thread are in flight, so memory stays bounded.
    """
    check_batch_output(out, files, fmt, kind)
    parts, part_fmt, combined, failures = layout(out, fmt, kind)
    result = BatchResult(parts=parts)
    names = [micrograph_key(Path(f).name) for f in files]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(None, f"several files share the name {dup[0]!r}: their picks would overwrite each other")
    created = not parts.exists()
    parts.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        _record_settings(parts / RUN_RECORD, settings, resume)
    # temporary files (".<name>.<random>.part<suffix>") of a run that was killed while writing them
    wanted = {part_path(parts, n, part_fmt).stem for n in names}
    tail = f".part{get_format(part_fmt).suffix}"
    for stale in parts.iterdir():
        n = stale.name
        if n.startswith(".") and n.endswith(tail) and n[1 : -len(tail)].rsplit(".", 1)[0] in wanted:
            stale.unlink(missing_ok=True)
    t0 = time.perf_counter()
    todo = []
    for f, name in zip(files, names):
        if resume and part_path(parts, name, part_fmt).is_file():
            result.skipped.append(name)
        else:
            todo.append((Path(f), name))
    task = functools.partial(_pick_and_write, read, pick_one, parts.resolve(), part_fmt, box_size, micrograph_prefix)
    for i, ((path, name), outcome) in enumerate(zip(todo, _outcomes(todo, task, client))):
        try:
            n_picks = outcome()
        except FILE_FAILURES as exc:
            reason = failure_reason(exc)
            if strict:
                if created and not result.picked:
                    _tidy(parts)
                if isinstance(exc, FewpickError):
                    raise
                raise InputError(path, reason) from None
            result.failed[name] = reason
            if report:
                report(f"{path}: {reason} (skipped)")
            continue
        result.picked.append(name)
        result.n_picks += n_picks
        if progress:
            elapsed = time.perf_counter() - t0
            rate = (i + 1) / elapsed if elapsed > 0 else float("inf")
            progress({"done": len(result.skipped) + i + 1, "total": len(files), "per_second": rate,
                      "eta_s": (len(todo) - i - 1) / rate if rate > 0 else float("nan")})
    if result.failed:
        with atomic_path(failures) as tmp:
            tmp.write_text("".join(f"{n}\t{r}\n" for n, r in result.failed.items()))
        result.failures_file = failures
    elif failures.is_file():  # from an earlier run whose failures are now picked
        failures.unlink()
    done = [n for n in names if n not in result.failed]
    if not done and created:  # nothing picked: no folder of picks left behind, only the failures file
        _tidy(parts)
    if combined is not None and done:  # no file picked: an earlier combined file stays as it was
        tables = [read_picks(part_path(parts, n, part_fmt)) for n in done]
        tables = [t.assign(micrograph=n) for t, n in zip(tables, done)]
        picks = pd.concat(tables, ignore_index=True) if tables else make_picks("", [], [])
        result.n_picks = len(picks)
        by_name = dict(zip(names, files))
        images = {n: image_info(by_name[n], pixel_size=pixel_size) for n in done}  # headers only
        result.written = write_picks(picks, combined, fmt, box_size=box_size, images=images,
                                     micrograph_prefix=micrograph_prefix)
    else:
        result.written = [part_path(parts, n, part_fmt) for n in done]
    result.seconds = time.perf_counter() - t0
    return result


# what reading or picking one file may raise without stopping the batch (anything else is a bug, and stops it)
FILE_FAILURES = (FewpickError, ValueError, OSError, RuntimeError, MemoryError)


def failure_reason(exc: BaseException) -> str:
    """A file's failure in one line: the problem an :class:`InputError` names, else the error's first line."""
    return getattr(exc, "problem", None) or first_line(exc, limit=400)


RUN_RECORD = ".fewpick-run.json"  # beside the per-file picks: the settings of the run that wrote them


def _tidy(parts: Path) -> None:
    """Remove a folder of per-file picks that this run made and left empty (but for its settings)."""
    (parts / RUN_RECORD).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        parts.rmdir()


def _record_settings(record: Path, settings: Mapping[str, object], resume: bool) -> None:
    """Keep ``settings`` in ``record``; with ``resume``, first refuse settings that differ from those kept there
    (a run from before records were kept, or an unreadable record, is resumed as it is)."""
    now = json.loads(json.dumps(dict(settings), default=str))
    if resume and record.is_file():
        try:
            before = json.loads(record.read_text())
        except (OSError, ValueError):
            before = None
        if isinstance(before, dict) and before != now:
            changed = sorted(k for k in {*before, *now} if before.get(k) != now.get(k))
            raise InputError(None, f"--resume: {', '.join(changed)} changed since the run being resumed (its picks "
                                   "would mix with these); run without --resume to pick every file again")
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")


def _pick_and_write(read: Callable, pick_one: Callable, parts: Path, part_fmt: str, box_size: float | None,
                    prefix: str | None, path: Path, name: str) -> int:
    """Read, pick and write one file's picks (atomically); the number of picks. Runs here or on a Dask worker,
    which then writes the file itself (the output folder must be shared, as the micrographs are)."""
    image = read(path)
    picks = pick_one(image)
    shape, px = getattr(image, "shape", None), getattr(image, "pixel_size", None)
    volume = shape is not None and len(shape) == 3
    picks = picks.assign(micrograph=name) if len(picks) else make_picks(name, [], [], z=[] if volume else None)
    images = {name: ImageInfo(str(path), tuple(shape), px)} if shape is not None else None
    write_picks(picks, parts, part_fmt, box_size=box_size, micrographs=[name], images=images,
                micrograph_prefix=prefix)
    return len(picks)


def _outcomes(todo: list[tuple[Path, str]], task: Callable, client) -> Iterator[Callable]:
    """For each file, in order, a call that returns ``task(path, name)`` or raises its error: computed here when
    it is called, or on the Dask workers (a sliding window of submitted files)."""
    if client is None:
        for path, name in todo:
            yield functools.partial(task, path, name)
        return
    task = client.scatter(task, broadcast=True, hash=False)
    threads = sum(client.nthreads().values()) or 1
    window = 4 * threads
    pending: deque = deque()
    queue = iter(todo)
    try:
        for path, name in itertools.islice(queue, window):
            pending.append(client.submit(_apply, task, path, name, pure=False))
        while pending:
            future = pending.popleft()
            for path, name in itertools.islice(queue, 1):
                pending.append(client.submit(_apply, task, path, name, pure=False))
            yield functools.partial(_result_of, future, path)
            future.release()
    finally:
        for future in pending:
            future.cancel()


@dataclass
class _Failed:
    """A file's failure on a Dask worker, returned rather than raised: Dask would print the traceback of every
    raised error in its worker's log; the batch reports it in one line."""

    reason: str


def _apply(task: Callable, path: Path, name: str) -> int | _Failed:
    try:
        return task(path, name)
    except FILE_FAILURES as exc:
        return _Failed(failure_reason(exc))


def _result_of(future, path: Path) -> int:
    """A Dask future's picks count, or its file's failure raised here in one line."""
    outcome = future.result()
    if isinstance(outcome, _Failed):
        raise InputError(path, outcome.reason)
    return outcome


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None, threads_per_worker: int = 1):
    """A Dask client: on an existing cluster (``scheduler``: its address, e.g. ``tcp://10.0.0.5:8786``, or a
    scheduler file), or on a local cluster of ``workers`` processes with ``threads_per_worker`` threads each
    (listening on 127.0.0.1 only, no dashboard). ``None`` when neither is given."""
    if not workers and not scheduler:
        yield None
        return
    from distributed import Client, LocalCluster

    if scheduler:
        kw = {"scheduler_file": scheduler} if Path(scheduler).is_file() else {"address": scheduler}
        try:
            client = Client(**kw, timeout="20s")
        except Exception as exc:  # noqa: BLE001 - an address Dask cannot parse or reach, a bad scheduler file
            raise InputError(None, f"--scheduler {scheduler}: cannot reach a Dask scheduler there "
                                   f"({first_line(exc)})") from None
        with client:
            yield client
        return
    import dask

    # Two Dask defaults that cost picking dearly (docs/decisions.md, "Dask workers"):
    # - workers start with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's adaptive mmap threshold: every
    #   large array is mapped and unmapped afresh; they get the command line's setting instead
    #   (:mod:`fewpick.allocator`);
    # - each worker samples its running task's stack every 10 ms for the dashboard (which is off here).
    environ = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in allocator.environment().items()}
    with dask.config.set({**environ, "distributed.worker.profile.enabled": False}), \
            LocalCluster(n_workers=int(workers), threads_per_worker=threads_per_worker, processes=True,
                         host="127.0.0.1", dashboard_address=None) as cluster, Client(cluster) as client:
        yield client
