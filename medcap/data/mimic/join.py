"""The join of MIMIC-CXR studies with MIMIC-IV-ED stays (paper 001, 4.1).

`_Reader` reads the CSVs and reports, picks each study's frontal image,
finds the ED stay whose interval holds the study time, attaches triage,
diagnosis, demographics (edstays, or MIMIC-IV patients/admissions) and
CheXpert labels, and counts every exclusion under the first rule it fails
(rules in `medcap.data.mimic`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from medcap.data.base import DataError
from medcap.data.images import IMAGE_CHECKS, check_image
from medcap.data.mimic.formats import (
    ADMISSIONS_COLUMNS,
    ADMISSIONS_RACE_COLUMNS,
    CHEXPERT_COLUMNS,
    CHEXPERT_LABELS,
    CXR_CHEXPERT,
    CXR_METADATA,
    CXR_SPLIT,
    DIAGNOSIS_COLUMNS,
    ED_DIAGNOSIS,
    ED_STAYS,
    ED_TRIAGE,
    IMAGE_FORMATS,
    METADATA_COLUMNS,
    MIMIC_IV_ADMISSIONS,
    MIMIC_IV_MODULES,
    MIMIC_IV_PATIENTS,
    OPTION_DEFAULTS,
    PATIENTS_COLUMNS,
    SPLIT_ALIASES,
    SPLIT_COLUMNS,
    STAYS_COLUMNS,
    STAYS_DEMOGRAPHICS,
    TRIAGE_COLUMNS,
    VIEW_PREFERENCE,
    VITAL_NAMES,
    VITAL_POLICIES,
    CsvRow,
    csv_columns,
    find_csv,
    parse_acuity,
    parse_chexpert_value,
    parse_ed_time,
    parse_int_id,
    parse_optional_float,
    parse_optional_id,
    parse_study_date,
    parse_study_time,
    read_csv,
    read_report,
)
from medcap.data.mimic.sections import extract_report
from medcap.text import clean_report

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
        from patients, race from admissions (`medcap.data.mimic` docstring); returns each
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
