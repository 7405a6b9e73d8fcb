"""Cleaning of the non-imaging features (paper 001, 3.2; rules in `medcap.data.mimic`).

CheXpert values under the uncertain-label policy, race groups, gender and
one-hot categories, chief complaint / ICD title text normalisation,
physiologically plausible vital ranges (drop or impute), and min-max
scaling fitted on the train split.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from medcap.data.base import DataError
from medcap.data.mimic.formats import VITAL_NAMES, VITAL_RANGES
from medcap.data.mimic.join import _Study


def label_value(raw: float, uncertain_label: int) -> int:
    """CheXpert raw value -> 0/1: blank -> 0, -1 -> `uncertain_label`."""
    if math.isnan(raw):
        return 0
    if raw == -1.0:
        return uncertain_label
    return int(raw)


def race_group(race: str) -> str:
    """MIMIC-IV race string -> one of RACE_GROUPS (grouping in the `medcap.data.mimic` docstring)."""
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
    """Chief complaint / ICD title normalisation (paper 001, 3.2; `medcap.data.mimic` docstring)."""
    text = text.lower()
    for pattern, replacement in _SLASH_ABBREVIATIONS:
        text = pattern.sub(replacement, text)
    text = _PERIOD_RUNS.sub(" ", text)
    text = _NON_WORD.sub(" ", text)
    return " ".join(ABBREVIATIONS.get(word, word) for word in text.split())

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
