"""Pictures of an exploration run: the class gallery and the thumbnail atlas the page reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fewpick.outputs import atomic_path

ATLAS_COLUMNS = 64


def _to_uint8(images: np.ndarray, lo: float = -2.5, hi: float = 2.5) -> np.ndarray:
    """Normalised images (zero mean, unit sd, proteins bright) → 8-bit with proteins dark, as EM users see them."""
    return (255 * (1 - np.clip((np.asarray(images, np.float32) - lo) / (hi - lo), 0, 1))).round().astype(np.uint8)


def average_image(images: np.ndarray) -> np.ndarray:
    """The mean of normalised images, scaled to unit spread, as 8-bit (proteins dark): a class average."""
    mean = np.asarray(images, np.float32).mean(0)
    return _to_uint8(mean / max(1e-6, float(mean.std())))


def write_atlas(inputs: np.ndarray, path: str | Path, columns: int = ATLAS_COLUMNS) -> Path:
    """All candidate images in one grayscale PNG, ``columns`` per row in candidate order (tile i at row i // columns)."""
    from PIL import Image as PILImage

    n, s, _ = inputs.shape
    rows = max(1, -(-n // columns))
    atlas = np.full((rows * s, columns * s), 255, np.uint8)
    tiles = _to_uint8(inputs)
    for i in range(n):
        r, c = divmod(i, columns)
        atlas[r * s : (r + 1) * s, c * s : (c + 1) * s] = tiles[i]
    with atomic_path(path) as tmp:
        PILImage.fromarray(atlas).save(tmp, format="PNG")
    return Path(path)


def write_gallery(inputs: np.ndarray, classes: np.ndarray, path: str | Path, samples: int = 8, seed: int = 0,
                  rows_per_block: int = 20) -> Path:
    """One row per class: its average image, then ``samples`` random members; titled with the class size.
    More than ``rows_per_block`` classes are laid out side by side in blocks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.unique(classes)
    blocks = -(-len(labels) // rows_per_block)
    rows = -(-len(labels) // blocks)
    cols = samples + 1
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(rows, blocks * cols, figsize=(1.0 * blocks * cols, 1.1 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for k, c in enumerate(labels):
        block, r = divmod(k, rows)
        row = axes[r, block * cols : (block + 1) * cols]
        members = np.flatnonzero(classes == c)
        row[0].imshow(average_image(inputs[members]), cmap="gray", vmin=0, vmax=255)
        row[0].set_title(f"class {c}: {len(members)}", fontsize=10)
        pick = rng.choice(members, size=min(samples, len(members)), replace=False)
        for ax, i in zip(row[1:], pick):
            ax.imshow(_to_uint8(inputs[i]), cmap="gray", vmin=0, vmax=255)
    fig.suptitle("each class: its average (left) and random members; the class's number of candidates above",
                 fontsize=11)
    fig.tight_layout()
    import io

    from PIL import Image as PILImage

    buf = io.BytesIO()
    fig.savefig(buf, dpi=72, format="png")
    plt.close(fig)
    buf.seek(0)
    with atomic_path(path) as tmp:  # the picture is grey: an 8-bit grey PNG is a third of the RGBA one
        PILImage.open(buf).convert("L").save(tmp, format="PNG", optimize=True)
    return Path(path)
