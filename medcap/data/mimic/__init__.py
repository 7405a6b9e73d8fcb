"""MIMIC-CXR(-JPG) + reports + MIMIC-IV-ED: reader, join, cleaning, splits, synthetic writer.

The dataset of paper 001 (Aksoy et al., "Enhancing Image-to-Text Generation in
Radiology Reports through Cross-modal Multi-Task Learning", sections 3.1, 3.2
and 4.1): chest radiographs and their reports, joined with the emergency
department stay during which the film was taken, giving 10 non-imaging
features, an acuity target and 5 finding labels.

One concern per module, in the order the data flows (this package
re-exports their public names and registers `DATASETS["mimic"]`):

    formats.py    file names, columns, value parsers, CSV and report files
    sections.py   report sections (FINDINGS / IMPRESSION) after MIT-LCP's parser
    join.py       studies joined with their ED stay, demographics and labels
    cleaning.py   labels, categoricals, text fields, vital ranges and scaling
    splits.py     the official split and the balanced 10k subset
    reader.py     `read_mimic` / `check_mimic`: the above, end to end
    synthetic.py  a learnable synthetic tree in the releases' formats

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

from pathlib import Path
from typing import Any

from medcap.data.base import CheckReport, ReadResult
from medcap.data.mimic.cleaning import (
    ABBREVIATIONS,
    gender_category,
    implausible,
    label_value,
    normalize_text,
    one_hot,
    race_group,
    scale_vitals,
)
from medcap.data.mimic.formats import (
    CHEXPERT_LABELS,
    FINDINGS_NAMES,
    GENDERS,
    OPTION_DEFAULTS,
    PATHOLOGY_LABELS,
    RACE_GROUPS,
    VARIANTS,
    VITAL_NAMES,
    VITAL_RANGES,
    parse_study_date,
    parse_study_time,
)
from medcap.data.mimic.join import admission_for_stay, find_stay, select_frontal
from medcap.data.mimic.reader import check_mimic, read_mimic
from medcap.data.mimic.sections import (
    SECTION_NAMES,
    extract_report,
    report_sections,
    section_name,
)
from medcap.data.mimic.splits import balanced_subset, is_normal
from medcap.data.mimic.synthetic import SYNTH_IMAGE_SIZE, synthesize_mimic
from medcap.registry import DATASETS

__all__ = [
    "ABBREVIATIONS",
    "CHEXPERT_LABELS",
    "FINDINGS_NAMES",
    "GENDERS",
    "MimicSource",
    "OPTION_DEFAULTS",
    "PATHOLOGY_LABELS",
    "RACE_GROUPS",
    "SECTION_NAMES",
    "SYNTH_IMAGE_SIZE",
    "VARIANTS",
    "VITAL_NAMES",
    "VITAL_RANGES",
    "admission_for_stay",
    "balanced_subset",
    "check_mimic",
    "extract_report",
    "find_stay",
    "gender_category",
    "implausible",
    "is_normal",
    "label_value",
    "normalize_text",
    "one_hot",
    "parse_study_date",
    "parse_study_time",
    "race_group",
    "read_mimic",
    "report_sections",
    "scale_vitals",
    "section_name",
    "select_frontal",
    "synthesize_mimic",
]

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

    def synthesize(self, out_dir: str | Path, *, num: int, seed: int, image_size: int = SYNTH_IMAGE_SIZE, reports: str = "listed") -> Path:
        return synthesize_mimic(out_dir, num=num, seed=seed, image_size=image_size, reports=reports)


DATASETS.register("mimic", MimicSource())
