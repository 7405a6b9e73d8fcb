"""The template writer: sentences learned with our labeler, written in report order, faithful by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medcap.data import synthetic
from medcap.evaluation.clinical import OBSERVATIONS, label_report
from medcap.evaluation.faithfulness import faithfulness
from medcap.reporting.description import describe
from medcap.reporting.sentence_bank import (
    OBSERVATION_OF,
    SentenceBank,
    fallback_sentence,
    split_sentences,
)
from medcap.reporting.writers import TemplateWriter
from medcap.testing import shared_path
from medcap.text import clean_report

SEVEN = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion", "Lung Lesion", "Pneumothorax")

#: Findings sections written as the IU X-ray release writes them (OpenI `FINDINGS`, R2Gen's
#: annotation.json `report`), then cleaned as R2Gen cleans them.
IU_STYLE = [
    "The heart is normal in size. The mediastinum is unremarkable. The lungs are clear.",
    "The heart is normal in size. The lungs are clear. No pneumothorax or pleural effusion.",
    "Heart size is normal. The lungs are clear. No pneumothorax. Bony structures are intact.",
    "Mild cardiomegaly. Small left pleural effusion. No pneumothorax.",
    "Mild cardiomegaly. Small left pleural effusion. Possible atelectasis at the left base.",
    "Heart size is normal. Possible atelectasis at the left base. No pneumothorax.",
    "Heart size is normal. The lungs are clear. No pleural effusion. No pneumothorax.",
]


def random_descriptions(names, n: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = {name: float(rng.uniform()) for name in names}
        t = {name: float(rng.uniform(0.2, 0.7)) for name in names}
        peaks = {name: (float(rng.uniform()), float(rng.uniform())) for name in names}
        out.append(describe(f"s{i}", p, t, peaks=peaks, uncertain_below=0.5))  # all three states
    return out


def test_the_bank_picks_the_most_frequent_sentence_carrying_exactly_one_finding_state():
    bank = SentenceBank.learn([clean_report(r, "iu_xray") for r in IU_STYLE], ["Cardiomegaly", "Pleural Effusion", "Atelectasis", "Pneumothorax"])
    assert bank.sentence("Cardiomegaly", "absent") == "heart size is normal ."  # 3 times, beats "the heart is normal in size ." (twice)
    assert bank.sentence("Cardiomegaly", "present") == "mild cardiomegaly ."
    assert bank.sentence("Pleural Effusion", "present") == "small left pleural effusion ."
    assert bank.sentence("Atelectasis", "uncertain") == "possible atelectasis at the left base ."
    assert bank.sentence("Pneumothorax", "absent") == "no pneumothorax ."
    # "no pneumothorax or pleural effusion ." states two findings: never a bank sentence; pleural
    # effusion absent is stated alone once only, below min_count, so the fixed sentence is used.
    assert bank.sentence("Pleural Effusion", "absent") == "no pleural effusion ."
    assert "absent" in bank.fallbacks["Pleural Effusion"] and bank.support["Pleural Effusion"]["absent"] == 1
    assert bank.normals["lungs"] == "the lungs are clear ."
    assert bank.train_reports == len(IU_STYLE)


def test_report_order_and_section_normals():
    bank = SentenceBank.learn([clean_report(r, "iu_xray") for r in IU_STYLE], ["Pneumothorax", "Atelectasis", "Cardiomegaly"])
    writer = TemplateWriter(bank)
    (report,) = writer.write([describe("a", {"Pneumothorax": 0.9, "Atelectasis": 0.1, "Cardiomegaly": 0.8}, {"Pneumothorax": 0.5, "Atelectasis": 0.5, "Cardiomegaly": 0.5})])
    # Heart, then lungs (all absent: the normal sentence), then pleura.
    assert report.report == "mild cardiomegaly . the lungs are clear . there is pneumothorax ."
    assert report.extras["sentences"] == ["Cardiomegaly: present", "lungs: normal", "Pneumothorax: present"]
    plain = TemplateWriter(bank, section_normals=False).write_one(describe("a", {"Atelectasis": 0.1}, {"Atelectasis": 0.5}))
    assert plain.report == "no atelectasis ."


@pytest.mark.parametrize("source", ["synthetic", "iu_xray"])
def test_template_reports_are_faithful_by_construction(source):
    """Whatever the classifier decides, our labeler reads back exactly the described findings in their states."""
    if source == "synthetic":
        rng = np.random.default_rng(0)
        train = [synthetic.write_report(synthetic.sample_findings(rng), rng, "findings") for _ in range(300)]
        names = SEVEN
    else:
        data = json.loads(shared_path("data/iu_xray/annotation.json").read_text())
        train = [clean_report(e["report"], "iu_xray") for e in data["train"]]
        names = (*SEVEN, "Effusion", "Nodule", "Enlarged Cardiomediastinum", "Lung Opacity", "Fracture", "Support Devices")
    bank = SentenceBank.learn(train, names)
    descriptions = random_descriptions(names, 400, seed=1)
    written = TemplateWriter(bank).write(descriptions)
    scores = faithfulness(descriptions, [w.report for w in written])
    assert scores["faithfulness/f1"] == 1.0 and scores["faithfulness/state_agreement"] == 1.0
    assert scores["faithfulness/hallucinated"] == 0 and scores["faithfulness/omitted"] == 0
    assert scores["faithfulness/matched"] > 1000 and scores["faithfulness/unchecked"] == 0
    # Absent findings are never stated as present or uncertain either.
    for description, report in zip(descriptions, written):
        labels = label_report(report.report)
        for record in description.findings:
            if record.state == "absent":
                assert labels[OBSERVATION_OF[record.name]] in (0, None) or any(
                    r.state != "absent" and OBSERVATION_OF[r.name] == OBSERVATION_OF[record.name] for r in description.findings
                )


def test_every_fallback_sentence_reads_back_as_its_state():
    for name in OBSERVATIONS:
        if name == "No Finding":
            continue
        for state, value in (("present", 1), ("uncertain", -1), ("absent", 0)):
            labels = {k: v for k, v in label_report(fallback_sentence(name, state)).items() if v is not None and k != "No Finding"}
            assert labels == {name: value}, (name, state)
    assert fallback_sentence("Emphysema", "present") == "there is emphysema ."


def test_bank_round_trip_and_split(tmp_path):
    bank = SentenceBank.learn([clean_report(r, "iu_xray") for r in IU_STYLE], ["Cardiomegaly"])
    bank.save(tmp_path / "bank.json")
    assert SentenceBank.load(tmp_path / "bank.json") == bank
    (tmp_path / "other.json").write_text('{"format": "x"}')
    with pytest.raises(ValueError, match="other.json: not a sentence bank"):
        SentenceBank.load(tmp_path / "other.json")
    assert split_sentences("a b . c d .  e .") == ["a b .", "c d .", "e ."]
    assert split_sentences("The heart is normal. Lungs clear.") == ["The heart is normal.", "Lungs clear."]
