"""The ``fewpick`` command line: a thin Typer layer over the library, one module per verb group.

Each verb parses its options and calls library functions with the same defaults. Errors the user can act on print
one line, ``error: <file>: <problem>``, and exit 2 (:func:`~fewpick.cli.common.handle_errors`).
"""

from fewpick.allocator import keep_freed_memory
from fewpick.cli.common import app

# The verb groups register their commands on ``app`` when imported, in the order --help lists them.
# isort: off
from fewpick.cli import simulate, pick, train, evaluate, convert, overlay, label  # noqa: F401, E402
from fewpick.cli import fewshot, explore, tomo, copick  # noqa: F401, E402
# isort: on


def main() -> None:
    """Console-script entry point."""
    keep_freed_memory()
    app(prog_name="fewpick")


__all__ = ["app", "main"]
