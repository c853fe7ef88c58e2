"""Pickers. Each turns micrographs (or tomograms) into a picks table in original pixel coordinates, through
the contract of :mod:`fewpick.pickers.base` (score map, peaks, picks)."""

from fewpick.ops.filters import dog_score_map
from fewpick.ops.templates import project_volume, template_bank, template_score_map
from fewpick.pickers.base import Picker, PickerBase, ScoreMap, picks_table
from fewpick.pickers.classic import ClassicPicker, ClassicSettings, pick_micrograph


def load_picker(path, device="auto") -> Picker:
    """Any trained model file (of any picker in :mod:`~fewpick.pickers.registry`) as a :class:`Picker`, on
    ``device``."""
    from fewpick.pickers import registry

    return registry.load(path, device)


__all__ = ["ClassicPicker", "ClassicSettings", "Picker", "PickerBase", "ScoreMap", "dog_score_map", "load_picker",
           "pick_micrograph", "picks_table", "project_volume", "template_bank", "template_score_map"]
