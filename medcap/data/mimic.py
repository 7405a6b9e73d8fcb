"""MIMIC-CXR(-JPG) + reports + MIMIC-IV-ED: reader, join, cleaning, splits, synthetic writer.

The dataset of paper 001 (Aksoy et al., "Enhancing Image-to-Text Generation in
Radiology Reports through Cross-modal Multi-Task Learning", sections 3.1, 3.2
and 4.1): chest radiographs and their reports, joined with the emergency
department stay during which the film was taken, giving 10 non-imaging
features, an acuity target and 5 finding labels.

On-disk layout (the official downloads, unpacked under one `source_dir`):

    files/pNN/p<subject>/s<study>/<dicom_id>.jpg    MIMIC-CXR-JPG images, or
    files/pNN/p<subject>/s<study>/<dicom_id>.dcm    MIMIC-CXR (DICOM release) images
    files/pNN/p<subject>/s<study>.txt                MIMIC-CXR reports
    mimic-cxr-2.0.0-metadata.csv[.gz]                one row per image
    mimic-cxr-2.0.0-chexpert.csv[.gz]                14 CheXpert labels per study
    mimic-cxr-2.0.0-split.csv[.gz]                   official split per image
    ed/edstays.csv[.gz]  ed/triage.csv[.gz]  ed/diagnosis.csv[.gz]   MIMIC-IV-ED

`options["ed_dir"]` / `options["reports_dir"]` point elsewhere when the ED
module or the reports are unpacked apart from the JPG tree.

Demographics and versions (paper 001, 4.1 combines MIMIC-CXR, MIMIC-IV and
MIMIC-IV-ED). `edstays` has `gender` and `race` from MIMIC-IV-ED 2.0 on
(2.0, 2.2); MIMIC-IV-ED 1.0's `edstays` has only subject_id, hadm_id,
stay_id, intime, outtime (MIT-LCP's mimic-code build scripts for 1.0 and
2.0). For 1.0, `options["mimic_iv_dir"]` names the MIMIC-IV directory:
gender then comes from `patients` (every version), race from `admissions`,
whose column is `race` from MIMIC-IV 2.0 on and `ethnicity` in 0.4/1.0;
both tables are in `hosp/` from 2.0 on and in `core/` before (either is
found, plain or gzipped). Only the columns edstays lacks are taken from
MIMIC-IV; `info["demographics_source"]` names each one's source. Without
the option, an edstays without them is an error naming the file.

`options["check_images"]` (`medcap.data.images.IMAGE_CHECKS`): "exists"
(default) or "decode" for each kept study's image; `check()` decodes.
`options["image_format"]` (`IMAGE_FORMATS`): "jpg" or "dcm" reads only that
release's files; "auto" (default) takes each image's .jpg and falls back to
its .dcm, so either release, or a mix, reads without configuration. The
metadata, CheXpert and split CSVs are MIMIC-CXR-JPG's in both cases (they
name images by the dicom_id both releases share; download them alone to
use the DICOM files). DICOM pixels follow `medcap.data.images` (windowed,
MONOCHROME1 inverted, 8-bit).

Every choice below is ours where the paper is silent:

* **Frontal view.** One image per study, ViewPosition `PA` preferred over
  `AP`; among equals the smallest dicom_id. Other positions (LATERAL, LL,
  AP AXIAL, ...) are never used; a study with no PA/AP image is excluded and
  counted (`info["studies_without_frontal"]`).
* **Join (paper 001, 4.1).** A study is kept when the chosen image's
  StudyDate+StudyTime lies inside `[intime, outtime]` (both inclusive) of an
  ED stay of the same subject; if stays overlap, the one with the latest
  intime wins. StudyTime is a float that lost its leading zeros
  (`93041.5` = 09:30:41.5); it is zero-padded to 6 digits before the point.
* **Features (paper 001, 4.1).** The 6 vitals in `VITAL_NAMES` order (o2sat,
  heart rate, respiratory rate, sbp, dbp, temperature) and the triage chief
  complaint come from `triage`; gender and race from `edstays` (or MIMIC-IV,
  above: gender = `patients.gender` of the subject; race = `admissions`
  race/ethnicity of the stay's own admission (edstays `hadm_id`), else of
  the subject's admission whose admittime is nearest the stay's intime;
  none -> unknown, counted in `info["stays_without_mimic_iv_*"]`); the ICD title
  is the stay's primary diagnosis (`seq_num` 1; the smallest seq_num when 1
  is absent; `""` and counted when the stay has no diagnosis row). It is
  coded at the ED stay and can name a target finding ("Pleural effusion,
  not elsewhere classified"); the paper feeds it to the model, and the
  model option `use_icd_title: false` (experiments/mtl_tp_no_icd.py) leaves
  it out to measure that leak.
* **Acuity** is the triage ESI level, 1 = most acute .. 5 = least acute.
  A stay without acuity cannot give a target: the study is excluded and
  counted (`info["missing_acuity"]`).
* **Labels.** `FINDINGS_NAMES` = Atelectasis, Cardiomegaly, Consolidation,
  Edema, Pleural Effusion (the paper says "5 labels" without naming them;
  `options["labels"]` picks others among the 14). CheXpert values: 1 -> 1,
  0 -> 0, blank (not mentioned) -> 0, -1 (uncertain) -> `uncertain_label`
  (0 by default, recorded in info). A study with no CheXpert row is excluded
  and counted.
* **Report.** `report` keeps the FINDINGS and IMPRESSION section bodies,
  stripped, joined by a blank line, without their headers (both are what
  report-generation work on MIMIC-CXR predicts; history/indication/comparison
  are not). Sections follow the facts of MIT-LCP's mimic-cxr section parser
  (txt/section_parser.py), in our own code (`report_sections`): a header is
  an upper-case label at the start of a line followed by a colon; it is
  lower-cased, its spaces collapsed, and mapped through `SECTION_NAMES`
  (MIT-LCP's frequent headers and typo map: `FINDNGS:` -> findings,
  `IMPRESSON:` -> impression, `CONCLUSION:` -> impression, `FINDINGS AND
  IMPRESSION:` -> impression), else named by a `MAIN_SECTIONS` word it
  contains, else, when it describes the study (`STUDY_DESCRIPTIONS`:
  `CHEST, TWO VIEWS:`, `PA AND LATERAL CHEST:`, `PORTABLE AP:`), it opens
  the findings. Ours: any other label (LUNGS:, HEART:, PLEURA:, BONES:,
  MEDIASTINUM:, NOTE: ...) opens no section and stays in the body it is in,
  so the findings keep their subsection labels and text (MIT-LCP opens a
  section at every label); a study-description label met inside the
  findings or impression stays there too. A repeated section keeps its last
  non-empty body (MIT-LCP's rule). MIT-LCP's per-study overrides and its
  last-paragraph fallback are not used: a report with neither section is
  excluded and counted (`studies_without_sections`).
  `report_clean` = `clean_report(report, "mimic_cxr")` (R2Gen's cleaner).
* **Plausible vital ranges** (paper 001, 3.2: "physiologically implausible
  values ... were excluded"), inclusive, in MIMIC-IV-ED's units:
  o2sat 50-100 %, heartrate 20-250 /min, resprate 4-60 /min, sbp 50-300
  mmHg, dbp 20-200 mmHg, temperature 86-113 degF (30-45 degC). A value
  outside its range (e.g. 37.2 typed in degC, 986 for 98.6) is implausible;
  we never guess units. `options["invalid_vitals"]`:
  `"drop"` (default; the paper excludes such data points): a study whose
  vitals are missing or implausible is excluded before splitting;
  `"impute"`: the value is replaced by the train-split median of plausible
  values. Both are counted per vital in info.
* **Scaling** (3.2): min-max on the train split only; `info["scaler"]`
  holds `min`/`max` per vital so a model reuses them. val/test values are not
  clipped, so they may fall outside [0, 1]. A constant vital scales to 0.
  `vitals` holds the scaled values, `vitals_raw` the cleaned unscaled ones.
* **Categoricals** (3.2) are one-hot: `gender_onehot` over `GENDERS`
  (F, M, unknown). The paper counts gender among its "binary variables"
  ("converted to numerical representations"); we keep a third `unknown`
  slot, a departure: captioning from an image alone (`medcap caption`)
  and a subject MIMIC-IV has no gender for need a value that is neither F
  nor M, and a 0/1 input would have to call them one of the two.
  `race_onehot` over `RACE_GROUPS`: MIMIC-IV's race strings grouped by
  their prefix (WHITE*/PORTUGUESE -> white, BLACK* -> black,
  HISPANIC*/SOUTH AMERICAN -> hispanic, ASIAN* -> asian, UNKNOWN / UNABLE
  TO OBTAIN / PATIENT DECLINED TO ANSWER / blank -> unknown, anything else
  (AMERICAN INDIAN, NATIVE HAWAIIAN, MULTIPLE RACE, OTHER, ...) -> other).
  `race` is the group; `race_raw` the original string.
* **Text fields** (3.2): `normalize_text`: lower-case; expand the
  abbreviations in `ABBREVIATIONS` (ours: common ED shorthand, `s/p`, `sob`,
  `cp`, ...); runs of periods become a space; other punctuation becomes a
  space; whitespace collapsed. `chief_complaint_raw` keeps the original.
* **Splits.** `variant="official"`: the split CSV of the chosen image
  (`validate` -> `val`). `variant="balanced_10k"` (paper 001, 4.1; the
  default): 7,000/2,000/1,000 studies (`options["subset_sizes"]`), each
  split half normal, half abnormal. *Normal* = "No Finding" is 1, or none of
  the 12 pathology labels (the 14 minus "No Finding" and "Support Devices",
  a device is not a finding) is positive after the uncertain-label policy.
  Duplicate reports (equal `report_clean`) are removed first, keeping the
  smallest study id. Studies are visited in an order drawn from
  `split_seed`; a patient's first visited study assigns the patient to the
  split (among those still needing that class) with the largest unfilled
  fraction, so patients never cross splits. The pool is every cleaned
  study, whatever its official split. When the pool is too small the sizes
  are scaled by `2 * min(normal, abnormal) / sum(sizes)` (rounded down);
  a split whose class fell short (patient constraints) is trimmed to equal
  classes; `info["subset"]` records requested and actual sizes.

Each excluded study is counted once in `info`, under the first rule it
fails, in this order: no frontal image, outside ED stays, no triage row, no
CheXpert row, no acuity, no FINDINGS/IMPRESSION, missing/implausible vitals.

Errors name the file, the CSV line (header = line 1) and the field;
`skip_invalid=True` skips a bad row or study and returns it in
`ReadResult.skipped`. Whole-file problems (a missing CSV, a missing column,
non-UTF-8 bytes in a CSV) cannot be skipped.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import io
import json
import math
import re
import textwrap
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data.base import CheckReport, DataError, Example, ReadResult
from medcap.data.images import IMAGE_CHECKS, check_image
from medcap.data.io import read_text
from medcap.registry import DATASETS
from medcap.text import clean_report

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
#: The labels that make a study abnormal (see the module docstring).
PATHOLOGY_LABELS: tuple[str, ...] = tuple(
    name for name in CHEXPERT_LABELS if name not in ("No Finding", "Support Devices")
)
#: Paper 001's 5 finding labels (our choice of the 14; module docstring).
FINDINGS_NAMES: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")

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
#: `options["image_format"]`: image file extensions to look for (see the module docstring).
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
        raise ValueError(f"expected HHMMSS[.fff], got {value!r} ({hour:02d}:{minute:02d}:{second:02d} is not a time)")
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


def label_value(raw: float, uncertain_label: int) -> int:
    """CheXpert raw value -> 0/1: blank -> 0, -1 -> `uncertain_label`."""
    if math.isnan(raw):
        return 0
    if raw == -1.0:
        return uncertain_label
    return int(raw)


def race_group(race: str) -> str:
    """MIMIC-IV race string -> one of RACE_GROUPS (grouping in the module docstring)."""
    text = race.strip().upper()
    if not text or text in ("UNKNOWN", "UNABLE TO OBTAIN", "PATIENT DECLINED TO ANSWER"):
        return "unknown"
    if text.startswith("WHITE") or text == "PORTUGUESE":
        return "white"
    if text.startswith("BLACK"):
        return "black"
    if text.startswith("HISPANIC") or text == "SOUTH AMERICAN":
        return "hispanic"
    if text.startswith("ASIAN"):
        return "asian"
    return "other"


def gender_category(gender: str) -> str:
    text = gender.strip().upper()
    return text if text in ("F", "M") else "unknown"


def one_hot(value: str, categories: Sequence[str]) -> list[int]:
    return [int(value == category) for category in categories]


#: Shorthand written with a slash, expanded before punctuation is stripped.
_SLASH_ABBREVIATIONS = (
    (re.compile(r"\bs/p\b"), " status post "),
    (re.compile(r"\bn/v/d\b"), " nausea vomiting diarrhea "),
    (re.compile(r"\bn/v\b"), " nausea vomiting "),
    (re.compile(r"\bc/o\b"), " complains of "),
    (re.compile(r"\br/o\b"), " rule out "),
    (re.compile(r"\bw/o\b"), " without "),
    (re.compile(r"\bw/"), " with "),
)
#: Whole-word ED shorthand (ours; paper 001, 3.2: "replacing shorthand phrases
#: or abbreviations with their full-text equivalents").
ABBREVIATIONS: dict[str, str] = {
    "abd": "abdominal",
    "afib": "atrial fibrillation",
    "ams": "altered mental status",
    "bp": "blood pressure",
    "brbpr": "bright red blood per rectum",
    "chf": "congestive heart failure",
    "cp": "chest pain",
    "doe": "dyspnea on exertion",
    "etoh": "alcohol",
    "fx": "fracture",
    "ha": "headache",
    "htn": "hypertension",
    "lbp": "low back pain",
    "le": "lower extremity",
    "loc": "loss of consciousness",
    "lt": "left",
    "mvc": "motor vehicle collision",
    "nos": "not otherwise specified",
    "pna": "pneumonia",
    "rt": "right",
    "si": "suicidal ideation",
    "sob": "shortness of breath",
    "uti": "urinary tract infection",
}
_PERIOD_RUNS = re.compile(r"\.{2,}")
_NON_WORD = re.compile(r"[^a-z0-9\s]")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Chief complaint / ICD title normalisation (paper 001, 3.2; module docstring)."""
    text = text.lower()
    for pattern, replacement in _SLASH_ABBREVIATIONS:
        text = pattern.sub(replacement, text)
    text = _PERIOD_RUNS.sub(" ", text)
    text = _NON_WORD.sub(" ", text)
    return " ".join(ABBREVIATIONS.get(word, word) for word in text.split())


