"""Findings-classification readers on fixtures written as the releases write them.

ChestX-ray14's CSV rows below are the release's own first rows (header
quirks included: bracketed names spanning two columns, a trailing comma, the
`058Y` ages of the 2017 file, BBox_List's nine-cell header and `Infiltrate`);
CheXpert's header and row shapes are train.csv's and valid.csv's; the
MIMIC-CXR rows have MIMIC-CXR-JPG 2.0.0's columns.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from medcap.data import findings_labels as fl
from medcap.data import synthetic
from medcap.data.base import DataError
from medcap.data.chestxray14 import CHESTXRAY14, SYNTHETIC_TO_CXR14, parse_age
from medcap.data.chexpert import CHEXPERT
from medcap.data.labelled_images import LABELLED_IMAGES
from medcap.data.mimic.labels import MIMIC_CXR_LABELS
from medcap.registry import DATASETS

PNG = synthetic.encode_png(np.full((8, 8), 100, np.uint8))

ENTRY_2017 = """\
Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],
00000001_000.png,Cardiomegaly,0,1,058Y,M,PA,2682,2749,0.143,0.143,
00000001_001.png,Cardiomegaly|Emphysema,1,1,058Y,M,PA,2894,2729,0.143,0.143,
00000001_002.png,Cardiomegaly|Effusion,2,1,058Y,M,PA,2500,2048,0.168,0.168,
00000002_000.png,No Finding,0,2,081Y,M,PA,2500,2048,0.171,0.171,
00000003_000.png,Hernia,0,3,081Y,F,PA,2582,2991,0.143,0.143,
00000004_000.png,Mass|Nodule,0,4,082Y,M,AP,2500,2048,0.168,0.168,
00000005_000.png,Pleural_Thickening|Infiltration,0,5,011M,F,PA,2048,2500,0.168,0.168,
00000006_000.png,No Finding,0,6,414Y,M,PA,2500,2048,0.168,0.168,
00013118_008.png,Atelectasis|Infiltration,8,13118,069Y,M,AP,3056,2544,0.139,0.139,
"""
TRAIN_VAL = "00000001_000.png\n00000001_001.png\n00000001_002.png\n00000002_000.png\n00000003_000.png\n00000005_000.png\n00000006_000.png\n"
TEST = "00000004_000.png\n00013118_008.png\n"
BBOX = """\
Image Index,Finding Label,Bbox [x,y,w,h],,,
00013118_008.png,Atelectasis,225.084745762712,547.019216763771,86.7796610169491,79.1864406779661,,,
00013118_008.png,Infiltrate,607.2,385.3,167.822222222222,234.666666666667,,,
00000004_000.png,Nodule,703.05,288.1,40.5,38.4,,,
"""


def write_cxr14(root: Path, entry: str = ENTRY_2017, *, entry_name: str = "Data_Entry_2017.csv", bbox: str | None = BBOX) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / entry_name).write_text(entry)
    (root / "train_val_list.txt").write_text(TRAIN_VAL)
    (root / "test_list.txt").write_text(TEST)
    if bbox is not None:
        (root / "BBox_List_2017.csv").write_text(bbox)
    for index, line in enumerate(entry.splitlines()[1:]):
        folder = root / f"images_{1 + index % 2:03d}" / "images"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / line.split(",")[0]).write_bytes(PNG)
    return root


def by_id(result) -> dict[str, dict]:
    return {e["id"]: {**e, "split": split} for split, examples in result.splits.items() for e in examples}


def test_every_findings_reader_is_registered():
    for name in ("chestxray14", "chexpert", "mimic_cxr_labels", "labelled_images"):
        assert name in DATASETS.names()


@pytest.mark.parametrize("text, years", [("058Y", 58.0), ("58", 58.0), ("011M", 11 / 12), ("001D", 1 / 365.25)])
def test_chestxray14_ages_of_both_csv_versions(text, years):
    assert parse_age(text) == pytest.approx(years)


def test_chestxray14_reads_the_release_rows(tmp_path):
    result = CHESTXRAY14.read(write_cxr14(tmp_path / "nih"))
    examples = by_id(result)
    assert len(examples) == 9
    names = fl.CHESTXRAY14_LABELS
    assert examples["00000001_001.png"]["findings"] == [1 if n in ("Cardiomegaly", "Emphysema") else 0 for n in names]
    assert examples["00000002_000.png"]["findings"] == [0] * 14
    assert examples["00000005_000.png"]["findings"][names.index("Pleural_Thickening")] == 1
    assert examples["00000005_000.png"]["age"] == pytest.approx(11 / 12)
    assert math.isnan(examples["00000006_000.png"]["age"]) and result.info["implausible_ages"] == 1
    assert examples["00000004_000.png"]["view"] == "AP"
    assert examples["00000001_000.png"]["image"].endswith("images_001/images/00000001_000.png")
    assert examples["00000001_001.png"]["image"].endswith("images_002/images/00000001_001.png")
    assert {e["report"] for e in examples.values()} == {""}
    # The official test list is the test split; val is carved from train_val by patient.
    assert {i for i, e in examples.items() if e["split"] == "test"} == {"00000004_000.png", "00013118_008.png"}
    patients = {}
    for e in examples.values():
        patients.setdefault(e["patient_id"], set()).add(e["split"])
    assert all(len(s) == 1 for s in patients.values())


def test_chestxray14_boxes_by_position_with_nih_spellings(tmp_path):
    result = CHESTXRAY14.read(write_cxr14(tmp_path / "nih"))
    boxes = by_id(result)["00013118_008.png"]["boxes"]
    assert boxes == [
        {"finding": "Atelectasis", "x": 225.084745762712, "y": 547.019216763771, "w": 86.7796610169491, "h": 79.1864406779661},
        {"finding": "Infiltration", "x": 607.2, "y": 385.3, "w": 167.822222222222, "h": 234.666666666667},
    ]
    assert result.info["boxes"] == 3 and result.info["boxed_images"] == 2
    # Boxes follow the label selection: ChestX-ray8's eight keep all three, a label subset drops the others.
    subset = by_id(CHESTXRAY14.read(tmp_path / "nih", options={"labels": ["Nodule"]}))
    assert subset["00013118_008.png"]["boxes"] == [] and len(subset["00000004_000.png"]["boxes"]) == 1
    assert subset["00000004_000.png"]["findings"] == [1]


def test_chestxray14_v2020_file_is_preferred_and_numeric_ages_read(tmp_path):
    root = write_cxr14(tmp_path / "nih")
    v2020 = ENTRY_2017.replace("058Y", "58").replace("0.143,\n", "0.143\n")
    v2020 = v2020.replace("OriginalImagePixelSpacing[x,y],\n", "OriginalImagePixelSpacing[x,y]\n")
    v2020 = "\n".join(line.rstrip(",") if i else line.rstrip(",") for i, line in enumerate(v2020.splitlines())) + "\n"
    (root / "Data_Entry_2017_v2020.csv").write_text(v2020)
    result = CHESTXRAY14.read(root)
    assert result.info["entry_file"] == "Data_Entry_2017_v2020.csv"
    assert by_id(result)["00000001_000.png"]["age"] == 58.0
    assert CHESTXRAY14.read(root, options={"entry_file": "Data_Entry_2017.csv"}).info["entry_file"] == "Data_Entry_2017.csv"


@pytest.mark.parametrize(
    "old, new, field, message",
    [
        ("No Finding,0,2", "No Finding|Effusion,0,2", "Finding Labels", "must stand alone"),
        ("Hernia,0,3", "Hernias,0,3", "Finding Labels", "unknown label"),
        (",058Y,M,PA,2682", ",fifty,M,PA,2682", "Patient Age", "expected an age"),
        (",081Y,F,PA", ",081Y,X,PA", "Patient Gender", "expected M or F"),
    ],
)
def test_chestxray14_bad_rows_name_file_line_and_field(tmp_path, old, new, field, message):
    root = write_cxr14(tmp_path / "nih", ENTRY_2017.replace(old, new, 1))
    with pytest.raises(DataError, match=message) as err:
        CHESTXRAY14.read(root)
    assert err.value.field == field and "Data_Entry_2017.csv" in str(err.value.file) and err.value.record.startswith("line ")
    skipped = CHESTXRAY14.read(root, skip_invalid=True)
    assert len(skipped.skipped) == 1 and sum(skipped.counts().values()) == 8


def test_chestxray14_split_list_errors(tmp_path):
    root = write_cxr14(tmp_path / "nih")
    (root / "test_list.txt").write_text(TEST + "00000001_000.png\n")
    with pytest.raises(DataError, match="in both train_val_list.txt"):
        CHESTXRAY14.read(root)
    (root / "test_list.txt").write_text(TEST + "99999999_000.png\n")
    with pytest.raises(DataError, match="not in Data_Entry_2017.csv") as err:
        CHESTXRAY14.read(root)
    assert err.value.record == "line 3"
    (root / "test_list.txt").write_text("00000004_000.png\n")
    result = CHESTXRAY14.read(root)
    assert result.info["images_not_in_split_lists"] == 1 and sum(result.counts().values()) == 8


def test_chestxray14_missing_image_and_box_errors(tmp_path):
    root = write_cxr14(tmp_path / "nih")
    next(root.glob("images_*/images/00000003_000.png")).unlink()
    with pytest.raises(DataError, match="not found|missing|no such") as err:
        CHESTXRAY14.read(root)
    assert "00000003_000.png" in err.value.record
    assert sum(CHESTXRAY14.read(root, options={"check_images": "none"}).counts().values()) == 9
    root = write_cxr14(tmp_path / "nih2", bbox=BBOX.replace("Infiltrate", "Fibrosis"))
    with pytest.raises(DataError, match="unknown box label") as err:
        CHESTXRAY14.read(root)
    assert err.value.field == "Finding Label" and err.value.record == "line 3"


def test_chestxray14_chexnet_split_covers_every_image_by_patient(tmp_path):
    result = CHESTXRAY14.read(write_cxr14(tmp_path / "nih"), variant="chexnet", split_seed=3)
    assert sum(result.counts().values()) == 9 and "CheXNet" in result.info["split"]


def test_chestxray14_synthetic_tree_boxes_are_the_drawn_lesions(tmp_path):
    root = CHESTXRAY14.synthesize(tmp_path / "syn", num=40, seed=1, image_size=64)
    result = CHESTXRAY14.read(root)
    truth = synthetic.load_truth(root)
    truth_boxes = synthetic.load_truth_boxes(root)
    examples = by_id(result)
    assert set(examples) == set(truth) == set(truth_boxes)
    for name, example in examples.items():
        # Every drawn finding has at least one box, and only drawn findings have boxes.
        drawn = {synthetic_name for synthetic_name, present in truth[name].items() if present}
        assert {b["finding"] for b in truth_boxes[name]} == {SYNTHETIC_TO_CXR14[f] for f in drawn}
        for box in truth_boxes[name]:
            assert 0 <= box["x"] and box["x"] + box["w"] <= 64 and box["w"] > 0 and box["h"] > 0
        # The BBox file holds the test images' boxes of the eight NIH box labels.
        expected = [b for b in truth_boxes[name] if b["finding"] in fl.CHESTXRAY8_LABELS] if example["split"] == "test" else []
        assert example["boxes"] == [{**b, **{k: float(b[k]) for k in "xywh"}} for b in expected]
        mapped = {SYNTHETIC_TO_CXR14[f] for f in drawn}
        assert example["findings"] == [int(n in mapped) for n in fl.CHESTXRAY14_LABELS]
    assert result.info["boxes"] > 0


def test_synthetic_boxes_leave_the_pixels_unchanged():
    for seed in range(5):
        findings = {name: True for name in synthetic.FINDINGS}
        boxes: list = []
        plain = synthetic.draw_radiograph(findings, np.random.default_rng(seed), size=64)
        boxed = synthetic.draw_radiograph(findings, np.random.default_rng(seed), size=64, boxes=boxes)
        assert np.array_equal(plain, boxed)
        assert set(synthetic.FINDINGS) == {b["finding"] for b in boxes}


CHEXPERT_HEADER = (
    "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
    "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
    "Fracture,Support Devices"
)
CHEXPERT_TRAIN = f"""\
{CHEXPERT_HEADER}
CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,0.0,,,,1.0
CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg,Female,87,Frontal,AP,,,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,
CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,Female,83,Frontal,AP,,,,1.0,,,-1.0,,,,,,1.0,
CheXpert-v1.0-small/train/patient00002/study1/view2_lateral.jpg,Female,83,Lateral,,,,,1.0,,,-1.0,,,,,,1.0,
CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Male,41,Frontal,AP,,,,,,1.0,,,,0.0,,,,
"""
CHEXPERT_VALID = f"""\
{CHEXPERT_HEADER}
CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,0.0,1.0,1.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0
CheXpert-v1.0-small/valid/patient64542/study1/view1_frontal.jpg,Male,70,Frontal,PA,0.0,0.0,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0
"""


def write_chexpert(parent: Path, train: str = CHEXPERT_TRAIN) -> Path:
    root = parent / "CheXpert-v1.0-small"
    root.mkdir(parents=True)
    (root / "train.csv").write_text(train)
    (root / "valid.csv").write_text(CHEXPERT_VALID)
    for text in (train, CHEXPERT_VALID):
        for line in text.splitlines()[1:]:
            path = parent / line.split(",")[0]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(PNG)
    return root


@pytest.mark.parametrize("policy, expected", [("ignore", fl.MASKED), ("zeros", 0), ("ones", 1)])
def test_chexpert_uncertain_policies(tmp_path, policy, expected):
    result = CHEXPERT.read(write_chexpert(tmp_path), options={"uncertain": policy})
    example = by_id(result)["train/patient00002/study2/view1_frontal"]
    names = fl.CHEXPERT_CSV_LABELS
    assert example["findings"][names.index("Cardiomegaly")] == expected
    assert example["findings"][names.index("Lung Opacity")] == 1
    assert example["findings"][names.index("Lung Lesion")] == 0  # blank: not mentioned
    assert result.info["policy"]["uncertain"] == fl.POLICY_NAMES[policy]


def test_chexpert_layout_views_and_splits(tmp_path):
    root = write_chexpert(tmp_path)
    result = CHEXPERT.read(root, options={"blank": "ignore", "labels": ["Edema", "Pneumothorax"]})
    examples = by_id(result)
    assert result.info["images_of_other_views"] == 1
    assert {i for i, e in examples.items() if e["split"] == "test"} == {
        "valid/patient64541/study1/view1_frontal",
        "valid/patient64542/study1/view1_frontal",
    }
    first = examples["train/patient00001/study1/view1_frontal"]
    assert first["findings"] == [fl.MASKED, 0] and first["gender"] == "F" and first["age"] == 68.0
    assert first["image"] == str(tmp_path / "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg")
    assert examples["valid/patient64542/study1/view1_frontal"]["view"] == "PA"
    everything = by_id(CHEXPERT.read(root, options={"views": "all"}))
    assert everything["train/patient00002/study1/view2_lateral"]["view"] == "LATERAL"
    # A renamed release folder still finds its images.
    renamed = tmp_path / "renamed"
    root.rename(renamed)
    assert len(by_id(CHEXPERT.read(renamed, options={"check_images": "exists"}))) == 6


def test_chexpert_bad_label_cell(tmp_path):
    root = write_chexpert(tmp_path, CHEXPERT_TRAIN.replace("AP,1.0,,,", "AP,2.0,,,", 1))
    with pytest.raises(DataError, match="expected 1.0, 0.0, -1.0 or blank") as err:
        CHEXPERT.read(root)
    assert err.value.field == "No Finding" and err.value.record == "line 2" and err.value.file.endswith("train.csv")


def test_chexpert_synthetic_tree_round_trip(tmp_path):
    root = CHEXPERT.synthesize(tmp_path / "syn", num=30, seed=0, image_size=48)
    result = CHEXPERT.read(root, options={"labels": list(fl.CHEXPERT_COMPETITION_LABELS)})
    truth = synthetic.load_truth(root)
    masked = 0
    for example in by_id(result).values():
        # The synthetic labeler marks some findings uncertain (masked under U-Ignore); every other value is the truth.
        for name, value in zip(fl.CHEXPERT_COMPETITION_LABELS, example["findings"]):
            masked += value == fl.MASKED
            assert value in (fl.MASKED, int(truth[example["id"]][name]))
    assert masked > 0
    assert CHEXPERT.check(root).ok


MIMIC_METADATA = """\
dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning
02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,10000032,50414267,CHEST (PA AND LAT),PA,3056,2544,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect
174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962,10000032,50414267,CHEST (PA AND LAT),LATERAL,3056,2544,21800506,213014.531,CHEST (PA AND LAT),lateral,Erect
2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab,10000032,53189527,CHEST (PA AND LAT),AP,3056,2544,21800626,165500.312,CHEST (PA AND LAT),antero-posterior,Erect
68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714,10000764,57375967,CHEST (PORTABLE AP),AP,2705,2539,21321015,51016.0,CHEST (PORTABLE AP),antero-posterior,Erect
"""
MIMIC_CHEXPERT = """\
subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices
10000032,50414267,,,,,,,,,1.0,,,,,
10000032,53189527,,,,,,,,,1.0,,,,,
10000764,57375967,,,1.0,,,,,,,,,-1.0,,
"""
MIMIC_SPLIT = """\
dicom_id,study_id,subject_id,split
02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,50414267,10000032,train
174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962,50414267,10000032,train
2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab,53189527,10000032,train
68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714,57375967,10000764,validate
"""


def test_mimic_cxr_labels_on_release_rows(tmp_path):
    (tmp_path / "mimic-cxr-2.0.0-metadata.csv").write_text(MIMIC_METADATA)
    (tmp_path / "mimic-cxr-2.0.0-chexpert.csv").write_text(MIMIC_CHEXPERT)
    (tmp_path / "mimic-cxr-2.0.0-split.csv").write_text(MIMIC_SPLIT)
    for line in MIMIC_METADATA.splitlines()[1:]:
        dicom, subject, study = line.split(",")[:3]
        path = tmp_path / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(PNG)
    result = MIMIC_CXR_LABELS.read(tmp_path, options={"labels": ["Consolidation", "Pneumonia", "No Finding"]})
    examples = by_id(result)
    assert set(examples) == {
        "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014",
        "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab",
        "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714",
    }
    assert result.info["images_of_other_views"] == 1
    portable = examples["68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714"]
    assert portable["findings"] == [1, fl.MASKED, 0] and portable["split"] == "val" and portable["view"] == "AP"
    assert examples["02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"]["findings"] == [0, 0, 1]


def test_mimic_cxr_labels_on_the_synthetic_tree(tmp_path):
    root = MIMIC_CXR_LABELS.synthesize(tmp_path / "syn", num=40, seed=0, image_size=48)
    result = MIMIC_CXR_LABELS.read(root)
    assert sum(result.counts().values()) > 0
    assert all(e["view"] in ("PA", "AP") for split in result.splits.values() for e in split)
    assert result.info["images_without_labels"] >= 0 and MIMIC_CXR_LABELS.check(root).ok


def test_labelled_images_reads_dicom_png_and_jpeg(tmp_path):
    root = LABELLED_IMAGES.synthesize(tmp_path / "syn", num=12, seed=0, image_size=48)
    report = LABELLED_IMAGES.check(root)
    assert report.ok, report.problems
    result = LABELLED_IMAGES.read(root, options={"uncertain": "ones", "blank": "ignore"})
    examples = by_id(result)
    assert {Path(i).suffix for i in examples} == {".dcm", ".png", ".jpg"}
    rows = (root / "labels.csv").read_text().splitlines()
    header = rows[0].split(",")
    for row in rows[1:]:
        cells = dict(zip(header, row.split(",")))
        expected = [{"1": 1, "-1": 1, "0": 0, "": fl.MASKED}[cells[name]] for name in synthetic.FINDINGS]
        assert examples[cells["image"]]["findings"] == expected


def test_labelled_images_split_column_and_errors(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_bytes(PNG)
    (tmp_path / "labels.csv").write_text("image,split,Tumour,Oedema\na.png,train,1,0\nb.png,validate,0,-1.0\nc.png,test,1,\n")
    result = LABELLED_IMAGES.read(tmp_path)
    assert result.counts() == {"train": 1, "val": 1, "test": 1}
    assert by_id(result)["b.png"]["findings"] == [0, fl.MASKED] and result.info["findings_names"] == ["Tumour", "Oedema"]
    (tmp_path / "labels.csv").write_text("image,Tumour\na.png,yes\n")
    with pytest.raises(DataError, match="expected 1, 0, -1 or blank") as err:
        LABELLED_IMAGES.read(tmp_path)
    assert err.value.field == "Tumour" and err.value.record == "line 2"
    (tmp_path / "labels.csv").write_text("image,Tumour\nmissing.png,1\n")
    with pytest.raises(DataError) as err:
        LABELLED_IMAGES.read(tmp_path)
    assert err.value.field == "image" and err.value.record == "line 2"


def test_iu_xray_findings_from_our_labeler(tmp_path):
    from medcap.evaluation.clinical import OBSERVATIONS, label_report

    iu = DATASETS.get("iu_xray")
    root = iu.synthesize(tmp_path / "iu", num=20, seed=0, image_size=48)
    result = iu.read(root, options={"findings": "medcap_labeler", "uncertain": "zeros"})
    assert "ours" in result.info["findings_source"]
    for example in by_id(result).values():
        labels = label_report(example["report"])
        assert example["findings"] == [1 if labels[n] == 1 else 0 for n in OBSERVATIONS]
    plain = iu.read(root)
    assert "findings" not in next(iter(plain.splits["train"]))
