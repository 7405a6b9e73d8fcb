"""NIH ChestX-ray14: reader, bounding boxes, official split, synthetic writer.

The release (Wang et al. 2017; the NIH box download or Kaggle's copy),
unpacked under one `source_dir`:

    Data_Entry_2017_v2020.csv or Data_Entry_2017.csv[.gz]   one row per image
    train_val_list.txt, test_list.txt      the official split, one name a line
    BBox_List_2017.csv                     (optional) 984 boxes on 880 images
    images/<Image Index>                   NIH's archives unpacked, or
    images_001/images/<Image Index> ...    Kaggle's twelve folders

Facts of the files, as released:

* `Data_Entry_2017.csv`'s header is `Image Index,Finding Labels,Follow-up #,
  Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,
  Height],OriginalImagePixelSpacing[x,y],`: the bracketed names hold commas,
  so they span two columns each, and a trailing comma adds an empty twelfth
  column (v2020 comes without it). Columns are therefore read by name only
  for the first seven.
* `Finding Labels` is `|`-separated, or exactly `No Finding`; 14 labels,
  spelt as in `CHESTXRAY14_LABELS` (`Pleural_Thickening` with an
  underscore).
* `Patient Age` is `058Y` / `011M` / `001D` in the 2017 file and a plain
  number of years in the Kaggle / v2020 copies. We read both into years
  (`age`, float); a value above `MAX_AGE` (the release has 148-155 and
  411-414) is NaN and counted in `info["implausible_ages"]`, never an error.
* `BBox_List_2017.csv`'s header is `Image Index,Finding Label,Bbox [x,y,w,h],,,`
  (nine cells, read by position); x, y = top-left corner, w, h = size, in
  the pixels of the 1024 x 1024 PNG; labels are the ChestX-ray8 eight, with
  `Infiltrate` for Data_Entry's `Infiltration` (mapped). Every boxed image is
  in the official test list.

Examples (`medcap.data.findings_labels` for the common keys): `id` = Image
Index, `patient_id`, `image`, `findings` over `options["labels"]` (default
all 14; the release has no uncertain or blank values), `view`, `age`,
`gender`, `follow_up`, and `boxes`: a list of `{"finding", "x", "y", "w",
"h"}` in the image's pixels (empty for most images). `report` and
`report_clean` are "" (the release has no reports).

Variants (splits):

* `official` (default): test = `test_list.txt`; train and val from
  `train_val_list.txt`, split by patient with `split_seed` so that
  `options["val_fraction"]` (0.1, ours) of its images are val. An image in
  both lists, or listed but not in the Data_Entry file, is an error; an
  entry in neither list is excluded and counted
  (`info["images_not_in_split_lists"]`).
* `chexnet`: CheXNet's random 70/10/20 patient split of every image
  (Rajpurkar et al. 2017, section 3.1), seeded by `split_seed`.

Options: `labels`, `views` (default PA and AP: every image of the release),
`val_fraction`, `check_images` ("exists", "decode", "none"),
`entry_file` (a file name to force one of the two Data_Entry versions;
default: v2020 when present, the file's name recorded in `info`).

The paper we reproduce names ChestX-ray8, the first (8-label) release of
these same images; `CHESTXRAY8_LABELS` as `options["labels"]` reads it.

The synthetic tree (`synthesize`) writes every file above as NIH does
(2017 header with its quirks, `058Y` ages, Kaggle's `images_00N/images/`
folders), images drawn by `medcap.data.synthetic` with its findings named
as ChestX-ray14 names them (`SYNTHETIC_TO_CXR14`), a BBox file for the test
images with a boxable finding, and a `synthetic_truth.json` whose `boxes`
hold every drawn lesion's box (all images, all seven findings), named with
ChestX-ray14 labels.
"""

from __future__ import annotations

import math
import os
import re
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

