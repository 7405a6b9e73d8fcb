"""MIMIC-CXR and MIMIC-IV-ED on disk: file names, columns, value parsers and CSV reading.

The facts of the releases (see `medcap.data.mimic` for the layout). Field
parsers are pure: they raise ValueError and the caller adds the file, line
and field. `read_csv` yields rows with their line numbers (header = line 1).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Any

from medcap.data.base import DataError
from medcap.data.csv_rows import (
    CsvRow as CsvRow,  # re-exported: the mimic modules read through these
)
from medcap.data.csv_rows import csv_columns as csv_columns
from medcap.data.csv_rows import find_csv as find_csv
from medcap.data.csv_rows import read_csv as read_csv
from medcap.data.io import read_text

CXR_METADATA = "mimic-cxr-2.0.0-metadata"
CXR_CHEXPERT = "mimic-cxr-2.0.0-chexpert"
CXR_SPLIT = "mimic-cxr-2.0.0-split"
ED_STAYS = "edstays"
ED_TRIAGE = "triage"
ED_DIAGNOSIS = "diagnosis"

CHEXPERT_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)
#: The labels that make a study abnormal (see the `medcap.data.mimic` docstring).
PATHOLOGY_LABELS: tuple[str, ...] = tuple(
    name for name in CHEXPERT_LABELS if name not in ("No Finding", "Support Devices")
)
#: Paper 001's 5 finding labels (our choice of the 14; `medcap.data.mimic` docstring).
FINDINGS_NAMES: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)

#: Order of `vitals`, as listed in paper 001 section 4.1.
VITAL_NAMES: tuple[str, ...] = ("o2sat", "heartrate", "resprate", "sbp", "dbp", "temperature")
#: Inclusive plausible ranges in MIMIC-IV-ED units (temperature in degF).
VITAL_RANGES: dict[str, tuple[float, float]] = {
    "o2sat": (50.0, 100.0),
    "heartrate": (20.0, 250.0),
    "resprate": (4.0, 60.0),
    "sbp": (50.0, 300.0),
    "dbp": (20.0, 200.0),
    "temperature": (86.0, 113.0),
}
GENDERS: tuple[str, ...] = ("F", "M", "unknown")
RACE_GROUPS: tuple[str, ...] = ("white", "black", "hispanic", "asian", "other", "unknown")
VIEW_PREFERENCE: tuple[str, ...] = ("PA", "AP")
SPLIT_ALIASES = {"train": "train", "validate": "val", "val": "val", "test": "test"}
VARIANTS: tuple[str, ...] = ("balanced_10k", "official")
DEFAULT_SUBSET_SIZES: tuple[int, int, int] = (7000, 2000, 1000)
VITAL_POLICIES = ("drop", "impute")
#: `options["image_format"]`: image file extensions to look for (see the `medcap.data.mimic` docstring).
IMAGE_FORMATS = ("auto", "jpg", "dcm")

OPTION_DEFAULTS: dict[str, Any] = {
    "uncertain_label": 0,
    "labels": FINDINGS_NAMES,
    "invalid_vitals": "drop",
    "subset_sizes": DEFAULT_SUBSET_SIZES,
    "ed_dir": "",
    "reports_dir": "",
    "check_images": "exists",
    "image_format": "auto",
    "mimic_iv_dir": "",
}

METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate", "StudyTime")
CHEXPERT_COLUMNS = ("subject_id", "study_id", *CHEXPERT_LABELS)
SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")
STAYS_COLUMNS = ("subject_id", "stay_id", "intime", "outtime")
#: In edstays from MIMIC-IV-ED 2.0 on; MIMIC-IV-ED 1.0's edstays has neither.
STAYS_DEMOGRAPHICS = ("gender", "race")
MIMIC_IV_PATIENTS = "patients"
MIMIC_IV_ADMISSIONS = "admissions"
#: Where MIMIC-IV keeps patients/admissions: `hosp/` from 2.0 on, `core/` in 0.4 and 1.0.
MIMIC_IV_MODULES = ("hosp", "core")
PATIENTS_COLUMNS = ("subject_id", "gender")
ADMISSIONS_COLUMNS = ("subject_id", "hadm_id", "admittime")
#: The race column of admissions: `race` from MIMIC-IV 2.0 on, `ethnicity` before.
ADMISSIONS_RACE_COLUMNS = ("race", "ethnicity")
TRIAGE_COLUMNS = ("subject_id", "stay_id", *VITAL_NAMES, "acuity", "chiefcomplaint")
DIAGNOSIS_COLUMNS = ("subject_id", "stay_id", "seq_num", "icd_title")

# ---------------------------------------------------------------------------
# Field parsers (pure; raise ValueError, the caller adds file/line/field)

_STUDY_TIME = re.compile(r"^(\d{1,6})(?:\.(\d*))?$")
_STUDY_DATE = re.compile(r"^(\d{8})(?:\.0*)?$")


def parse_study_time(value: str) -> dt.time:
    """MIMIC-CXR StudyTime -> time. The CSV stores HHMMSS.fff as a float, so
    leading zeros are lost: `93041.5` is 09:30:41.5 and `1.234` 00:00:01.234."""
    text = value.strip()
    match = _STUDY_TIME.match(text)
    if not match:
        raise ValueError(f"expected HHMMSS[.fff], got {value!r}")
    digits = match.group(1).zfill(6)
    fraction = (match.group(2) or "")[:6].ljust(6, "0")
    hour, minute, second = int(digits[:2]), int(digits[2:4]), int(digits[4:])
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(
            f"expected HHMMSS[.fff], got {value!r} ({hour:02d}:{minute:02d}:{second:02d} is not a time)"
        )
    return dt.time(hour, minute, second, int(fraction))


def parse_study_date(value: str) -> dt.date:
    """MIMIC-CXR StudyDate `YYYYMMDD` (dates are shifted into 2100-2200)."""
    match = _STUDY_DATE.match(value.strip())
    if not match:
        raise ValueError(f"expected YYYYMMDD, got {value!r}")
    digits = match.group(1)
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError as err:
        raise ValueError(f"expected YYYYMMDD, got {value!r} ({err})") from None


def parse_ed_time(value: str) -> dt.datetime:
    """MIMIC-IV-ED `intime`/`outtime`, e.g. `2180-05-06 19:17:00`."""
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected YYYY-MM-DD HH:MM:SS, got {value!r}") from None


def parse_int_id(value: str) -> int:
    text = value.strip()
    if text.endswith(".0"):  # ids re-saved through a float column
        text = text[:-2]
    if not text.isdigit():
        raise ValueError(f"expected an integer id, got {value!r}")
    return int(text)


def parse_optional_id(value: str) -> int | None:
    """An id column that may be blank (edstays `hadm_id`: no admission)."""
    return parse_int_id(value) if value.strip() else None


def parse_optional_float(value: str) -> float:
    """Blank -> NaN (missing); a number -> float; anything else is an error."""
    text = value.strip()
    if not text:
        return math.nan
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"expected a number or blank, got {value!r}") from None
    if math.isinf(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def parse_chexpert_value(value: str) -> float:
    """CheXpert cell: 1.0 positive, 0.0 negative, -1.0 uncertain, blank -> NaN."""
    number = parse_optional_float(value)
    if not math.isnan(number) and number not in (1.0, 0.0, -1.0):
        raise ValueError(f"expected 1.0, 0.0, -1.0 or blank, got {value!r}")
    return number


def parse_acuity(value: str) -> int | None:
    """ESI triage level 1-5; blank -> None."""
    number = parse_optional_float(value)
    if math.isnan(number):
        return None
    if number != int(number) or not 1 <= number <= 5:
        raise ValueError(f"expected an ESI level 1-5, got {value!r}")
    return int(number)


# ---------------------------------------------------------------------------
# Files


def read_report(path: Path, study_id: int) -> str:
    """A report's UTF-8 text; missing files and bad bytes name the file and line."""
    try:
        return read_text(path)
    except DataError as err:
        record = f"study s{study_id}" + (f", {err.record}" if err.record else "")
        raise DataError(err.message, file=path, record=record, field="report") from None
