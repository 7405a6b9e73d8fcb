"""Trivial baselines: consensus scores equal pycocoevalcap, seeded choices, nearest neighbour."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from medcap.evaluation import baselines
from medcap.evaluation.baselines import (
    majority_labels_baseline,
    majority_level,
    prevalence_baseline,
)

TRAIN = [
    "the heart is normal in size . the lungs are clear .",
    "the heart is normal in size . the lungs are clear .",
    "heart size is normal . no pleural effusion or pneumothorax .",
    "the lungs are clear . no pleural effusion .",
    "mild cardiomegaly . small left pleural effusion .",
    "the heart is enlarged . the lungs are clear . no pneumothorax .",
    "no acute cardiopulmonary abnormality .",
    "the lungs are clear . the heart is normal .",
    "",
    "lungs clear",
]


def _pycoco_constant_scores(candidate: str, references: list[str]) -> tuple[float, float]:
    """pycocoevalcap BLEU-4 of predicting `candidate` for every reference but its own copy, and the
    CIDEr-D mean over the same pairs with document frequencies of all references."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    others = list(references)
    if candidate in others:
        others.remove(candidate)
    gts = {i: [r] for i, r in enumerate(others)}
    with contextlib.redirect_stdout(io.StringIO()):
        bleu4 = Bleu(4).compute_score(gts, {i: [candidate] for i in gts})[0][3]
    all_gts = {i: [r] for i, r in enumerate(references)}
    _, per_pair = Cider().compute_score(all_gts, {i: [candidate] for i in all_gts})
    if candidate in references:
        per_pair = np.delete(per_pair, references.index(candidate))
    return bleu4, float(np.mean(per_pair))


def test_consensus_scores_equal_pycocoevalcap():
    candidates = list(dict.fromkeys(TRAIN)) + ["a report not in train ."]
    bleu = baselines.consensus_scores(candidates, TRAIN, criterion="bleu4")
    cider = baselines.consensus_scores(candidates, TRAIN, criterion="cider")
    for i, candidate in enumerate(candidates):
        expected_bleu, expected_cider = _pycoco_constant_scores(candidate, TRAIN)
        assert bleu[i] == pytest.approx(expected_bleu, abs=1e-12), candidate
        assert cider[i] == pytest.approx(expected_cider, abs=1e-12), candidate


def test_consensus_scores_equal_pycocoevalcap_on_real_reports(iu_reports):
    train = list(iu_reports.values())[:150]
    candidates = list(dict.fromkeys(train))[:6]
    bleu = baselines.consensus_scores(candidates, train, criterion="bleu4")
    cider = baselines.consensus_scores(candidates, train, criterion="cider")
    for i, candidate in enumerate(candidates):
        expected = _pycoco_constant_scores(candidate, [baselines.normalise_text(t) for t in train])
        np.testing.assert_allclose([bleu[i], cider[i]], expected, atol=1e-9)


def test_choose_constant_report_is_the_argmax():
    choice = baselines.choose_constant_report(TRAIN, criterion="bleu4")
    scores = {c: _pycoco_constant_scores(c, TRAIN)[0] for c in dict.fromkeys(TRAIN)}
    assert choice.text == max(scores, key=scores.get)
    assert choice.score == pytest.approx(scores[choice.text])
    assert choice.num_candidates == len(set(TRAIN)) and choice.num_references == len(TRAIN)
    cider = baselines.choose_constant_report(TRAIN, criterion="cider")
    assert cider.criterion == "cider" and cider.text in TRAIN
    with pytest.raises(ValueError, match="criterion"):
        baselines.choose_constant_report(TRAIN, criterion="meteor")


def test_constant_report_caps_are_seeded():
    train = [f"report number {i % 40} with words {i % 7}" for i in range(300)]
    a = baselines.choose_constant_report(train, max_candidates=10, max_references=50, seed=1)
    b = baselines.choose_constant_report(train, max_candidates=10, max_references=50, seed=1)
    assert a == b and a.num_candidates == 10 and a.num_references == 50


def test_random_train_baseline_is_seeded():
    ids = [f"t{i}" for i in range(20)]
    a = baselines.random_train_baseline(ids, TRAIN, seed=3)
    assert a == baselines.random_train_baseline(ids, TRAIN, seed=3)
    assert a != baselines.random_train_baseline(ids, TRAIN, seed=4)
    assert list(a) == ids and all(len(v) == 1 and v[0] in TRAIN for v in a.values())


def test_nearest_train_baseline():
    train_emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    reports = ["right", "up", "diagonal"]
    queries = np.array([[10.0, 0.5], [0.1, 3.0], [2.0, 2.1], [0.0, 0.0]])
    out = baselines.nearest_train_baseline(
        ["a", "b", "c", "d"], queries, train_emb, reports, block=2
    )
    assert out == {"a": ["right"], "b": ["up"], "c": ["diagonal"], "d": ["right"]}
    with pytest.raises(ValueError):
        baselines.nearest_train_baseline(["a"], queries, train_emb, reports)


def test_classification_baselines():
    train = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(majority_labels_baseline(train, 2), [[1, 0, 0], [1, 0, 0]])
    draws = prevalence_baseline(train, 20000, seed=0)
    np.testing.assert_allclose(draws.mean(axis=0), [0.75, 0.0, 0.5], atol=0.02)
    assert majority_level([4, 3, 4, 2, 3]) == 3  # tie between 3 and 4 -> the lower level
