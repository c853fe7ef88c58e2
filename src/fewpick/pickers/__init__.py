"""Pickers. Each turns micrographs into a picks table in original pixel coordinates."""

from fewpick.pickers.classic import (
    ClassicSettings,
    dog_score_map,
    pick_micrograph,
    project_volume,
    template_bank,
    template_score_map,
)

__all__ = ["ClassicSettings", "dog_score_map", "pick_micrograph", "project_volume", "template_bank",
           "template_score_map"]
