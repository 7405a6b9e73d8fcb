"""Findings labels for image classification: label spaces, label policies, views.

The classification readers (`chestxray14`, `chexpert`, `mimic_cxr_labels`,
`labelled_images`, and `iu_xray` with our labeler) all give examples with

    findings        list[int]   one value per name in `findings_names`:
                                1 positive, 0 negative, MASKED (-1) no usable
                                label (excluded from the loss and the metrics)
    findings_names  tuple[str, ...]
    view            str         the view position as the release writes it
                                (PA, AP, LATERAL, ...); "" when it has none

and `report` / `report_clean` = "" when the dataset has no report text.

Label values follow CheXpert's convention wherever a release has one:
1 positive, 0 negative, -1 uncertain, blank not mentioned. Two policies
turn them into targets (Irvin et al. 2019, section 3.2 names the uncertain
ones U-Ignore, U-Zeros, U-Ones):

* `uncertain`: "ignore" (U-Ignore: masked; our default, so the loss never
  learns a guess), "zeros" (U-Zeros), "ones" (U-Ones);
* `blank`: "zeros" (not mentioned = negative, CheXpert's and NIH's reading;
  our default) or "ignore" (masked).

`info["label_counts"]` gives, per split and label, the positives, negatives
and masked values, so a run always says what it learnt from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medcap.errors import ConfigError, DataError

MASKED = -1
UNCERTAIN_POLICIES: dict[str, int] = {"ignore": MASKED, "zeros": 0, "ones": 1}
BLANK_POLICIES: dict[str, int] = {"ignore": MASKED, "zeros": 0}
DEFAULT_POLICY: dict[str, str] = {"uncertain": "ignore", "blank": "zeros"}
#: CheXpert's uncertain-label policy names (Irvin et al. 2019, 3.2).
POLICY_NAMES = {"ignore": "U-Ignore", "zeros": "U-Zeros", "ones": "U-Ones"}

#: NIH ChestX-ray14's 14 labels as `Data_Entry_2017.csv` spells them, in
#: CheXNet's table order (Rajpurkar et al. 2017, Table 1).
CHESTXRAY14_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
#: The first release (ChestX-ray8, Wang et al. 2017) had these eight.
CHESTXRAY8_LABELS: tuple[str, ...] = CHESTXRAY14_LABELS[:8]

#: The 14 CheXpert observations in the column order of CheXpert's train.csv.
CHEXPERT_CSV_LABELS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
#: CheXpert's five competition labels (Irvin et al. 2019, section 5).
CHEXPERT_COMPETITION_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)
FRONTAL_VIEWS: tuple[str, ...] = ("PA", "AP")


def check_policy(options: dict[str, Any], dataset: str) -> dict[str, str]:
    """The `uncertain` / `blank` policies of `options`, validated."""
    policy = {key: str(options.get(key, default)) for key, default in DEFAULT_POLICY.items()}
    if policy["uncertain"] not in UNCERTAIN_POLICIES:
        raise ValueError(
            f"{dataset}: options.uncertain={policy['uncertain']!r}; expected one of {', '.join(UNCERTAIN_POLICIES)}"
        )
    if policy["blank"] not in BLANK_POLICIES:
        raise ValueError(f"{dataset}: options.blank={policy['blank']!r}; expected one of {', '.join(BLANK_POLICIES)}")
    return policy


def target(raw: float, policy: dict[str, str]) -> int:
    """A raw CheXpert-convention value (1, 0, -1, NaN blank) -> 1, 0 or MASKED."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return BLANK_POLICIES[policy["blank"]]
    if raw == 1:
        return 1
    if raw == 0:
        return 0
    if raw == -1:
        return UNCERTAIN_POLICIES[policy["uncertain"]]
    raise ValueError(f"expected 1, 0, -1 or blank, got {raw!r}")


def check_labels(requested: Any, available: Sequence[str], dataset: str) -> tuple[str, ...]:
    """`options["labels"]` (None: all of `available`) as a tuple, each one known."""
    if requested is None:
        return tuple(available)
    names = (requested,) if isinstance(requested, str) else tuple(requested)
    unknown = [name for name in names if name not in available]
    if unknown or not names:
        raise ValueError(f"{dataset}: options.labels: unknown {unknown or names!r}; valid: {', '.join(available)}")
    return names


def check_views(requested: Any, dataset: str) -> tuple[str, ...] | None:
    """`options["views"]`: a list of view positions to keep, or "all" (None)."""
    if requested in ("all", None):
        return None
    views = (requested,) if isinstance(requested, str) else tuple(requested)
    if not views or not all(isinstance(v, str) and v for v in views):
        raise ValueError(f"{dataset}: options.views={requested!r}; expected 'all' or a list such as ['PA', 'AP']")
    return tuple(v.upper() for v in views)


