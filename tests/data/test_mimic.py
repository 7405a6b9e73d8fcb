"""MIMIC-CXR(-JPG) + reports + MIMIC-IV-ED reader: synthetic round-trips, the
join, cleaning, splits, the DICOM release layout, and errors on hand-broken
copies of a synthetic tree."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medcap.data import mimic
from medcap.data.base import DataError, validate_example
from medcap.data.mimic.join import _Stay
from medcap.registry import DATASETS
from medcap.text import clean_report

NUM_STUDIES = 240
SEED = 3


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return mimic.synthesize_mimic(tmp_path_factory.mktemp("mimic") / "src", num=NUM_STUDIES, seed=SEED, image_size=48)


@pytest.fixture(scope="module")
def truth(tree) -> dict:
    return json.loads((tree / "synthetic_truth.json").read_text())["mimic"]["studies"]


@pytest.fixture(scope="module")
def official(tree):
    return mimic.read_mimic(tree, variant="official")


def broken_copy(tree: Path, tmp_path: Path) -> Path:
    target = tmp_path / "broken"
    shutil.copytree(tree, target)
    return target


def expected_ids(truth: dict, *, drop_bad_vitals: bool = True) -> set[str]:
    """Study ids the reader must keep, derived from the generator's ground truth."""
    kept = set()
    for key, study in truth.items():
        stay = study["stay"]
        if not (study["frontal_dicom"] and study["inside_stay"] and study["has_chexpert"]):
            continue
        if stay["acuity"] is None or study["sections"] == "none":
            continue
        if drop_bad_vitals and stay["corruption"].get("vital") in mimic.VITAL_NAMES:
            continue
        kept.add(key)
    return kept


def all_examples(result) -> list[dict]:
    return [example for split in result.splits.values() for example in split]


def single_image_study(truth: dict, kept: set[str], index: int) -> str:
    """The index-th kept study that has exactly one image (so breaking it
    removes the study and nothing else)."""
    return [key for key in sorted(kept) if len(truth[key]["views"]) == 1][index]


def metadata_line(tree: Path, dicom_id: str) -> int:
    lines = (tree / "mimic-cxr-2.0.0-metadata.csv").read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if line.startswith(dicom_id))


def image_path(tree: Path, study: dict) -> Path:
    subject = str(study["subject_id"])
    return tree / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study['study_id']}" / f"{study['frontal_dicom']}.jpg"


def report_path(tree: Path, study: dict) -> Path:
    subject = str(study["subject_id"])
    return tree / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study['study_id']}.txt"


# ---------------------------------------------------------------------------
# Field parsers


@pytest.mark.parametrize(
    "text, expected",
    [
        ("93041.5", dt.time(9, 30, 41, 500000)),
        ("1.234", dt.time(0, 0, 1, 234000)),
        ("134501", dt.time(13, 45, 1)),
        ("235959.999", dt.time(23, 59, 59, 999000)),
        ("0", dt.time(0, 0, 0)),
        ("45916.421", dt.time(4, 59, 16, 421000)),
    ],
)
def test_study_time_is_zero_padded(text, expected):
    assert mimic.parse_study_time(text) == expected


@pytest.mark.parametrize("text", ["", "12:30:00", "246000", "126000.0", "1234567", "abc", "-93041"])
def test_study_time_rejects_garbage(text):
    with pytest.raises(ValueError, match="HHMMSS"):
        mimic.parse_study_time(text)


def test_study_date():
    assert mimic.parse_study_date("21800506") == dt.date(2180, 5, 6)
    assert mimic.parse_study_date("21800506.0") == dt.date(2180, 5, 6)
    for bad in ("2180-05-06", "21801306", "2180056", ""):
        with pytest.raises(ValueError, match="YYYYMMDD"):
            mimic.parse_study_date(bad)


def test_text_normalisation():
    assert mimic.normalize_text("S/P Fall..") == "status post fall"
    assert mimic.normalize_text("SOB, Cough") == "shortness of breath cough"
    assert mimic.normalize_text("CHEST PAIN NOS") == "chest pain not otherwise specified"
    assert mimic.normalize_text("Pneumonia,  organism unspecified") == "pneumonia organism unspecified"
    assert mimic.normalize_text("N/V w/ abd pain") == "nausea vomiting with abdominal pain"
    assert mimic.normalize_text("") == ""


def test_race_grouping_and_one_hot():
    cases = {
        "WHITE - OTHER EUROPEAN": "white",
        "PORTUGUESE": "white",
        "BLACK/CAPE VERDEAN": "black",
        "HISPANIC/LATINO - DOMINICAN": "hispanic",
        "SOUTH AMERICAN": "hispanic",
        "ASIAN - KOREAN": "asian",
        "AMERICAN INDIAN/ALASKA NATIVE": "other",
        "MULTIPLE RACE/ETHNICITY": "other",
        "UNABLE TO OBTAIN": "unknown",
        "": "unknown",
    }
    for raw, group in cases.items():
        assert mimic.race_group(raw) == group, raw
    assert mimic.one_hot("asian", mimic.RACE_GROUPS) == [0, 0, 0, 1, 0, 0]
    assert mimic.gender_category(" f ") == "F" and mimic.gender_category("X") == "unknown"