ENTRY_FILES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
TRAIN_VAL_LIST = "train_val_list.txt"
TEST_LIST = "test_list.txt"
BBOX_FILE = "BBox_List_2017.csv"
ENTRY_COLUMNS = (
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "Patient ID",
    "Patient Age",
    "Patient Gender",
    "View Position",
)
#: Data_Entry_2017.csv's header as NIH wrote it (trailing comma included).
ENTRY_HEADER_2017 = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"
NO_FINDING = "No Finding"
#: BBox_List_2017.csv spellings that differ from Data_Entry's.
BBOX_SPELLINGS = {"Infiltrate": "Infiltration"}
MAX_AGE = 120.0
VARIANTS = ("official", "chexnet")
CHEXNET_SPLIT = {"train": 0.7, "val": 0.1, "test": 0.2}
DEFAULT_OPTIONS: dict[str, Any] = {
    "labels": None,
    "views": list(fl.FRONTAL_VIEWS),
    "val_fraction": 0.1,
    "check_images": "exists",
    "entry_file": "",
    **fl.DEFAULT_POLICY,
}
#: The synthetic findings (`medcap.data.synthetic.FINDINGS`) by their ChestX-ray14 names.
SYNTHETIC_TO_CXR14 = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Pleural Effusion": "Effusion",
    "Lung Lesion": "Nodule",
    "Pneumothorax": "Pneumothorax",
}
#: The ChestX-ray14 labels the synthetic tree draws (the others never occur there).
SYNTHETIC_LABELS: tuple[str, ...] = tuple(n for n in fl.CHESTXRAY14_LABELS if n in SYNTHETIC_TO_CXR14.values())
_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([YMD]?)$", re.IGNORECASE)
_AGE_UNITS = {"": 1.0, "Y": 1.0, "M": 1.0 / 12.0, "D": 1.0 / 365.25}
_SPLIT_EXCLUSIONS = ("images_not_in_split_lists", "images_of_other_views")


def parse_age(value: str) -> float:
    """`058Y` / `011M` / `001D` / `58` -> years; ValueError otherwise."""
    match = _AGE.match(value.strip())
    if not match:
        raise ValueError(f"expected an age such as 058Y, 011M, 001D or 58, got {value!r}")
    return float(match.group(1)) * _AGE_UNITS[match.group(2).upper()]


