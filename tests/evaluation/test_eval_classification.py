"""Next-word (paper 000), multi-label and ordinal (paper 001) and retrieval (paper 002) metrics."""

from __future__ import annotations

import numpy as np
import pytest

from medcap.evaluation import classification as cl


def test_paper_000_f1_arithmetic():
    """F1 = 2PR/(P+R) reproduces Model-70's printed F1 but not Model-80's (Table 2).

    P and R are printed to four places, so the true values lie within +-5e-5; the F1 range
    that allows covers 0.2862 (Model-70) and excludes 0.4244 (Model-80)."""

    def f1_range(p, r):
        values = [
            cl.f1_from_precision_recall(p + a, r + b) for a in (-5e-5, 5e-5) for b in (-5e-5, 5e-5)
        ]
        return min(values), max(values)

    assert round(cl.f1_from_precision_recall(0.7095, 0.3031), 4) == 0.4247
    low, high = f1_range(0.7095, 0.3031)
    assert not low <= 0.4244 <= high
    low, high = f1_range(0.6336, 0.1849)
    assert low <= 0.2862 <= high
    assert cl.f1_from_precision_recall(0.0, 0.0) == 0.0


def _batches():
    # vocab 4; rows: (true id, softmax)
    probs = np.array(
        [
            [0.7, 0.1, 0.1, 0.1],  # true 0, confident & right  -> TP
            [0.6, 0.2, 0.1, 0.1],  # true 1, confident & wrong  -> FP (for 0), FN (for 1)
            [0.2, 0.4, 0.3, 0.1],  # true 1, argmax right, p<=0.5 -> FN, accurate
            [0.1, 0.1, 0.1, 0.7],  # true 3 -> TP
            [0.25, 0.25, 0.4, 0.1],  # true 0 -> FN, wrong
            [0.05, 0.05, 0.85, 0.05],  # true 2 -> TP
        ],
        dtype=np.float32,
    )
    ids = np.array([0, 1, 1, 3, 0, 2])
    return ids, probs


def test_next_word_metrics_by_hand():
    ids, probs = _batches()
    metrics = cl.NextWordMetrics()
    metrics.update(ids[:4], probs[:4])
    metrics.update(ids[4:], probs[4:])
    out = metrics.result()
    # accuracy: rows 0,2,3,5 -> 4/6. TP=3 (rows 0,3,5), predicted positives=4, positives=6.
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["precision"] == pytest.approx(3 / 4)
    assert out["recall"] == pytest.approx(3 / 6)
    assert out["f1"] == pytest.approx(2 * 0.75 * 0.5 / 1.25)
    # batch 1: TP 2, pred 3, pos 4 -> P 2/3, R 1/2; batch 2: TP 1, pred 1, pos 2 -> P 1, R 1/2.
    eps = cl.KERAS_EPSILON
    p1, r1, p2, r2 = 2 / (3 + eps), 2 / (4 + eps), 1 / (1 + eps), 1 / (2 + eps)
    f1 = [2 * p * r / (p + r + eps) for p, r in ((p1, r1), (p2, r2))]
    assert out["batch_mean/precision"] == pytest.approx((p1 + p2) / 2, rel=1e-6)
    assert out["batch_mean/recall"] == pytest.approx((r1 + r2) / 2, rel=1e-6)
    assert out["batch_mean/f1"] == pytest.approx(np.mean(f1), rel=1e-6)
    assert abs(out["batch_mean/f1"] - out["f1"]) > 0.01  # the flavours differ
    assert out["meta/batches"] == 2


def test_next_word_metrics_streaming_and_mask():
    ids, probs = _batches()
    whole = cl.NextWordMetrics()
    whole.update(ids, probs)
    # Sequence-shaped batch (2, 3, vocab) with padding rows that the mask removes.
    padded_ids = np.concatenate([ids, [0, 0]]).reshape(2, 4)
    padded_probs = np.concatenate([probs, np.full((2, 4), 0.25, np.float32)]).reshape(2, 4, 4)
    mask = np.array([1, 1, 1, 1, 1, 1, 0, 0]).reshape(2, 4)
    masked = cl.NextWordMetrics()
    masked.update(padded_ids, padded_probs, mask=mask)
    for key in ("accuracy", "precision", "recall", "f1", "batch_mean/f1"):
        assert masked.result()[key] == pytest.approx(whole.result()[key], rel=1e-6), key
    masked.reset()
    assert masked.result()["meta/batches"] == 0 and masked.result()["accuracy"] == 0.0


def test_next_word_metrics_on_a_tf_data_stream():
    import tensorflow as tf

    ids, probs = _batches()
    metrics = cl.NextWordMetrics()
    for batch_ids, batch_probs in tf.data.Dataset.from_tensor_slices((ids, probs)).batch(4):
        metrics.update(batch_ids, batch_probs)
    assert metrics.result()["precision"] == pytest.approx(3 / 4)