def test_report_sections():
    text = " FINAL REPORT\n INDICATION: cough\n FINDINGS:\n Lungs are clear.\n No effusion.\n IMPRESSION:\n Normal.\n"
    assert mimic.extract_report(text) == "Lungs are clear.\n No effusion.\n\nNormal."
    assert mimic.extract_report(" IMPRESSION: No acute process.") == "No acute process."
    assert mimic.extract_report(" FINDINGS AND IMPRESSION: Clear lungs.") == "Clear lungs."
    assert mimic.extract_report(" WET READ: ___ 10:15 AM\n no acute process") is None


# Reports written the way MIMIC-CXR's `files/pNN/p<subject>/s<study>.txt` are:
# a centred FINAL REPORT line, every other line indented by one space, blank
# lines holding a single space, headers of their own line ending in ": ",
# `___` where the release removed a name or date.
def real_style_report(*lines: str) -> str:
    return "\n".join(["                                 FINAL REPORT", *lines]) + "\n"


SUBSECTION_REPORT = real_style_report(
    " EXAMINATION:  CHEST (PA AND LAT)",
    " ",
    " INDICATION:  ___ with cough",
    " ",
    " TECHNIQUE:  Chest PA and lateral",
    " ",
    " COMPARISON:  ___",
    " ",
    " FINDINGS: ",
    " ",
    " LUNGS: Clear, without focal consolidation.",
    " HEART: Normal size.",
    " PLEURA: No effusion or pneumothorax.",
    " MEDIASTINUM: Normal contour.",
    " BONES: Degenerative changes of the thoracic spine.",
    " ",
    " IMPRESSION: ",
    " ",
    " No acute cardiopulmonary process.",
)

IMPRESSION_ONLY_REPORT = real_style_report(
    " EXAMINATION:  CHEST (PORTABLE AP)",
    " ",
    " INDICATION:  ___ year old man with sob  // eval for pneumonia",
    " ",
    " COMPARISON:  ___",
    " ",
    " IMPRESSION: ",
    " ",
    " Compared to chest radiographs ___, mild pulmonary edema has improved.",
    " Moderate cardiomegaly is stable.",
)


def test_subsection_labels_stay_inside_the_findings():
    assert mimic.report_sections(SUBSECTION_REPORT) == {
        "preamble": "FINAL REPORT",
        "examination": "CHEST (PA AND LAT)",
        "indication": "___ with cough",
        "technique": "Chest PA and lateral",
        "comparison": "___",
        "findings": (
            "LUNGS: Clear, without focal consolidation.\n HEART: Normal size.\n PLEURA: No effusion or pneumothorax.\n"
            " MEDIASTINUM: Normal contour.\n BONES: Degenerative changes of the thoracic spine."
        ),
        "impression": "No acute cardiopulmonary process.",
    }
    assert mimic.extract_report(SUBSECTION_REPORT) == (
        "LUNGS: Clear, without focal consolidation.\n HEART: Normal size.\n PLEURA: No effusion or pneumothorax.\n"
        " MEDIASTINUM: Normal contour.\n BONES: Degenerative changes of the thoracic spine.\n\n"
        "No acute cardiopulmonary process."
    )


def test_report_with_only_an_impression_has_normalised_section_names():
    assert mimic.report_sections(IMPRESSION_ONLY_REPORT) == {
        "preamble": "FINAL REPORT",
        "examination": "CHEST (PORTABLE AP)",
        "indication": "___ year old man with sob  // eval for pneumonia",
        "comparison": "___",
        "impression": "Compared to chest radiographs ___, mild pulmonary edema has improved.\n Moderate cardiomegaly is stable.",
    }
    assert mimic.extract_report(IMPRESSION_ONLY_REPORT) == (
        "Compared to chest radiographs ___, mild pulmonary edema has improved.\n Moderate cardiomegaly is stable."
    )


@pytest.mark.parametrize("header", ["CHEST, TWO VIEWS", "PA AND LATERAL VIEWS OF THE CHEST", "CHEST, PA AND LATERAL"])
def test_study_description_header_opens_the_findings(header):
    text = (
        "                                 FINAL REPORT\n"
        " HISTORY:  ___-year-old woman with cough.\n \n"
        " COMPARISON:  ___.\n \n"
        f" {header}:  The lungs are clear.  The heart is normal in size.  There is no\n"
        " pleural effusion or pneumothorax.\n \n"
        " IMPRESSION:  No acute cardiopulmonary process.\n"
    )
    sections = mimic.report_sections(text)
    assert sections["comparison"] == "___."
    assert sections["findings"] == (
        "The lungs are clear.  The heart is normal in size.  There is no\n pleural effusion or pneumothorax."
    )
    assert mimic.extract_report(text) == (
        "The lungs are clear.  The heart is normal in size.  There is no\n pleural effusion or pneumothorax.\n\n"
        "No acute cardiopulmonary process."
    )