def parse_finding_labels(value: str) -> tuple[str, ...]:
    """`Effusion|Infiltration` -> the names; `No Finding` -> (); unknown names raise."""
    names = tuple(name.strip() for name in value.split("|"))
    if names == (NO_FINDING,):
        return ()
    unknown = [name for name in names if name not in fl.CHESTXRAY14_LABELS]
    if unknown:
        hint = " ('No Finding' must stand alone)" if NO_FINDING in names else ""
        raise ValueError(f"unknown label(s) {unknown}{hint}; valid: {NO_FINDING}, {', '.join(fl.CHESTXRAY14_LABELS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"repeated label in {value!r}")
    return names


def image_index(source_dir: Path) -> dict[str, Path]:
    """Image file name -> path, over `images/` and every `images_*/[images/]`."""
    folders = [source_dir / "images"]
    for entry in sorted(source_dir.glob("images_*")):
        if entry.is_dir():
            folders.extend([entry / "images", entry])
    found: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file() and entry.name not in found:
                    found[entry.name] = Path(entry.path)
    return found


def find_entry_file(source_dir: Path, requested: str) -> Path:
    names = (requested,) if requested else ENTRY_FILES
    for name in names:
        for candidate in (source_dir / name, source_dir / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise DataError(f"missing file: expected {' or '.join(names)} (plain or .gz)", file=source_dir / names[-1])


def read_name_list(path: Path) -> dict[str, int]:
    """An official split list: name -> line number; duplicates are errors."""
    names: dict[str, int] = {}
    for line, text in enumerate(dio.read_text(path).splitlines(), start=1):
        name = text.strip()
        if not name:
            continue
        if name in names:
            raise DataError(f"{name!r} is listed twice (first on line {names[name]})", file=path, record=f"line {line}")
        names[name] = line
    return names


class ChestXray14Source(fl.SingleImageSource):
    """Reader, validator and synthetic writer of NIH ChestX-ray14 (module docstring)."""

    name = "chestxray14"
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
            available_labels=fl.CHESTXRAY14_LABELS,
        )
        variant, opts, labels, views, source_dir = (
            settings.variant,
            settings.options,
            settings.labels,
            settings.views,
            settings.source_dir,
        )
        val_fraction = float(opts["val_fraction"])
        fail = fl.Failures(skip_invalid)

        entry_path = find_entry_file(source_dir, opts["entry_file"])
        files = image_index(source_dir) if opts["check_images"] != "none" else {}
        records, entry_names = _read_entries(entry_path, source_dir, files, opts["check_images"], fail)
        info: dict[str, Any] = {
            "dataset": self.name,
            "variant": variant,
            "entry_file": entry_path.name,
            "images_listed": len(records),
            "implausible_ages": sum(1 for r in records.values() if math.isnan(r["age"])),
            "findings_names": list(labels),
            "check_images": opts["check_images"],
            **{key: opts[key] for key in fl.DEFAULT_POLICY},
            **dict.fromkeys(_SPLIT_EXCLUSIONS, 0),
        }
        bbox_path = source_dir / BBOX_FILE
        boxes = _read_boxes(bbox_path, records, fail) if bbox_path.is_file() else {}
        info["boxes"] = sum(len(b) for b in boxes.values())
        info["boxed_images"] = len(boxes)

        if views is not None:
            kept = {name: r for name, r in records.items() if r["view"] in views}
            info["images_of_other_views"] = len(records) - len(kept)
            records = kept
        assignment = self._split(variant, source_dir, records, entry_names, split_seed, val_fraction, info, fail)
        splits: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLIT_NAMES}
        for name, record in records.items():
            split = assignment.get(name)
            if split is None:
                continue
            splits[split].append(
                {
                    "id": name,
                    "patient_id": record["patient_id"],
                    "image": record["image"],
                    "report": "",
                    "report_clean": "",
                    "findings": fl.multi_hot(record["labels"], labels),
                    "findings_names": labels,
                    "view": record["view"],
                    "age": record["age"],
                    "gender": record["gender"],
                    "follow_up": record["follow_up"],
                    "boxes": [b for b in boxes.get(name, []) if b["finding"] in labels],
                }
            )
        info["label_counts"] = fl.label_counts(splits, labels)
        truth = source_dir / synthetic.TRUTH_FILE
        if truth.is_file():
            info["truth_file"] = str(truth)
        return ReadResult(splits=splits, skipped=fail.skipped, info=info)

    def _split(
        self,
        variant: str,
        source_dir: Path,
        records: dict[str, dict[str, Any]],
        entry_names: set[str],
        split_seed: int,
        val_fraction: float,
        info: dict[str, Any],
        fail,
    ) -> dict[str, str]:
        names = list(records)
        patients = [records[n]["patient_id"] for n in names]
        if variant == "chexnet":
            info.update({"split": "random 70/10/20 by patient (CheXNet 3.1)", "split_seed": split_seed})
            return dict(zip(names, dio.group_split(patients, CHEXNET_SPLIT, split_seed)))
        lists = {}
        for key, file_name in (("train_val", TRAIN_VAL_LIST), ("test", TEST_LIST)):
            path = source_dir / file_name
            if not path.is_file():
                raise DataError(f"missing file: the official split needs {file_name} (or use variant 'chexnet')", file=path)
            lists[key] = read_name_list(path)
        for name, line in lists["train_val"].items():
            if name in lists["test"]:
                raise DataError(
                    f"{name!r} is in both {TRAIN_VAL_LIST} (line {line}) and {TEST_LIST} (line {lists['test'][name]})",
                    file=source_dir / TRAIN_VAL_LIST,
                    record=f"line {line}",
                )
        for key, file_name in (("train_val", TRAIN_VAL_LIST), ("test", TEST_LIST)):
            for name, line in lists[key].items():
                if name not in entry_names:
                    fail(
                        DataError(
                            f"{name!r} is not in {info['entry_file']}", file=source_dir / file_name, record=f"line {line}"
                        )
                    )
        assignment: dict[str, str] = {}
        pool = [n for n in names if n in lists["train_val"]]
        for name in names:
            if name in lists["test"]:
                assignment[name] = "test"
        fractions = {"train": 1.0 - val_fraction, "val": val_fraction}
        for name, split in zip(pool, dio.group_split([records[n]["patient_id"] for n in pool], fractions, split_seed)):
            assignment[name] = split
        info["images_not_in_split_lists"] = len(names) - len(assignment)
        info.update(
            {
                "split": f"official ({TRAIN_VAL_LIST} / {TEST_LIST}); val = {val_fraction:g} of train_val by patient",
                "split_seed": split_seed,
                "val_fraction": val_fraction,
            }
        )
        return assignment

    def check(self, source_dir: str | Path, *, variant: str = "", options: dict[str, Any] | None = None) -> CheckReport:
        return dio.check_by_reading(
            self, source_dir, variant=variant, options=options, info_counts=("implausible_ages", *_SPLIT_EXCLUSIONS)
        )

    # -- synthetic ------------------------------------------------------------
    def synthesize(self, out_dir: str | Path, *, num: int, seed: int, image_size: int = 256) -> Path:
        return write_synthetic_tree(out_dir, num=num, seed=seed, image_size=image_size)


