"""Paired t-test and bootstrap helpers."""

from __future__ import annotations

import numpy as np
import pytest

from medcap.evaluation import statistics as st
from medcap.evaluation.text_metrics import Evaluation, IdMismatchError


def test_paired_t_test_by_hand():
    a = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    b = a + np.array([0.05, 0.02, 0.04, 0.01, 0.03])
    out = st.paired_t_test(a, b)
    d = b - a
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    assert out["t"] == pytest.approx(t)
    from scipy.stats import t as t_dist

    assert out["p"] == pytest.approx(2 * t_dist.sf(abs(t), df=4))
    assert out["mean_diff"] == pytest.approx(0.03) and out["n"] == 5
    same = st.paired_t_test(a, a)
    assert np.isnan(same["t"]) and np.isnan(same["p"])
    shifted = st.paired_t_test(np.arange(5.0), np.arange(5.0) + 0.5)
    assert shifted["t"] == np.inf and shifted["p"] == 0.0
    with pytest.raises(ValueError):
        st.paired_t_test([1.0], [2.0])
    with pytest.raises(ValueError):
        st.paired_t_test([1.0, 2.0], [1.0, 2.0, 3.0])


def test_compare_systems_aligns_by_id():
    rng = np.random.default_rng(0)
    ids = [f"r{i}" for i in range(30)]
    a_scores = rng.random(30)
    b_scores = a_scores + rng.normal(0.1, 0.05, 30)
    order = rng.permutation(30)
    eval_a = Evaluation(ids=ids, corpus={}, per_report={"Bleu_4": a_scores})
    eval_b = Evaluation(
        ids=[ids[i] for i in order],
        corpus={},
        per_report={"Bleu_4": b_scores[order], "CIDEr": b_scores},
    )
    out = st.compare_systems(eval_a, eval_b)
    assert list(out) == ["Bleu_4"]
    assert out["Bleu_4"] == st.paired_t_test(a_scores, b_scores)
    with pytest.raises(IdMismatchError):
        st.compare_systems(eval_a, Evaluation(ids=ids[:-1], corpus={}, per_report={}))


def test_compare_systems_on_scored_reports():
    """Per-report scores from `evaluate` feed the t-test (paper 001 Table 2 style)."""
    from medcap.evaluation.text_metrics import evaluate

    findings = ["no effusion", "mild cardiomegaly", "small left effusion", "no pneumothorax"]
    refs = {f"r{i}": f"the heart is normal in size . {findings[i % 4]} case {i} ." for i in range(12)}
    good = {k: v.replace("case", "example" if int(k[1:]) % 3 else "in") for k, v in refs.items()}
    bad = {k: "lungs are clear ." for k in refs}
    tests = st.compare_systems(
        evaluate(refs, bad, metrics=["bleu", "rouge"]),
        evaluate(refs, good, metrics=["bleu", "rouge"]),
    )
    assert tests["ROUGE_L"]["mean_diff"] > 0.5 and tests["ROUGE_L"]["p"] < 1e-6
    assert {"Bleu_1", "coco/Bleu_4", "nltk/Bleu_4", "rouge_score/ROUGE_L_F1"} <= set(tests)


def test_bootstrap_weights():
    w = st.bootstrap_weights(50, 200, seed=7)
    assert w.shape == (200, 50) and (w.sum(1) == 50).all() and w.min() >= 0
    assert np.array_equal(w, st.bootstrap_weights(50, 200, seed=7))
    assert not np.array_equal(w, st.bootstrap_weights(50, 200, seed=8))
    # each report is drawn about once per resample on average
    assert w.mean() == pytest.approx(1.0)


def test_bootstrap_ci_of_a_mean():
    rng = np.random.default_rng(0)
    values = rng.normal(0.4, 0.1, 400)
    low, high = st.bootstrap_ci(values, n_resamples=2000, seed=0)
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert st.percentile_interval([np.nan, np.nan]) != st.percentile_interval([1.0, 2.0])


def test_paired_bootstrap_test_on_constructed_cases():
    """Same resamples for both systems: identical systems give p = 1; a system
    better on every report gives the smallest p, 1 / (B + 1); a difference that
    flips sign across resamples is not significant."""
    from medcap.evaluation.statistics import bootstrap_weights, paired_bootstrap_test

    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, 50)
    weights = bootstrap_weights(50, 400, seed=1)

    def means(scores):
        return (weights @ scores) / 50

    same = paired_bootstrap_test(means(a), means(a.copy()), a.mean(), a.mean())
    assert same == {"diff": 0.0, "p": 1.0, "n_resamples": 400}
    better = a + rng.uniform(0.2, 0.3, 50)
    result = paired_bootstrap_test(means(a), means(better), a.mean(), better.mean())
    assert result["diff"] == pytest.approx(better.mean() - a.mean()) and result["p"] == 1 / 401
    noisy = a + rng.normal(0, 0.3, 50)
    noisy += a.mean() - noisy.mean() + 0.001  # a tiny shift drowned in noise
    assert paired_bootstrap_test(means(a), means(noisy), a.mean(), noisy.mean())["p"] > 0.5