#: MIMIC-CXR section headers (lower-case, spaces collapsed) -> section name:
#: the frequent headers and the typo map of MIT-LCP's published mimic-cxr
#: section parser (txt/section_parser.py), whose counts over the whole
#: release set the list. Ours: `ndication` maps to indication (MIT-LCP:
#: impression), and `conclusions` is added beside MIT-LCP's `conclusion`.
SECTION_NAMES: dict[str, str] = {
    "impression": "impression",
    "comparison": "comparison",
    "indication": "indication",
    "findings": "findings",
    "examination": "examination",
    "technique": "technique",
    "history": "history",
    "comparisons": "comparison",
    "clinical history": "history",
    "reason for examination": "indication",
    "notification": "notification",
    "reason for exam": "indication",
    "clinical information": "history",
    "exam": "examination",
    "clinical indication": "indication",
    "conclusion": "impression",
    "conclusions": "impression",
    "chest, two views": "findings",
    "recommendation(s)": "recommendations",
    "type of examination": "examination",
    "reference exam": "comparison",
    "patient history": "history",
    "addendum": "addendum",
    "comparison exam": "comparison",
    "date": "date",
    "comment": "comment",
    "findings and impression": "impression",
    "wet read": "wet read",
    "comparison film": "comparison",
    "recommendations": "recommendations",
    "findings/impression": "impression",
    "pfi": "history",
    "recommendation": "recommendations",
    "wetread": "wet read",
    # Misspellings found in the release.
    "ndication": "indication",
    "impresson": "impression",
    "imprression": "impression",
    "imoression": "impression",
    "impressoin": "impression",
    "imprssion": "impression",
    "impresion": "impression",
    "imperssion": "impression",
    "mpression": "impression",
    "impession": "impression",
    "findings/ impression": "impression",
    "finding": "findings",
    "findins": "findings",
    "findindgs": "findings",
    "findgings": "findings",
    "findngs": "findings",
    "findnings": "findings",
    "finidngs": "findings",
    "idication": "indication",
    "reference findings": "findings",
    "comparision": "comparison",
    "comparsion": "comparison",
    "comparrison": "comparison",
    "comparisions": "comparison",
}
#: A header containing one of these words is that section ("PRELIMINARY
#: FINDINGS", "IMPRESSION AND RECOMMENDATIONS"), checked in this order.
MAIN_SECTIONS: tuple[str, ...] = ("impression", "findings", "history", "comparison", "addendum")
#: Headers that describe the study itself ("CHEST, PA AND LATERAL:",
#: "PORTABLE AP CHEST:") introduce the findings.
STUDY_DESCRIPTIONS: tuple[str, ...] = (
    "chest",
    "portable",
    "pa and lateral",
    "lateral and pa",
    "ap and lateral",
    "lateral and ap",
    "frontal and",
    "two views",
    "frontal view",
    "pa view",
    "ap view",
    "one view",
    "lateral view",
    "bone window",
    "frontal upright",
    "frontal semi-upright",
    "ribs",
    "pa and lat",
)
_STUDY_DESCRIPTION = re.compile("|".join(re.escape(words) for words in STUDY_DESCRIPTIONS))
#: An upper-case label at the start of a line, then a colon and whitespace.
_HEADER_CANDIDATE = re.compile(r"^[ \t]*([A-Z][A-Z ()/,&-]*?)[ \t]*:(?=\s|$)", re.MULTILINE)
#: The sections that make up `report`.
REPORT_SECTIONS: tuple[str, ...] = ("findings", "impression")