@pytest.mark.parametrize(
    "findings_header, impression_header",
    [("FINDNGS", "IMPRESSION"), ("FINDINGS", "IMPRESSON"), ("FINIDNGS", "IMPESSION"), ("FINDINS", "IMPRESION")],
)
def test_misspelled_headers_are_mapped(findings_header, impression_header):
    text = (
        "                                 FINAL REPORT\n"
        " INDICATION:  ___ with fever\n \n"
        f" {findings_header}: \n \n"
        " Right lower lobe consolidation.\n \n"
        f" {impression_header}: \n \n"
        " Right lower lobe pneumonia.\n"
    )
    assert mimic.extract_report(text) == "Right lower lobe consolidation.\n\nRight lower lobe pneumonia."


def test_section_names_are_normalised():
    assert mimic.section_name("CLINICAL   HISTORY") == ("history", False)
    assert mimic.section_name("REASON FOR EXAM") == ("indication", False)
    assert mimic.section_name("FINDINGS AND IMPRESSION") == ("impression", False)
    assert mimic.section_name("PRELIMINARY FINDINGS") == ("findings", False)
    assert mimic.section_name("PORTABLE AP CHEST") == ("findings", True)
    for label in ("LUNGS", "HEART", "PLEURA", "BONES", "MEDIASTINUM", "NOTE"):
        assert mimic.section_name(label) is None, label
    # A study-description label inside the impression stays there.
    text = " FINDINGS:  Clear lungs.\n IMPRESSION:  Stable.\n PORTABLE CHEST:  Lines unchanged.\n"
    assert mimic.extract_report(text) == "Clear lungs.\n\nStable.\n PORTABLE CHEST:  Lines unchanged."
    # A repeated section keeps its last non-empty body: an empty study title before the indication.
    titled = " CHEST, PA AND LATERAL:\n \n INDICATION:  Cough.\n FINDINGS:  Clear lungs.\n"
    assert mimic.report_sections(titled)["findings"] == "Clear lungs."


def test_reader_keeps_subsection_labels_of_a_real_style_report(tree, truth, tmp_path):
    copy = broken_copy(tree, tmp_path)
    key = sorted(expected_ids(truth))[1]
    report_path(copy, truth[key]).write_text(SUBSECTION_REPORT, encoding="utf-8")
    example = next(e for e in all_examples(mimic.read_mimic(copy, variant="official")) if e["id"] == key)
    assert example["report"] == mimic.extract_report(SUBSECTION_REPORT)
    assert example["report_clean"] == clean_report(mimic.extract_report(SUBSECTION_REPORT), "mimic_cxr")
    assert "heart" in example["report_clean"].split() and "bones" in example["report_clean"].split()


def test_stay_window_is_inclusive():
    t0 = dt.datetime(2150, 1, 1, 10, 0)
    early = _Stay(1, t0, t0 + dt.timedelta(hours=5), "F", "WHITE")
    late = _Stay(2, t0 + dt.timedelta(hours=2), t0 + dt.timedelta(hours=3), "F", "WHITE")
    assert mimic.find_stay([early], t0) is early
    assert mimic.find_stay([early], t0 + dt.timedelta(hours=5)) is early
    assert mimic.find_stay([early], t0 + dt.timedelta(hours=5, microseconds=1)) is None
    assert mimic.find_stay([early, late], t0 + dt.timedelta(hours=2, minutes=30)) is late  # latest intime


# ---------------------------------------------------------------------------
# Round trip on the synthetic tree


def test_registered():
    source = DATASETS.get("mimic")
    assert isinstance(source, mimic.MimicSource)
    assert source.name == "mimic" and source.variants == ("balanced_10k", "official")


def test_join_keeps_exactly_the_studies_inside_stays(official, truth):
    examples = all_examples(official)
    assert {e["id"] for e in examples} == expected_ids(truth)
    assert official.skipped == []
    info = official.info
    frontal = [s for s in truth.values() if s["frontal_dicom"]]
    assert info["studies_in_metadata"] == NUM_STUDIES
    assert info["studies_without_frontal"] == NUM_STUDIES - len(frontal) > 0
    assert info["studies_outside_ed_stays"] == sum(not s["inside_stay"] for s in frontal) > 0
    assert info["studies_without_sections"] > 0 and info["missing_acuity"] > 0
    assert sum(info["implausible_vitals"].values()) > 0
    assert info["studies_dropped_for_vitals"] == len(expected_ids(truth, drop_bad_vitals=False) - expected_ids(truth))


