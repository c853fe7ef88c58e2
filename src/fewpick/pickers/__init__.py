"""Pickers. Each turns micrographs (or tomograms) into a picks table in original pixel coordinates, through
the contract of :mod:`fewpick.pickers.base` (score map, peaks, picks)."""

from fewpick.ops.filters import dog_score_map
from fewpick.ops.templates import project_volume, template_bank, template_score_map
from fewpick.pickers.base import Picker, PickerBase, ScoreMap, picks_table
from fewpick.pickers.classic import ClassicPicker, ClassicSettings, pick_micrograph


def load_picker(path, device="auto") -> Picker:
    """Any trained model file (PU, few-shot or tomogram) as a :class:`Picker`, on ``device``."""
    from fewpick import modelfile
    from fewpick.pickers import fewshot, pu, tomo

    fmt = modelfile.format_of(path)
    for module in (pu, fewshot, tomo):
        if fmt == module.MODEL_FORMAT:
            return module.load_model(path, device)
    return pu.load_model(path, device)  # its errors name the file and say what is wrong with it


__all__ = ["ClassicPicker", "ClassicSettings", "Picker", "PickerBase", "ScoreMap", "dog_score_map", "load_picker",
           "pick_micrograph", "picks_table", "project_volume", "template_bank", "template_score_map"]