def section_name(header: str) -> tuple[str, bool] | None:
    """A header's normalised section name and whether only its wording as a
    study description made it one; None when the label is not a section
    header (e.g. LUNGS:, HEART:, a subsection label of the findings)."""
    text = _SPACES.sub(" ", header).strip().lower()
    if text in SECTION_NAMES:
        return SECTION_NAMES[text], False
    for name in MAIN_SECTIONS:
        if name in text:
            return name, False
    if _STUDY_DESCRIPTION.search(text):
        return "findings", True
    return None


def report_sections(text: str) -> dict[str, str]:
    """A MIMIC-CXR report -> {section name: stripped body} (module docstring).

    Only known headers (`section_name`) open a section; any other upper-case
    `LABEL:` stays in the body of the section it is in. Text before the first
    header is `preamble`. A study-description header met inside the findings
    or the impression is a label there, not a new section. When a section occurs more
    than once its last non-empty body wins (MIT-LCP's rule)."""
    starts: list[tuple[int, int, str]] = []
    current = "preamble"
    for match in _HEADER_CANDIDATE.finditer(text):
        named = section_name(match.group(1))
        if named is None:
            continue
        name, description_only = named
        if description_only and current in REPORT_SECTIONS:
            continue
        starts.append((match.start(), match.end(), name))
        current = name
    sections: dict[str, str] = {}
    preamble = text[: starts[0][0] if starts else len(text)].strip()
    if preamble:
        sections["preamble"] = preamble
    for index, (_, body_start, name) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        body = text[body_start:end].strip()
        if body or name not in sections:
            sections[name] = body
    return sections


def extract_report(text: str) -> str | None:
    """FINDINGS and IMPRESSION bodies joined by a blank line; None when the
    report has neither (module docstring)."""
    sections = report_sections(text)
    parts = [sections[name] for name in REPORT_SECTIONS if sections.get(name)]
    return "\n\n".join(parts) if parts else None


# ---------------------------------------------------------------------------
# Files


def find_csv(directory: Path, stem: str) -> Path:
    """`stem.csv` or `stem.csv.gz` in `directory`; DataError naming both when absent."""
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        path = directory / name
        if path.is_file():
            return path
    raise DataError(f"missing file: expected {stem}.csv or {stem}.csv.gz", file=directory / f"{stem}.csv")


def read_report(path: Path, study_id: int) -> str:
    """A report's UTF-8 text; missing files and bad bytes name the file and line."""
    try:
        return read_text(path)
    except DataError as err:
        record = f"study s{study_id}" + (f", {err.record}" if err.record else "")
        raise DataError(err.message, file=path, record=record, field="report") from None


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


# ---------------------------------------------------------------------------
# Reader


@dataclasses.dataclass
class _Errors:
    """Raises record errors, or collects them when skipping is on."""

    skip_invalid: bool
    skipped: list[DataError] = dataclasses.field(default_factory=list)

    def handle(self, error: DataError) -> None:
        if not self.skip_invalid:
            raise error
        self.skipped.append(error)


def _rows(path: Path, required: Sequence[str], errors: _Errors, optional: Sequence[str] = ()) -> Iterator[CsvRow]:
    for row in read_csv(path, required, optional):
        if "__width__" in row.values:
            errors.handle(
                DataError(f"row has {row.values['__width__']} cells, the header has a different count", file=path, record=f"line {row.line}")
            )
            continue
        yield row


@dataclasses.dataclass
class _Image:
    dicom_id: str
    subject_id: int
    study_id: int
    view: str
    when: dt.datetime
    line: int


@dataclasses.dataclass
class _Stay:
    stay_id: int
    intime: dt.datetime
    outtime: dt.datetime
    gender: str
    race: str
    hadm_id: int | None = None


@dataclasses.dataclass
class _Study:
    """One joined study before cleaning."""

    subject_id: int
    study_id: int
    image: _Image
    stay: _Stay
    labels: dict[str, float]
    vitals: list[float]
    acuity: int
    chief_complaint: str
    icd_title: str
    report: str = ""
    report_clean: str = ""
    image_path: str = ""
    normal: bool = False