def test_examples_match_the_ground_truth(official, truth, tree):
    examples = all_examples(official)
    chexpert = pd.read_csv(tree / "mimic-cxr-2.0.0-chexpert.csv.gz").set_index("study_id")
    for example in examples:
        validate_example(example)
        study = truth[example["id"]]
        stay = study["stay"]
        assert example["patient_id"] == f"p{study['subject_id']}"
        assert example["dicom_id"] == study["frontal_dicom"]  # PA preferred over AP
        assert Path(example["image"]) == image_path(tree, study) and Path(example["image"]).is_file()
        assert example["split"] == study["split"]
        assert example["acuity"] == stay["acuity"] and 1 <= example["acuity"] <= 5
        assert example["vitals_raw"] == stay["vitals"]
        assert example["icd_title"] == mimic.normalize_text(stay["icd_title"])  # seq_num 1
        assert example["chief_complaint"] == mimic.normalize_text(stay["chief_complaint"])
        assert example["gender"] == study["gender"] and example["gender_onehot"] == mimic.one_hot(study["gender"], mimic.GENDERS)
        assert sum(example["race_onehot"]) == 1 and example["race"] == mimic.race_group(study["race"])
        assert example["findings_names"] == mimic.FINDINGS_NAMES
        row = chexpert.loc[study["study_id"]]
        assert example["findings"] == [int(row[name] == 1.0) for name in mimic.FINDINGS_NAMES]
        assert example["report_clean"] == clean_report(example["report"], "mimic_cxr")
        assert "FINDINGS" not in example["report"] and "INDICATION" not in example["report"]
    both = [e for e in examples if truth[e["id"]]["views"] == ["AP", "PA"]]
    assert both and all(e["view_position"] == "PA" for e in both)


def test_vitals_scaled_on_train_only(official):
    scaler = official.info["scaler"]
    train = np.array([e["vitals"] for e in official.splits["train"]])
    raw_train = np.array([e["vitals_raw"] for e in official.splits["train"]])
    assert train.shape == (len(official.splits["train"]), 6)
    assert not np.isnan(train).any()
    np.testing.assert_allclose(train.min(axis=0), 0.0)
    np.testing.assert_allclose(train.max(axis=0), 1.0)
    np.testing.assert_array_equal(scaler["min"], raw_train.min(axis=0))
    np.testing.assert_array_equal(scaler["max"], raw_train.max(axis=0))
    held_out = [e for split in ("val", "test") for e in official.splits[split]]
    for example in held_out:
        expected = (np.array(example["vitals_raw"]) - scaler["min"]) / (np.array(scaler["max"]) - scaler["min"])
        np.testing.assert_allclose(example["vitals"], expected)
    scaled = np.array([e["vitals"] for e in held_out])
    assert (scaled < 0).any() or (scaled > 1).any(), "held-out values are not clipped into the train range"
    for example in all_examples(official):
        for name, value in zip(mimic.VITAL_NAMES, example["vitals_raw"]):
            low, high = mimic.VITAL_RANGES[name]
            assert low <= value <= high


def test_uncertain_label_policy_both_ways(tree, official):
    ones = mimic.read_mimic(tree, variant="official", options={"uncertain_label": 1})
    assert official.info["uncertain_label"] == 0 and ones.info["uncertain_label"] == 1
    chexpert = pd.read_csv(tree / "mimic-cxr-2.0.0-chexpert.csv.gz").set_index("study_id")
    by_id = {e["id"]: e for e in all_examples(ones)}
    uncertain = 0
    for example in all_examples(official):
        row = chexpert.loc[example["study_id"]]
        for index, name in enumerate(mimic.FINDINGS_NAMES):
            if row[name] == -1.0:
                uncertain += 1
                assert example["findings"][index] == 0 and by_id[example["id"]]["findings"][index] == 1
            else:
                assert example["findings"][index] == by_id[example["id"]]["findings"][index]
    assert uncertain > 0


def test_impute_policy_keeps_studies_and_uses_train_medians(tree, truth, official):
    imputed = mimic.read_mimic(tree, variant="official", options={"invalid_vitals": "impute"})
    assert {e["id"] for e in all_examples(imputed)} == expected_ids(truth, drop_bad_vitals=False)
    medians = imputed.info["impute_medians"]
    count = 0
    for example in all_examples(imputed):
        corruption = truth[example["id"]]["stay"]["corruption"]
        if corruption.get("vital") in mimic.VITAL_NAMES:
            index = mimic.VITAL_NAMES.index(corruption["vital"])
            assert example["vitals_raw"][index] == medians[corruption["vital"]]
            count += 1
        assert not any(math.isnan(v) for v in example["vitals"])
    assert count == sum(imputed.info["imputed_values"].values()) > 0
    clean_train = [truth[e["id"]]["stay"]["vitals"] for e in imputed.splits["train"] if not truth[e["id"]]["stay"]["corruption"].get("vital")]
    assert medians["o2sat"] == float(np.median([v[0] for v in clean_train]))


def test_vitals_and_acuity_follow_the_findings(official, truth):
    examples = all_examples(official)
    fluid = [e for e in examples if e["findings"][3] or e["findings"][4]]  # edema / effusion
    normal = [e for e in examples if e["normal"]]
    mean = lambda rows, i: float(np.mean([e["vitals_raw"][i] for e in rows]))  # noqa: E731
    assert mean(fluid, 0) < mean(normal, 0) - 2  # o2sat
    assert mean(fluid, 2) > mean(normal, 2) + 2  # resprate
    assert np.mean([e["acuity"] for e in fluid]) < np.mean([e["acuity"] for e in normal]) - 1  # more acute