def label_counts(splits: dict[str, list[dict[str, Any]]], names: Sequence[str]) -> dict[str, dict[str, dict[str, int]]]:
    """{split: {label: {"positive", "negative", "masked"}}} over `findings`."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for split, examples in splits.items():
        per_label = {name: {"positive": 0, "negative": 0, "masked": 0} for name in names}
        for example in examples:
            for name, value in zip(names, example["findings"]):
                per_label[name]["positive" if value == 1 else "negative" if value == 0 else "masked"] += 1
        counts[split] = per_label
    return counts


class SingleImageSource:
    """What the findings readers share of the `DatasetSource` protocol: one
    gray image per example, image checks configurable."""

    accepts_check_images = True
    image_channels = 1

    def num_views(self, variant: str = "") -> int:
        return 1


@dataclass
class ReaderSettings:
    """A findings reader's validated arguments (`reader_settings`)."""

    variant: str
    options: dict[str, Any]
    labels: tuple[str, ...]
    views: tuple[str, ...] | None
    policy: dict[str, str]
    source_dir: Path


def reader_settings(
    dataset: str,
    source_dir: str | Path,
    *,
    variant: str,
    variants: Sequence[str],
    options: dict[str, Any] | None,
    defaults: dict[str, Any],
    available_labels: Sequence[str] | None,
) -> ReaderSettings:
    """The checks every findings reader starts with: the variant, unknown
    options, `labels` among `available_labels` (None: checked later, when the
    labels are known), `views`, the label policies, `val_fraction` when
    the reader has one, and the source directory. Raises DataError."""
    variant = variant or variants[0]
    if variant not in variants:
        raise DataError(f"unknown {dataset} variant {variant!r}; valid: {', '.join(variants)}")
    merged = {**defaults, **(options or {})}
    unknown = sorted(set(merged) - set(defaults))
    if unknown:
        raise DataError(f"unknown {dataset} options {unknown}; valid: {', '.join(defaults)}")
    try:
        labels = check_labels(merged["labels"], available_labels, dataset) if available_labels is not None else ()
        views = check_views(merged.get("views", "all"), dataset)
        policy = check_policy(merged, dataset)
    except ValueError as err:
        raise DataError(str(err)) from None
    if "val_fraction" in merged and not 0.0 < float(merged["val_fraction"]) < 1.0:
        raise DataError(f"options.val_fraction={merged['val_fraction']}: expected a fraction in (0, 1)")
    path = Path(source_dir)
    if not path.is_dir():
        raise DataError("source directory not found", file=path)
    return ReaderSettings(variant, merged, labels, views, policy, path)


class Failures:
    """Raises a record's DataError, or with `skip_invalid` keeps it for
    `ReadResult.skipped` (the reader's `fail`)."""

    def __init__(self, skip_invalid: bool):
        self.skip_invalid = skip_invalid
        self.skipped: list[DataError] = []

    def __call__(self, error: DataError) -> None:
        if not self.skip_invalid:
            raise error
        self.skipped.append(error)


def policy_info(policy: dict[str, str]) -> dict[str, Any]:
    """The `info` entries that say which label policies a read applied."""
    return {"policy": {"uncertain": POLICY_NAMES[policy["uncertain"]], "blank": policy["blank"]}, **policy}


def first_view(image: Any) -> str:
    """The image path of an example (the first view of a multi-view one)."""
    return image if isinstance(image, str) else image[0]


def findings_matrix(examples: Sequence[dict[str, Any]], names: Sequence[str]) -> np.ndarray:
    """(n, labels) int targets; every example must carry `findings` over `names`."""
    names = tuple(names)
    rows = []
    for example in examples:
        if "findings" not in example:
            raise ConfigError(
                f"example {example.get('id')!r} has no findings labels: a findings classifier needs a dataset "
                "that gives them (chestxray14, chexpert, mimic_cxr_labels, labelled_images, or iu_xray with "
                "data.options.findings=medcap_labeler)"
            )
        if tuple(example["findings_names"]) != names:
            raise ConfigError(f"example {example.get('id')!r} names its findings {example['findings_names']}, expected {names}")
        rows.append(example["findings"])
    return np.asarray(rows, dtype=np.int64).reshape(-1, len(names))


def multi_hot(present: Iterable[str], names: Sequence[str]) -> list[int]:
    """1 for each name in `present`, 0 otherwise (a release with no uncertainty)."""
    chosen = set(present)
    return [1 if name in chosen else 0 for name in names]