def _read_entries(
    path: Path, source_dir: Path, files: dict[str, Path], check_images: str, fail
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The valid rows by image name, and every name the file lists (a skipped
    row's too, so the split lists are checked against the file, not the read)."""
    records: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    names: set[str] = set()
    for row in read_csv(path, ENTRY_COLUMNS):
        names.add(row.values.get("Image Index", "").strip())
        try:
            record = _entry(row, source_dir, files, check_images)
            name = record["name"]
            if name in first_line:
                raise row.error("Image Index", f"duplicate image {name!r} (first on line {first_line[name]})")
        except DataError as err:
            fail(err)
            continue
        first_line[name] = row.line
        records[name] = record
    return records, names


def _entry(row: CsvRow, source_dir: Path, files: dict[str, Path], check_images: str) -> dict[str, Any]:
    if "__width__" in row.values:
        raise row.error("", f"expected as many cells as the header, got {row.values['__width__']}")
    name = row.values["Image Index"].strip()
    if not name:
        raise row.error("Image Index", "empty image name")
    labels = row.parse("Finding Labels", parse_finding_labels)
    patient = row.values["Patient ID"].strip()
    if not patient.isdigit():
        raise row.error("Patient ID", f"expected an integer, got {patient!r}")
    follow_up = row.values["Follow-up #"].strip()
    if not follow_up.isdigit():
        raise row.error("Follow-up #", f"expected an integer, got {follow_up!r}")
    age = row.parse("Patient Age", parse_age)
    gender = row.values["Patient Gender"].strip().upper()
    if gender not in ("M", "F"):
        raise row.error("Patient Gender", f"expected M or F, got {row.values['Patient Gender']!r}")
    view = row.values["View Position"].strip().upper()
    if not view:
        raise row.error("View Position", "empty view position")
    if check_images == "none":
        image = source_dir / "images" / name
    else:
        image = files.get(name, source_dir / "images" / name)
        check_image(image, check_images, file=row.path, record=f"line {row.line} ({name})", field="Image Index")
    return {
        "name": name,
        "labels": labels,
        "patient_id": str(int(patient)),
        "follow_up": int(follow_up),
        "age": age if age <= MAX_AGE else math.nan,
        "gender": gender,
        "view": view,
        "image": str(image),
    }


def _read_boxes(path: Path, records: dict[str, dict[str, Any]], fail) -> dict[str, list[dict[str, Any]]]:
    """BBox_List_2017.csv by position (its header spans nine cells)."""
    import csv
    import io

    text = dio.read_text(path).removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or [cell.strip() for cell in header[:3]] != ["Image Index", "Finding Label", "Bbox [x"]:
        raise DataError(f"expected the header {BBOX_HEADER!r}, got {','.join(header or [])!r}", file=path, record="line 1")
    boxes: dict[str, list[dict[str, Any]]] = {}
    for cells in reader:
        line = reader.line_num
        if not cells or not any(c.strip() for c in cells):
            continue
        try:
            boxes_of_row = _box_row(cells, path, line, records)
        except DataError as err:
            fail(err)
            continue
        boxes.setdefault(boxes_of_row[0], []).append(boxes_of_row[1])
    return boxes


def _box_row(cells: list[str], path: Path, line: int, records: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    record = f"line {line}"
    if len(cells) < 6:
        raise DataError(f"expected Image Index, Finding Label and four numbers, got {len(cells)} cells", file=path, record=record)
    name, label = cells[0].strip(), cells[1].strip()
    label = BBOX_SPELLINGS.get(label, label)
    if label not in fl.CHESTXRAY8_LABELS:
        raise DataError(f"unknown box label {cells[1]!r}; valid: {', '.join(fl.CHESTXRAY8_LABELS)} (Infiltrate)", file=path, record=record, field="Finding Label")
    if name not in records:
        raise DataError(f"image {name!r} is not in the Data_Entry file", file=path, record=record, field="Image Index")
    values = []
    for field, text in zip(("x", "y", "w", "h"), cells[2:6]):
        try:
            value = float(text)
        except ValueError:
            raise DataError(f"expected a number, got {text!r}", file=path, record=record, field=field) from None
        if not math.isfinite(value) or value < 0 or (field in "wh" and value <= 0):
            raise DataError(f"expected a {'positive' if field in 'wh' else 'non-negative'} number, got {text!r}", file=path, record=record, field=field)
        values.append(value)
    x, y, w, h = values
    return name, {"finding": label, "x": x, "y": y, "w": w, "h": h}


# ---------------------------------------------------------------------------
# Synthetic tree


def write_synthetic_tree(out_dir: str | Path, *, num: int, seed: int, image_size: int = 256) -> Path:
    """The synthetic ChestX-ray14 tree (module docstring)."""
    if num < 10:
        raise ValueError(f"num={num}: need at least ten images")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    # Patients with one to three follow-ups, as the release has many of both.
    names, patients = [], []
    patient = 0
    while len(names) < num:
        patient += 1
        for follow_up in range(min(int(rng.integers(1, 4)), num - len(names))):
            names.append(f"{patient:08d}_{follow_up:03d}.png")
            patients.append(patient)
    test = {n for n, s in zip(names, dio.group_split([str(p) for p in patients], {"train_val": 0.8, "test": 0.2}, seed)) if s == "test"}
    entry_rows, box_rows = [ENTRY_HEADER_2017], [BBOX_HEADER]
    truth: dict[str, dict[str, bool]] = {}
    truth_boxes: dict[str, list[dict[str, Any]]] = {}
    ages: dict[int, int] = {}
    genders: dict[int, str] = {}
    for index, (name, patient) in enumerate(zip(names, patients)):
        findings = synthetic.sample_findings(rng)
        drawn: list[dict[str, Any]] = []
        pixels = synthetic.draw_radiograph(findings, rng, size=image_size, boxes=drawn)
        folder = out_dir / f"images_{1 + index * 2 // len(names):03d}" / "images"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(synthetic.encode_png(pixels))
        labels = sorted(SYNTHETIC_TO_CXR14[f] for f, present in findings.items() if present)
        ages.setdefault(patient, int(rng.integers(18, 90)))
        genders.setdefault(patient, "MF"[int(rng.integers(2))])
        view = "PA" if rng.random() < 0.6 else "AP"
        follow_up = int(name[9:12])
        width, height = int(rng.integers(2000, 3000)), int(rng.integers(2000, 3000))
        entry_rows.append(
            f"{name},{'|'.join(labels) or NO_FINDING},{follow_up},{patient},{ages[patient]:03d}Y,"
            f"{genders[patient]},{view},{width},{height},0.143,0.143,"
        )
        truth[name] = findings
        boxes = [{**box, "finding": SYNTHETIC_TO_CXR14[box["finding"]]} for box in drawn]
        truth_boxes[name] = boxes
        if name in test:
            for box in boxes:
                if box["finding"] in fl.CHESTXRAY8_LABELS:
                    # NIH writes float pixel coordinates (225.084745762712), so floats here too.
                    coords = ",".join(repr(float(box[k])) for k in ("x", "y", "w", "h"))
                    box_rows.append(f"{name},{box['finding']},{coords},,,")
    (out_dir / "Data_Entry_2017.csv").write_text("\n".join(entry_rows) + "\n", encoding="utf-8")
    (out_dir / BBOX_FILE).write_text("\n".join(box_rows) + "\n", encoding="utf-8")
    (out_dir / TRAIN_VAL_LIST).write_text("".join(f"{n}\n" for n in names if n not in test), encoding="utf-8")
    (out_dir / TEST_LIST).write_text("".join(f"{n}\n" for n in names if n in test), encoding="utf-8")
    synthetic.write_truth(out_dir, truth, dataset="chestxray14", seed=seed, boxes=truth_boxes)
    return out_dir


CHESTXRAY14 = ChestXray14Source()
DATASETS.register("chestxray14", CHESTXRAY14)