# ---------------------------------------------------------------------------
# Balanced subset


def test_balanced_subset_properties(tree):
    result = mimic.read_mimic(tree, split_seed=5, options={"subset_sizes": [40, 12, 8]})
    subset = result.info["subset"]
    assert result.counts() == {"train": 40, "val": 12, "test": 8} and not subset["scaled"]
    for name, examples in result.splits.items():
        assert sum(e["normal"] for e in examples) == len(examples) // 2, name
    examples = all_examples(result)
    reports = [e["report_clean"] for e in examples]
    assert len(set(reports)) == len(reports)
    patients = {name: {e["patient_id"] for e in examples} for name, examples in result.splits.items()}
    assert not (patients["train"] & patients["val"] or patients["train"] & patients["test"] or patients["val"] & patients["test"])
    assert subset["duplicate_reports_removed"] > 0
    again = mimic.read_mimic(tree, split_seed=5, options={"subset_sizes": [40, 12, 8]})
    other = mimic.read_mimic(tree, split_seed=6, options={"subset_sizes": [40, 12, 8]})
    ids = lambda r: {n: [e["id"] for e in s] for n, s in r.splits.items()}  # noqa: E731
    assert ids(again) == ids(result) and ids(other) != ids(result)


def test_balanced_subset_scales_down_when_the_pool_is_small(tree):
    result = mimic.read_mimic(tree)  # asks for 10,000 studies
    subset = result.info["subset"]
    assert subset["scaled"] and subset["requested_sizes"] == [7000, 2000, 1000]
    pool = 2 * min(subset["available_normal"], subset["available_abnormal"])
    assert sum(result.counts().values()) <= pool
    assert result.counts()["train"] > result.counts()["val"] > result.counts()["test"] > 0
    for examples in result.splits.values():
        assert abs(2 * sum(e["normal"] for e in examples) - len(examples)) <= 1


def test_normal_definition():
    labels = dict.fromkeys(mimic.CHEXPERT_LABELS, math.nan)
    assert mimic.is_normal(labels, 0)
    assert mimic.is_normal({**labels, "Support Devices": 1.0}, 0)
    assert not mimic.is_normal({**labels, "Fracture": 1.0}, 0)
    assert mimic.is_normal({**labels, "Edema": -1.0}, 0) and not mimic.is_normal({**labels, "Edema": -1.0}, 1)
    assert mimic.is_normal({**labels, "No Finding": 1.0, "Edema": -1.0}, 1)


# ---------------------------------------------------------------------------
# Formats and errors


def test_plain_and_gzipped_csvs_read_the_same(tree, official, tmp_path):
    copy = broken_copy(tree, tmp_path)
    gz = copy / "mimic-cxr-2.0.0-chexpert.csv.gz"
    (copy / "mimic-cxr-2.0.0-chexpert.csv").write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    meta = copy / "mimic-cxr-2.0.0-metadata.csv"
    (copy / "mimic-cxr-2.0.0-metadata.csv.gz").write_bytes(gzip.compress(meta.read_bytes()))
    meta.unlink()
    result = mimic.read_mimic(copy, variant="official")
    assert [e["id"] for e in all_examples(result)] == [e["id"] for e in all_examples(official)]


@pytest.mark.parametrize("field, column, value", [("StudyTime", 8, "25:61"), ("StudyDate", 7, "2180-13-01")])
def test_unparseable_study_time_names_file_row_field(tree, truth, tmp_path, field, column, value):
    copy = broken_copy(tree, tmp_path)
    study = truth[single_image_study(truth, expected_ids(truth), 0)]
    path = copy / "mimic-cxr-2.0.0-metadata.csv"
    line = metadata_line(copy, study["frontal_dicom"])
    lines = path.read_text().splitlines()
    cells = lines[line - 1].split(",")
    cells[column] = value
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as caught:
        mimic.read_mimic(copy, variant="official")
    error = caught.value
    assert error.file == str(path) and error.record == f"line {line}" and error.field == field
    assert value in str(error)
    assert str(error).startswith(f"{path}: line {line}: field '{field}': ")


def test_non_utf8_csv_names_file_and_line(tree, tmp_path):
    copy = broken_copy(tree, tmp_path)
    path = copy / "ed" / "triage.csv"
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b",", b",\xe9", 1)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match="UTF-8") as caught:
        mimic.read_mimic(copy)
    assert caught.value.file == str(path) and caught.value.record == "line 5"


def test_bad_ed_rows_name_file_line_field(tree, tmp_path):
    copy = broken_copy(tree, tmp_path)
    path = copy / "ed" / "edstays.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[2, "outtime"] = "yesterday"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as caught:
        mimic.read_mimic(copy)
    assert (caught.value.file, caught.value.record, caught.value.field) == (str(path), "line 4", "outtime")


