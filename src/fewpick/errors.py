"""Exceptions that carry one clear sentence for the user.

The command line turns every :class:`FewpickError` into ``error: <message>`` on
stderr and exit status 2, never a traceback from deep inside the code.
"""

from __future__ import annotations

import os


class FewpickError(Exception):
    """An error the user can act on; its message is shown as it is."""


class InputError(FewpickError, ValueError):
    """A file or value given by the user is unreadable or inconsistent.

    Parameters
    ----------
    path
        The offending file (or ``None`` for a plain value).
    problem
        What is wrong with it, as a sentence fragment.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)

    def __reduce__(self):  # so that the error crosses process boundaries (Dask workers) intact
        return (type(self), (self.path, self.problem))


class FewpickWarning(UserWarning):
    """Something the user should know that does not stop the work (e.g. labels dropped); the command line shows
    it as one line, ``warning: <message>``."""


def first_line(exc: BaseException, limit: int = 120) -> str:
    """The first line of an exception's message, for a one-line report (its type's name when the message is
    empty: an empty file raises a bare ``EOFError``)."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else ("the file is empty" if isinstance(exc, EOFError) else type(exc).__name__)
