"""Reading and writing images: MRC/MRCS/REC/ST, TIFF, PNG/JPEG, and IMOD tilt angles.

Arrays follow NumPy order: a micrograph is ``(rows, columns) = (y, x)`` and a volume
``(sections, rows, columns) = (z, y, x)``. Pixel sizes are in ångström per pixel and
``None`` when the file does not say.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence, TypeVar

import numpy as np

from fewpick.errors import InputError
from fewpick.outputs import atomic_path

T = TypeVar("T")

MRC_SUFFIXES = (".mrc", ".mrcs", ".rec", ".st", ".map", ".ali")
TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SUFFIXES = MRC_SUFFIXES + TIFF_SUFFIXES + PIL_SUFFIXES


@dataclass
class Image:
    """An image or volume with the metadata the pickers need.

    Attributes
    ----------
    data
        The pixels, ``(y, x)`` or ``(z, y, x)``; may be a read-only memory map.
    pixel_size
        Å per pixel from the header (or the caller's override), ``None`` if unknown.
    path
        Where it was read from.
    """

    data: np.ndarray
    pixel_size: float | None
    path: Path

    @property
    def name(self) -> str:
        """The micrograph's name as used in picks tables (the file stem)."""
        return micrograph_key(self.path)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


def micrograph_key(name: str | os.PathLike) -> str:
    """Name used to pair images with picks: the base name without an image suffix.

    ``"MotionCorr/job002/mic_001.mrc"`` and ``"mic_001"`` both give ``"mic_001"``.
    """
    base = os.path.basename(os.fspath(name).rstrip("/\\"))
    lower = base.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return base[: -len(suffix)]
    return base


def match_names(wanted: Iterable[str], available: Iterable[str]) -> dict[str, str]:
    """Pair names from a picks table with image names.

    A wanted name pairs with an available one when their keys (:func:`micrograph_key`)
    are equal or, failing that, when exactly one available key starts with the wanted
    key followed by ``.``, ``_`` or ``-`` (``mic01`` pairs with ``mic01.bin_avg``).
    Names with no partner are left out of the result.
    """
    keys = {micrograph_key(a): a for a in available}
    out: dict[str, str] = {}
    for w in wanted:
        k = micrograph_key(w)
        if k in keys:
            out[w] = keys[k]
            continue
        hits = [a for ak, a in keys.items() if len(ak) > len(k) and ak.startswith(k) and ak[len(k)] in "._-"]
        if len(hits) == 1:
            out[w] = hits[0]
    return out


def pair_names(names_a: Iterable[str], names_b: Iterable[str]) -> dict[str, str]:
    """Pair two lists of micrograph names in either direction of :func:`match_names`.

    Each name of ``names_a`` maps to its partner in ``names_b``: first by
    ``match_names(a, b)``, then, for the rest, by a ``b`` name whose key is a prefix of it.
    """
    names_a, names_b = list(names_a), list(names_b)
    pairs = match_names(names_a, names_b)
    rest = [a for a in names_a if a not in pairs]
    for b, a in match_names(names_b, rest).items():
        pairs.setdefault(a, b)
    return pairs


def evenly_spread(items: Sequence[T], k: int) -> list[T]:
    """At most ``k`` of ``items`` spread evenly over them, in their order, the first and the last included (all of
    them where there are no more than ``k``): a sample of a data set's micrographs that sees all of it."""
    if k < 1 or not len(items):
        return []
    return [items[int(i)] for i in np.unique(np.linspace(0, len(items) - 1, min(k, len(items))).round())]


def list_images(paths: Iterable[str | os.PathLike], suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Expand files and folders into a sorted list of image files.

    Raises
    ------
    InputError
        If a path does not exist, or the arguments name no image at all.
    """
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in suffixes)
            if not found:
                raise InputError(p, f"folder holds no image files ({', '.join(suffixes)})")
            out.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in suffixes:
                raise InputError(p, f"unsupported image type {p.suffix!r}; expected one of {', '.join(suffixes)}")
            out.append(p)
        else:
            raise InputError(p, "no such file or folder")
    if not out:
        raise InputError(None, "no images given")
    keys = [micrograph_key(p) for p in out]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        same = [p for p, k in zip(out, keys) if k == dup[0]]
        raise InputError(same[0], f"shares the name {dup[0]!r} with {', '.join(map(str, same[1:]))}; picks files "
                                  "name images by their name without the suffix: give one of them")
    return out


@dataclass(frozen=True)
class ImageInfo:
    """What a picks file in another program's layout needs to know of an image, read from its header.

    ``path`` is the path as the user gave it (RELION and cryoSPARC name micrographs by path); ``shape`` is
    ``(y, x)`` or ``(z, y, x)``; ``pixel_size`` in Å, ``None`` if the file does not say.
    """

    path: str
    shape: tuple[int, ...]
    pixel_size: float | None = None

    @property
    def name(self) -> str:
        return micrograph_key(self.path)


def image_info(path: str | os.PathLike, *, pixel_size: float | None = None) -> ImageInfo:
    """The size and pixel size of an image from its header alone (no pixels are read)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such file")
    suffix = p.suffix.lower()
    px: float | None = None
    try:
        if suffix in MRC_SUFFIXES:
            import mrcfile

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with mrcfile.open(p, mode="r", header_only=True, permissive=True) as mrc:
                    h = mrc.header
                    nx, ny, nz = int(h.nx), int(h.ny), int(h.nz)
                    v = float(mrc.voxel_size.x)
                    need = 1024 + int(h.nsymbt) + nx * ny * max(nz, 1) * _mrc_itemsize(int(h.mode))
            if p.stat().st_size < need:
                raise InputError(p, f"truncated MRC file ({p.stat().st_size} bytes; its header asks for {need})")
            shape = (ny, nx) if nz <= 1 else (nz, ny, nx)
            px = v if v > 0 and np.isfinite(v) else None
        elif suffix in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(p) as tif:
                shape = tuple(int(n) for n in tif.series[0].shape)
            if len(shape) == 3 and shape[-1] in (3, 4) and shape[0] > 4:
                shape = shape[:2]
        elif suffix in PIL_SUFFIXES:
            from PIL import Image as PILImage

            with PILImage.open(p) as im:
                shape = (int(im.height), int(im.width))
        else:
            raise InputError(p, f"unknown image suffix {p.suffix!r}")
    except InputError:
        raise
    except Exception as exc:  # each library raises its own types for a bad header
        raise InputError(p, f"cannot read the image header ({exc})") from None
    return ImageInfo(os.fspath(path), tuple(shape), pixel_size if pixel_size is not None else px)


def _mrc_itemsize(mode: int) -> int:
    """Bytes per pixel of an MRC data mode (0: not checked)."""
    return {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2}.get(mode, 0)  # 101 (4-bit) not checked


def _read_mrc(path: Path, mmap: bool) -> tuple[np.ndarray, float | None]:
    import mrcfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mmap:
                mrc = mrcfile.mmap(path, mode="r")
                data = mrc.data
            else:
                mrc = mrcfile.open(path, mode="r")
                data = mrc.data
            voxel = mrc.voxel_size
            if not mmap:
                mrc.close()
    except (ValueError, OSError, EOFError) as exc:
        msg = str(exc).strip().rstrip(".")
        if any(k in msg for k in ("too small", "Expected", "could only read", "greater than file size", "limit is")):
            msg = f"truncated MRC file ({msg})"
        else:
            msg = f"not a readable MRC file ({msg})"
        raise InputError(path, msg) from None
    if data is None:
        raise InputError(path, "MRC file holds no data")
    px = float(voxel.x)
    return data, (px if px > 0 and np.isfinite(px) else None)


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image as PILImage, UnidentifiedImageError

    try:
        with PILImage.open(path) as im:
            if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
                im = im.convert("L")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(path, f"not a readable {path.suffix.lstrip('.').upper()} image ({exc})") from None


def _read_tiff(path: Path) -> tuple[np.ndarray, float | None]:
    import tifffile

    try:
        data = tifffile.imread(path)
    except Exception as exc:  # tifffile raises several types for bad files
        raise InputError(path, f"not a readable TIFF image ({exc})") from None
    if data.ndim == 3 and data.shape[-1] in (3, 4) and data.shape[0] > 4:
        data = data[..., :3].mean(axis=-1)  # RGB(A) picture: use the luminance
    return data, None


def read_image(
    path: str | os.PathLike,
    *,
    ndim: int | None = None,
    pixel_size: float | None = None,
    mmap: bool = False,
) -> Image:
    """Read an image, stack or volume.

    Parameters
    ----------
    path
        An MRC-family file (``.mrc .mrcs .rec .st .map .ali``), TIFF or PNG/JPEG.
    ndim
        2 for a micrograph (a single-section MRC is squeezed to 2D), 3 for a
        volume or stack; ``None`` accepts either.
    pixel_size
        Å/px; overrides the header.
    mmap
        Memory-map MRC data instead of reading it (for large volumes). The data
        then keeps the file's dtype; otherwise it is converted to ``float32``.

    Raises
    ------
    InputError
        Unreadable or truncated file, wrong number of dimensions, empty image.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    suffix = path.suffix.lower()
    if suffix in MRC_SUFFIXES:
        data, px = _read_mrc(path, mmap)
    elif suffix in TIFF_SUFFIXES:
        data, px = _read_tiff(path)
    elif suffix in PIL_SUFFIXES:
        data, px = _read_pil(path), None
    else:
        raise InputError(path, f"unsupported image type {suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)}")
    if data.ndim == 3 and data.shape[0] == 1 and ndim != 3:
        data = data[0]
    if ndim is not None and data.ndim != ndim:
        what = {2: "a 2D micrograph", 3: "a 3D volume or stack"}[ndim]
        got = "x".join(str(s) for s in data.shape[::-1])
        raise InputError(path, f"has {data.ndim} dimensions ({got} px), expected {what}")
    if data.ndim not in (2, 3):
        raise InputError(path, f"has {data.ndim} dimensions; expected 2 or 3")
    if min(data.shape) < 1 or data.size == 0:
        raise InputError(path, "image is empty")
    if np.iscomplexobj(data):
        raise InputError(path, "holds complex values; expected a real-space image")
    if not mmap:
        data = np.asarray(data, dtype=np.float32)
    if pixel_size is not None:
        if not (pixel_size > 0 and np.isfinite(pixel_size)):
            raise InputError(None, f"pixel size must be positive, got {pixel_size}")
        px = float(pixel_size)
    return Image(data=data, pixel_size=px, path=path)


def check_finite(image: Image, chunk: int = 16) -> None:
    """Raise :class:`InputError` if the image holds NaN or infinite pixels (streams volumes)."""
    data = image.data
    if np.issubdtype(data.dtype, np.integer):
        return
    if data.ndim == 2:
        bad = ~np.isfinite(data)
        if bad.any():
            y, x = np.argwhere(bad)[0]
            raise InputError(image.path, f"{int(bad.sum())} pixels are NaN or infinite (first at x={x}, y={y})")
        return
    for z0 in range(0, data.shape[0], chunk):
        block = np.asarray(data[z0 : z0 + chunk])
        bad = ~np.isfinite(block)
        if bad.any():
            z, y, x = np.argwhere(bad)[0]
            raise InputError(image.path, f"holds NaN or infinite voxels (first at x={x}, y={y}, z={z0 + z})")


def read_micrograph(path: str | os.PathLike, *, pixel_size: float | None = None) -> Image:
    """Read one 2D micrograph as ``float32`` and check it is finite and not constant."""
    image = read_image(path, ndim=2, pixel_size=pixel_size)
    check_finite(image)
    if float(image.data.max()) == float(image.data.min()):
        raise InputError(image.path, "image is constant (every pixel has the same value)")
    return image


def read_volume(path: str | os.PathLike, *, pixel_size: float | None = None, mmap: bool = True) -> Image:
    """Read a tomogram, tilt series or stack (memory-mapped by default) and check it is finite."""
    image = read_image(path, ndim=3, pixel_size=pixel_size, mmap=mmap)
    check_finite(image)
    return image


def write_mrc(path: str | os.PathLike, data: np.ndarray, pixel_size: float | None = None) -> Path:
    """Write ``data`` (2D or 3D) as ``float32`` MRC with the pixel size in the header, atomically."""
    import mrcfile

    path = Path(path)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim not in (2, 3):
        raise ValueError(f"write_mrc needs a 2D or 3D array, got shape {data.shape}")
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(data)
            if path.suffix.lower() in (".mrcs", ".st"):
                mrc.set_image_stack()
            if pixel_size:
                mrc.voxel_size = float(pixel_size)
            mrc.update_header_stats()
    return path


def write_image(path: str | os.PathLike, data: np.ndarray, pixel_size: float | None = None) -> Path:
    """Write an image by suffix: MRC family, TIFF (float32) or PNG/JPEG (8-bit, min-max scaled)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in MRC_SUFFIXES:
        return write_mrc(path, data, pixel_size)
    data = np.asarray(data)
    with atomic_path(path) as tmp:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            tifffile.imwrite(tmp, data.astype(np.float32))
        elif suffix in PIL_SUFFIXES:
            from PIL import Image as PILImage

            if data.dtype == np.uint16 and suffix == ".png":
                PILImage.fromarray(data).save(tmp, format="PNG")
            else:
                lo, hi = float(np.min(data)), float(np.max(data))
                scaled = np.zeros(data.shape, np.uint8) if hi == lo else ((data - lo) / (hi - lo) * 255).round().astype(np.uint8)
                PILImage.fromarray(scaled).save(tmp, format="PNG" if suffix == ".png" else "JPEG")
        else:
            raise InputError(path, f"cannot write images of type {suffix!r}")
    return path


def read_tilt_angles(path: str | os.PathLike) -> np.ndarray:
    """Read an IMOD ``.tlt`` file: one tilt angle in degrees per line (blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    angles = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            value = float(line.split()[0])
        except ValueError:
            raise InputError(path, f"line {i} is not a tilt angle in degrees: {line!r}") from None
        if not -90.0 <= value <= 90.0:
            raise InputError(path, f"line {i}: tilt angle {value} is outside [-90, 90] degrees")
        angles.append(value)
    if not angles:
        raise InputError(path, "holds no tilt angles")
    return np.asarray(angles, dtype=np.float64)


def write_tilt_angles(path: str | os.PathLike, angles: Sequence[float]) -> Path:
    """Write an IMOD ``.tlt`` file, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{a:.2f}\n" for a in angles))
    return path


def tilt_series_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Tilt series among ``paths``: in a folder that also holds the tomograms (``tomo.mrc`` beside ``tomo.st``,
    as IMOD and the simulator write them) the tilt-series files (.st, .ali, .mrcs); .mrc files where there are
    none of those."""
    try:
        return list_images(paths, suffixes=(".st", ".ali", ".mrcs"))
    except InputError:
        return list_images(paths, suffixes=(".st", ".mrc", ".mrcs", ".ali"))
