"""Any folder of labelled medical images: DICOM, PNG or JPEG, of any modality.

For collections no dedicated reader knows (a TCIA collection exported with
its labels, a hospital's own images): one CSV names each image and its labels.

    <source_dir>/labels.csv        (`options["labels_file"]` names another)
    <source_dir>/<any path>        the images: .dcm or extension-less DICOM
                                   files, PNG (8 or 16 bit), JPEG

Columns of the CSV (our format; the header names them, order is free):

    image        path relative to `source_dir` (required)
    patient_id   patients never cross splits (optional; default: the image)
    split        train / val / validate / test (optional; all or none)
    view         a view position or series description (optional)
    every other column is a label: 1, 0, -1 (uncertain) or blank, also
    written 1.0 / 0.0 / -1.0, as CheXpert does

Examples (`medcap.data.findings_labels`): `id` = the `image` cell,
`findings` after the uncertain / blank policies (U-Ignore by default). With
no `split` column the split is drawn by patient with `split_seed`, 70/10/20
(`options["fractions"]`). Images decode through `medcap.data.images` (DICOM
rescale, VOI window or LUT, MONOCHROME1 inversion; every transform a run
used is counted in its data.json), so each modality is read the way its
viewer displays it.

Options: `labels` (default every label column, in the header's order),
`views`, `uncertain`, `blank`, `fractions`, `check_images`, `labels_file`.

The synthetic tree (`synthesize`) writes a mixed folder: DICOM (16-bit,
MONOCHROME2, with a window), 8-bit PNG and JPEG files of synthetic
radiographs, in nested folders, with a labels.csv over the seven synthetic
findings and a few uncertain and blank cells.
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
from medcap.data.csv_rows import csv_columns, read_csv
from medcap.data.images import check_image
from medcap.registry import DATASETS

LABELS_FILE = "labels.csv"
RESERVED_COLUMNS = ("image", "patient_id", "split", "view")
SPLIT_ALIASES = {"train": "train", "val": "val", "validate": "val", "valid": "val", "test": "test"}
VARIANTS = ("default",)
DEFAULT_OPTIONS: dict[str, Any] = {
    "labels": None,
    "views": "all",
    "fractions": {"train": 0.7, "val": 0.1, "test": 0.2},
    "check_images": "exists",
    "labels_file": LABELS_FILE,
    **fl.DEFAULT_POLICY,
}


def parse_label(value: str) -> float:
    """1 / 0 / -1 (or 1.0 / 0.0 / -1.0); blank -> NaN."""
    text = value.strip()
    if not text:
        return math.nan
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"expected 1, 0, -1 or blank, got {value!r}") from None
    if number not in (1.0, 0.0, -1.0):
        raise ValueError(f"expected 1, 0, -1 or blank, got {value!r}")
    return number


class LabelledImagesSource(fl.SingleImageSource):
    """Reader and synthetic writer of a labelled image folder (module docstring)."""

    name = "labelled_images"
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
            available_labels=None,
        )
        variant, opts, views, policy, source_dir = settings.variant, settings.options, settings.views, settings.policy, settings.source_dir
        path = source_dir / opts["labels_file"]
        if not path.is_file():
            raise DataError("missing file: the labels CSV (module docstring of medcap.data.labelled_images)", file=path)
        header = csv_columns(path)
        if "image" not in header:
            raise DataError(f"missing column image; header has {', '.join(header)}", file=path, record="line 1", field="image")
        available = tuple(name for name in header if name not in RESERVED_COLUMNS and name)
        if not available:
            raise DataError("no label columns: every column but image, patient_id, split and view is a label", file=path, record="line 1")
        try:
            labels = fl.check_labels(opts["labels"], available, self.name)
        except ValueError as err:
            raise DataError(str(err)) from None
        fail = fl.Failures(skip_invalid)

        optional = [name for name in ("patient_id", "split", "view") if name in header]
        examples: list[dict[str, Any]] = []
        split_cells: list[str] = []
        seen: dict[str, int] = {}
        other_views = 0
        for row in read_csv(path, ("image", *labels), optional):
            try:
                if "__width__" in row.values:
                    raise row.error("", f"expected as many cells as the header, got {row.values['__width__']}")
                relative = row.values["image"].strip()
                if not relative:
                    raise row.error("image", "empty path")
                if relative in seen:
                    raise row.error("image", f"duplicate image (first on line {seen[relative]})")
                split = ""
                if "split" in row.values:
                    split = SPLIT_ALIASES.get(row.values["split"].strip().lower(), "")
                    if not split:
                        raise row.error("split", f"expected one of {', '.join(SPLIT_ALIASES)}, got {row.values['split']!r}")
                values = [row.parse(name, parse_label) for name in labels]
                image = source_dir / relative
                check_image(image, opts["check_images"], file=path, record=f"line {row.line}", field="image")
            except DataError as err:
                fail(err)
                continue
            seen[relative] = row.line
            view = row.values.get("view", "").strip().upper()
            if views is not None and view not in views:
                other_views += 1
                continue
            examples.append(
                {
                    "id": relative,
                    "patient_id": row.values.get("patient_id", "").strip() or relative,
                    "image": str(image),
                    "report": "",
                    "report_clean": "",
                    "findings": [fl.target(v, policy) for v in values],
                    "findings_names": labels,
                    "view": view,
                }
            )
            split_cells.append(split)
        info: dict[str, Any] = {
            "dataset": self.name,
            "variant": variant,
            "labels_file": str(path),
            "findings_names": list(labels),
            **fl.policy_info(policy),
            "images_of_other_views": other_views,
        }
        if "split" in header:
            assignment = split_cells
            info["split"] = f"the split column of {path.name}"
        else:
            fractions = {name: float(opts["fractions"].get(name, 0.0)) for name in SPLIT_NAMES}
            assignment = dio.group_split([e["patient_id"] for e in examples], fractions, split_seed)
            info.update({"split": "random by patient", "fractions": fractions, "split_seed": split_seed})
        splits: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLIT_NAMES}
        for example, split in zip(examples, assignment):
            splits[split].append(example)
        info["label_counts"] = fl.label_counts(splits, labels)
        truth = source_dir / synthetic.TRUTH_FILE
        if truth.is_file():
            info["truth_file"] = str(truth)
        return ReadResult(splits=splits, skipped=fail.skipped, info=info)

    def check(self, source_dir: str | Path, *, variant: str = "", options: dict[str, Any] | None = None) -> CheckReport:
        return dio.check_by_reading(self, source_dir, variant=variant, options=options, info_counts=("images_of_other_views",))

    def synthesize(self, out_dir: str | Path, *, num: int, seed: int, image_size: int = 256) -> Path:
        return write_synthetic_tree(out_dir, num=num, seed=seed, image_size=image_size)


def write_synthetic_tree(out_dir: str | Path, *, num: int, seed: int, image_size: int = 256) -> Path:
    """The mixed-format synthetic folder (module docstring)."""
    import io

    from PIL import Image

    from medcap.testing import write_dicom

    if num < 10:
        raise ValueError(f"num={num}: need at least ten images")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    header = ["image", "patient_id", "view", *synthetic.FINDINGS]
    rows = [",".join(header)]
    truth: dict[str, dict[str, bool]] = {}
    for index in range(num):
        findings = synthetic.sample_findings(rng)
        pixels = synthetic.draw_radiograph(findings, rng, size=image_size)
        patient = f"P{index // 2:04d}"
        kind = ("dcm", "png", "jpg")[index % 3]
        relative = f"{patient}/series{index % 2 + 1}/image{index:04d}.{kind}"
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "dcm":
            # 12-bit detector values with a window that maps them back to the drawn grey levels.
            values = (pixels.astype(np.uint16) * 16 + 8).astype(np.uint16)
            write_dicom(target, values, bits_stored=12, WindowCenter=2048, WindowWidth=4096, Modality="DX")
        else:
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG" if kind == "png" else "JPEG", quality=95)
            target.write_bytes(buffer.getvalue())
        cells = []
        for name in synthetic.FINDINGS:
            if findings[name]:
                cells.append("-1" if rng.random() < 0.1 else "1")
            else:
                cells.append("" if rng.random() < 0.1 else "0")
        rows.append(",".join([relative, patient, "PA", *cells]))
        truth[relative] = findings
    (out_dir / LABELS_FILE).write_text("\n".join(rows) + "\n", encoding="utf-8")
    synthetic.write_truth(out_dir, truth, dataset="labelled_images", seed=seed)
    return out_dir


LABELLED_IMAGES = LabelledImagesSource()
DATASETS.register("labelled_images", LABELLED_IMAGES)
