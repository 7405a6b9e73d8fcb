"""MIMIC-CXR-JPG images with their CheXpert labels, for findings classification.

`DATASETS["mimic_cxr_labels"]`: the image-level view of MIMIC-CXR that
classifiers train on (the report and ED join of `DATASETS["mimic"]` are not
needed). It reads only the three CXR tables of `medcap.data.mimic` and the
images:

    mimic-cxr-2.0.0-metadata.csv[.gz]   one row per image (ViewPosition)
    mimic-cxr-2.0.0-chexpert.csv[.gz]   14 CheXpert labels per study
    mimic-cxr-2.0.0-split.csv[.gz]      official split per image
    files/pNN/p<subject>/s<study>/<dicom_id>.jpg (or .dcm)

Every image whose ViewPosition is in `options["views"]` (default PA and AP)
is an example (`id` = dicom_id, `patient_id` = subject, `study_id`), with
its study's labels after the uncertain / blank policies of
`medcap.data.findings_labels` (U-Ignore by default), over
`options["labels"]` (default the 14 in the CSV's order). The split is the
official one (`validate` -> val). Excluded and counted in `info`: images of
other views (`images_of_other_views`), images of a study without a
CheXpert row (`images_without_labels`), images missing from the split CSV
(`images_without_split`).

Options: `labels`, `views`, `uncertain`, `blank`, `check_images`,
`image_format` (as `DATASETS["mimic"]`). The synthetic tree is the one
`DATASETS["mimic"]` writes (the same release files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcap.data import findings_labels as fl
from medcap.data import io as dio
from medcap.data.base import SPLIT_NAMES, CheckReport, DataError, ReadResult
from medcap.data.images import check_image
from medcap.data.mimic.formats import (
    CHEXPERT_LABELS,
    CXR_CHEXPERT,
    CXR_METADATA,
    CXR_SPLIT,
    OPTION_DEFAULTS,
    find_csv,
)
from medcap.data.mimic.join import _Errors, _Reader
from medcap.data.mimic.synthetic import synthesize_mimic
from medcap.registry import DATASETS

VARIANTS = ("official",)
DEFAULT_OPTIONS: dict[str, Any] = {
    "labels": None,
    "views": list(fl.FRONTAL_VIEWS),
    "check_images": "exists",
    "image_format": "auto",
    **fl.DEFAULT_POLICY,
}
EXCLUSIONS = ("images_of_other_views", "images_without_labels", "images_without_split")


class MimicCxrLabelsSource(fl.SingleImageSource):
    """Reader of MIMIC-CXR-JPG images with CheXpert labels (module docstring)."""

    name = "mimic_cxr_labels"
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
            available_labels=CHEXPERT_LABELS,
        )
        variant, opts, labels, views, policy = settings.variant, settings.options, settings.labels, settings.views, settings.policy
        source_dir = settings.source_dir
        errors = _Errors(skip_invalid)
        reader = _Reader(
            source_dir,
            {**OPTION_DEFAULTS, "check_images": opts["check_images"], "image_format": opts["image_format"]},
            errors,
        )
        metadata = reader.read_metadata(find_csv(source_dir, CXR_METADATA))
        chexpert = reader.read_chexpert(find_csv(source_dir, CXR_CHEXPERT))
        split_of = reader.read_split(find_csv(source_dir, CXR_SPLIT))
        counts = dict.fromkeys(EXCLUSIONS, 0)
        splits: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLIT_NAMES}
        for study_id in sorted(metadata):
            for image in sorted(metadata[study_id], key=lambda i: i.dicom_id):
                if views is not None and image.view not in views:
                    counts["images_of_other_views"] += 1
                    continue
                if study_id not in chexpert:
                    counts["images_without_labels"] += 1
                    continue
                if image.dicom_id not in split_of:
                    counts["images_without_split"] += 1
                    continue
                folder = source_dir / "files" / f"p{str(image.subject_id)[:2]}" / f"p{image.subject_id}" / f"s{study_id}"
                path = reader.image_file(folder, image.dicom_id)
                try:
                    check_image(path, opts["check_images"], record=f"dicom_id {image.dicom_id}")
                except DataError as err:
                    errors.handle(err)
                    continue
                values = chexpert[study_id]
                splits[split_of[image.dicom_id][0]].append(
                    {
                        "id": image.dicom_id,
                        "patient_id": str(image.subject_id),
                        "study_id": str(study_id),
                        "image": str(path),
                        "report": "",
                        "report_clean": "",
                        "findings": [fl.target(values[name], policy) for name in labels],
                        "findings_names": labels,
                        "view": image.view,
                    }
                )
        info: dict[str, Any] = {
            "dataset": self.name,
            "variant": variant,
            "split": "official (mimic-cxr-2.0.0-split)",
            "findings_names": list(labels),
            **fl.policy_info(policy),
            **counts,
            "label_counts": fl.label_counts(splits, labels),
        }
        return ReadResult(splits=splits, skipped=errors.skipped, info=info)

    def check(self, source_dir: str | Path, *, variant: str = "", options: dict[str, Any] | None = None) -> CheckReport:
        return dio.check_by_reading(self, source_dir, variant=variant, options=options, info_counts=EXCLUSIONS)

    def synthesize(self, out_dir: str | Path, *, num: int, seed: int, image_size: int = 256) -> Path:
        return synthesize_mimic(out_dir, num=num, seed=seed, image_size=image_size)


MIMIC_CXR_LABELS = MimicCxrLabelsSource()
DATASETS.register("mimic_cxr_labels", MIMIC_CXR_LABELS)