def test_missing_column_names_file_and_column(tree, tmp_path):
    copy = broken_copy(tree, tmp_path)
    path = copy / "ed" / "triage.csv"
    pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns=["acuity"]).to_csv(path, index=False)
    with pytest.raises(DataError, match="acuity") as caught:
        mimic.read_mimic(copy, variant="official")
    assert caught.value.file == str(path) and caught.value.field == "acuity"


def test_missing_csv_names_both_accepted_names(tree, tmp_path):
    copy = broken_copy(tree, tmp_path)
    (copy / "ed" / "diagnosis.csv.gz").unlink()
    with pytest.raises(DataError, match=r"diagnosis\.csv or diagnosis\.csv\.gz"):
        mimic.read_mimic(copy)


def test_missing_image_names_it(tree, truth, tmp_path):
    copy = broken_copy(tree, tmp_path)
    study = truth[single_image_study(truth, expected_ids(truth), 1)]
    image_path(copy, study).unlink()
    with pytest.raises(DataError, match="missing image") as caught:
        mimic.read_mimic(copy, variant="official")
    assert str(image_path(copy, study)) in str(caught.value) and caught.value.field == "image"


def jpg_to_dicom(jpg: Path) -> Path:
    """Rewrites a synthetic JPEG as the DICOM release's <dicom_id>.dcm (8-bit
    MONOCHROME2 with an identity window) and deletes the JPEG."""
    from PIL import Image

    from medcap.testing import write_dicom

    dcm = jpg.with_suffix(".dcm")
    # LINEAR_EXACT with center 127.5, width 255 maps v to v (PS3.3 C.11.2.1.3.2).
    write_dicom(dcm, np.asarray(Image.open(jpg).convert("L")), WindowCenter=127.5, WindowWidth=255,
                VOILUTFunction="LINEAR_EXACT")  # fmt: skip
    jpg.unlink()
    return dcm


def test_dicom_release_layout_reads_like_the_jpg_release(tree, truth, official, tmp_path):
    from PIL import Image

    from medcap.data.images import load_pixels

    copy = broken_copy(tree, tmp_path)
    for jpg in sorted((copy / "files").rglob("*.jpg")):
        jpg_to_dicom(jpg)
    result = mimic.read_mimic(copy, variant="official", options={"check_images": "decode"})
    assert result.counts() == official.counts()
    examples = {e["id"]: e for e in all_examples(result)}
    assert set(examples) == {e["id"] for e in all_examples(official)}
    assert all(e["image"].endswith(".dcm") for e in examples.values())
    first = next(iter(examples.values()))
    original = Path(first["image"].replace(str(copy), str(tree))).with_suffix(".jpg")
    np.testing.assert_array_equal(load_pixels(first["image"])[..., 0], np.asarray(Image.open(original).convert("L")))
    assert mimic.read_mimic(copy, variant="official", options={"image_format": "dcm"}).counts() == official.counts()
    # "auto" prefers the .jpg where both exist.
    shutil.copy(original, Path(first["image"]).with_suffix(".jpg"))
    again = {e["id"]: e for e in all_examples(mimic.read_mimic(copy, variant="official"))}
    assert again[first["id"]]["image"] == str(Path(first["image"]).with_suffix(".jpg"))
    with pytest.raises(DataError, match="missing image") as caught:
        mimic.read_mimic(copy, variant="official", options={"image_format": "jpg"})
    assert str(caught.value.file).endswith(".jpg") and caught.value.field == "image"
    with pytest.raises(ValueError, match="image_format"):
        mimic.read_mimic(copy, options={"image_format": "png"})


def test_non_utf8_report_names_file_and_line(tree, truth, tmp_path):
    copy = broken_copy(tree, tmp_path)
    study = truth[sorted(expected_ids(truth))[2]]
    path = report_path(copy, study)
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3] + b" caf\xe9"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match="UTF-8") as caught:
        mimic.read_mimic(copy, variant="official")
    assert caught.value.file == str(path) and "line 4" in str(caught.value.record) and caught.value.field == "report"


def test_missing_report_names_it(tree, truth, tmp_path):
    copy = broken_copy(tree, tmp_path)
    study = truth[sorted(expected_ids(truth))[3]]
    report_path(copy, study).unlink()
    with pytest.raises(DataError, match="not found") as caught:
        mimic.read_mimic(copy, variant="official")
    assert caught.value.file == str(report_path(copy, study))


def break_three(tree: Path, truth: dict) -> list[str]:
    """A bad StudyTime, a missing image and a non-UTF-8 report, in three
    different single-image studies; returns their ids."""
    kept = expected_ids(truth)
    ids = [single_image_study(truth, kept, i) for i in (0, 1, 2)]
    path = tree / "mimic-cxr-2.0.0-metadata.csv"
    line = metadata_line(tree, truth[ids[0]]["frontal_dicom"])
    lines = path.read_text().splitlines()
    cells = lines[line - 1].split(",")
    cells[8] = "noon"
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    image_path(tree, truth[ids[1]]).unlink()
    report = report_path(tree, truth[ids[2]])
    report.write_bytes(report.read_bytes() + b"\xff\xfe\n")
    return ids


