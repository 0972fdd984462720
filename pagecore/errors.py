"""Errors that pagecore reports to users as one clear line.

A :class:`PagecoreError` carries what went wrong, where (file and byte offset when known) and
what to do about it. The command line prints ``pagecore: error: <message>`` and exits non-zero;
library callers catch it like any exception.
"""

from __future__ import annotations

import os


class PagecoreError(Exception):
    """Base class of every error pagecore raises on purpose."""

    exit_code = 1


class InputError(PagecoreError, ValueError):
    """Bad input: a file that is missing, unreadable, truncated or of the wrong format.

    Parameters
    ----------
    path : path-like or None
        The offending file.
    problem : str
        What is wrong, in words a user understands.
    offset : int, optional
        Byte offset in the file where the problem was found.
    expected : str, optional
        What pagecore expected to find there.
    hint : str, optional
        What the user can do about it.
    """

    def __init__(self, path, problem, *, offset=None, expected=None, hint=None):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        self.offset = offset
        self.expected = expected
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        parts = []
        where = self.path if self.path is not None else "<input>"
        if self.offset is not None:
            where += f" at byte {self.offset:,} (0x{self.offset:x})"
        parts.append(f"{where}: {self.problem}")
        if self.expected:
            parts.append(f"expected {self.expected}")
        if self.hint:
            parts.append(self.hint)
        return "; ".join(parts)


def not_a_file(path, what: str, hint: str | None = None, where: str = "") -> InputError:
    """The error for an input ``path`` that is not a regular file: "no such <what>" when nothing
    is there, "is a directory, not a <what>" for a directory (it said "no such page table"
    for a directory that plainly exists), "is not a regular file" for a device or a FIFO.
    ``where`` follows the problem (e.g. " (host VM #2)")."""
    if os.path.isdir(path):
        return InputError(path, f"is a directory, not a {what}{where}", hint=f"name a {what} inside it")
    if os.path.lexists(path):
        return InputError(path, f"is not a regular file, so not a {what}{where}", hint=hint)
    return InputError(path, f"no such {what}{where}", hint=hint)


class ConfigError(PagecoreError, ValueError):
    """An invalid configuration value; the message names the key."""
