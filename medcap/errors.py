"""The errors a user can fix, shared by the library and the `medcap` CLI.

This module sits at the bottom of the package and imports nothing from it,
so any module may raise these without reaching up to the CLI. The CLI prints
each of `USER_ERRORS` as one line, `medcap: error: ...`, and exits with
status 2; anything else is a bug and keeps its traceback.

* `CommandError`: a command was called in a way that cannot work (a missing
  option, a workdir that is not one).
* `ConfigError`: a config value is invalid; the message names the field
  (`medcap.config` re-exports it).
* `DataError`: malformed input, rendered `file: record: field: message`
  (`medcap.data.base` re-exports it).
* `UnknownNameError`: a registry name that does not exist; the message lists
  the valid ones (`medcap.registry` re-exports it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


class ConfigError(ValueError):
    """A config value is invalid; the message names the field."""


class DataError(ValueError):
    """Malformed input. `str(error)` reads `file: record: field: message`."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        record: str | int | None = None,
        field: str | None = None,
    ):
        self.message = message
        self.file = str(file) if file is not None else None
        self.record = record
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.record is not None:
            where.append(f"record {self.record}" if not isinstance(self.record, str) else self.record)
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return ": ".join(where + [self.message])

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "record": self.record, "field": self.field, "message": self.message}


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the whole message.
        return str(self.args[0])


#: What the CLI reports as one line instead of a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    CommandError,
    ConfigError,
    DataError,
    UnknownNameError,
    FileNotFoundError,
    NotADirectoryError,
)
