"""Findings-classifier metrics: masked AUROC/AUPRC, bootstrap, thresholds, calibration, baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medcap.evaluation import findings as fe

NAMES = ("A", "B")
# Label A: 3 positives, 2 negatives, one masked row; label B: one class only among its labelled rows.
TARGETS = np.array([[1, 0], [1, 0], [0, -1], [1, 0], [0, 0], [-1, 0]])
SCORES = np.array([[0.9, 0.2], [0.6, 0.1], [0.7, 0.9], [0.3, 0.4], [0.2, 0.3], [0.99, 0.5]])


def test_ranking_scores_leave_masked_rows_out_by_hand():
    out = fe.ranking_scores(TARGETS, SCORES, NAMES)
    # A over rows 0-4: positives 0.9, 0.6, 0.3; negatives 0.7, 0.2. Pairs won: 0.9 beats both,
    # 0.6 beats 0.2, 0.3 beats 0.2: 4 of 6.
    assert out["auroc/A"] == pytest.approx(4 / 6)
    # Average precision: ranked 0.9 (+), 0.7 (-), 0.6 (+), 0.3 (+), 0.2 (-): (1 + 2/3 + 3/4) / 3.
    assert out["auprc/A"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert out["positives/A"] == 3 and out["negatives/A"] == 2
    assert math.isnan(out["auroc/B"]) and out["positives/B"] == 0
    assert out["auroc_macro"] == pytest.approx(4 / 6) and out["labels_scored"] == 1


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, (200, 2))
    scores = np.clip(targets * 0.3 + rng.uniform(0, 0.7, (200, 2)), 0, 1)
    first = fe.ranking_scores(targets, scores, NAMES, bootstrap=200, seed=3)
    second = fe.ranking_scores(targets, scores, NAMES, bootstrap=200, seed=3)
    assert first["auroc_ci/A"] == second["auroc_ci/A"]
    for name in NAMES:
        low, high = first[f"auroc_ci/{name}"]
        assert low < first[f"auroc/{name}"] < high and high - low < 0.2
    low, high = first["auroc_macro_ci"]
    assert low < first["auroc_macro"] < high


def test_f1_threshold_by_hand():
    targets = np.array([[1], [1], [0], [1], [0]])
    scores = np.array([[0.9], [0.6], [0.7], [0.3], [0.2]])
    # Predict positive at >= t. t=0.9: P1 R1/3 F1 .5; t=0.7: P.5 R1/3 F1 .4; t=0.6: P2/3 R2/3 F1 .667;
    # t=0.3: P3/4 R1 F1 .857; t=0.2: P3/5 R1 F1 .75. Best: 0.3.
    assert fe.choose_thresholds(targets, scores, ("A",), "f1") == [0.3]
    # Youden: TPR-FPR at 0.9: 1/3-0; 0.7: 1/3-1/2; 0.6: 2/3-1/2; 0.3: 1-1/2 = .5; 0.2: 1-1 = 0. Best 0.3.
    assert fe.choose_thresholds(targets, scores, ("A",), "youden") == [0.3]
    assert fe.choose_thresholds(np.array([[0], [0]]), np.array([[0.1], [0.2]]), ("A",)) == [0.5]


def test_threshold_scores_count_only_labelled_entries():
    out = fe.threshold_scores(TARGETS, SCORES, NAMES, [0.5, 0.35])
    # A (rows 0-4) at 0.5: predicted 1,1,1,0,0 vs 1,1,0,1,0 -> tp 2, fp 1, fn 1, tn 1.
    assert out["precision/A"] == pytest.approx(2 / 3) and out["recall/A"] == pytest.approx(2 / 3)
    assert out["accuracy/A"] == pytest.approx(3 / 5)
    # B (rows 0,1,3,4,5; all negative) at 0.35: predicted 0,0,1,0,1 -> fp 2, tn 3.
    assert out["accuracy/B"] == pytest.approx(3 / 5) and out["precision/B"] == 0.0 and out["f1/B"] == 0.0
    assert out["micro_precision"] == pytest.approx(2 / 5) and out["micro_recall"] == pytest.approx(2 / 3)
    assert out["macro_accuracy"] == pytest.approx(3 / 5)


def test_expected_calibration_error_by_hand():
    targets = np.array([[1], [0], [1], [1]])
    scores = np.array([[0.95], [0.05], [0.55], [0.45]])
    # Bins (10): 0.05 -> bin 0 (p .05, rate 0); 0.45 -> bin 4 (p .45, rate 1); 0.55 -> bin 5 (.55, 1); 0.95 -> bin 9 (.95, 1).
    expected = (0.05 + 0.55 + 0.45 + 0.05) / 4
    assert fe.expected_calibration_error(targets, scores, 10) == pytest.approx(expected)
    table = fe.reliability(targets, scores, 10)
    assert table["count"] == [1, 0, 0, 0, 1, 1, 0, 0, 0, 1]


def test_baselines_prevalence_and_linear_probe():
    train = np.array([[1, 0], [0, -1], [1, 1], [0, 0]])
    scores = fe.prevalence_scores(train, 3, NAMES)
    np.testing.assert_allclose(scores, [[0.5, 1 / 3]] * 3)
    rng = np.random.default_rng(1)
    features = rng.normal(size=(80, 4))
    targets = np.stack([(features[:, 0] > 0), (features[:, 1] > 0)], axis=1).astype(int)
    probe = fe.linear_probe_scores(features[:60], targets[:60], features[60:], NAMES)
    out = fe.ranking_scores(targets[60:], probe, NAMES)
    assert out["auroc/A"] > 0.95 and out["auroc/B"] > 0.95


def test_score_findings_gives_every_baseline_the_same_keys():
    baselines = {"prevalence": (fe.prevalence_scores(TARGETS, len(TARGETS), NAMES), [0.5, 0.5], "note")}
    out = fe.score_findings(TARGETS, SCORES, NAMES, thresholds=[0.5, 0.5], baselines=baselines)
    ours = {k for k in out if not k.startswith(("baselines/", "meta/", "positives/", "negatives/"))}
    theirs = {k.removeprefix("baselines/prevalence/") for k in out if k.startswith("baselines/prevalence/")}
    assert ours == theirs and out["meta/baselines/prevalence"] == "note"
