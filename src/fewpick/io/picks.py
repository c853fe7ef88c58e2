"""The picks table and its file formats.

One table everywhere: a :class:`pandas.DataFrame` with columns
``micrograph, x, y[, z], score[, label]`` plus any extra columns a file brought
along. Coordinates are pixels of the original image, x = column, y = row,
z = section, origin at the first pixel's centre. ``score`` is ``NaN`` where a
file has none.

Formats (chosen by suffix, or by ``fmt``):

========  ==========================================================================
star      RELION STAR (read and written with ``starfile``): micrographs as
          ``data_particles`` with ``rlnMicrographName`` (the path as given),
          ``rlnCoordinateX/Y``, ``rlnAutopickFigureOfMerit``, ``rlnClassNumber``;
          tomograms with ``rlnTomoName``, ``rlnCoordinateX/Y/Z`` (voxels) and, where the
          tomogram's size and pixel size are known, RELION 5's
          ``rlnCenteredCoordinateX/Y/ZAngst``. One file per micrograph is RELION's
          ``<stem>_pick.star``. Reads RELION's ``autopick.star``/``manualpick.star``
          index of coordinate files too.
cs        cryoSPARC particle/pick file (``cryosparc-tools``); needs the micrographs' sizes
cbox      crYOLO ``.cbox`` (2D and 3D); needs a box size to write
mod       IMOD point model (``imodmodel``), one file per micrograph or tomogram
box       EMAN box: ``x_corner y_corner width height [score]``, centre = corner +
          size/2; one file per micrograph, needs a box size to write
tsv       Topaz: ``image_name x_coord y_coord [z_coord] score``, tab separated
csv       CSV with a header; common column spellings are recognised
          (``X-Coordinate``, ``x_coord``, ``rlnCoordinateX``, ``image_name`` …)
coords    plain ``x y [z]`` per line, no header, one file per micrograph/tomogram
========  ==========================================================================

A path that is a folder (or ends with ``/``, or has no suffix) means one file per micrograph,
named by the micrograph's stem.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from fewpick.errors import InputError
from fewpick.io import exchange
from fewpick.io.images import ImageInfo, micrograph_key
from fewpick.outputs import atomic_path

FORMATS = ("star", "box", "tsv", "csv", "coords", "cs", "cbox", "mod")
SUFFIX_FORMAT = {".star": "star", ".box": "box", ".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".coords": "coords",
                 ".cs": "cs", ".cbox": "cbox", ".mod": "mod"}
FORMAT_SUFFIX = {"star": ".star", "box": ".box", "tsv": ".tsv", "csv": ".csv", "coords": ".coords", "cs": ".cs",
                 "cbox": ".cbox", "mod": ".mod"}
# One file per micrograph: RELION's Import job pairs ``<stem>_<suffix>.star`` with micrograph ``<stem>``.
PART_SUFFIX = {**FORMAT_SUFFIX, "star": "_pick.star"}
ONE_PER_IMAGE = ("box", "coords", "cbox", "mod")
CORE = ["micrograph", "x", "y", "z", "score", "label"]

STAR_NAMES = {
    "micrograph": "rlnMicrographName",
    "x": "rlnCoordinateX",
    "y": "rlnCoordinateY",
    "z": "rlnCoordinateZ",
    "score": "rlnAutopickFigureOfMerit",
    "label": "rlnClassNumber",
}
TSV_NAMES = {"micrograph": "image_name", "x": "x_coord", "y": "y_coord", "z": "z_coord", "score": "score", "label": "label"}

# Spellings seen in the field's CSV/TSV files, compared lower-case without punctuation.
_ALIASES = {
    "micrograph": {"micrograph", "micrographname", "imagename", "image", "rlnmicrographname", "rlntomoname",
                   "tomogram", "tomo", "tomoname", "name", "filename", "mic"},
    "x": {"x", "xcoord", "xcoordinate", "coordinatex", "rlncoordinatex", "xpos", "centerx", "cx"},
    "y": {"y", "ycoord", "ycoordinate", "coordinatey", "rlncoordinatey", "ypos", "centery", "cy"},
    "z": {"z", "zcoord", "zcoordinate", "coordinatez", "rlncoordinatez", "zpos", "centerz", "cz"},
    "score": {"score", "rlnautopickfigureofmerit", "figureofmerit", "fom", "confidence", "probability", "prob"},
    "label": {"label", "class", "classnumber", "rlnclassnumber", "cls"},
}
# Suffixes that picking programs append to per-micrograph file names.
_PICK_FILE_SUFFIXES = re.compile(r"(_autopick|_manualpick|_manual|_pick|_picks|_coords|_particles)$", re.I)


def empty_picks(with_z: bool = False) -> pd.DataFrame:
    """An empty picks table with the core columns (``z`` if ``with_z``)."""
    cols = {"micrograph": pd.Series([], dtype=object), "x": pd.Series([], dtype=float),
            "y": pd.Series([], dtype=float)}
    if with_z:
        cols["z"] = pd.Series([], dtype=float)
    cols["score"] = pd.Series([], dtype=float)
    return pd.DataFrame(cols)


def make_picks(micrograph: str | Iterable[str], x, y, z=None, score=None, label=None) -> pd.DataFrame:
    """Build a picks table from arrays (``micrograph`` may be one name for all rows)."""
    x = np.asarray(x, dtype=float).ravel()
    n = len(x)
    mic = [micrograph] * n if isinstance(micrograph, str) else list(micrograph)
    cols: dict = {"micrograph": pd.Series(mic, dtype=object), "x": x, "y": np.asarray(y, dtype=float).ravel()}
    if z is not None:
        cols["z"] = np.asarray(z, dtype=float).ravel()
    cols["score"] = np.full(n, np.nan) if score is None else np.asarray(score, dtype=float).ravel()
    if label is not None:
        cols["label"] = np.asarray(label).ravel()
    return pd.DataFrame(cols)


def has_z(picks: pd.DataFrame) -> bool:
    return "z" in picks.columns


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _rename_aliases(df: pd.DataFrame) -> pd.DataFrame:
    mapping = {}
    taken = set()
    for col in df.columns:
        key = _norm(col)
        for core, spellings in _ALIASES.items():
            if key in spellings and core not in taken:
                mapping[col] = core
                taken.add(core)
                break
    return df.rename(columns=mapping)


def _stem_name(path: Path) -> str:
    """Micrograph name for a per-micrograph file: its stem without picker suffixes."""
    return _PICK_FILE_SUFFIXES.sub("", micrograph_key(path.stem)) or path.stem


def _finish(df: pd.DataFrame, path: Path, default_name: str) -> pd.DataFrame:
    """Check and order a table read from ``path``: core columns first, types fixed."""
    for axis in ("x", "y"):
        if axis not in df.columns:
            raise InputError(path, f"no {axis} coordinate column found (columns: {', '.join(map(str, df.columns)) or 'none'})")
    if "micrograph" not in df.columns:
        df.insert(0, "micrograph", default_name)
    df["micrograph"] = df["micrograph"].astype(str).astype(object)
    for axis in ("x", "y", "z", "score"):
        if axis in df.columns:
            values = pd.to_numeric(df[axis], errors="coerce")
            bad = values.isna() & df[axis].notna() if axis == "score" else values.isna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(path, f"row {row + 1}: {axis} is not a number ({df[axis].iloc[row]!r})")
            if axis != "score" and not np.isfinite(values.to_numpy()).all():
                raise InputError(path, f"{axis} coordinates include infinite values")
            df[axis] = values.astype(float)
    if "score" not in df.columns:
        df["score"] = np.nan
    order = [c for c in CORE if c in df.columns] + [c for c in df.columns if c not in CORE]
    return df[order].reset_index(drop=True)


def detect_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format named by ``fmt`` or by the file's suffix."""
    if fmt:
        fmt = fmt.lower().lstrip(".")
        if fmt not in FORMATS:
            raise InputError(None, f"unknown picks format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMAT:
        raise InputError(path, f"cannot tell the picks format from the suffix {suffix!r}; "
                               f"use one of {', '.join(SUFFIX_FORMAT)} or give the format")
    return SUFFIX_FORMAT[suffix]


def part_path(folder: str | os.PathLike, name: str, fmt: str) -> Path:
    """The file that holds one micrograph's picks in a folder of per-micrograph files."""
    return Path(folder) / f"{micrograph_key(name)}{PART_SUFFIX[fmt]}"


def _read_star(path: Path, images: Mapping[str, ImageInfo] | None = None) -> pd.DataFrame:
    blocks = exchange.star_blocks(path)
    tables = [b for b in blocks.values() if isinstance(b, pd.DataFrame)]
    for table in tables:
        centred = all(c in table.columns for c in exchange.CENTRED)
        if ("rlnCoordinateX" in table.columns and "rlnCoordinateY" in table.columns) or centred:
            df = table.rename(columns={v: k for k, v in STAR_NAMES.items()}).copy()
            if "rlnTomoName" in df.columns:  # tomograms are named by rlnTomoName, micrographs by their path
                df = df.drop(columns=["micrograph"], errors="ignore").rename(columns={"rlnTomoName": "micrograph"})
            if centred and (images or "x" not in df.columns):  # RELION 5: its centred ångströms come first
                if "micrograph" not in df.columns:
                    df.insert(0, "micrograph", _stem_name(path))
                df = exchange.from_centred_angstrom(df.drop(columns=["x", "y", "z"], errors="ignore"), images, path)
            else:
                df = df.drop(columns=list(exchange.CENTRED), errors="ignore")
            return _finish(df, path, _stem_name(path))
    for table in tables:
        if "rlnMicrographCoordinates" in table.columns and "rlnMicrographName" in table.columns:
            return _finish(exchange.read_coordinate_index(path, table, lambda p: _read_star(p, images)),
                           path, _stem_name(path))
    raise InputError(path, "STAR file has no table with rlnCoordinateX and rlnCoordinateY columns")


def _read_numbers(path: Path, min_cols: int, max_cols: int, what: str) -> np.ndarray:
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise InputError(path, f"line {i} is not a row of numbers: {line.strip()!r}") from None
        if not min_cols <= len(values):
            raise InputError(path, f"line {i} has {len(values)} columns; a {what} line needs at least {min_cols}")
        rows.append(values[:max_cols])
    if not rows:
        return np.zeros((0, min_cols))
    width = min(len(r) for r in rows)
    return np.array([r[:width] for r in rows], dtype=float)


def _read_box(path: Path) -> pd.DataFrame:
    a = _read_numbers(path, 4, 5, "box")
    if len(a) == 0:
        return _finish(empty_picks(), path, _stem_name(path))
    df = make_picks(_stem_name(path), a[:, 0] + a[:, 2] / 2, a[:, 1] + a[:, 3] / 2,
                    score=a[:, 4] if a.shape[1] > 4 else None)
    df["box"] = a[:, 2]
    return _finish(df, path, _stem_name(path))


def _read_coords(path: Path) -> pd.DataFrame:
    a = _read_numbers(path, 2, 3, "coords")
    if len(a) == 0:
        return _finish(empty_picks(), path, _stem_name(path))
    return _finish(make_picks(_stem_name(path), a[:, 0], a[:, 1], z=a[:, 2] if a.shape[1] > 2 else None),
                   path, _stem_name(path))


def _read_table(path: Path, sep: str) -> pd.DataFrame:
    if path.stat().st_size == 0:
        return _finish(empty_picks(), path, _stem_name(path))
    try:
        df = pd.read_csv(path, sep=sep, comment=None, skipinitialspace=True)
    except Exception as exc:
        raise InputError(path, f"not a readable {'TSV' if sep == chr(9) else 'CSV'} file ({exc})") from None
    if sep == "\t" and len(df.columns) == 1 and " " in str(df.columns[0]):
        df = pd.read_csv(path, sep=r"\s+")  # space-separated Topaz-like file
    return _finish(_rename_aliases(df), path, _stem_name(path))


_READERS = {"star": _read_star, "box": lambda p, i: _read_box(p), "coords": lambda p, i: _read_coords(p),
            "tsv": lambda p, i: _read_table(p, "\t"), "csv": lambda p, i: _read_table(p, ","),
            "cs": lambda p, i: _finish(exchange.read_cs(p), p, _stem_name(p)),
            "cbox": lambda p, i: _finish(exchange.read_cbox(p, _stem_name(p)), p, _stem_name(p)),
            "mod": lambda p, i: _finish(exchange.read_mod(p, _stem_name(p)), p, _stem_name(p))}


def _is_index(path: Path) -> bool:
    """A RELION list of coordinate files (its picks are in the folder's other files)."""
    if path.suffix.lower() != ".star":
        return False
    with open(path, "rb") as f:
        head = f.read(4096)
    return b"_rlnMicrographCoordinates" in head and b"_rlnCoordinateX" not in head


def read_picks(path: str | os.PathLike, fmt: str | None = None, *, require_rows: bool = False,
               images: Mapping[str, ImageInfo] | None = None) -> pd.DataFrame:
    """Read a picks/labels file, or a folder of per-micrograph files, into a picks table.

    Parameters
    ----------
    path
        A file, or a folder whose files of the chosen (or any known) format are read.
    fmt
        One of :data:`FORMATS`; ``None`` chooses by suffix.
    require_rows
        Raise if the result is empty (for training labels and ground truth).
    images
        The images the picks belong to, by name (:func:`~fewpick.io.images.image_info`): needed to read
        RELION 5's centred ångström coordinates.

    Raises
    ------
    InputError
        A missing or unreadable file, no coordinate columns, non-numeric values,
        or (with ``require_rows``) an empty table.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIX_FORMAT
                       and (fmt is None or detect_format(p) == detect_format(p, fmt)) and not _is_index(p)
                       and not p.name.startswith("."))
        if not files:
            raise InputError(path, "folder holds no picks files (" + ", ".join(SUFFIX_FORMAT) + ")")
        tables = [read_picks(f, fmt, images=images) for f in files]
        tables = [t for t in tables if len(t)] or tables[:1]
        df = pd.concat(tables, ignore_index=True)
    elif not path.is_file():
        raise InputError(path, "no such file")
    else:
        df = _READERS[detect_format(path, fmt)](path, images)
    if require_rows and len(df) == 0:
        raise InputError(path, "holds no particle coordinates")
    return df


def per_micrograph(path: str | os.PathLike) -> bool:
    """A folder target: an existing folder, a path written with a trailing slash, or one without a suffix."""
    text = os.fspath(path)
    return Path(text).is_dir() or text.endswith(("/", os.sep)) or not Path(text).suffix


def _fmt_num(values: np.ndarray, decimals: int = 3) -> list[str]:
    return [np.format_float_positional(round(float(v), decimals), trim="-") for v in values]


def _write_one(df: pd.DataFrame, path: Path, fmt: str, box_size: float | None,
               images: Mapping[str, ImageInfo] | None = None, prefix: str | None = None) -> None:
    z = has_z(df)
    scores = df["score"].to_numpy(dtype=float) if "score" in df.columns else np.full(len(df), np.nan)
    has_score = len(df) > 0 and not np.isnan(scores).all()
    with atomic_path(path) as tmp:
        if fmt == "star":
            import starfile

            names = df["micrograph"].astype(str)
            if z:  # tomograms: RELION names them (rlnTomoName) without path or suffix
                out = pd.DataFrame({"rlnTomoName": names.map(micrograph_key)})
            else:
                shown = {m: exchange.display_path(m, images, prefix) for m in names.unique()}
                out = pd.DataFrame({STAR_NAMES["micrograph"]: names.map(shown)})
            out[STAR_NAMES["x"]] = df["x"].astype(float).to_numpy()
            out[STAR_NAMES["y"]] = df["y"].astype(float).to_numpy()
            if z:
                out[STAR_NAMES["z"]] = df["z"].astype(float).to_numpy()
                known = [exchange.image_of(images, m) for m in names.unique()]
                if images and all(i is not None and i.pixel_size for i in known):
                    centred = exchange.centred_angstrom(df.reset_index(drop=True), images, path)
                    for col in exchange.CENTRED:
                        out[col] = centred[col].to_numpy()
            if has_score:
                out[STAR_NAMES["score"]] = scores
            if "label" in df.columns:
                out[STAR_NAMES["label"]] = df["label"]
            for col in df.columns:
                if col not in CORE and col not in out.columns:
                    out[col] = df[col].to_numpy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                starfile.write({"particles": out}, tmp, overwrite=True)
        elif fmt == "cs":
            exchange.write_cs(df, tmp, path, images, prefix)
        elif fmt == "cbox":
            exchange.write_cbox(df, tmp, path, box_size)
        elif fmt == "mod":
            exchange.write_mod(df, tmp, path, images)
        elif fmt in ("tsv", "csv"):
            names = TSV_NAMES if fmt == "tsv" else {c: c for c in CORE}
            out = pd.DataFrame({names["micrograph"]: df["micrograph"].astype(str), names["x"]: df["x"], names["y"]: df["y"]})
            if z:
                out[names["z"]] = df["z"]
            if fmt == "tsv" or has_score:
                out[names["score"]] = scores
            if "label" in df.columns:
                out[names["label"]] = df["label"]
            if fmt == "csv":
                for col in df.columns:
                    if col not in CORE:
                        out[col] = df[col]
            out.to_csv(tmp, sep="\t" if fmt == "tsv" else ",", index=False, float_format="%.6g")
        elif fmt == "box":
            sizes = exchange.box_sizes(df, box_size, path, "EMAN .box")
            cx = df["x"].to_numpy(dtype=float) - sizes / 2
            cy = df["y"].to_numpy(dtype=float) - sizes / 2
            cols = [_fmt_num(cx), _fmt_num(cy), _fmt_num(sizes), _fmt_num(sizes)]
            if has_score:
                cols.append(_fmt_num(scores, 6))
            tmp.write_text("".join("\t".join(r) + "\n" for r in zip(*cols)))
        elif fmt == "coords":
            cols = [_fmt_num(df["x"].to_numpy()), _fmt_num(df["y"].to_numpy())]
            if z:
                cols.append(_fmt_num(df["z"].to_numpy()))
            tmp.write_text("".join(" ".join(r) + "\n" for r in zip(*cols)))


def write_picks(
    picks: pd.DataFrame,
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    box_size: float | None = None,
    micrographs: Iterable[str] | None = None,
    images: Mapping[str, ImageInfo] | None = None,
    micrograph_prefix: str | None = None,
) -> list[Path]:
    """Write a picks table; returns the files written.

    Parameters
    ----------
    picks
        The table (``micrograph, x, y[, z], score[, label]`` and extras).
    path
        A file, or a folder (existing, a path ending with ``/``, or a path without a
        suffix) for one file per micrograph named ``<micrograph stem><suffix>``.
    fmt
        Format name; by default from the suffix (``star`` inside a folder).
    box_size
        Box edge in pixels, needed for ``box``.
    micrographs
        With a folder: also write empty files for these micrographs if they have no picks.
    images
        The images by name (:func:`~fewpick.io.images.image_info`): RELION STAR files then name micrographs by
        their path as given, tomogram picks gain RELION 5's centred ångström coordinates, and cryoSPARC ``.cs``
        files (which need each micrograph's size) can be written.
    micrograph_prefix
        Name micrographs (RELION, cryoSPARC) as this prefix followed by the image's file name, e.g.
        ``MotionCorr/job002/Movies/``, to match a processing project's layout.

    Every file is written to a temporary name and renamed, so an error never leaves
    a partial file behind.
    """
    folder = per_micrograph(path)
    path = Path(path)
    missing = [c for c in ("micrograph", "x", "y") if c not in picks.columns]
    if missing:
        raise InputError(None, f"picks table lacks columns {missing}")
    if folder:
        fmt = detect_format("x.star", fmt) if fmt else "star"
        path.mkdir(parents=True, exist_ok=True)
        names = list(dict.fromkeys(list(picks["micrograph"].astype(str)) + list(micrographs or [])))
        written = []
        for name in names:
            part = picks[picks["micrograph"].astype(str) == name]
            target = part_path(path, name, fmt)
            _write_one(part, target, fmt, box_size, images, micrograph_prefix)
            written.append(target)
        return written
    fmt = detect_format(path, fmt)
    if fmt in ONE_PER_IMAGE and picks["micrograph"].nunique() > 1:
        raise InputError(path, f"a .{fmt} file holds one micrograph but the picks cover "
                               f"{picks['micrograph'].nunique()}; give a folder (ending with /) to write one file each")
    _write_one(picks, path, fmt, box_size, images, micrograph_prefix)
    return [path]


def transform_picks(picks: pd.DataFrame, scale: float = 1.0, flip_y_height: float | None = None) -> pd.DataFrame:
    """Scale coordinates, then optionally flip y.

    ``scale`` multiplies x, y (and z): use the binning factor to bring binned
    coordinates back to original pixels. ``flip_y_height`` is the image height in
    the output's pixels; with the origin at the first pixel's centre, row ``y``
    becomes ``height - 1 - y``.
    """
    if not (scale > 0 and np.isfinite(scale)):
        raise InputError(None, f"scale must be a positive number, got {scale}")
    out = picks.copy()
    for axis in ("x", "y", "z"):
        if axis in out.columns:
            out[axis] = out[axis].astype(float) * scale
    if "box" in out.columns:
        out["box"] = out["box"].astype(float) * scale
    if flip_y_height is not None:
        if flip_y_height <= 0:
            raise InputError(None, f"--flip-y needs the image height in pixels, got {flip_y_height}")
        outside = (out["y"] < -0.5) | (out["y"] > flip_y_height - 0.5)
        if outside.any():
            y = float(out.loc[outside, "y"].iloc[0])
            raise InputError(None, f"y={y:g} (row {int(np.flatnonzero(outside.to_numpy())[0]) + 1}) lies outside an "
                                   f"image of height {flip_y_height:g}; check --flip-y and --scale")
        out["y"] = (flip_y_height - 1) - out["y"]
    return out


def select_picks(picks: pd.DataFrame, where: Iterable[str] = (), sample: int | None = None,
                 seed: int = 0) -> pd.DataFrame:
    """Keep rows whose columns equal given values (``"species=ribosome"``), then draw ``sample`` rows at random.

    Values are compared as text, so ``label=2`` matches the number 2. Raises if a column does not exist or
    ``sample`` exceeds the rows left.
    """
    out = picks
    for cond in where:
        if "=" not in cond:
            raise InputError(None, f"--where needs COLUMN=VALUE, got {cond!r}")
        col, value = cond.split("=", 1)
        col = col.strip()
        if col not in out.columns:
            raise InputError(None, f"--where: no column {col!r} (columns: {', '.join(map(str, out.columns))})")
        column = out[col]
        as_text = column.astype(str)
        if pd.api.types.is_numeric_dtype(column):
            try:
                as_text = column.astype(float).astype(str)
                value = str(float(value))
            except ValueError:
                pass
        out = out[as_text == value.strip()]
    if sample is not None:
        if sample > len(out):
            raise InputError(None, f"--sample {sample}: only {len(out)} rows to draw from")
        out = out.sample(sample, random_state=seed).sort_index()
    return out.reset_index(drop=True)


def check_inside(picks: pd.DataFrame, shapes: dict[str, tuple[int, ...]], source: str | os.PathLike | None) -> None:
    """Raise if a pick lies outside its image or names an image that is not given.

    ``shapes`` maps micrograph names (as in the table) to array shapes ``(y, x)`` or
    ``(z, y, x)``. Coordinates may reach half a pixel beyond the outer pixel centres.
    """
    for name, group in picks.groupby("micrograph", sort=False):
        if name not in shapes:
            raise InputError(source, f"names micrograph {name!r}, which is not among the images given")
        shape = shapes[name]
        axes = ["x", "y"] + (["z"] if len(shape) == 3 else [])
        sizes = {"x": shape[-1], "y": shape[-2], "z": shape[0] if len(shape) == 3 else 1}
        for axis in axes:
            if axis not in group.columns:
                raise InputError(source, f"has no {axis} coordinates but {name!r} is a 3D volume")
            v = group[axis].to_numpy(dtype=float)
            bad = (v < -0.5) | (v > sizes[axis] - 0.5)
            if bad.any():
                row = group.index[np.flatnonzero(bad)[0]]
                raise InputError(source, f"{axis}={v[bad][0]:g} (row {row + 1}, micrograph {name!r}) lies outside "
                                         f"the image, whose {axis} range is 0..{sizes[axis] - 1}")
