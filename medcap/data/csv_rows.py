"""Reading release CSV files row by row, with the line numbers errors name.

Releases ship their tables as `.csv` or `.csv.gz`, some with quirky headers
(NIH's `Bbox [x,y,w,h]` spans four columns; a trailing comma adds an empty
one). `read_csv` yields each row with its physical line number (the header
is line 1) and only the columns asked for; parsers raise ValueError and
`CsvRow.parse` turns that into a DataError naming the file, line and field.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

from medcap.data.base import DataError
from medcap.data.io import read_text


def find_csv(directory: Path, stem: str) -> Path:
    """`stem.csv` or `stem.csv.gz` in `directory`; DataError naming both when absent."""
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        path = directory / name
        if path.is_file():
            return path
    raise DataError(f"missing file: expected {stem}.csv or {stem}.csv.gz", file=directory / f"{stem}.csv")


@dataclasses.dataclass
class CsvRow:
    path: Path
    line: int
    values: dict[str, str]

    def error(self, field: str, message: str) -> DataError:
        return DataError(message, file=self.path, record=f"line {self.line}", field=field)

    def parse(self, field: str, parser, *args):  # noqa: ANN001, ANN202
        try:
            return parser(self.values[field], *args)
        except ValueError as err:
            raise self.error(field, str(err)) from None


def csv_columns(path: Path) -> list[str]:
    """The header of a `.csv` or `.csv.gz` (read alone, so a reader can tell
    which release's layout a table has before reading its rows)."""
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as handle:
            first = handle.readline()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read the header: {err}", file=path, record="line 1") from None
    try:
        text = first.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise DataError("the header is not UTF-8", file=path, record="line 1") from None
    return [name.strip() for name in next(csv.reader([text]), [])]


def read_csv(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> Iterator[CsvRow]:
    """Rows of a `.csv` or `.csv.gz` with their physical line numbers (the
    header is line 1). Missing columns and non-UTF-8 bytes name the file.
    `optional` columns are in `values` when the header has them."""
    text = read_text(path).removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise DataError("empty file: no header row", file=path, record="line 1")
    header = [name.strip() for name in header]
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; header has {', '.join(header)}",
            file=path,
            record="line 1",
            field=missing[0],
        )
    index = {name: header.index(name) for name in (*required, *optional) if name in header}
    start = reader.line_num + 1
    for cells in reader:
        line, start = start, reader.line_num + 1
        if not cells:
            continue
        if len(cells) != len(header):
            yield CsvRow(path, line, {"__width__": str(len(cells))})
            continue
        yield CsvRow(path, line, {name: cells[i] for name, i in index.items()})
