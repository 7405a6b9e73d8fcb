"""CheXpert (Irvin et al. 2019): reader of train.csv / valid.csv, synthetic writer.

The release (`CheXpert-v1.0` or `CheXpert-v1.0-small`), unpacked:

    <source_dir>/train.csv, valid.csv
    <source_dir>/train/patient00001/study1/view1_frontal.jpg ...
    <source_dir>/valid/patient64541/study1/view1_frontal.jpg ...

`source_dir` is the release folder itself. Both CSVs have the header
`Path,Sex,Age,Frontal/Lateral,AP/PA,` then the 14 observations in
`CHEXPERT_CSV_LABELS` order; `Path` starts with the release folder's name
(`CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg`), so it
is resolved against `source_dir`'s parent, else with its first part dropped
against `source_dir` (a renamed folder). Label cells are `1.0`, `0.0`,
`-1.0` (uncertain) or blank (not mentioned; train.csv only: valid.csv was
labelled by radiologists and has no blanks or uncertain values). `Sex` is
Female / Male / Unknown; `AP/PA` is AP, PA, LL or RL, or blank for some
laterals.

Examples (`medcap.data.findings_labels`): `id` = the path without the
release folder and extension (`train/patient00001/study1/view1_frontal`),
`patient_id` = `patient00001`, `study_id`, `findings` after the
uncertain / blank policies (U-Ignore by default, masked), `view` (AP/PA
value for a frontal image, LATERAL for a lateral), `age`, `gender`.

Splits, ours: `official` (the only variant): test = valid.csv (the
radiologist-labelled set CheXpert's own results are reported on; its hidden
test set is not public), val = `options["val_fraction"]` (0.1) of
train.csv's images, drawn by patient with `split_seed`.

Options: `labels` (default all 14), `views` (default PA and AP: frontal
images; "all" keeps laterals), `uncertain`, `blank`, `val_fraction`,
`check_images`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data import findings_labels as fl
from medcap.data import io as dio
from medcap.data import synthetic
from medcap.data.base import SPLIT_NAMES, CheckReport, DataError, ReadResult
from medcap.data.csv_rows import CsvRow, read_csv
from medcap.data.images import check_image
from medcap.registry import DATASETS

CSV_FILES = {"train": "train.csv", "valid": "valid.csv"}
META_COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")
COLUMNS = (*META_COLUMNS, *fl.CHEXPERT_CSV_LABELS)
SEXES = {"Female": "F", "Male": "M", "Unknown": "unknown"}
RELEASE_FOLDER = "CheXpert-v1.0-small"
VARIANTS = ("official",)
DEFAULT_OPTIONS: dict[str, Any] = {
    "labels": None,
    "views": list(fl.FRONTAL_VIEWS),
    "val_fraction": 0.1,
    "check_images": "exists",
    **fl.DEFAULT_POLICY,
}


def parse_label(value: str) -> float:
    """A label cell: 1.0, 0.0, -1.0, or blank -> NaN."""
    text = value.strip()
    if not text:
        return math.nan
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"expected 1.0, 0.0, -1.0 or blank, got {value!r}") from None
    if number not in (1.0, 0.0, -1.0):
        raise ValueError(f"expected 1.0, 0.0, -1.0 or blank, got {value!r}")
    return number


def resolve_image(source_dir: Path, relative: str) -> Path:
    """The file a `Path` cell names (module docstring)."""
    path = Path(relative)
    direct = source_dir.parent / path
    if direct.is_file() or len(path.parts) < 2:
        return direct
    return source_dir / Path(*path.parts[1:])


class CheXpertSource(fl.SingleImageSource):
    """Reader, validator and synthetic writer of CheXpert (module docstring)."""

    name = "chexpert"
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
        settings = fl.reader_settings(
            self.name,
            source_dir,
            variant=variant,
            variants=VARIANTS,
            options=options,
            defaults=DEFAULT_OPTIONS,
            available_labels=fl.CHEXPERT_CSV_LABELS,
        )
        variant, opts, labels, views, policy = settings.variant, settings.options, settings.labels, settings.views, settings.policy
        source_dir, val_fraction = settings.source_dir, float(settings.options["val_fraction"])
        fail = fl.Failures(skip_invalid)

        info: dict[str, Any] = {
            "dataset": self.name,
            "variant": variant,
            "findings_names": list(labels),
            "check_images": opts["check_images"],
            **fl.policy_info(policy),
            "images_of_other_views": 0,
        }
        rows: dict[str, list[dict[str, Any]]] = {}
        seen: dict[str, str] = {}
        for part, file_name in CSV_FILES.items():
            path = source_dir / file_name
            if not path.is_file():
                raise DataError(f"missing file: expected CheXpert's {file_name}", file=path)
            rows[part] = []
            for row in read_csv(path, COLUMNS):
                try:
                    record = _row(row, source_dir, labels, policy, opts["check_images"])
                    if record["id"] in seen:
                        raise row.error("Path", f"duplicate image (first at {seen[record['id']]})")
                except DataError as err:
                    fail(err)
                    continue
                seen[record["id"]] = f"{file_name} line {row.line}"
                if views is not None and record["view"] not in views:
                    info["images_of_other_views"] += 1
                    continue
                rows[part].append(record)
        splits: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLIT_NAMES}
        splits["test"] = rows["valid"]
        fractions = {"train": 1.0 - val_fraction, "val": val_fraction}
        for record, split in zip(rows["train"], dio.group_split([r["patient_id"] for r in rows["train"]], fractions, split_seed)):
            splits[split].append(record)
        info.update(
            {
                "split": f"test = {CSV_FILES['valid']}; val = {val_fraction:g} of {CSV_FILES['train']} by patient",
                "split_seed": split_seed,
                "label_counts": fl.label_counts(splits, labels),
            }
        )
        truth = source_dir / synthetic.TRUTH_FILE
        if truth.is_file():
            info["truth_file"] = str(truth)
        return ReadResult(splits=splits, skipped=fail.skipped, info=info)

    def check(self, source_dir: str | Path, *, variant: str = "", options: dict[str, Any] | None = None) -> CheckReport:
        return dio.check_by_reading(self, source_dir, variant=variant, options=options, info_counts=("images_of_other_views",))

    def synthesize(self, out_dir: str | Path, *, num: int, seed: int, image_size: int = 256) -> Path:
        return write_synthetic_tree(out_dir, num=num, seed=seed, image_size=image_size)


def _row(row: CsvRow, source_dir: Path, labels: tuple[str, ...], policy: dict[str, str], check_images: str) -> dict[str, Any]:
    if "__width__" in row.values:
        raise row.error("", f"expected as many cells as the header, got {row.values['__width__']}")
    relative = row.values["Path"].strip()
    parts = Path(relative).parts
    patient = next((part for part in parts if part.startswith("patient")), "")
    study = next((part for part in parts if part.startswith("study")), "")
    if not patient or not study:
        raise row.error("Path", f"expected .../patientNNNNN/studyN/viewN_*.jpg, got {relative!r}")
    sex = row.values["Sex"].strip()
    if sex not in SEXES:
        raise row.error("Sex", f"expected {', '.join(SEXES)}, got {sex!r}")
    age_text = row.values["Age"].strip()
    try:
        age = float(age_text) if age_text else math.nan
    except ValueError:
        raise row.error("Age", f"expected a number, got {age_text!r}") from None
    orientation = row.values["Frontal/Lateral"].strip()
    if orientation not in ("Frontal", "Lateral"):
        raise row.error("Frontal/Lateral", f"expected Frontal or Lateral, got {orientation!r}")
    view = "LATERAL" if orientation == "Lateral" else row.values["AP/PA"].strip().upper()
    values = {name: row.parse(name, parse_label) for name in labels}
    image = resolve_image(source_dir, relative)
    check_image(image, check_images, file=row.path, record=f"line {row.line}", field="Path")
    identifier = str(Path(*parts[1:]).with_suffix("")) if len(parts) > 1 else relative
    return {
        "id": identifier,
        "patient_id": patient,
        "study_id": f"{patient}/{study}",
        "image": str(image),
        "report": "",
        "report_clean": "",
        "findings": [fl.target(values[name], policy) for name in labels],
        "findings_names": labels,
        "view": view,
        "age": age,
        "gender": SEXES[sex],
    }


# ---------------------------------------------------------------------------
# Synthetic tree


def _label_cells(present: dict[str, bool], rng: np.random.Generator, *, radiologist: bool) -> dict[str, str]:
    """CheXpert-labeler-like cells (train) or radiologist-like ones (valid:
    every cell 0.0 or 1.0)."""
    cells = dict.fromkeys(fl.CHEXPERT_CSV_LABELS, "0.0" if radiologist else "")
    for name, on in present.items():
        if on:
            cells[name] = "1.0" if radiologist or rng.random() >= 0.15 else "-1.0"
        elif not radiologist and rng.random() < 0.5:
            cells[name] = "0.0"
        elif not radiologist and rng.random() < 0.1:
            cells[name] = "-1.0"
    if any(present[f] for f in ("Consolidation", "Edema", "Atelectasis", "Lung Lesion")):
        cells["Lung Opacity"] = "1.0"
    if not any(present.values()):
        cells["No Finding"] = "1.0"
    if rng.random() < 0.3:
        cells["Support Devices"] = "1.0"
    return cells


def write_synthetic_tree(out_dir: str | Path, *, num: int, seed: int, image_size: int = 256) -> Path:
    """`num` frontal images (and a lateral for a fifth of the studies) in
    CheXpert's layout, JPEG as released; every fifth patient goes to
    valid.csv. `synthetic_truth.json` is keyed by example id."""
    import io

    from PIL import Image

    if num < 10:
        raise ValueError(f"num={num}: need at least ten images")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    header = ",".join(COLUMNS)
    lines = {"train": [header], "valid": [header]}
    truth: dict[str, dict[str, bool]] = {}
    count = 0
    patient = 0
    while count < num:
        patient += 1
        part = "valid" if patient % 5 == 0 else "train"
        patient_name = f"patient{patient if part == 'train' else 64540 + patient:05d}"
        sex = ("Female", "Male")[int(rng.integers(2))]
        age = int(rng.integers(18, 90))
        for study in range(1, int(rng.integers(1, 3)) + 1):
            if count >= num:
                break
            findings = synthetic.sample_findings(rng)
            cells = _label_cells(findings, rng, radiologist=part == "valid")
            views = [("view1_frontal", "Frontal", "PA" if rng.random() < 0.4 else "AP")]
            if rng.random() < 0.2:
                views.append(("view2_lateral", "Lateral", ""))
            for view_name, orientation, position in views:
                relative = f"{part}/{patient_name}/study{study}/{view_name}.jpg"
                pixels = synthetic.draw_radiograph(findings, rng, size=image_size, view=orientation.lower())
                path = out_dir / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
                path.write_bytes(buffer.getvalue())
                labels = ",".join(cells[name] for name in fl.CHEXPERT_CSV_LABELS)
                lines[part].append(f"{RELEASE_FOLDER}/{relative},{sex},{age},{orientation},{position},{labels}")
                truth[str(Path(relative).with_suffix(""))] = findings
            count += 1
    for part, file_name in CSV_FILES.items():
        (out_dir / file_name).write_text("\n".join(lines[part]) + "\n", encoding="utf-8")
    synthetic.write_truth(out_dir, truth, dataset="chexpert", seed=seed)
    return out_dir


CHEXPERT = CheXpertSource()
DATASETS.register("chexpert", CHEXPERT)