def test_skip_invalid_counts_skipped_records(tree, truth, official, tmp_path):
    copy = broken_copy(tree, tmp_path)
    broken = break_three(copy, truth)
    with pytest.raises(DataError):
        mimic.read_mimic(copy, variant="official")
    result = mimic.read_mimic(copy, variant="official", skip_invalid=True)
    assert [e.field for e in result.skipped] == ["StudyTime", "image", "report"]
    assert result.info["skipped"] == 3 and "skipped 3 invalid records" in result.summary()
    assert {e["id"] for e in all_examples(result)} == {e["id"] for e in all_examples(official)} - set(broken)


def test_check_reports_problems_without_raising(tree, truth, tmp_path):
    good = mimic.check_mimic(tree)
    assert good.ok and good.counts["studies_joined"] > 0 and good.counts["skipped"] == 0
    assert sum(good.counts[s] for s in ("train", "val", "test")) == len(expected_ids(truth))
    copy = broken_copy(tree, tmp_path)
    break_three(copy, truth)
    truncated = image_path(copy, truth[single_image_study(truth, expected_ids(truth), 3)])
    truncated.write_bytes(truncated.read_bytes()[:200])
    report = DATASETS.get("mimic").check(copy)
    assert not report.ok
    assert sorted(p.field for p in report.problems) == ["StudyTime", "image", "image", "report"]
    assert any(str(truncated) in str(p) and "unreadable image" in str(p) for p in report.problems)
    assert report.to_dict()["ok"] is False
    (copy / "ed" / "triage.csv").unlink()
    missing = mimic.check_mimic(copy)
    assert len(missing.problems) == 1 and "triage.csv" in str(missing.problems[0])


# ---------------------------------------------------------------------------
# Demographics for MIMIC-IV-ED 1.0 (edstays without gender/race) from MIMIC-IV

#: MIMIC-IV-ED 1.0's edstays columns.
ED_V1_STAYS = ("subject_id", "hadm_id", "stay_id", "intime", "outtime")
PATIENTS_HEADER = ("subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod")
#: admissions of MIMIC-IV 2.2 (hosp/, `race`) and of MIMIC-IV 1.0 (core/, `ethnicity`).
ADMISSIONS_HEADERS = {
    "hosp": (
        "subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type", "admit_provider_id",
        "admission_location", "discharge_location", "insurance", "language", "marital_status", "race",
        "edregtime", "edouttime", "hospital_expire_flag",
    ),
    "core": (
        "subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type", "admission_location",
        "discharge_location", "insurance", "language", "marital_status", "ethnicity", "edregtime", "edouttime",
        "hospital_expire_flag",
    ),
}  # fmt: skip


def _csv_gz(path: Path, header, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join(str(cell) for cell in row) for row in rows]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0))


