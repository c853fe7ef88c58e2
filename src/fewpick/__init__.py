"""fewpick: particle picking for cryo-EM micrographs and tomograms from very few labels."""

__version__ = "0.1.0"

from fewpick.errors import FewpickError, InputError

__all__ = ["__version__", "FewpickError", "InputError"]
