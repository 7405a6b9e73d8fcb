"""A synthetic MIMIC-CXR-JPG + reports + MIMIC-IV-ED tree, written as the releases write theirs.

Learnable: findings drive the pixels, the report text, the CheXpert row, the
vitals, the acuity, the chief complaint and the ICD codes, so every head of
paper 001's model has a signal. Also holds `synthetic_truth.json`.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data.mimic.formats import (
    CHEXPERT_COLUMNS,
    CHEXPERT_LABELS,
    CXR_CHEXPERT,
    CXR_METADATA,
    CXR_SPLIT,
    ED_DIAGNOSIS,
    ED_STAYS,
    ED_TRIAGE,
    FINDINGS_NAMES,
    SPLIT_ALIASES,
    SPLIT_COLUMNS,
    VITAL_NAMES,
)

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


def synthesize_mimic(out_dir: str | Path, *, num: int, seed: int, image_size: int = SYNTH_IMAGE_SIZE, reports: str = "listed") -> Path:
    """Writes `num` synthetic studies as a MIMIC-CXR-JPG + reports + MIMIC-IV-ED tree.

    `reports`: the FINDINGS prose variety (`medcap.data.synthetic.REPORT_VARIETIES`).

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
                prose, impression = write_report_sections(present, rng, reports)
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
