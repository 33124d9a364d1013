"""The exception tree of vigil.

Every error that vigil raises on purpose derives from :class:`VigilError`, so a caller
can catch one class. The command-line tool maps them to a one-line message and a
non-zero exit; the service (a later layer) maps them to 4xx answers. Errors from other
libraries are translated at the edge with ``raise ... from exc``.

::

    VigilError
    ├── DataError             input data is unusable
    │   ├── DataFileError     a file is missing, unreadable, or of an unknown format
    │   ├── SchemaError       a column is missing, mistyped, or holds a bad value
    │   └── ImageError        an uploaded image is damaged, too large or no image at all
    │                         (vigil.identity)
    ├── DefinitionError       a feature definition is malformed (unknown kind, bad window, ...)
    ├── ModelError            a model bundle cannot be trained, saved or loaded
    └── ConfigError           a command's options do not fit together
"""

from __future__ import annotations


class VigilError(Exception):
    """Root of every error vigil raises on purpose."""


class DataError(VigilError):
    """Input data cannot be used."""


class DataFileError(DataError):
    """A data file is missing, unreadable or of a format vigil does not read."""


class SchemaError(DataError):
    """A column is missing or mistyped, or a value breaks the schema.

    ``source`` names the file (or table), ``row`` the 1-based data row and ``column``
    the column, where they are known; the message already contains them.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        where = []
        if source:
            where.append(str(source))
        if row is not None:
            where.append(f"row {row}")
        if column:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.source = source
        self.row = row
        self.column = column


class DefinitionError(VigilError):
    """A feature definition or feature set is malformed."""


class ModelError(VigilError):
    """A model cannot be trained, saved or loaded."""


class ConfigError(VigilError):
    """Options or settings that do not fit together."""
