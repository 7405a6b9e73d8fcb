"""Robust readers shared by the dataset modules.

Every failure becomes a `DataError` naming the file, the line or record and
the field, so a user with a broken download learns exactly what to fix:

* `read_text` / `read_json`: UTF-8 text and JSON; a bad byte or a syntax
  error is reported with its line (and column for JSON).
* `iter_jsonl`: one JSON object per line; yields `(line_number, record)` or
  `(line_number, DataError)` so the caller decides between failing and
  skipping (skipping is opt-in everywhere, see `medcap.data.base`).
* `read_csv`: a CSV or CSV.gz with required columns (pandas parses it); a
  missing column names the column and lists the ones found.
* `parse_xml`: an XML document (ElementTree) with UTF-8 and syntax errors
  located by line.
* `check_by_reading`: a `DatasetSource.check` built on the source's reader.
* `group_split`: seeded group-disjoint split (patients, or MediCat papers,
  never cross splits), used by every reader that draws its own split.
"""

from __future__ import annotations

import gzip
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data.base import CheckReport, DataError


def _utf8(data: bytes, path: Path, *, line_offset: int = 0) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1 + line_offset
        bad = data[err.start : err.end].hex(" ")
        raise DataError(f"not valid UTF-8: byte(s) {bad} at byte offset {err.start}", file=path, record=f"line {line}") from None


def read_bytes(path: str | Path) -> bytes:
    """Raw bytes; a missing or unreadable file is a DataError naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except OSError as err:
        raise DataError(f"cannot read: {err.strerror or err}", file=path) from None
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise DataError(f"not a readable gzip file: {err}", file=path) from None
    return data


def read_text(path: str | Path) -> str:
    """UTF-8 text (gunzipped when the name ends in .gz)."""
    return _utf8(read_bytes(path), Path(path))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"malformed JSON at column {err.colno}: {err.msg}", file=path, record=f"line {err.lineno}") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | DataError]]:
    """Yields (1-based line number, object or DataError) for each non-blank line."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                text = _utf8(raw, path, line_offset=number - 1)
                record = json.loads(text)
            except DataError as err:
                yield number, err
                continue
            except json.JSONDecodeError as err:
                yield number, DataError(f"malformed JSON at column {err.colno}: {err.msg}", file=path, record=f"line {number}")
                continue
            if not isinstance(record, dict):
                yield number, DataError(f"expected a JSON object, got {type(record).__name__}", file=path, record=f"line {number}")
                continue
            yield number, record


def read_csv(path: str | Path, required: Sequence[str] = (), **pandas_kwargs: Any):
    """A pandas DataFrame of a .csv or .csv.gz file with `required` columns.

    `pandas_kwargs` go to `pandas.read_csv` (e.g. `dtype=str`). Data rows are
    numbered from line 2 (line 1 is the header) in errors.
    """
    import pandas as pd

    path = Path(path)
    text = read_text(path)
    try:
        frame = pd.read_csv(io.StringIO(text), **pandas_kwargs)
    except pd.errors.EmptyDataError:
        raise DataError("empty CSV file (no header)", file=path) from None
    except pd.errors.ParserError as err:
        raise DataError(f"malformed CSV: {err}".strip(), file=path) from None
    missing = [column for column in required if column not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "(none)"
        raise DataError(
            f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; found: {found}",
            file=path,
            record="line 1 (header)",
            field=missing[0],
        )
    return frame


def parse_xml(path: str | Path) -> ET.Element:
    """The root element of a UTF-8 XML file."""
    path = Path(path)
    text = read_text(path)
    try:
        return ET.fromstring(text)
    except ET.ParseError as err:
        line, column = err.position
        raise DataError(f"malformed XML at column {column}: {err}", file=path, record=f"line {line}") from None


def group_split(
    groups: Sequence[str],
    fractions: dict[str, float],
    seed: int,
) -> list[str]:
    """Assigns each item a split name so that no group crosses splits.

    Groups are shuffled with `seed` (the order depends only on the set of
    group names, not on the order of `groups`) and laid end to end; a group
    goes to the split whose share of the items its midpoint falls in. Split
    sizes are therefore within one group of `fractions` x len(groups).
    """
    total = float(sum(fractions.values()))
    if not fractions or total <= 0 or any(f < 0 for f in fractions.values()):
        raise ValueError(f"fractions must be non-negative with a positive sum, got {fractions}")
    names = list(fractions)
    bounds = np.cumsum([fractions[name] / total for name in names])
    unique, counts = np.unique(np.asarray(groups, dtype=object).astype(str), return_counts=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    n = len(groups)
    assignment: dict[str, str] = {}
    start = 0
    for index in order:
        midpoint = (start + counts[index] / 2) / max(n, 1)
        split = names[min(int(np.searchsorted(bounds, midpoint, side="right")), len(names) - 1)]
        assignment[unique[index]] = split
        start += counts[index]
    return [assignment[str(g)] for g in groups]


def check_by_reading(
    source: Any,
    source_dir: str | Path,
    *,
    variant: str = "",
    options: dict[str, Any] | None = None,
    info_counts: Sequence[str] = (),
) -> CheckReport:
    """A `DatasetSource.check` that runs the reader with every image decoded
    and `skip_invalid=True`, and reports each skipped record as a problem; a
    fatal error (e.g. the main file missing) is the only problem then.
    `info_counts`: keys of the read's `info` (records excluded by a stated
    rule) to list beside the split counts."""
    report = CheckReport(dataset=source.name, source_dir=str(source_dir))
    opts = {"check_images": "decode", **(options or {})}
    try:
        result = source.read(source_dir, variant=variant, skip_invalid=True, options=opts)
    except DataError as err:
        report.problems.append(err)
        return report
    report.counts = {**result.counts(), **{key: result.info[key] for key in info_counts if key in result.info}}
    report.problems.extend(result.skipped)
    return report