def _stamp(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def ed_v1_with_mimic_iv(tree: Path, tmp_path: Path, module: str, linked_subject: int, unknown_subject: int) -> tuple[Path, Path]:
    """A copy whose edstays has MIMIC-IV-ED 1.0's columns, plus a MIMIC-IV
    directory (`module` = hosp for 2.x, core for 1.0) holding the demographics.
    `linked_subject`'s stays point (hadm_id) at an admission with the true
    race while a decoy admission lies nearer in time; `unknown_subject` is
    absent from patients."""
    copy = broken_copy(tree, tmp_path)
    stays = pd.read_csv(copy / "ed" / "edstays.csv", dtype=str, keep_default_na=False)
    first_stay = stays.groupby("subject_id").first()
    hadm = {str(linked_subject): "21000001"}
    stays["hadm_id"] = stays["subject_id"].map(hadm).fillna("")
    (copy / "ed" / "edstays.csv").write_text(stays[list(ED_V1_STAYS)].to_csv(index=False), encoding="utf-8")
    root = tmp_path / "mimic-iv"
    patients = [
        [subject, row["gender"], 60, 2150, "2011 - 2013", ""]
        for subject, row in first_stay.iterrows()
        if subject != str(unknown_subject)
    ]
    _csv_gz(root / module / "patients.csv.gz", PATIENTS_HEADER, patients)
    header = ADMISSIONS_HEADERS[module]
    admissions = []
    for number, (subject, row) in enumerate(first_stay.iterrows()):
        intime = dt.datetime.fromisoformat(row["intime"])
        values = dict.fromkeys(header, "")
        values.update(subject_id=subject, admission_type="EW EMER.", hospital_expire_flag=0)
        race_key = "race" if module == "hosp" else "ethnicity"
        if subject == str(linked_subject):
            linked = {**values, "hadm_id": 21000001, "admittime": _stamp(intime - dt.timedelta(days=300)), race_key: row["race"]}
            decoy = {**values, "hadm_id": 21000002, "admittime": _stamp(intime), race_key: "ASIAN - KOREAN"}
            admissions += [linked, decoy]
        else:
            admissions.append({**values, "hadm_id": 22000000 + number, "admittime": _stamp(intime + dt.timedelta(hours=2)), race_key: row["race"]})
    _csv_gz(root / module / "admissions.csv.gz", header, [[a[name] for name in header] for a in admissions])
    return copy, root


@pytest.mark.parametrize("module, race_column", [("hosp", "race"), ("core", "ethnicity")])
def test_ed_v1_demographics_come_from_mimic_iv(tree, truth, official, tmp_path, module, race_column):
    examples = sorted(all_examples(official), key=lambda e: e["id"])
    linked = examples[0]["subject_id"]
    assert truth[examples[0]["id"]]["race"] != "ASIAN - KOREAN"
    unknown = next(e["subject_id"] for e in examples if e["subject_id"] != linked)
    copy, root = ed_v1_with_mimic_iv(tree, tmp_path, module, linked, unknown)
    result = mimic.read_mimic(copy, variant="official", options={"mimic_iv_dir": str(root)})
    assert result.info["demographics_source"] == {
        "gender": str(root / module / "patients.csv.gz"),
        "race": f"{root / module / 'admissions.csv.gz'} ({race_column})",
    }
    stays = pd.read_csv(tree / "ed" / "edstays.csv")
    assert result.info["stays_without_mimic_iv_gender"] == int((stays["subject_id"] == unknown).sum())
    assert result.info["stays_without_mimic_iv_race"] == 0
    got = sorted(all_examples(result), key=lambda e: e["id"])
    assert [e["id"] for e in got] == [e["id"] for e in examples]
    for new, old in zip(got, examples):
        assert (new["race_raw"], new["race"], new["race_onehot"]) == (old["race_raw"], old["race"], old["race_onehot"])
        if new["subject_id"] == unknown:
            assert new["gender"] == "unknown" and new["gender_onehot"] == [0, 0, 1]
        else:
            assert (new["gender"], new["gender_onehot"]) == (old["gender"], old["gender_onehot"])


def test_ed_v1_edstays_without_mimic_iv_names_the_option(tree, truth, official, tmp_path):
    examples = sorted(all_examples(official), key=lambda e: e["id"])
    copy, root = ed_v1_with_mimic_iv(tree, tmp_path, "hosp", examples[0]["subject_id"], examples[1]["subject_id"])
    with pytest.raises(DataError, match="mimic_iv_dir") as caught:
        mimic.read_mimic(copy, variant="official")
    assert caught.value.file == str(copy / "ed" / "edstays.csv") and caught.value.field == "gender"
    admissions = root / "hosp" / "admissions.csv.gz"
    frame = pd.read_csv(admissions, dtype=str, keep_default_na=False).drop(columns=["race"])
    admissions.write_bytes(gzip.compress(frame.to_csv(index=False).encode("utf-8"), mtime=0))
    with pytest.raises(DataError, match="ethnicity") as caught:
        mimic.read_mimic(copy, variant="official", options={"mimic_iv_dir": str(root)})
    assert caught.value.file == str(admissions) and caught.value.field == "race"
    with pytest.raises(DataError, match="does not exist"):
        mimic.read_mimic(copy, variant="official", options={"mimic_iv_dir": str(tmp_path / "absent")})


def test_options_are_validated(tree):
    with pytest.raises(ValueError, match="valid: uncertain_label"):
        mimic.read_mimic(tree, options={"uncertain": 1})
    with pytest.raises(ValueError, match="uncertain_label"):
        mimic.read_mimic(tree, options={"uncertain_label": -1})
    with pytest.raises(ValueError, match="valid: balanced_10k, official"):
        mimic.read_mimic(tree, variant="r2gen")
    with pytest.raises(ValueError, match="Pneumonia"):
        mimic.read_mimic(tree, options={"labels": ["Pneumonia", "Nodule"]})


def test_other_label_sets(tree):
    result = mimic.read_mimic(tree, variant="official", options={"labels": ["Pneumothorax", "Lung Lesion"]})
    example = all_examples(result)[0]
    assert example["findings_names"] == ("Pneumothorax", "Lung Lesion") and len(example["findings"]) == 2


def test_synthesize_is_deterministic(tmp_path):
    def digest(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    first = digest(mimic.synthesize_mimic(tmp_path / "a", num=12, seed=7, image_size=40))
    second = digest(mimic.synthesize_mimic(tmp_path / "b", num=12, seed=7, image_size=40))
    third = digest(mimic.synthesize_mimic(tmp_path / "c", num=12, seed=8, image_size=40))
    assert first == second
    assert first != third
    assert {"mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.0.0-chexpert.csv.gz", "mimic-cxr-2.0.0-split.csv",
            "ed/edstays.csv", "ed/triage.csv", "ed/diagnosis.csv.gz", "synthetic_truth.json"} <= set(first)
    jpgs = [name for name in first if name.endswith(".jpg")]
    assert len(jpgs) >= 12 and all(first[name][:3] == b"\xff\xd8\xff" for name in jpgs)
