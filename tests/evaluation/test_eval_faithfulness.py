"""Faithfulness: the written report against the structured description it was written from."""

from __future__ import annotations

import pytest

from medcap.evaluation.faithfulness import faithfulness
from medcap.reporting.description import describe


def one(probabilities):
    return describe("s", probabilities, {name: 0.3 for name in probabilities}, uncertain_below=0.5)


def test_counts_hallucinated_omitted_and_state():
    descriptions = [
        one({"Cardiomegaly": 0.9, "Edema": 0.4, "Pneumothorax": 0.1}),  # present, uncertain, absent
        one({"Cardiomegaly": 0.1, "Edema": 0.1, "Pneumothorax": 0.1}),
        one({"Effusion": 0.8, "Emphysema": 0.9}),  # ChestX-ray14 names; emphysema has no observation
    ]
    reports = [
        # Cardiomegaly stated, edema stated as present (not uncertain), pneumothorax hallucinated.
        "the heart is enlarged . pulmonary edema . small right pneumothorax .",
        "no acute cardiopulmonary abnormality .",
        "no pleural effusion .",  # the effusion omitted
    ]
    scores = faithfulness(descriptions, reports)
    assert scores["faithfulness/matched"] == 2
    assert scores["faithfulness/hallucinated"] == 1
    assert scores["faithfulness/omitted"] == 1
    assert scores["faithfulness/unchecked"] == 1
    assert scores["faithfulness/precision"] == pytest.approx(2 / 3)
    assert scores["faithfulness/recall"] == pytest.approx(2 / 3)
    assert scores["faithfulness/f1"] == pytest.approx(2 / 3)
    assert scores["faithfulness/state_agreement"] == pytest.approx(1 / 2)
    # Study 2 described nothing and stated nothing: F1 1 by convention.
    assert scores["per_study_f1"].tolist() == pytest.approx([2 * 2 / (3 + 2), 1.0, 0.0])


def test_nothing_described_nothing_stated_is_perfect_and_lengths_must_match():
    scores = faithfulness([one({"Edema": 0.1})], ["the lungs are clear ."])
    assert scores["faithfulness/f1"] == 1.0 and scores["faithfulness/precision"] == 1.0
    with pytest.raises(ValueError, match="2 descriptions but 1 reports"):
        faithfulness([one({"Edema": 0.1})] * 2, ["x"])