def _options(options: dict[str, Any] | None) -> dict[str, Any]:
    merged = dict(OPTION_DEFAULTS)
    unknown = sorted(set(options or {}) - set(OPTION_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown mimic option(s) {unknown}; valid: {', '.join(OPTION_DEFAULTS)}")
    merged.update(options or {})
    if merged["uncertain_label"] not in (0, 1):
        raise ValueError(f"options.uncertain_label={merged['uncertain_label']!r}: expected 0 or 1")
    merged["labels"] = tuple(merged["labels"])
    bad = [name for name in merged["labels"] if name not in CHEXPERT_LABELS]
    if bad or not merged["labels"]:
        raise ValueError(f"options.labels: unknown {bad}; valid: {', '.join(CHEXPERT_LABELS)}")
    if merged["invalid_vitals"] not in VITAL_POLICIES:
        raise ValueError(f"options.invalid_vitals={merged['invalid_vitals']!r}: expected one of {', '.join(VITAL_POLICIES)}")
    sizes = tuple(int(s) for s in merged["subset_sizes"])
    if len(sizes) != 3 or min(sizes) < 0 or sum(sizes) == 0:
        raise ValueError(f"options.subset_sizes={merged['subset_sizes']!r}: expected 3 non-negative sizes (train, val, test)")
    merged["subset_sizes"] = sizes
    if merged["check_images"] not in IMAGE_CHECKS:
        raise ValueError(f"options.check_images={merged['check_images']!r}: expected one of {', '.join(IMAGE_CHECKS)}")
    if merged["image_format"] not in IMAGE_FORMATS:
        raise ValueError(f"options.image_format={merged['image_format']!r}: expected one of {', '.join(IMAGE_FORMATS)}")
    return merged


class _Reader:
    def __init__(self, source_dir: Path, options: dict[str, Any], errors: _Errors):
        self.root = source_dir
        self.options = options
        self.errors = errors
        self.ed_dir = Path(options["ed_dir"]) if options["ed_dir"] else source_dir / "ed"
        self.reports_dir = Path(options["reports_dir"]) if options["reports_dir"] else source_dir
        self.info: dict[str, Any] = {}

    def csv_paths(self) -> dict[str, Path]:
        """Every CSV path; a missing one raises (not skippable)."""
        return {
            "metadata": find_csv(self.root, CXR_METADATA),
            "chexpert": find_csv(self.root, CXR_CHEXPERT),
            "split": find_csv(self.root, CXR_SPLIT),
            "edstays": find_csv(self.ed_dir, ED_STAYS),
            "triage": find_csv(self.ed_dir, ED_TRIAGE),
            "diagnosis": find_csv(self.ed_dir, ED_DIAGNOSIS),
        }

    # -- CXR -----------------------------------------------------------------
    def read_metadata(self, path: Path) -> dict[int, list[_Image]]:
        studies: dict[int, list[_Image]] = defaultdict(list)
        for row in _rows(path, METADATA_COLUMNS, self.errors):
            try:
                subject = row.parse("subject_id", parse_int_id)
                study = row.parse("study_id", parse_int_id)
                date = row.parse("StudyDate", parse_study_date)
                time = row.parse("StudyTime", parse_study_time)
                dicom = row.values["dicom_id"].strip()
                if not dicom:
                    raise row.error("dicom_id", "empty")
            except DataError as err:
                self.errors.handle(err)
                continue
            view = row.values["ViewPosition"].strip().upper()
            studies[study].append(_Image(dicom, subject, study, view, dt.datetime.combine(date, time), row.line))
        return studies

    def read_chexpert(self, path: Path) -> dict[int, dict[str, float]]:
        labels: dict[int, dict[str, float]] = {}
        for row in _rows(path, CHEXPERT_COLUMNS, self.errors):
            try:
                study = row.parse("study_id", parse_int_id)
                values = {name: row.parse(name, parse_chexpert_value) for name in CHEXPERT_LABELS}
            except DataError as err:
                self.errors.handle(err)
                continue
            labels[study] = values
        return labels

    def read_split(self, path: Path) -> dict[str, tuple[str, int]]:
        splits: dict[str, tuple[str, int]] = {}
        for row in _rows(path, SPLIT_COLUMNS, self.errors):
            value = row.values["split"].strip().lower()
            if value not in SPLIT_ALIASES:
                self.errors.handle(row.error("split", f"expected train, validate or test, got {row.values['split']!r}"))
                continue
            splits[row.values["dicom_id"].strip()] = (SPLIT_ALIASES[value], row.line)
        return splits

    # -- ED ------------------------------------------------------------------
    def read_stays(self, path: Path) -> dict[int, list[_Stay]]:
        """Stays per subject; gender and race from edstays when it has them
        (MIMIC-IV-ED 2.0+), else from MIMIC-IV (`options["mimic_iv_dir"]`)."""
        columns = csv_columns(path)
        absent = [name for name in STAYS_DEMOGRAPHICS if name not in columns]
        if absent and not self.options["mimic_iv_dir"]:
            raise DataError(
                f"no {' or '.join(absent)} column (MIMIC-IV-ED 1.0's edstays has no demographics; 2.0 and later "
                "have gender and race): set options.mimic_iv_dir to the MIMIC-IV directory holding "
                "hosp/patients.csv.gz and hosp/admissions.csv.gz (core/ in MIMIC-IV 1.0)",
                file=path,
                record="line 1",
                field=absent[0],
            )
        stays: dict[int, list[_Stay]] = defaultdict(list)
        for row in _rows(path, STAYS_COLUMNS, self.errors, optional=("hadm_id", *STAYS_DEMOGRAPHICS)):
            try:
                subject = row.parse("subject_id", parse_int_id)
                stay = row.parse("stay_id", parse_int_id)
                intime = row.parse("intime", parse_ed_time)
                outtime = row.parse("outtime", parse_ed_time)
                if outtime < intime:
                    raise row.error("outtime", f"outtime {outtime} is before intime {intime}")
                hadm = row.parse("hadm_id", parse_optional_id) if "hadm_id" in row.values else None
            except DataError as err:
                self.errors.handle(err)
                continue
            gender, race = (row.values.get(name, "") for name in STAYS_DEMOGRAPHICS)
            stays[subject].append(_Stay(stay, intime, outtime, gender, race, hadm))
        sources = {name: "edstays" for name in STAYS_DEMOGRAPHICS if name not in absent}
        if absent:
            sources.update(self.fill_demographics(stays, absent))
        self.info["demographics_source"] = sources
        return stays

    def mimic_iv_csv(self, stem: str) -> Path:
        """`stem.csv[.gz]` under the MIMIC-IV directory: its `hosp/` (2.0+),
        its `core/` (0.4, 1.0), or the directory itself."""
        root = Path(self.options["mimic_iv_dir"])
        if not root.is_dir():
            raise DataError("options.mimic_iv_dir: the MIMIC-IV directory does not exist", file=root)
        for folder in (*(root / module for module in MIMIC_IV_MODULES), root):
            for name in (f"{stem}.csv", f"{stem}.csv.gz"):
                if (folder / name).is_file():
                    return folder / name
        raise DataError(
            f"missing file: expected hosp/{stem}.csv.gz (MIMIC-IV 2.0+) or core/{stem}.csv.gz (MIMIC-IV 1.0), "
            "plain or gzipped",
            file=root / "hosp" / f"{stem}.csv.gz",
        )

    def fill_demographics(self, stays: dict[int, list[_Stay]], absent: Sequence[str]) -> dict[str, str]:
        """Sets the `absent` demographics of every stay from MIMIC-IV: gender
        from patients, race from admissions (module docstring); returns each
        one's source and counts the stays MIMIC-IV has no value for."""
        sources: dict[str, str] = {}
        if "gender" in absent:
            path = self.mimic_iv_csv(MIMIC_IV_PATIENTS)
            genders: dict[int, str] = {}
            for row in _rows(path, PATIENTS_COLUMNS, self.errors):
                try:
                    genders[row.parse("subject_id", parse_int_id)] = row.values["gender"]
                except DataError as err:
                    self.errors.handle(err)
            missing = 0
            for subject, subject_stays in stays.items():
                missing += len(subject_stays) * (subject not in genders)
                for stay in subject_stays:
                    stay.gender = genders.get(subject, "")
            self.info["stays_without_mimic_iv_gender"] = missing
            sources["gender"] = str(path)
        if "race" in absent:
            path = self.mimic_iv_csv(MIMIC_IV_ADMISSIONS)
            columns = csv_columns(path)
            race_column = next((name for name in ADMISSIONS_RACE_COLUMNS if name in columns), None)
            if race_column is None:
                raise DataError(
                    f"missing column race (MIMIC-IV 2.0+) or ethnicity (MIMIC-IV 1.0); header has {', '.join(columns)}",
                    file=path,
                    record="line 1",
                    field="race",
                )
            admissions: dict[int, list[tuple[int, dt.datetime, str]]] = defaultdict(list)
            for row in _rows(path, (*ADMISSIONS_COLUMNS, race_column), self.errors):
                try:
                    subject = row.parse("subject_id", parse_int_id)
                    hadm = row.parse("hadm_id", parse_int_id)
                    admitted = row.parse("admittime", parse_ed_time)
                except DataError as err:
                    self.errors.handle(err)
                    continue
                admissions[subject].append((hadm, admitted, row.values[race_column]))
            missing = 0
            for subject, subject_stays in stays.items():
                for stay in subject_stays:
                    chosen = admission_for_stay(admissions.get(subject, ()), stay)
                    missing += chosen is None
                    stay.race = "" if chosen is None else chosen[2]
            self.info["stays_without_mimic_iv_race"] = missing
            sources["race"] = f"{path} ({race_column})"
        return sources

    def read_triage(self, path: Path) -> dict[int, tuple[list[float], int | None, str]]:
        triage: dict[int, tuple[list[float], int | None, str]] = {}
        for row in _rows(path, TRIAGE_COLUMNS, self.errors):
            try:
                stay = row.parse("stay_id", parse_int_id)
                vitals = [row.parse(name, parse_optional_float) for name in VITAL_NAMES]
                acuity = row.parse("acuity", parse_acuity)
                if stay in triage:
                    raise row.error("stay_id", f"stay {stay} has a second triage row")
            except DataError as err:
                self.errors.handle(err)
                continue
            triage[stay] = (vitals, acuity, row.values["chiefcomplaint"])
        return triage

    def read_diagnoses(self, path: Path) -> dict[int, str]:
        """stay_id -> the title with the smallest seq_num (1 = primary)."""
        best: dict[int, tuple[int, str]] = {}
        for row in _rows(path, DIAGNOSIS_COLUMNS, self.errors):
            try:
                stay = row.parse("stay_id", parse_int_id)
                seq = row.parse("seq_num", parse_int_id)
            except DataError as err:
                self.errors.handle(err)
                continue
            if stay not in best or seq < best[stay][0]:
                best[stay] = (seq, row.values["icd_title"])
        return {stay: title for stay, (_, title) in best.items()}

    # -- join ------------------------------------------------------------------
    def join(self, paths: dict[str, Path]) -> list[_Study]:
        images = self.read_metadata(paths["metadata"])
        chexpert = self.read_chexpert(paths["chexpert"])
        stays = self.read_stays(paths["edstays"])
        triage = self.read_triage(paths["triage"])
        diagnoses = self.read_diagnoses(paths["diagnosis"])
        counts = {
            "studies_in_metadata": len(images),
            "images_in_metadata": sum(len(v) for v in images.values()),
            "studies_without_frontal": 0,
            "studies_outside_ed_stays": 0,
            "studies_without_triage": 0,
            "studies_without_chexpert": 0,
            "missing_acuity": 0,
            "stays_without_diagnosis": 0,
            "studies_joined": 0,
        }
        joined: list[_Study] = []
        for study_id in sorted(images):
            frontal = select_frontal(images[study_id])
            if frontal is None:
                counts["studies_without_frontal"] += 1
                continue
            stay = find_stay(stays.get(frontal.subject_id, ()), frontal.when)
            if stay is None:
                counts["studies_outside_ed_stays"] += 1
                continue
            if stay.stay_id not in triage:
                counts["studies_without_triage"] += 1
                continue
            vitals, acuity, complaint = triage[stay.stay_id]
            if study_id not in chexpert:
                counts["studies_without_chexpert"] += 1
                continue
            if acuity is None:
                counts["missing_acuity"] += 1
                continue
            if stay.stay_id not in diagnoses:
                counts["stays_without_diagnosis"] += 1
            joined.append(
                _Study(
                    subject_id=frontal.subject_id,
                    study_id=study_id,
                    image=frontal,
                    stay=stay,
                    labels=chexpert[study_id],
                    vitals=list(vitals),
                    acuity=acuity,
                    chief_complaint=complaint,
                    icd_title=diagnoses.get(stay.stay_id, ""),
                )
            )
        counts["studies_joined"] = len(joined)
        self.info.update(counts)
        return joined

    # -- per-study files -------------------------------------------------------
    def attach_files(self, studies: list[_Study]) -> list[_Study]:
        kept = []
        without_sections = 0
        for study in studies:
            folder = f"p{str(study.subject_id)[:2]}/p{study.subject_id}"
            record = f"study s{study.study_id}"
            image = self.image_file(self.root / "files" / folder / f"s{study.study_id}", study.image.dicom_id)
            report_path = self.reports_dir / "files" / folder / f"s{study.study_id}.txt"
            try:
                check_image(image, self.options["check_images"], record=record)
                text = read_report(report_path, study.study_id)
            except DataError as err:
                self.errors.handle(err)
                continue
            report = extract_report(text)
            if report is None:
                without_sections += 1
                continue
            study.image_path = str(image)
            study.report = report
            study.report_clean = clean_report(report, "mimic_cxr")
            kept.append(study)
        self.info["studies_without_sections"] = without_sections
        return kept

    def image_file(self, study_dir: Path, dicom_id: str) -> Path:
        """The image of `dicom_id` per `options["image_format"]`; in "auto" mode
        the .jpg unless only the .dcm exists (a missing image is then reported
        as the .jpg, as for the JPG release)."""
        image_format = self.options["image_format"]
        if image_format != "auto":
            return study_dir / f"{dicom_id}.{image_format}"
        jpg, dcm = study_dir / f"{dicom_id}.jpg", study_dir / f"{dicom_id}.dcm"
        return dcm if not jpg.is_file() and dcm.is_file() else jpg


def admission_for_stay(
    admissions: Sequence[tuple[int, dt.datetime, str]], stay: _Stay
) -> tuple[int, dt.datetime, str] | None:
    """The stay's own admission (edstays `hadm_id`), else the subject's
    admission whose admittime is nearest the stay's intime (ties: smallest
    hadm_id); None when the subject has none."""
    for admission in admissions:
        if stay.hadm_id is not None and admission[0] == stay.hadm_id:
            return admission
    if not admissions:
        return None
    return min(admissions, key=lambda a: (abs((a[1] - stay.intime).total_seconds()), a[0]))


def select_frontal(images: Sequence[_Image]) -> _Image | None:
    """The PA image if any, else the AP image; ties -> smallest dicom_id."""
    for view in VIEW_PREFERENCE:
        candidates = sorted((image for image in images if image.view == view), key=lambda image: image.dicom_id)
        if candidates:
            return candidates[0]
    return None


def find_stay(stays: Sequence[_Stay], when: dt.datetime) -> _Stay | None:
    """The stay with `intime <= when <= outtime` and the latest intime."""
    inside = [stay for stay in stays if stay.intime <= when <= stay.outtime]
    return max(inside, key=lambda stay: (stay.intime, stay.stay_id)) if inside else None


def is_normal(labels: dict[str, float], uncertain_label: int) -> bool:
    """"No Finding" = 1, or no pathology label positive (module docstring)."""
    if labels["No Finding"] == 1.0:
        return True
    return not any(label_value(labels[name], uncertain_label) for name in PATHOLOGY_LABELS)


def implausible(name: str, value: float) -> bool:
    low, high = VITAL_RANGES[name]
    return not low <= value <= high


def _clean_vitals(studies: list[_Study], policy: str, info: dict[str, Any]) -> list[_Study]:
    """Marks missing/implausible values NaN; drops their studies under "drop"."""
    missing = dict.fromkeys(VITAL_NAMES, 0)
    bad = dict.fromkeys(VITAL_NAMES, 0)
    kept = []
    for study in studies:
        clean = True
        for index, name in enumerate(VITAL_NAMES):
            value = study.vitals[index]
            if math.isnan(value):
                missing[name] += 1
                clean = False
            elif implausible(name, value):
                bad[name] += 1
                study.vitals[index] = math.nan
                clean = False
        if clean or policy == "impute":
            kept.append(study)
    info["missing_vitals"] = missing
    info["implausible_vitals"] = bad
    info["studies_dropped_for_vitals"] = len(studies) - len(kept)
    return kept


def balanced_subset(
    studies: list[_Study], sizes: Sequence[int], seed: int, info: dict[str, Any]
) -> dict[str, list[_Study]]:
    """Paper 001's balanced, deduplicated, patient-disjoint subset (module docstring)."""
    unique: list[_Study] = []
    seen: set[str] = set()
    for study in sorted(studies, key=lambda s: s.study_id):
        if study.report_clean in seen:
            continue
        seen.add(study.report_clean)
        unique.append(study)
    available = {True: sum(s.normal for s in unique), False: sum(not s.normal for s in unique)}
    requested = list(sizes)
    scaled = 2 * min(available.values()) < sum(requested)
    if scaled:
        factor = 2 * min(available.values()) / sum(requested)
        sizes = [int(size * factor) for size in requested]
    targets = {
        split: {True: size // 2, False: size - size // 2} for split, size in zip(("train", "val", "test"), sizes)
    }
    chosen: dict[str, dict[bool, list[_Study]]] = {split: {True: [], False: []} for split in targets}
    patient_split: dict[int, str] = {}
    order = np.random.default_rng(seed).permutation(len(unique))

    def unfilled(split: str) -> float:
        total = sum(targets[split].values())
        filled = sum(len(v) for v in chosen[split].values())
        return (total - filled) / total if total else 0.0

    for index in order:
        study = unique[int(index)]
        split = patient_split.get(study.subject_id)
        if split is None:
            open_splits = [s for s in targets if len(chosen[s][study.normal]) < targets[s][study.normal]]
            if not open_splits:
                continue
            split = max(open_splits, key=unfilled)  # ties: first in train, val, test order
            patient_split[study.subject_id] = split
        if len(chosen[split][study.normal]) < targets[split][study.normal]:
            chosen[split][study.normal].append(study)
    result = {}
    for split, classes in chosen.items():
        normal, abnormal = classes[True], classes[False]
        if len(normal) < targets[split][True] or len(abnormal) < targets[split][False]:
            # Patient constraints left a class short: trim to keep the balance.
            n = min(len(normal), len(abnormal))
            normal, abnormal = normal[:n], abnormal[:n]
        result[split] = sorted(normal + abnormal, key=lambda s: s.study_id)
    info["subset"] = {
        "requested_sizes": requested,
        "sizes": [len(result[s]) for s in ("train", "val", "test")],
        "scaled": scaled,
        "pool_after_dedup": len(unique),
        "duplicate_reports_removed": len(studies) - len(unique),
        "available_normal": available[True],
        "available_abnormal": available[False],
        "normal_per_split": {s: sum(x.normal for x in result[s]) for s in result},
    }
    return result


def _official_splits(
    studies: list[_Study], split_of: dict[str, tuple[str, int]], path: Path, errors: _Errors
) -> dict[str, list[_Study]]:
    result: dict[str, list[_Study]] = {"train": [], "val": [], "test": []}
    for study in studies:
        entry = split_of.get(study.image.dicom_id)
        if entry is None:
            errors.handle(
                DataError(f"no split row for dicom_id {study.image.dicom_id}", file=path, record=f"study s{study.study_id}", field="dicom_id")
            )
            continue
        result[entry[0]].append(study)
    return result


def _fit_and_scale(splits: dict[str, list[_Study]], info: dict[str, Any]) -> None:
    """Train-only imputation medians and min-max scaler, applied to all splits."""
    train = splits["train"]
    if not train:
        raise DataError("the train split is empty: cannot fit the vitals scaler")
    medians: list[float] = []
    imputed = dict.fromkeys(VITAL_NAMES, 0)
    for index in range(len(VITAL_NAMES)):
        values = [s.vitals[index] for s in train if not math.isnan(s.vitals[index])]
        medians.append(float(np.median(values)) if values else 0.0)
    for studies in splits.values():
        for study in studies:
            for index, name in enumerate(VITAL_NAMES):
                if math.isnan(study.vitals[index]):
                    study.vitals[index] = medians[index]
                    imputed[name] += 1
    matrix = np.array([s.vitals for s in train], dtype=np.float64)
    low, high = matrix.min(axis=0), matrix.max(axis=0)
    info["imputed_values"] = imputed
    info["impute_medians"] = dict(zip(VITAL_NAMES, medians))
    info["scaler"] = {"names": list(VITAL_NAMES), "min": low.tolist(), "max": high.tolist(), "fit_on": "train"}


def scale_vitals(raw: Sequence[float], scaler: dict[str, Any]) -> list[float]:
    """Min-max scales one vitals vector with `info["scaler"]` (constant -> 0)."""
    out = []
    for value, low, high in zip(raw, scaler["min"], scaler["max"]):
        span = high - low
        out.append(float((value - low) / span) if span > 0 else 0.0)
    return out


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
    (paper 001, sections 3.2 and 4.1; every choice in the module docstring)."""
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


# ---------------------------------------------------------------------------
# Synthetic writer

#: Side length of the synthetic JPEGs (real MIMIC-CXR-JPG films are ~2500 px;
#: models resize anyway).
SYNTH_IMAGE_SIZE = 256
#: Exact shares of synthetic studies that exercise each rule of the reader
#: (disjoint; at least one each once `num >= 20`). The rest are plain
#: studies inside an ED stay with PA+lateral, AP or PA films.
SYNTH_ROLES: dict[str, float] = {
    "outside_stay": 0.15,  # half of them just after an ED stay
    "lateral_only": 0.04,  # no frontal image
    "ap_and_pa": 0.03,  # the PA one must be chosen
    "impression_only": 0.035,
    "no_sections": 0.015,
    "no_chexpert": 0.01,
    "implausible_vital": 0.05,
    "missing_vital": 0.02,
    "missing_acuity": 0.02,
}

_METADATA_HEADER = (
    "dicom_id",
    "subject_id",
    "study_id",
    "PerformedProcedureStepDescription",
    "ViewPosition",
    "Rows",
    "Columns",
    "StudyDate",
    "StudyTime",
    "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
)
_STAYS_HEADER = ("subject_id", "hadm_id", "stay_id", "intime", "outtime", "gender", "race", "arrival_transport", "disposition")
_TRIAGE_HEADER = ("subject_id", "stay_id", "temperature", "heartrate", "resprate", "o2sat", "sbp", "dbp", "pain", "acuity", "chiefcomplaint")
_DIAGNOSIS_HEADER = ("subject_id", "stay_id", "seq_num", "icd_code", "icd_version", "icd_title")
_VIEW_CODES = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral"}
_RACES = (
    ("WHITE", 0.52),
    ("BLACK/AFRICAN AMERICAN", 0.18),
    ("WHITE - OTHER EUROPEAN", 0.04),
    ("HISPANIC/LATINO - PUERTO RICAN", 0.05),
    ("HISPANIC OR LATINO", 0.03),
    ("ASIAN - CHINESE", 0.03),
    ("ASIAN", 0.02),
    ("PORTUGUESE", 0.01),
    ("OTHER", 0.04),
    ("AMERICAN INDIAN/ALASKA NATIVE", 0.01),
    ("UNKNOWN", 0.05),
    ("PATIENT DECLINED TO ANSWER", 0.02),
)
# Most pressing finding first: it picks the chief complaint and primary ICD code.
_PRIORITY = ("Edema", "Pleural Effusion", "Consolidation", "Pneumothorax", "Cardiomegaly", "Atelectasis", "Lung Lesion")
_COMPLAINTS: dict[str, tuple[str, ...]] = {
    "Edema": ("SOB", "Dyspnea", "DYSPNEA", "Shortness of breath", "Leg swelling, SOB", "SOB..."),
    "Pleural Effusion": ("SOB", "Dyspnea", "Chest pain, SOB", "DOE"),
    "Consolidation": ("Cough, Fever", "Fever", "PNA", "FEVER, COUGH", "Cough"),
    "Pneumothorax": ("Chest pain", "CP", "Dyspnea", "s/p MVC"),
    "Cardiomegaly": ("CHF", "Chest pain", "Leg swelling", "SOB"),
    "Atelectasis": ("Cough", "s/p Fall", "Abd pain", "Post-op eval"),
    "Lung Lesion": ("Cough", "Weight loss", "Hemoptysis"),
    "": ("Chest pain", "CP", "s/p Fall", "Abd pain", "Syncope", "Dizziness", "Headache", "N/V", "ETOH", "Fever"),
}
_ICD: dict[str, tuple[tuple[str, int, str], ...]] = {
    "Edema": (("I50.9", 10, "Heart failure, unspecified"), ("J81.0", 10, "Acute pulmonary edema"), ("4280", 9, "CONGESTIVE HEART FAILURE, UNSPECIFIED")),
    "Pleural Effusion": (("J90", 10, "Pleural effusion, not elsewhere classified"), ("5119", 9, "UNSPECIFIED PLEURAL EFFUSION")),
    "Consolidation": (("J18.9", 10, "Pneumonia, unspecified organism"), ("486", 9, "PNEUMONIA,ORGANISM UNSPECIFIED")),
    "Pneumothorax": (("J93.9", 10, "Pneumothorax, unspecified"), ("S27.0XXA", 10, "Traumatic pneumothorax, initial encounter")),
    "Cardiomegaly": (("I51.7", 10, "Cardiomegaly"), ("I10", 10, "Essential (primary) hypertension")),
    "Atelectasis": (("J98.11", 10, "Atelectasis"), ("R05", 10, "Cough")),
    "Lung Lesion": (("R91.1", 10, "Solitary pulmonary nodule"), ("R91.8", 10, "Other nonspecific abnormal finding of lung field")),
    "": (
        ("R07.9", 10, "Chest pain, unspecified"),
        ("R07.89", 10, "Other chest pain"),
        ("78650", 9, "CHEST PAIN NOS"),
        ("R55", 10, "Syncope and collapse"),
        ("R42", 10, "Dizziness and giddiness"),
        ("W19.XXXA", 10, "Unspecified fall, initial encounter"),
    ),
}
_SECONDARY_ICD = (
    ("I10", 10, "Essential (primary) hypertension"),
    ("E78.5", 10, "Hyperlipidemia, unspecified"),
    ("Z87.891", 10, "Personal history of nicotine dependence"),
    ("4019", 9, "HYPERTENSION NOS"),
    ("E11.9", 10, "Type 2 diabetes mellitus without complications"),
)
# Vital-sign model: mean, sd and per-finding shifts (clinically plausible
# directions: fluid and consolidation lower o2sat and raise the rate of breathing).
_VITAL_BASE = {"o2sat": (98.0, 1.2), "heartrate": (82.0, 12.0), "resprate": (17.0, 1.8), "sbp": (134.0, 17.0), "dbp": (78.0, 10.0), "temperature": (98.1, 0.5)}
_VITAL_SHIFT = {
    "Edema": {"o2sat": -4.0, "resprate": 5.0, "heartrate": 8.0, "sbp": 14.0},
    "Pleural Effusion": {"o2sat": -3.0, "resprate": 4.0},
    "Consolidation": {"o2sat": -3.0, "resprate": 3.0, "heartrate": 12.0, "temperature": 2.2},
    "Pneumothorax": {"o2sat": -3.0, "resprate": 4.0, "heartrate": 10.0},
    "Cardiomegaly": {"sbp": 10.0, "heartrate": 4.0},
    "Atelectasis": {"o2sat": -1.5, "resprate": 1.0},
    "Lung Lesion": {},
}
# ESI severity score weights; acuity 1 (most acute) for the highest scores.
_SEVERITY = {"Edema": 1.2, "Pleural Effusion": 1.0, "Consolidation": 1.0, "Pneumothorax": 1.3, "Cardiomegaly": 0.5, "Atelectasis": 0.5, "Lung Lesion": 0.3}
# Values a triage nurse might mistype: degC for degF, a dropped decimal point, zeros.
_IMPLAUSIBLE = {
    "temperature": (37.2, 986.0, 36.8),
    "heartrate": (0.0, 999.0),
    "resprate": (0.0, 99.0),
    "o2sat": (0.0, 970.0),
    "sbp": (0.0, 1200.0),
    "dbp": (0.0, 850.0),
}


def _synth_vitals(present: dict[str, bool], rng: np.random.Generator) -> dict[str, float]:
    vitals = {}
    for name, (mean, sd) in _VITAL_BASE.items():
        shift = sum(_VITAL_SHIFT[f].get(name, 0.0) for f, on in present.items() if on)
        vitals[name] = mean + shift + rng.normal(0.0, sd)
    vitals["o2sat"] = min(100.0, vitals["o2sat"])
    vitals["dbp"] = min(vitals["dbp"], vitals["sbp"] - 20.0)
    rounded = {name: float(round(value)) for name, value in vitals.items() if name != "temperature"}
    rounded["temperature"] = round(vitals["temperature"], 1)
    return rounded


def _synth_acuity(present: dict[str, bool], rng: np.random.Generator) -> int:
    score = sum(_SEVERITY[f] for f, on in present.items() if on) + rng.normal(0.0, 0.4)
    for level, bound in ((5, -0.5), (4, 0.5), (3, 1.3), (2, 2.3)):
        if score < bound:
            return level
    return 1


def _format_number(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{value:.1f}"


def _study_time_text(when: dt.datetime) -> str:
    """StudyTime as MIMIC stores it: a float HHMMSS.fff without leading zeros."""
    value = when.hour * 10000 + when.minute * 100 + when.second + when.microsecond / 1e6
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text


def _wrap(text: str) -> str:
    return "\n ".join(textwrap.wrap(text, width=72))


def _report_file(prose: str | None, impression: str | None, view: str, complaint: str, gender: str) -> str:
    person = {"F": "woman", "M": "man"}.get(gender, "patient")
    technique = "Chest PA and lateral" if view == "PA" else "Portable AP chest radiograph"
    lines = [
        "                                 FINAL REPORT",
        f" EXAMINATION:  CHEST ({'PA AND LAT' if view == 'PA' else 'PORTABLE AP'})",
        " ",
        f" INDICATION:  ___ year old {person} with {complaint.lower()}  // eval",
        " ",
        f" TECHNIQUE:  {technique}",
        " ",
        " COMPARISON:  None.",
        " ",
    ]
    if prose is None and impression is None:
        lines[1:] = [" WET READ: ___ ___ 10:15 AM", "  " + "Preliminary read, see final.", " "]
    if prose is not None:
        lines += [" FINDINGS: ", " ", " " + _wrap(prose), " "]
    if impression is not None:
        lines += [" IMPRESSION: ", " ", " " + _wrap(impression), ""]
    return "\n".join(lines) + "\n"


def _chexpert_row(present: dict[str, bool], rng: np.random.Generator) -> dict[str, str]:
    """CheXpert-labeler-like values: positives (15% uncertain), mentioned
    negatives 0.0 (70%) or blank, plus the derived labels."""
    values: dict[str, str] = dict.fromkeys(CHEXPERT_LABELS, "")
    for name, on in present.items():
        if on:
            values[name] = "-1.0" if rng.random() < 0.15 else "1.0"
        elif rng.random() < 0.7:
            values[name] = "0.0"
    if any(present[f] for f in ("Consolidation", "Edema", "Atelectasis", "Lung Lesion")):
        values["Lung Opacity"] = "1.0"
    if present["Consolidation"]:
        values["Pneumonia"] = "-1.0"
    if not any(present.values()):
        values["No Finding"] = "1.0"
    return values


def _csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    data = _csv_bytes(header, rows)
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)


def _ids(rng: np.random.Generator, count: int, start: int, span: int) -> list[int]:
    """`count` increasing ids in [start, start + span)."""
    step = max(1, span // max(count, 1))
    return (start + np.cumsum(rng.integers(1, step + 1, size=count))).tolist()


def synthesize_mimic(out_dir: str | Path, *, num: int, seed: int, image_size: int = SYNTH_IMAGE_SIZE) -> Path:
    """Writes `num` synthetic studies as a MIMIC-CXR-JPG + reports + MIMIC-IV-ED tree.

    Same layout and CSV columns as the downloads. Images are drawn by
    `medcap.data.synthetic.draw_radiograph` from each study's findings;
    reports paraphrase them; vitals, acuity, chief complaint and primary
    ICD title follow the findings (fluid/consolidation -> lower o2sat, faster
    breathing, more acute ESI level, i.e. a lower number). To exercise the
    reader, exact shares of the studies (`SYNTH_ROLES`) lie outside any ED
    stay, have only a lateral image or both PA and AP, lack report sections
    or a CheXpert row, or carry an implausible / blank vital or no acuity;
    ~10% of normal studies repeat an earlier normal report word for word;
    `chexpert.csv` and `ed/diagnosis.csv` are gzipped.

    `synthetic_truth.json` holds the findings per study (the shared format of
    `medcap.data.synthetic.write_truth`) and, under `"mimic"`, what each
    study should become: frontal dicom, stay, split, vitals, corruptions.
    """
    from PIL import Image

    from medcap.data.synthetic import (
        draw_radiograph,
        sample_findings,
        write_report_sections,
        write_truth,
    )

    if num < 1:
        raise ValueError(f"num={num}: need at least one study")
    rng = np.random.default_rng(seed)
    root = Path(out_dir)
    (root / "ed").mkdir(parents=True, exist_ok=True)

    per_subject: list[int] = []
    while sum(per_subject) < num:
        per_subject.append(int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15])))
    per_subject[-1] -= sum(per_subject) - num
    subjects = _ids(rng, len(per_subject), 10_000_000, 9_000_000)
    study_ids = _ids(rng, num, 50_000_000, 9_000_000)
    stay_ids = _ids(rng, num + len(subjects), 30_000_000, 9_000_000)
    race_names = [name for name, _ in _RACES]
    race_p = np.array([p for _, p in _RACES])
    race_p = race_p / race_p.sum()
    roles = [""] * num
    shuffled = iter(rng.permutation(num).tolist())
    for role, share in SYNTH_ROLES.items():
        for _ in range(max(int(num >= 20), round(share * num))):
            index = next(shuffled, None)
            if index is not None:
                roles[index] = role

    metadata_rows: list[list[Any]] = []
    chexpert_rows: list[list[Any]] = []
    split_rows: list[list[Any]] = []
    stays_rows: list[list[Any]] = []
    triage_rows: list[list[Any]] = []
    diagnosis_rows: list[list[Any]] = []
    truth_findings: dict[str, dict[str, bool]] = {}
    truth_studies: dict[str, dict[str, Any]] = {}
    normal_reports: list[tuple[str, str]] = []
    study_index = 0
    stay_index = 0

    def add_stay(
        subject: int, intime: dt.datetime, outtime: dt.datetime, gender: str, race: str, present: dict[str, bool], role: str = ""
    ) -> tuple[int, dict[str, Any]]:
        nonlocal stay_index
        stay_id = stay_ids[stay_index]
        stay_index += 1
        stays_rows.append([
            subject, "", stay_id, intime.strftime("%Y-%m-%d %H:%M:%S"), outtime.strftime("%Y-%m-%d %H:%M:%S"),
            gender, race, str(rng.choice(["WALK IN", "AMBULANCE", "UNKNOWN"])), str(rng.choice(["HOME", "ADMITTED"])),
        ])
        vitals = _synth_vitals(present, rng)
        acuity: int | None = _synth_acuity(present, rng)
        corruption: dict[str, Any] = {}
        if role == "implausible_vital":
            name = VITAL_NAMES[int(rng.integers(len(VITAL_NAMES)))]
            options = _IMPLAUSIBLE[name]
            vitals[name] = float(options[int(rng.integers(len(options)))])
            corruption = {"kind": "implausible", "vital": name}
        elif role == "missing_vital":
            name = VITAL_NAMES[int(rng.integers(len(VITAL_NAMES)))]
            vitals[name] = math.nan
            corruption = {"kind": "missing", "vital": name}
        elif role == "missing_acuity":
            acuity = None
            corruption = {"kind": "missing", "vital": "acuity"}
        lead = next((f for f in _PRIORITY if present[f]), "")
        if rng.random() < 0.2:
            lead = ""  # complaints are noisy
        complaint = str(rng.choice(_COMPLAINTS[lead]))
        triage_rows.append([
            subject, stay_id,
            *("" if math.isnan(vitals[n]) else _format_number(vitals[n]) for n in ("temperature", "heartrate", "resprate", "o2sat", "sbp", "dbp")),
            str(int(rng.integers(0, 11))), "" if acuity is None else f"{acuity:.1f}", complaint,
        ])
        lead = next((f for f in _PRIORITY if present[f]), "")
        primary = _ICD[lead][int(rng.integers(len(_ICD[lead])))]
        codes = [primary] + [_SECONDARY_ICD[int(i)] for i in rng.choice(len(_SECONDARY_ICD), size=int(rng.integers(0, 3)), replace=False)]
        for seq, (code, version, title) in enumerate(codes, start=1):
            diagnosis_rows.append([subject, stay_id, seq, code, version, title])
        return stay_id, {
            "stay_id": stay_id, "vitals": [None if math.isnan(vitals[n]) else vitals[n] for n in VITAL_NAMES], "acuity": acuity,
            "chief_complaint": complaint, "icd_title": primary[2], "corruption": corruption,
        }

    for subject, count in zip(subjects, per_subject):
        gender = "F" if rng.random() < 0.5 else "M"
        race = str(rng.choice(race_names, p=race_p))
        split = str(rng.choice(["train", "validate", "test"], p=[0.7, 0.15, 0.15]))
        when = dt.datetime(int(rng.integers(2110, 2190)), 1, 1) + dt.timedelta(days=float(rng.uniform(0, 300)))
        if rng.random() < 0.1:  # an ED visit with no film
            visit = when - dt.timedelta(days=400)
            add_stay(subject, visit, visit + dt.timedelta(hours=5), gender, race, dict.fromkeys(FINDINGS_NAMES + ("Lung Lesion", "Pneumothorax"), False))
        for _ in range(count):
            study_id = study_ids[study_index]
            study_index += 1
            when = when + dt.timedelta(days=float(rng.uniform(20, 400)), seconds=float(rng.uniform(0, 86400)))
            when = when.replace(microsecond=int(rng.integers(0, 1000)) * 1000)
            present = sample_findings(rng)
            normal = not any(present.values())

            role = roles[study_index - 1]
            draw = rng.random()
            views = ["PA", "LATERAL"] if draw < 0.6 else ["AP"] if draw < 0.9 else ["PA"]
            if role == "lateral_only":
                views = ["LATERAL"]
            elif role == "ap_and_pa":
                views = ["AP", "PA"]
            dicoms = ["-".join(rng.bytes(4).hex() for _ in range(5)) for _ in views]
            # Written out rather than read from VIEW_PREFERENCE so the truth checks the reader.
            frontal = dicoms[views.index("PA")] if "PA" in views else dicoms[views.index("AP")] if "AP" in views else None

            if normal and normal_reports and rng.random() < 0.1:
                prose, impression = normal_reports[int(rng.integers(len(normal_reports)))]
                duplicate = True
            else:
                prose, impression = write_report_sections(present, rng)
                duplicate = False
                if normal:
                    normal_reports.append((prose, impression))
            sections = "both"
            if role == "impression_only":
                prose, sections = None, "impression"
            elif role == "no_sections":
                prose, impression, sections = None, None, "none"

            inside = role != "outside_stay"
            stay = None
            if inside:
                intime = (when - dt.timedelta(hours=float(rng.uniform(0.3, 5.0)))).replace(second=0, microsecond=0)
                outtime = (when + dt.timedelta(hours=float(rng.uniform(0.5, 8.0)))).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
                _, stay = add_stay(subject, intime, outtime, gender, race, present, role)
            elif rng.random() < 0.5:  # discharged shortly before the film
                outtime = (when - dt.timedelta(hours=float(rng.uniform(0.5, 2.0)))).replace(second=0, microsecond=0)
                add_stay(subject, outtime - dt.timedelta(hours=6), outtime, gender, race, present)

            folder = root / "files" / f"p{str(subject)[:2]}" / f"p{subject}"
            (folder / f"s{study_id}").mkdir(parents=True, exist_ok=True)
            complaint = stay["chief_complaint"] if stay else "chest pain"
            (folder / f"s{study_id}.txt").write_text(
                _report_file(prose, impression, "AP" if views[0] == "AP" else "PA", complaint, gender), encoding="utf-8"
            )
            image_rng = np.random.default_rng([seed, study_id])
            for view, dicom in zip(views, dicoms):
                pixels = draw_radiograph(present, image_rng, image_size, view="lateral" if view == "LATERAL" else "frontal")
                Image.fromarray(pixels).save(folder / f"s{study_id}" / f"{dicom}.jpg", format="JPEG", quality=90)
                metadata_rows.append([
                    dicom, subject, study_id, "CHEST (PA AND LAT)" if "LATERAL" in views else "CHEST (PORTABLE AP)",
                    view, image_size, image_size, when.strftime("%Y%m%d"), _study_time_text(when),
                    "CHEST (PA AND LAT)", _VIEW_CODES[view], "Erect",
                ])
                split_rows.append([dicom, study_id, subject, split])
            has_chexpert = role != "no_chexpert"
            if has_chexpert:
                labels = _chexpert_row(present, rng)
                chexpert_rows.append([subject, study_id, *(labels[name] for name in CHEXPERT_LABELS)])
            truth_findings[f"s{study_id}"] = present
            truth_studies[f"s{study_id}"] = {
                "subject_id": subject,
                "study_id": study_id,
                "role": role,
                "split": SPLIT_ALIASES[split],
                "views": views,
                "frontal_dicom": frontal,
                "study_datetime": when.isoformat(),
                "inside_stay": inside,
                "stay": stay,
                "sections": sections,
                "duplicate_report": duplicate,
                "has_chexpert": has_chexpert,
                "gender": gender,
                "race": race,
            }

    order = rng.permutation(len(diagnosis_rows))  # seq_num 1 is not always the first row
    _write_csv(root / f"{CXR_METADATA}.csv", _METADATA_HEADER, metadata_rows)
    _write_csv(root / f"{CXR_CHEXPERT}.csv.gz", CHEXPERT_COLUMNS, chexpert_rows)
    _write_csv(root / f"{CXR_SPLIT}.csv", SPLIT_COLUMNS, split_rows)
    _write_csv(root / "ed" / f"{ED_STAYS}.csv", _STAYS_HEADER, stays_rows)
    _write_csv(root / "ed" / f"{ED_TRIAGE}.csv", _TRIAGE_HEADER, triage_rows)
    _write_csv(root / "ed" / f"{ED_DIAGNOSIS}.csv.gz", _DIAGNOSIS_HEADER, [diagnosis_rows[int(i)] for i in order])
    truth_path = write_truth(root, truth_findings, dataset="mimic", seed=seed)
    data = json.loads(truth_path.read_text(encoding="utf-8"))
    data["mimic"] = {"image_size": image_size, "studies": truth_studies}
    truth_path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return root


# ---------------------------------------------------------------------------
# Registration


class MimicSource:
    """`DATASETS["mimic"]`: MIMIC-CXR-JPG + reports + MIMIC-IV-ED (paper 001)."""

    name = "mimic"
    variants = VARIANTS

    def read(
        self,
        source_dir: str | Path,
        *,
        variant: str = "",
        split_seed: int = 0,
        skip_invalid: bool = False,
        options: dict[str, Any] | None = None,
    ) -> ReadResult:
        return read_mimic(source_dir, variant=variant, split_seed=split_seed, skip_invalid=skip_invalid, options=options)

    def check(self, source_dir: str | Path) -> CheckReport:
        return check_mimic(source_dir)

    def synthesize(self, out_dir: str | Path, *, num: int, seed: int, image_size: int = SYNTH_IMAGE_SIZE) -> Path:
        return synthesize_mimic(out_dir, num=num, seed=seed, image_size=image_size)


DATASETS.register("mimic", MimicSource())
