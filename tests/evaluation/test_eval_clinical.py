"""medcap's rule-based CheXpert-14 labeler and the CE metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medcap.evaluation import clinical

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "iu_xray_ce_sentences.json"
SENTENCE_OBSERVATIONS = [o for o in clinical.OBSERVATIONS if o != "No Finding"]


def _fixture_cells():
    doc = json.loads(FIXTURE.read_text())
    cells = []
    for record in doc["sentences"]:
        got = clinical.label_report(record["sentence"])
        for name in SENTENCE_OBSERVATIONS:
            cells.append(
                (record["split"], record["labels"].get(name), got[name], record["sentence"], name)
            )
    return doc, cells


def test_fixture_is_real_iu_xray_text():
    """Every fixture sentence occurs verbatim in the IU X-ray annotation it claims to come from."""
    from medcap.testing import shared_path

    data = json.loads(shared_path("data/iu_xray/annotation.json").read_text())
    reports = {e["id"]: e["report"] for split in data.values() for e in split}
    doc = json.loads(FIXTURE.read_text())
    assert len(doc["sentences"]) >= 40
    for record in doc["sentences"]:
        assert record["sentence"] in reports[record["id"]], record["id"]


def test_labeler_agrees_with_hand_labels_on_real_iu_xray_sentences():
    """Thresholds (ours): on the 78 hand-labelled sentences (1,014 sentence x observation cells,
    108 of them mentioned by the hand labels or the labeler) we require >= 99% of all cells,
    >= 95% of mentioned cells and >= 90% of each hand-label class (positive, negative, uncertain)
    to agree exactly. The labeler currently misses one mentioned cell. The margins allow a few
    rule edits; a broken negation or uncertainty rule flips dozens of cells and fails."""
    doc, cells = _fixture_cells()
    values = [want for _, want, _, _, _ in cells]
    assert values.count(1) >= 15 and values.count(0) >= 40 and values.count(-1) >= 10
    agree = [want == got for _, want, got, _, _ in cells]
    mentioned = [want == got for _, want, got, _, _ in cells if want is not None or got is not None]
    assert np.mean(agree) >= 0.99, np.mean(agree)
    assert len(mentioned) >= 100 and np.mean(mentioned) >= 0.95, np.mean(mentioned)
    for value in (1, 0, -1):
        matched = [want == got for _, want, got, _, _ in cells if want == value]
        assert np.mean(matched) >= 0.90, (value, np.mean(matched))
    heldout = [
        want == got
        for split, want, got, _, _ in cells
        if split == "heldout" and (want is not None or got is not None)
    ]
    assert len(heldout) >= 40 and np.mean(heldout) >= 0.95


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the heart is enlarged", {"Cardiomegaly": 1}),
        ("The cardiac silhouette is enlarged.", {"Cardiomegaly": 1}),
        ("Heart size is normal.", {"Cardiomegaly": 0}),
        ("The heart is not enlarged.", {"Cardiomegaly": 0}),
        ("Heart size is at the upper limits of normal.", {"Cardiomegaly": -1}),
        ("no pleural effusion", {"Pleural Effusion": 0}),
        ("possible consolidation", {"Consolidation": -1}),
        ("Pneumonia cannot be excluded.", {"Pneumonia": -1}),
        ("No focal consolidation to suggest pneumonia.", {"Consolidation": 0, "Pneumonia": 0}),
        ("Mild bibasilar atelectasis. No pneumothorax.", {"Atelectasis": 1, "Pneumothorax": 0}),
        ("left basilar atelectasis versus infiltrate", {"Atelectasis": -1, "Lung Opacity": -1}),
        ("Interval resolution of the right pleural effusion.", {"Pleural Effusion": 0}),
        ("The pneumothorax has resolved.", {"Pneumothorax": 0}),
        ("Small pericardial effusion.", {}),
        ("Calcified granuloma in the left upper lobe.", {}),
        ("A pacemaker is present with leads in the right ventricle.", {"Support Devices": 1}),
        ("Widened mediastinum.", {"Enlarged Cardiomediastinum": 1}),
        ("the mediastinal contours are normal", {"Enlarged Cardiomediastinum": 0}),
        ("Acute displaced fracture of the left sixth rib.", {"Fracture": 1}),
        (
            "Mild pulmonary edema. Small bilateral pleural effusions.",
            {"Edema": 1, "Pleural Effusion": 1},
        ),
        # R2Gen-cleaned text (lower case, punctuation removed, ' . ' between sentences)
        (
            "the heart is enlarged . no pleural effusion or pneumothorax .",
            {"Cardiomegaly": 1, "Pleural Effusion": 0, "Pneumothorax": 0},
        ),
    ],
)
def test_synthetic_style_sentences(text, expected):
    labels = clinical.label_report(text)
    mentioned = {k: v for k, v in labels.items() if v is not None and k != "No Finding"}
    assert mentioned == expected


def test_no_finding_rule():
    assert clinical.label_report("No acute cardiopulmonary abnormality.")["No Finding"] == 1
    assert clinical.label_report("No pneumothorax. No effusion.")["No Finding"] == 1
    assert clinical.label_report("Possible small effusion.")["No Finding"] is None
    assert clinical.label_report("Right PICC line in place. Lungs are clear.")["No Finding"] == 1
    assert clinical.label_report("Mild cardiomegaly.")["No Finding"] is None
    assert clinical.label_report("")["No Finding"] == 1


def test_labeler_against_the_synthetic_generator():
    """Every report style of medcap.data.synthetic, 500 studies: a finding is labelled present
    (1, or -1 for the generator's one hedged phrasing) exactly when the study has it."""
    synthetic = pytest.importorskip("medcap.data.synthetic")
    rng = np.random.default_rng(0)
    total = wrong = uncertain = 0
    for _ in range(500):
        findings = synthetic.sample_findings(rng)
        for style in synthetic.REPORT_STYLES:
            labels = clinical.label_report(synthetic.write_report(findings, rng, style))
            for name in synthetic.FINDINGS:
                total += 1
                wrong += (labels[name] in (1, -1)) != findings[name]
                uncertain += labels[name] == -1
    assert wrong == 0
    assert uncertain < 0.05 * total


def test_labeler_against_a_synthetic_tree_sidecar(tmp_path):
    """A synthetic IU X-ray tree: labels of `report` and of R2Gen-cleaned `report_clean`
    match `synthetic_truth.json` for every study."""
    synthetic = pytest.importorskip("medcap.data.synthetic")
    from medcap.registry import DATASETS

    source = DATASETS.get("iu_xray")
    root = source.synthesize(tmp_path / "iu", num=40, seed=3, image_size=32)
    truth = synthetic.load_truth(root)
    result = source.read(root, options={"check_images": "none"})
    examples = [e for split in result.splits.values() for e in split]
    assert len(examples) >= 30
    for example in examples:
        for field in ("report", "report_clean"):
            labels = clinical.label_report(example[field])
            for name, present in truth[example["id"]].items():
                assert (labels[name] in (1, -1)) == present, (example[field], name)


def test_ce_metrics_equal_sklearn():
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(1)
    ref = rng.choice([1.0, 0.0, -1.0, np.nan], size=(60, 14), p=[0.2, 0.3, 0.1, 0.4])
    pred = rng.choice([1.0, 0.0, -1.0, np.nan], size=(60, 14), p=[0.2, 0.3, 0.1, 0.4])
    pred[5] = np.nan  # a report with no positive label
    for uncertain in (0, 1):
        y_true, y_pred = clinical.binarise(ref, uncertain), clinical.binarise(pred, uncertain)
        tp = (y_true & y_pred).astype(float)
        fp = ((1 - y_true) & y_pred).astype(float)
        fn = (y_true & (1 - y_pred)).astype(float)
        ours = clinical.prf_from_counts(tp, fp, fn, np.ones((1, 60)))
        for average, prefix in (("micro", "micro"), ("macro", "macro"), ("samples", "example")):
            expected = precision_recall_fscore_support(
                y_true, y_pred, average=average, zero_division=0
            )[:3]
            got = [ours[f"{prefix}_{m}"][0] for m in ("precision", "recall", "f1")]
            np.testing.assert_allclose(
                got, expected, atol=1e-12, err_msg=f"{average} uncertain={uncertain}"
            )


def test_binarise_uncertain_conventions():
    labels = np.array([[1.0, 0.0, -1.0, np.nan]])
    assert clinical.binarise(labels, 0).tolist() == [[1, 0, 0, 0]]
    assert clinical.binarise(labels, 1).tolist() == [[1, 0, 1, 0]]
    with pytest.raises(ValueError):
        clinical.binarise(labels, 2)


def test_ce_metrics_on_reports():
    refs = [
        "Mild cardiomegaly. Small left pleural effusion.",
        "No acute disease.",
        "Possible right lower lobe pneumonia.",
    ]
    preds = [
        "The heart is enlarged. No effusion.",
        "No acute disease.",
        "Right lower lobe pneumonia.",
    ]
    r2gen = clinical.ce_metrics(refs, preds, uncertain=0)
    vilmedic = clinical.ce_metrics(refs, preds, uncertain=1)
    # uncertain -> 0. Positives: refs {Cardiomegaly, Effusion}, {No Finding}, {};
    # predictions {Cardiomegaly}, {No Finding}, {Pneumonia}.
    assert r2gen["ce/micro_precision"] == pytest.approx(2 / 3)
    assert r2gen["ce/micro_recall"] == pytest.approx(2 / 3)
    # uncertain -> 1: the reference's possible pneumonia now counts, so the third report matches.
    assert vilmedic["ce/micro_precision"] == pytest.approx(1.0)
    assert vilmedic["ce/micro_recall"] == pytest.approx(3 / 4)
    assert r2gen["meta/ce_uncertain"] == 0 and "R2Gen" in r2gen["meta/ce_uncertain_convention"]
    assert "ViLMedic" in vilmedic["meta/ce_uncertain_convention"]
    assert "not the CheXpert labeler" in r2gen["meta/ce_labeler"]
    assert r2gen["ce/five_micro_precision"] == pytest.approx(
        1.0
    )  # Cardiomegaly only, among the five
    assert r2gen["ce/five_micro_recall"] == pytest.approx(1 / 2)


def test_truth_ce_metrics_count_stated_findings_against_the_drawn_ones():
    """Three reports against drawn findings, counted by hand:
    r1 states Cardiomegaly (drawn) and Edema (not drawn) -> tp 1, fp 1;
    r2 negates everything while Pneumothorax was drawn -> fn 1;
    r3 states Pleural Effusion as possible (uncertain) and Pneumothorax (drawn):
    uncertain -> 0 gives tp 1 (Pneumothorax), fn 1 (Effusion); -> 1 gives tp 2."""
    names = ("Cardiomegaly", "Edema", "Pleural Effusion", "Pneumothorax")

    def drawn(*present):
        return {name: name in present for name in names}

    truth = {"r1": drawn("Cardiomegaly"), "r2": drawn("Pneumothorax"), "r3": drawn("Pleural Effusion", "Pneumothorax"), "r4": drawn()}
    predictions = {
        "r1": "The heart is enlarged. Pulmonary edema.",
        "r2": ["No pneumothorax. No effusion. Heart size is normal."],
        "r3": "Possible small pleural effusion. Right pneumothorax.",
    }
    out = clinical.truth_ce_metrics(truth, predictions)
    # tp 2, fp 1, fn 2 over the three scored reports (r4 has no prediction, so it is not scored).
    assert out["truth/ce/micro_precision"] == pytest.approx(2 / 3)
    assert out["truth/ce/micro_recall"] == pytest.approx(2 / 4)
    assert out["truth/ce/micro_f1"] == pytest.approx(4 / 7)
    assert out["truth/ce/f1/Cardiomegaly"] == 1.0 and out["truth/ce/f1/Edema"] == 0.0
    assert out["truth/ce/f1/Pneumothorax"] == pytest.approx(2 / 3)
    assert out["truth/ce/macro_f1"] == pytest.approx((1 + 0 + 0 + 2 / 3) / 4)
    assert "3 reports" in out["meta/truth_ce"] and "4 findings" in out["meta/truth_ce"]
    assert clinical.truth_ce_metrics(truth, predictions, uncertain=1)["truth/ce/micro_f1"] == pytest.approx(6 / 8)
    with pytest.raises(ValueError, match="no ground truth"):
        clinical.truth_ce_metrics(truth, {"r9": "Normal."})
    with pytest.raises(ValueError, match="not CheXpert observations"):
        clinical.truth_ce_metrics({"a": {"Bat wings": True}}, {"a": "Normal."})


def test_truth_ce_metrics_of_the_references_on_a_synthetic_tree_are_near_perfect(tmp_path):
    """The generated reference texts state the drawn findings, so scored
    against the truth every stated finding is right; the only misses are the
    generator's "opacity suspicious for a nodule", which the labeler reads as
    uncertain (2 of 44 drawn findings for this seed), so uncertain -> 1 is exact."""
    from medcap.config import DataConfig
    from medcap.data import synthetic
    from medcap.registry import DATASETS

    data = DataConfig(name="iu_xray", data_dir=str(tmp_path), synthetic_num=40)
    DATASETS.get("iu_xray").synthesize(synthetic.tree_dir(data), num=40, seed=0, image_size=32)
    truth = synthetic.truth_for(data)
    assert truth is not None and len(truth) == 40
    result = DATASETS.get("iu_xray").read(synthetic.tree_dir(data))
    examples = [e for split in result.splits.values() for e in split]
    out = clinical.truth_ce_metrics(truth, {e["id"]: e["report"] for e in examples})
    assert out["truth/ce/micro_precision"] == 1.0 and out["truth/ce/micro_recall"] == pytest.approx(42 / 44), out
    references = {e["id"]: e["report"] for e in examples}
    assert clinical.truth_ce_metrics(truth, references, uncertain=1)["truth/ce/micro_f1"] == 1.0
    assert synthetic.truth_for(DataConfig(name="iu_xray", source_dir=str(tmp_path))) is None  # real data: none
