"""`read_mimic` and `check_mimic`: join, clean, split and emit the common example dicts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medcap.data.base import CheckReport, DataError, Example, ReadResult
from medcap.data.mimic.cleaning import (
    _clean_vitals,
    _fit_and_scale,
    gender_category,
    label_value,
    normalize_text,
    one_hot,
    race_group,
    scale_vitals,
)
from medcap.data.mimic.formats import (
    GENDERS,
    RACE_GROUPS,
    VARIANTS,
    VIEW_PREFERENCE,
    VITAL_NAMES,
    VITAL_RANGES,
)
from medcap.data.mimic.join import _Errors, _options, _Reader, _Study
from medcap.data.mimic.splits import _official_splits, balanced_subset, is_normal


def _example(study: _Study, split: str, labels: Sequence[str], uncertain: int, scaler: dict[str, Any]) -> Example:
    gender = gender_category(study.stay.gender)
    race = race_group(study.stay.race)
    return {
        "id": f"s{study.study_id}",
        "patient_id": f"p{study.subject_id}",
        "image": study.image_path,
        "report": study.report,
        "report_clean": study.report_clean,
        "vitals": scale_vitals(study.vitals, scaler),
        "vitals_raw": [float(v) for v in study.vitals],
        "gender": gender,
        "gender_onehot": one_hot(gender, GENDERS),
        "race": race,
        "race_raw": study.stay.race,
        "race_onehot": one_hot(race, RACE_GROUPS),
        "chief_complaint": normalize_text(study.chief_complaint),
        "chief_complaint_raw": study.chief_complaint,
        "icd_title": normalize_text(study.icd_title),
        "acuity": study.acuity,
        "findings": [label_value(study.labels[name], uncertain) for name in labels],
        "findings_names": tuple(labels),
        "normal": study.normal,
        "split": split,
        "study_id": study.study_id,
        "subject_id": study.subject_id,
        "stay_id": study.stay.stay_id,
        "dicom_id": study.image.dicom_id,
        "view_position": study.image.view,
        "study_datetime": study.image.when.isoformat(),
    }


def read_mimic(
    source_dir: str | Path,
    *,
    variant: str = "",
    split_seed: int = 0,
    skip_invalid: bool = False,
    options: dict[str, Any] | None = None,
) -> ReadResult:
    """Reads MIMIC-CXR(-JPG) + reports + MIMIC-IV-ED into split example dicts
    (paper 001, sections 3.2 and 4.1; every choice in the `medcap.data.mimic` docstring)."""
    variant = variant or VARIANTS[0]
    if variant not in VARIANTS:
        raise ValueError(f"unknown mimic variant {variant!r}; valid: {', '.join(VARIANTS)}")
    opts = _options(options)
    root = Path(source_dir)
    if not root.is_dir():
        raise DataError("source directory does not exist", file=root)
    errors = _Errors(skip_invalid)
    reader = _Reader(root, opts, errors)
    paths = reader.csv_paths()
    studies = reader.attach_files(reader.join(paths))
    info = reader.info
    uncertain = int(opts["uncertain_label"])
    for study in studies:
        study.normal = is_normal(study.labels, uncertain)
    studies = _clean_vitals(studies, opts["invalid_vitals"], info)
    if variant == "official":
        split_of = reader.read_split(paths["split"])
        splits = _official_splits(studies, split_of, paths["split"], errors)
    else:
        splits = balanced_subset(studies, opts["subset_sizes"], split_seed, info)
    _fit_and_scale(splits, info)
    labels = opts["labels"]
    result = {
        split: [_example(study, split, labels, uncertain, info["scaler"]) for study in studies_]
        for split, studies_ in splits.items()
    }
    info.update(
        {
            "dataset": "mimic",
            "variant": variant,
            "split_seed": split_seed,
            "findings_names": list(labels),
            "uncertain_label": uncertain,
            "blank_label": 0,
            "invalid_vitals": opts["invalid_vitals"],
            "vital_names": list(VITAL_NAMES),
            "vital_ranges": {k: list(v) for k, v in VITAL_RANGES.items()},
            "vital_units": {"o2sat": "%", "heartrate": "/min", "resprate": "/min", "sbp": "mmHg", "dbp": "mmHg", "temperature": "degF"},
            "gender_categories": list(GENDERS),
            "race_categories": list(RACE_GROUPS),
            "view_preference": list(VIEW_PREFERENCE),
            "skipped": len(errors.skipped),
        }
    )
    return ReadResult(splits=result, skipped=errors.skipped, info=info)


def check_mimic(source_dir: str | Path) -> CheckReport:
    """Validates a download without raising: every skippable problem, with
    every joined study's image decoded; file-level problems stop the check."""
    report = CheckReport(dataset="mimic", source_dir=str(source_dir))
    root = Path(source_dir)
    if not root.is_dir():
        report.problems.append(DataError("source directory does not exist", file=root))
        return report
    reader = _Reader(root, _options(None), _Errors(True))
    try:
        paths = reader.csv_paths()
    except DataError as err:
        report.problems.append(err)
        return report
    try:
        result = read_mimic(root, variant="official", skip_invalid=True, options={"check_images": "decode"})
    except DataError as err:
        report.problems.append(err)
        return report
    report.problems.extend(result.skipped)
    filters = [key for key in result.info if key.startswith(("studies_", "images_", "stays_", "missing_acuity"))]
    report.counts = {**result.counts(), **{key: result.info[key] for key in filters}}
    report.counts["csv_files"] = len(paths)
    report.counts["skipped"] = len(result.skipped)
    return report