def test_multilabel_metrics_by_hand():
    y_true = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    y_score = np.array([[0.9, 0.2, 0.4], [0.1, 0.8, 0.6], [0.7, 0.3, 0.1], [0.2, 0.1, 0.05]])
    out = cl.multilabel_metrics(y_true, y_score, label_names=["a", "b", "c"])
    # predictions: [1,0,0], [0,1,1], [1,0,0], [0,0,0]; TP=3, FP=1, FN=2
    assert out["micro_precision"] == pytest.approx(3 / 4)
    assert out["micro_recall"] == pytest.approx(3 / 5)
    assert out["hamming_loss"] == pytest.approx(3 / 12)
    assert out["label_accuracy"] == pytest.approx(9 / 12)
    assert out["exact_match_ratio"] == pytest.approx(1 / 4)  # only the last row
    # label a: P 1, R 1; b: P 1, R 1/2; c: P 0, R 0
    assert out["macro_precision"] == pytest.approx(2 / 3)
    assert out["macro_recall"] == pytest.approx(1.5 / 3)
    assert out["auroc/a"] == pytest.approx(1.0)
    assert out["auroc/c"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="0/1"):
        cl.multilabel_metrics(np.array([[2]]), np.array([[0.5]]))


def test_ordinal_encoding_round_trip():
    levels = np.array([1, 2, 3, 4, 5])
    targets = cl.encode_ordinal(levels, 5)
    assert targets.tolist() == [
        [0, 0, 0, 0],
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 1, 0],
        [1, 1, 1, 1],
    ]
    assert cl.decode_ordinal(targets).tolist() == levels.tolist()
    assert cl.decode_ordinal(np.array([[0.9, 0.51, 0.5, 0.2]])).tolist() == [3]
    with pytest.raises(ValueError):
        cl.encode_ordinal([0, 2], 5)


def test_ordinal_metrics():
    from scipy.stats import spearmanr

    y_true = [1, 2, 3, 4, 5, 3]
    y_pred = [1, 2, 4, 4, 4, 3]
    out = cl.ordinal_metrics(y_true, y_pred)
    rho = spearmanr(y_true, y_pred).statistic
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["mae"] == pytest.approx(2 / 6) and out["mse"] == pytest.approx(2 / 6)
    assert out["spearman"] == pytest.approx(rho)
    assert out["acc_plus_corr"] == pytest.approx((4 / 6 + rho) / 2)
    constant = cl.ordinal_metrics([1, 2, 3], [2, 2, 2])
    assert np.isnan(constant["spearman"]) and np.isnan(constant["acc_plus_corr"])


def test_retrieval_metrics():
    sim = np.array(
        [
            [0.9, 0.1, 0.2, 0.0],  # image 0: its text ranks 1
            [0.8, 0.5, 0.1, 0.0],  # image 1: rank 2
            [0.1, 0.2, 0.3, 0.4],  # image 2: rank 2
            [0.0, 0.9, 0.8, 0.1],  # image 3: rank 3
        ]
    )
    i2t, t2i = cl.retrieval_ranks(sim)
    assert i2t.tolist() == [1, 2, 2, 3]
    assert t2i.tolist() == [1, 2, 2, 2]  # column-wise
    out = cl.retrieval_metrics(sim, ks=(1, 2))
    assert out["i2t/R@1"] == 0.25 and out["i2t/R@2"] == 0.75 and out["i2t/median_rank"] == 2.0
    assert out["t2i/R@1"] == 0.25 and out["t2i/R@2"] == 1.0 and out["t2i/median_rank"] == 2.0
    # Ties count against the query: a constant similarity gets the worst rank.
    flat = cl.retrieval_metrics(np.ones((5, 5)))
    assert flat["i2t/R@1"] == 0.0 and flat["t2i/median_rank"] == 5.0
    emb = np.eye(3)
    assert cl.retrieval_metrics(cl.cosine_similarity(emb, 2 * emb))["i2t/R@1"] == 1.0


def test_identical_reports_are_one_retrieval_candidate():
    """Studies 0 and 1 share a verbatim report, so their text embeddings (columns
    0 and 1) are equal. Retrieving either copy is a hit for both images; plain
    `>=` ranking put each image's own report second, behind its twin."""
    sim = np.array(
        [
            [0.9, 0.9, 0.2, 0.1],  # image 0: its report (group A) is the best candidate
            [0.8, 0.8, 0.1, 0.3],  # image 1: same group, rank 1
            [0.5, 0.5, 0.4, 0.0],  # image 2: group A (one candidate) beats its own: rank 2
            [0.7, 0.7, 0.6, 0.2],  # image 3: A and B beat its own: rank 3
        ]
    )
    groups = ["A", "A", "B", "C"]
    assert cl.retrieval_ranks(sim)[0].tolist() == [2, 2, 3, 4]  # ungrouped: twins tie
    i2t, t2i = cl.retrieval_ranks(sim, groups)
    assert i2t.tolist() == [1, 1, 2, 3]
    # text A: images 0 and 1 are both right (best 0.9); text B: image 2 (0.4) behind
    # image 3 (0.6); text C: image 3 (0.2) behind image 1 (0.3)
    assert t2i.tolist() == [1, 1, 2, 2]
    out = cl.retrieval_metrics(sim, ks=(1,), groups=groups)
    assert out["i2t/R@1"] == 0.5 and out["t2i/R@1"] == 0.5
    # groups of one are the plain ranking
    assert [r.tolist() for r in cl.retrieval_ranks(sim, ["a", "b", "c", "d"])] == [
        r.tolist() for r in cl.retrieval_ranks(sim)
    ]
    with pytest.raises(ValueError, match="groups has 3 entries for 4 texts"):
        cl.retrieval_ranks(sim, ["A", "A", "B"])
