"""IU X-ray (Indiana University chest X-ray collection), two accepted sources.

(a) R2Gen's preprocessed release (facts from its format):

    <source>/annotation.json   {"train": [...], "val": [...], "test": [...]}
    <source>/images/<id>/0.png, <source>/images/<id>/1.png

    each entry `{id, report, image_path: ["<id>/0.png", "<id>/1.png"], split}`;
    the real file has 2,069 / 296 / 590 studies.

(b) The OpenI release:

    <source>/ecgen-radiology/<n>.xml    FINDINGS / IMPRESSION in
                                        AbstractText[@Label], images in
                                        parentImage[@id]
    <source>/NLMCXR_png/<parentImage id>.png

When both are present, the variant decides: `r2gen` reads (a), whose split
it is, and `random_721` reads (b), the full release paper 002 describes;
`options["format"]` ("auto", "r2gen", "openi") forces one. `info["format"]`,
`info["source"]`, `info["studies"]` and `info["images"]` say which source a
run read and how much of it. The two are not the same size: R2Gen's file
keeps the 2,955 studies with a FINDINGS section (2,069 / 296 / 590), while
paper 002's "3,955 reports and 7,470 images" (section 4.1) are the OpenI
release's counts, so a 7:2:1 split of annotation.json is a split of about
three quarters of the paper's data.

Variants (splits):

* `r2gen` (default): R2Gen's own split, read from annotation.json. R2Gen
  feeds both views, so `image` is the tuple of all `image_path`s (two).
  Needs source (a).
* `random_721`: paper 002's 7:2:1 train/val/test split (section 4.1),
  seeded by `split_seed` and patient-disjoint, over every study of the
  source. Paper 002 encodes one image per study, so `image` is the first
  view (R2Gen's `0.png`; OpenI's first `parentImage`).

Choices the sources leave open, ours:

* OpenI report = the FINDINGS text, or the IMPRESSION when FINDINGS is empty
  (counted in `info["impression_fallbacks"]`). R2Gen's `report` is used as is.
* OpenI study `id` = the first parentImage id without its last `-NNNN`
  group (`CXR12_IM-0123-1001` -> `CXR12_IM-0123`), the form R2Gen's ids
  take.
* The real OpenI release has reports that cannot give an example: some list
  no `parentImage` at all, some have FINDINGS and IMPRESSION both empty
  (`<AbstractText Label="FINDINGS"/>`) or absent. Such a report is excluded,
  whatever the variant, and counted in `info` under the first rule it fails,
  in this order: no parentImage element (`info["studies_without_images"]`),
  no FINDINGS or IMPRESSION text (`info["studies_without_sections"]`). These
  are properties of the release, not of a broken download: neither is an
  error, `skip_invalid` does not change them, `check()` lists them among its
  counts and not as problems, and the images of an excluded report are not
  checked. `info["xml_reports"]` counts every XML file, so
  `xml_reports = studies + the two exclusions + skipped records`.
* `patient_id` = the study number (`CXR12` from `CXR12_IM-0123`, or from
  OpenI's `12.xml`): IU X-ray has one study per patient, so the study is the
  patient and splits are patient-disjoint by construction.
* `report_clean` = `clean_report(report, "iu_xray")` (R2Gen's cleaner).

Findings labels: IU X-ray ships none. `options["findings"] =
"medcap_labeler"` labels each report with medcap's rule-based labeler
(`medcap.evaluation.clinical`, ours, not CheXpert's; `info["findings_source"]`
says so) into `findings` over the 14 CheXpert observations (or
`options["labels"]` among them), after the
`uncertain` / `blank` policies of `medcap.data.findings_labels`.

Every view a study lists is checked, also for `random_721`, which uses only
the first: a broken file is a broken download. Images are checked per
`options["check_images"]`: "exists" (default),
"decode" (decode every view) or "none" (reading annotation.json alone, e.g.
the real annotation without its images).

The synthetic tree (`synthesize`) writes both layouts from the same
studies: `num` OpenI reports (about 8% with an empty FINDINGS section, as
real OpenI reports have) with frontal and lateral PNGs, and annotation.json
with the studies that have FINDINGS, split 7:1:2 like R2Gen's, plus
`synthetic_truth.json` keyed by study id.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data import findings_labels as fl
from medcap.data import io as dio
from medcap.data import synthetic
from medcap.data.base import SPLIT_NAMES, CheckReport, DataError, ReadResult
from medcap.data.images import check_image
from medcap.registry import DATASETS
from medcap.text import clean_report

ANNOTATION_NAME = "annotation.json"
IMAGES_DIR = "images"
XML_DIR = "ecgen-radiology"
PNG_DIR = "NLMCXR_png"
FORMATS = ("auto", "r2gen", "openi")
VARIANTS = ("r2gen", "random_721")
RANDOM_721 = {"train": 0.7, "val": 0.2, "test": 0.1}
DEFAULT_OPTIONS: dict[str, Any] = {
    "format": "auto",
    "check_images": "exists",
    "findings": "none",
    "labels": None,
    **fl.DEFAULT_POLICY,
}
#: `options["findings"]`: where finding labels come from. IU X-ray ships none.
FINDINGS_SOURCES = ("none", "medcap_labeler")
#: `info["source"]` of each layout.
SOURCE_NAMES = {"r2gen": f"R2Gen {ANNOTATION_NAME}", "openi": f"OpenI XML release ({XML_DIR}/, {PNG_DIR}/)"}
#: OpenI exclusion counts in `info`, in the order their rules apply.
OPENI_EXCLUSIONS = ("studies_without_images", "studies_without_sections")
_STUDY_NUMBER = re.compile(r"^(CXR\d+)")
_VIEW_SUFFIX = re.compile(r"-\d+$")


def patient_id_of(study_id: str) -> str:
    """`CXR12_IM-0123` -> `CXR12` (one study per patient in IU X-ray)."""
    match = _STUDY_NUMBER.match(study_id)
    return match.group(1) if match else study_id


class IUXraySource:
    """Reader, validator and synthetic writer of IU X-ray (module docstring)."""

    name = "iu_xray"
    variants = VARIANTS
    accepts_check_images = True  # options["check_images"]
    image_channels = 1

    def num_views(self, variant: str = "") -> int:
        return 2 if (variant or VARIANTS[0]) == "r2gen" else 1

    # -- reading --------------------------------------------------------------
    def read(
        self,
        source_dir: str | Path,
        *,
        variant: str = "",
        split_seed: int = 0,
        skip_invalid: bool = False,
        options: dict[str, Any] | None = None,
    ) -> ReadResult:
        variant = variant or VARIANTS[0]
        if variant not in VARIANTS:
            raise DataError(f"unknown IU X-ray variant {variant!r}; valid: {', '.join(VARIANTS)}")
        opts = {**DEFAULT_OPTIONS, **(options or {})}
        unknown = sorted(set(opts) - set(DEFAULT_OPTIONS))
        if unknown:
            raise DataError(f"unknown IU X-ray options {unknown}; valid: {', '.join(DEFAULT_OPTIONS)}")
        if opts["format"] not in FORMATS:
            raise DataError(f"unknown IU X-ray format {opts['format']!r}; valid: {', '.join(FORMATS)}")
        if opts["findings"] not in FINDINGS_SOURCES:
            raise DataError(f"unknown IU X-ray findings source {opts['findings']!r}; valid: {', '.join(FINDINGS_SOURCES)}")
        try:
            fl.check_policy(opts, self.name)
            if opts["findings"] == "medcap_labeler":
                from medcap.evaluation.clinical import OBSERVATIONS

                fl.check_labels(opts["labels"], OBSERVATIONS, self.name)
        except ValueError as err:
            raise DataError(str(err)) from None
        source_dir = Path(source_dir)
        if not source_dir.is_dir():
            raise DataError("source directory not found", file=source_dir)
        layout = _detect_layout(source_dir, opts["format"], variant)
        if variant == "r2gen" and layout != "r2gen":
            raise DataError(
                f"variant 'r2gen' needs R2Gen's {ANNOTATION_NAME} (its split); use variant 'random_721' for the OpenI release",
                file=source_dir / ANNOTATION_NAME,
            )

        skipped: list[DataError] = []

        def fail(error: DataError) -> None:
            if not skip_invalid:
                raise error
            skipped.append(error)

        info: dict[str, Any] = {"dataset": self.name, "variant": variant, "format": layout, "check_images": opts["check_images"]}
        if layout == "r2gen":
            studies = _read_r2gen(source_dir, opts["check_images"], fail)
        else:
            studies, openi_counts = _read_openi(source_dir, opts["check_images"], fail)
            info.update(openi_counts)
        info["studies"] = len(studies)
        info["images"] = sum(len(study["images"]) for study in studies)
        info["source"] = SOURCE_NAMES[layout]

        splits: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLIT_NAMES}
        if variant == "r2gen":
            for study in studies:
                splits[study.pop("split")].append(_example(study, multi_view=True))
            info["split"] = "R2Gen's annotation.json"
        else:
            assignment = dio.group_split([s["patient_id"] for s in studies], RANDOM_721, split_seed)
            for study, split in zip(studies, assignment):
                study.pop("split", None)
                splits[split].append(_example(study, multi_view=False))
            info.update({"split": "random 7:2:1 (paper 002)", "split_seed": split_seed, "fractions": dict(RANDOM_721)})
        if opts["findings"] == "medcap_labeler":
            info.update(_add_labeler_findings(splits, opts))
        truth = source_dir / synthetic.TRUTH_FILE
        if truth.is_file():
            info["truth_file"] = str(truth)
        return ReadResult(splits=splits, skipped=skipped, info=info)

    def check(self, source_dir: str | Path, *, variant: str = "", options: dict[str, Any] | None = None) -> CheckReport:
        """Checks the layout the reader would read; when a tree holds both
        layouts and no `format` option is given, the OpenI one is checked too
        (its problems and exclusion counts are added, its split counts are
        not). OpenI exclusions are counts, not problems (module docstring)."""
        source_dir = Path(source_dir)
        has_r2gen = (source_dir / ANNOTATION_NAME).is_file()
        if not variant and not has_r2gen:
            variant = "random_721"  # an OpenI download has no R2Gen split to check
        report = self._check_by_reading(source_dir, variant, options)
        if has_r2gen and (source_dir / XML_DIR).is_dir() and "format" not in (options or {}):
            openi = self._check_by_reading(source_dir, "random_721", {**(options or {}), "format": "openi"})
            report.problems.extend(openi.problems)
            report.counts.update({key: n for key, n in openi.counts.items() if key in OPENI_EXCLUSIONS})
        return report

    def _check_by_reading(self, source_dir: Path, variant: str, options: dict[str, Any] | None) -> CheckReport:
        return dio.check_by_reading(self, source_dir, variant=variant, options=options, info_counts=OPENI_EXCLUSIONS)

    # -- synthetic ------------------------------------------------------------
    def synthesize(self, out_dir: str | Path, *, num: int, seed: int, image_size: int = 256, reports: str = "listed") -> Path:
        """The OpenI release and R2Gen's annotation.json of the same studies;
        `reports` is a `synthetic.REPORT_VARIETIES` name."""
        if num < 3:
            raise ValueError(f"num={num}: need at least three studies (one per split)")
        out_dir = Path(out_dir)
        for sub in (IMAGES_DIR, XML_DIR, PNG_DIR):
            (out_dir / sub).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        truth: dict[str, dict[str, bool]] = {}
        annotated = []
        for number in range(1, num + 1):
            study_id = f"CXR{number}_IM-{int(rng.integers(10_000)):04d}"
            findings = synthetic.sample_findings(rng)
            prose, impression = synthetic.write_report_sections(findings, rng, reports)
            if rng.random() < 0.08:
                prose = ""
            image_ids = [f"{study_id}-1001", f"{study_id}-2001"]
            os_dir = out_dir / IMAGES_DIR / study_id
            os_dir.mkdir(exist_ok=True)
            for view_index, (image_id, view) in enumerate(zip(image_ids, synthetic.VIEWS)):
                png = synthetic.encode_png(synthetic.draw_radiograph(findings, rng, size=image_size, view=view))
                (out_dir / PNG_DIR / f"{image_id}.png").write_bytes(png)
                (os_dir / f"{view_index}.png").write_bytes(png)
            _write_openi_xml(out_dir / XML_DIR / f"{number}.xml", number, prose, impression, image_ids, rng)
            truth[study_id] = findings
            if prose:
                annotated.append({"id": study_id, "report": prose, "image_path": [f"{study_id}/0.png", f"{study_id}/1.png"]})
        # R2Gen's split is about 7:1:2; draw ours with the same proportions.
        names = dio.group_split([a["id"] for a in annotated], {"train": 0.7, "val": 0.1, "test": 0.2}, seed)
        annotation: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLIT_NAMES}
        for entry, split in zip(annotated, names):
            annotation[split].append({**entry, "split": split})
        (out_dir / ANNOTATION_NAME).write_text(json.dumps(annotation, indent=1) + "\n", encoding="utf-8")
        synthetic.write_truth(out_dir, truth, dataset=self.name, seed=seed)
        return out_dir


def _add_labeler_findings(splits: dict[str, list[dict[str, Any]]], opts: dict[str, Any]) -> dict[str, Any]:
    """Labels each study's report with medcap's rule-based labeler (ours, not
    CheXpert's: `medcap.evaluation.clinical`), then the uncertain / blank
    policies; returns the info entries that say so."""
    from medcap.evaluation.clinical import OBSERVATIONS, label_report

    policy = fl.check_policy(opts, "iu_xray")
    names = fl.check_labels(opts["labels"], OBSERVATIONS, "iu_xray")
    for examples in splits.values():
        for example in examples:
            values = label_report(example["report"])
            example["findings"] = [fl.target(math.nan if values[n] is None else float(values[n]), policy) for n in names]
            example["findings_names"] = names
    return {
        "findings_source": "medcap's rule-based CheXpert-14 labeler on the report (ours, not the CheXpert labeler)",
        "findings_names": list(names),
        **fl.policy_info(policy),
        "label_counts": fl.label_counts(splits, names),
    }


def _detect_layout(source_dir: Path, requested: str, variant: str) -> str:
    has_r2gen = (source_dir / ANNOTATION_NAME).is_file()
    has_openi = (source_dir / XML_DIR).is_dir()
    if requested == "auto" and variant == "random_721" and has_openi:
        return "openi"  # the release paper 002 counts (module docstring)
    if requested == "r2gen" or (requested == "auto" and has_r2gen):
        if not has_r2gen:
            raise DataError("R2Gen annotation file not found", file=source_dir / ANNOTATION_NAME)
        return "r2gen"
    if requested == "openi" or (requested == "auto" and has_openi):
        if not has_openi:
            raise DataError("OpenI report directory not found", file=source_dir / XML_DIR)
        return "openi"
    raise DataError(f"neither R2Gen's {ANNOTATION_NAME} nor OpenI's {XML_DIR}/ found", file=source_dir)


def _example(study: dict[str, Any], *, multi_view: bool) -> dict[str, Any]:
    images = study["images"]
    return {
        "id": study["id"],
        "patient_id": study["patient_id"],
        "image": tuple(images) if multi_view else images[0],
        "report": study["report"],
        "report_clean": clean_report(study["report"], "iu_xray"),
    }


def _read_r2gen(source_dir: Path, check_images: str, fail) -> list[dict[str, Any]]:
    path = source_dir / ANNOTATION_NAME
    data = dio.read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"expected an object with {', '.join(SPLIT_NAMES)} lists, got {type(data).__name__}", file=path)
    studies: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for split in SPLIT_NAMES:
        entries = data.get(split)
        if not isinstance(entries, list):
            raise DataError(f"expected a list of studies, got {type(entries).__name__}", file=path, field=split)
        for index, entry in enumerate(entries):
            record = f"{split}[{index}]"
            try:
                study = _r2gen_study(entry, split, record, path, source_dir, check_images)
                if study["id"] in seen:
                    raise DataError(f"duplicate id {study['id']!r} (first at {seen[study['id']]})", file=path, record=record, field="id")
            except DataError as err:
                fail(err)
                continue
            seen[study["id"]] = record
            studies.append(study)
    return studies


def _r2gen_study(entry: Any, split: str, record: str, path: Path, source_dir: Path, check_images: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise DataError(f"expected an object, got {type(entry).__name__}", file=path, record=record)
    study_id = entry.get("id")
    if not isinstance(study_id, str) or not study_id.strip():
        raise DataError(f"expected a non-empty string, got {study_id!r}", file=path, record=record, field="id")
    record = f"{record} (id {study_id})"
    report = entry.get("report")
    if not isinstance(report, str) or not report.strip():
        raise DataError(f"expected a non-empty report, got {report!r}", file=path, record=record, field="report")
    paths = entry.get("image_path")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise DataError(f"expected a non-empty list of paths, got {paths!r}", file=path, record=record, field="image_path")
    if entry.get("split", split) != split:
        raise DataError(f"entry says split {entry.get('split')!r} but is listed under {split!r}", file=path, record=record, field="split")
    images = []
    for view, relative in enumerate(paths):
        image = source_dir / IMAGES_DIR / relative
        check_image(image, check_images, file=path, record=record, field=f"image_path[{view}]")
        images.append(str(image))
    return {"id": study_id, "patient_id": patient_id_of(study_id), "images": images, "report": report.strip(), "split": split}


def _read_openi(source_dir: Path, check_images: str, fail) -> tuple[list[dict[str, Any]], dict[str, int]]:
    xml_files = sorted((source_dir / XML_DIR).glob("*.xml"), key=lambda p: (len(p.stem), p.stem))
    if not xml_files:
        raise DataError("no *.xml reports", file=source_dir / XML_DIR)
    studies = []
    counts = {"xml_reports": len(xml_files), "impression_fallbacks": 0, **dict.fromkeys(OPENI_EXCLUSIONS, 0)}
    seen: dict[str, Path] = {}
    for xml_path in xml_files:
        try:
            study, outcome = _openi_study(xml_path, source_dir, check_images)
            if study is not None and study["id"] in seen:
                raise DataError(f"duplicate study id {study['id']!r} (also in {seen[study['id']].name})", file=xml_path, field="parentImage@id")
        except DataError as err:
            fail(err)
            continue
        if outcome:
            counts[outcome] += 1
        if study is None:
            continue
        seen[study["id"]] = xml_path
        studies.append(study)
    return studies, counts


def _openi_study(xml_path: Path, source_dir: Path, check_images: str) -> tuple[dict[str, Any] | None, str]:
    """(study, "") or (study, "impression_fallbacks"), or (None, the exclusion key)."""
    root = dio.parse_xml(xml_path)
    image_ids = [element.get("id", "").strip() for element in root.iter("parentImage")]
    if not image_ids:
        return None, "studies_without_images"
    sections: dict[str, str] = {}
    for element in root.iter("AbstractText"):
        label = (element.get("Label") or "").upper()
        sections[label] = " ".join("".join(element.itertext()).split())
    report = sections.get("FINDINGS", "")
    outcome = ""
    if not report:
        report = sections.get("IMPRESSION", "")
        outcome = "impression_fallbacks"
    if not report:
        return None, "studies_without_sections"
    images = []
    for view, image_id in enumerate(image_ids):
        if not image_id:
            raise DataError("empty id", file=xml_path, record=f"report {xml_path.stem}", field=f"parentImage[{view}]@id")
        image = source_dir / PNG_DIR / f"{image_id}.png"
        check_image(image, check_images, file=xml_path, record=f"report {xml_path.stem}", field=f"parentImage[{view}]@id")
        images.append(str(image))
    study_id = _VIEW_SUFFIX.sub("", image_ids[0])
    patient = f"CXR{xml_path.stem}" if xml_path.stem.isdigit() else patient_id_of(study_id)
    return {"id": study_id, "patient_id": patient, "images": images, "report": report}, outcome


def _write_openi_xml(
    path: Path, number: int, findings: str, impression: str, image_ids: list[str], rng: np.random.Generator
) -> None:
    root = ET.Element("eCitation")
    ET.SubElement(root, "meta", type="rr")
    ET.SubElement(root, "uId", id=f"CXR{number}")
    ET.SubElement(root, "pmcId", id=str(number))
    citation = ET.SubElement(root, "MedlineCitation", Owner="Indiana University", Status="supplied by publisher")
    article = ET.SubElement(citation, "Article", PubModel="Electronic")
    ET.SubElement(article, "ArticleTitle").text = "Indiana University Chest X-ray Collection"
    abstract = ET.SubElement(article, "Abstract")
    indication = ("Chest pain.", "Shortness of breath.", "Cough.", "Preoperative evaluation.")[int(rng.integers(4))]
    for label, text in (("COMPARISON", "None."), ("INDICATION", indication), ("FINDINGS", findings), ("IMPRESSION", impression)):
        element = ET.SubElement(abstract, "AbstractText", Label=label)
        element.text = text or None
    for figure, image_id in enumerate(image_ids, start=1):
        parent = ET.SubElement(root, "parentImage", id=image_id)
        ET.SubElement(parent, "figureId").text = f"F{figure}"
        ET.SubElement(parent, "caption").text = "Xray Chest PA and Lateral"
        ET.SubElement(parent, "url").text = f"/hadoop/storage/radiology/extract/{image_id}.jpg"
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")


IU_XRAY = IUXraySource()
DATASETS.register("iu_xray", IU_XRAY)
