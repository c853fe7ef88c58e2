"""Which pickers exist and how a model file is opened: one table from the kind a model file declares to the
module that reads it.

A new picker is one module (or package) with ``load_model(path, device)`` and ``model_summary(model)`` and one
:func:`register` call, here in :data:`BUILT_IN` or from outside; ``fewpick pick``, :func:`load_picker` and the
labelling page look pickers up here. Modules are imported only when a model of theirs is opened, so that listing
the pickers does not load PyTorch.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType

from fewpick.errors import InputError
from fewpick.registry import Registry


@dataclass(frozen=True)
class PickerKind:
    """A trainable picker: its ``name``, the ``model_format`` its files declare, the ``module`` that loads them
    (``load_model``, ``model_summary``), what it is in words, and whether it picks tomograms (``volumes``)."""

    name: str
    model_format: str
    module: str
    description: str
    volumes: bool = False

    def load_module(self) -> ModuleType:
        return importlib.import_module(self.module)


BUILT_IN = (
    PickerKind("pu", "fewpick-pu-model", "fewpick.pickers.pu", "PU picker (positive-unlabeled CNN)"),
    PickerKind("fewshot", "fewpick-fewshot-model", "fewpick.pickers.fewshot", "few-shot picker (masked autoencoder)"),
    PickerKind("tomo", "fewpick-tomo-model", "fewpick.pickers.tomo", "tomogram localization", volumes=True),
)
KINDS: Registry[PickerKind] = Registry("picker", lambda k: k.name, lambda k: (k.name, k.model_format), BUILT_IN)


def register(kind: PickerKind) -> PickerKind:
    """Make a picker known by its name and its model files' format; a name or format already taken is refused."""
    return KINDS.register(kind)


def unregister(name: str) -> None:
    """Forget a registered picker (the built-in ones stay)."""
    KINDS.unregister(name)


def kinds() -> list[PickerKind]:
    return KINDS.entries()


def get(name: str) -> PickerKind:
    return KINDS[name]


def kind_of(path: str | os.PathLike) -> PickerKind | None:
    """The picker whose model ``path`` is (by the format it declares), or None: not a fewpick model file, or one of
    a picker this fewpick does not know."""
    from fewpick import modelfile

    fmt = modelfile.format_of(path)
    return next((k for k in KINDS.entries() if k.model_format == fmt), None)


def load(path: str | os.PathLike, device="auto", *, default: str | None = "pu"):
    """Open any registered picker's model file on ``device``. A file of no known kind goes to ``default``'s loader,
    whose error names the file and says what is wrong with it (None: a plain error here)."""
    kind = kind_of(path)
    if kind is None:
        if default is None:
            raise InputError(path, "not a fewpick model file")
        kind = get(default)
    return kind.load_module().load_model(path, device)


def summary(model, kind: PickerKind) -> str:
    """The one-line description of a trained model that its picker gives."""
    return kind.load_module().model_summary(model)
