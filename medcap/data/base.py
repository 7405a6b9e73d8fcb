"""The data contract every dataset reader honours.

A reader turns a raw download (or a synthetic tree in the same format) into
plain example dicts, one per study, split into `train`/`val`/`test`. The
common keys are the same for every dataset, so the pipeline, the models and
the evaluator never know which dataset they are on:

    id            str    unique study / figure id
    patient_id    str    patients never cross splits
    image         str | tuple[str, ...]   path of the frontal view, or of all
                         views where the paper uses several (multi-view)
    report        str    raw report / caption text
    report_clean  str    report after the dataset's cleaning style

and, where the dataset has them:

    vitals           list[float]  NaN-free after cleaning
    gender, race     str
    chief_complaint  str
    icd_title        str
    acuity           int (1-5)
    findings         list[int]    multi-hot, order given by `findings_names`
    findings_names   tuple[str, ...]

Bad input raises `DataError`, which names the file, the record and the field.
Skipping bad records is opt-in (`skip_invalid=True`); skipped records are
returned in `ReadResult.skipped` and counted in every printed summary.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from medcap.errors import DataError as DataError  # defined low, re-exported here

COMMON_KEYS = ("id", "patient_id", "image", "report", "report_clean")
OPTIONAL_KEYS = (
    "vitals",
    "gender",
    "race",
    "chief_complaint",
    "icd_title",
    "acuity",
    "findings",
    "findings_names",
)
SPLIT_NAMES = ("train", "val", "test")

Example = dict[str, Any]


@dataclass
class ReadResult:
    """What a reader returns: examples per split, skipped records, metadata."""

    splits: dict[str, list[Example]]
    #: Records dropped because `skip_invalid=True`; empty otherwise.
    skipped: list[DataError] = field(default_factory=list)
    #: Dataset metadata: findings names, label policy, split scheme, counts of
    #: records filtered by the paper's own rules (not errors), ...
    info: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {name: len(examples) for name, examples in self.splits.items()}

    def summary(self) -> str:
        parts = [f"{name}={n}" for name, n in self.counts().items()]
        line = " ".join(parts)
        if self.skipped:
            line += f" (skipped {len(self.skipped)} invalid records)"
        return line


@dataclass
class CheckReport:
    """Result of validating a download without building anything."""

    dataset: str
    source_dir: str
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[DataError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["problems"] = [p.to_dict() for p in self.problems]
        data["ok"] = self.ok
        return data


class DatasetSource(Protocol):
    """A dataset's reader, validator and synthetic writer, registered by name
    in `medcap.registry.DATASETS`."""

    name: str
    #: Valid `variant` values; the first one is the default.
    variants: tuple[str, ...]

    def read(
        self,
        source_dir: str | Path,
        *,
        variant: str = "",
        split_seed: int = 0,
        skip_invalid: bool = False,
        options: dict[str, Any] | None = None,
    ) -> ReadResult:
        """Reads a download (or synthetic tree) into split example dicts."""
        ...

    def check(self, source_dir: str | Path) -> CheckReport:
        """Reports missing/unreadable files and malformed records; never raises on them."""
        ...

    def synthesize(self, out_dir: str | Path, *, num: int, seed: int, image_size: int = 256) -> Path:
        """Writes a learnable synthetic tree in this dataset's real format
        (square images of `image_size` pixels) and returns the directory to
        pass as `source_dir`."""
        ...


def validate_example(example: Example, *, file: str | Path | None = None) -> None:
    """Checks the common keys of one example; raises DataError naming the field."""
    record = example.get("id", "?")
    for key in COMMON_KEYS:
        if key not in example:
            raise DataError("missing", file=file, record=record, field=key)
    image = example["image"]
    if not (isinstance(image, str) or (isinstance(image, (list, tuple)) and image and all(isinstance(p, str) for p in image))):
        raise DataError(f"expected a path or a list of paths, got {image!r}", file=file, record=record, field="image")
    for key in ("report", "report_clean"):
        if not isinstance(example[key], str):
            raise DataError(f"expected text, got {type(example[key]).__name__}", file=file, record=record, field=key)
