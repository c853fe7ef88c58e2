"""``python -m fewpick.cli``: the command line."""

from fewpick.cli import main

main()
