"""Exceptions raised by diffbio.

Every error a user can cause with a file or an argument is a :class:`DiffbioError`; the
command line prints its message (no traceback) and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path


class DiffbioError(Exception):
    """Base class of every error diffbio raises on purpose."""


class FileFormatError(DiffbioError):
    """A malformed or inconsistent input file.

    The message names the file and, where known, the line (1-based) and column.
    """

    def __init__(
        self,
        path: str | Path | None,
        message: str,
        *,
        line: int | None = None,
        column: str | int | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.line = line
        self.column = column
        where = str(self.path) if self.path is not None else "<input>"
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!s}"
        super().__init__(f"{where}: {message}")
        self.detail = message


class ModelError(DiffbioError):
    """A model that cannot be built or used as asked (unknown joint type, bad reference, ...)."""


class ShapeError(DiffbioError, ValueError):
    """A tensor argument whose shape does not follow the documented shape vocabulary."""
