"""Classification and retrieval metrics of the three papers.

API:

    NextWordMetrics(threshold=0.5)       # streaming, paper 000 Table 2
        .update(y_true_ids, probs, mask=None); .result() -> dict; .reset()
    f1_from_precision_recall(p, r) -> float
    multilabel_metrics(y_true, y_score, threshold=0.5, label_names=None) -> dict   # paper 001 Table 3
    encode_ordinal(levels, num_levels) -> (n, num_levels - 1) cumulative targets
    decode_ordinal(outputs, threshold=0.5) -> levels
    ordinal_metrics(y_true_levels, y_pred_levels) -> dict                       # paper 001 Table 4
    retrieval_metrics(similarity, ks=(1, 5, 10), groups=None) -> dict           # paper 002
    cosine_similarity(a, b) -> (len(a), len(b))

Next-word metrics (paper 000, section 5.1, Table 2). The paper reports
accuracy, precision, recall and F1 for Model-80 / Model-70 and says it uses
TensorFlow. We compute, over every next-word prediction (softmax over the
vocabulary vs the one-hot next word):

* `accuracy`: Keras `SparseCategoricalAccuracy` (argmax == target);
* `precision`, `recall`: Keras `Precision` / `Recall` with threshold 0.5,
  streaming over the whole split (a vocabulary entry is "predicted" when its
  softmax probability is > 0.5, so at most one per position);
* `f1` = 2PR / (P + R) of those streaming values.

Those three fit the paper's structure (recall <= accuracy, as a probability
> 0.5 implies argmax). Its F1 fits 2PR/(P+R) for Model-70 (P 0.6336, R
0.1849 -> 0.28626; P and R rounded to four places allow 0.28620..0.28633,
the paper prints 0.2862) but not for Model-80: P 0.7095, R 0.3031 give
0.42475 (0.42469..0.42481), the paper prints 0.4244. A common Keras-2 recipe (per-batch
precision/recall/F1 from `K.round(K.clip(...))`, averaged over batches by
`model.evaluate`) gives a smaller F1 than 2PR/(P+R) of the averaged P and R,
which would explain the gap; we therefore also report that flavour as
`batch_mean/precision`, `batch_mean/recall`, `batch_mean/f1` (every batch
weighs the same; K.epsilon = 1e-7). Which one the paper used is unknown.

Multi-label (paper 001, Table 3): sklearn precision/recall/F1 (micro, macro,
example-based "samples"; zero_division=0), Hamming loss, exact-match ratio
(sklearn subset accuracy), label accuracy (1 - Hamming loss) and per-label
AUROC (NaN when a label has one class in y_true). Predictions are
`score > threshold` as Keras' binary metrics do. Note: in the paper's Table
3, Hamming loss + "Exact Match Ratio" = 1.0000 in all three rows, which is
what label accuracy gives, not subset accuracy; we report both.

Ordinal (paper 001, Table 4; ours where the paper is silent): levels are
1..K. Cumulative encoding: target[k] = 1 if level > k + 1 (K - 1 sigmoid
outputs); decoding: level = 1 + number of outputs > 0.5. Accuracy, MAE, MSE,
Spearman rho (scipy; NaN when either side is constant), and ACC+Corr =
(accuracy + rho) / 2, our definition because the paper does not give one.
(In the paper's Table 4, accuracy + MAE = 1.0000 in all rows, i.e. every
error was off by exactly one level.)

Retrieval (paper 002, image <-> text): `similarity[i, j]` scores image i
against text j; pair i is the match. The rank of the match is 1 + the number
of other candidates scoring at least as high (ties count against the query,
so a constant similarity gets the worst rank, not the best). Recall@K =
fraction of queries with rank <= K; median rank is 1-based. Both directions,
one comparison against the diagonal each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

KERAS_EPSILON = 1e-7


def f1_from_precision_recall(precision: float, recall: float) -> float:
    """Harmonic mean 2PR / (P + R); 0 when both are 0."""
    total = precision + recall
    return 0.0 if total == 0 else 2 * precision * recall / total


class NextWordMetrics:
    """Streaming next-word accuracy / precision / recall / F1 over batches.

    `update(y_true_ids, probs, mask=None)`: `y_true_ids` integer ids of any
    shape S, `probs` softmax outputs of shape S + (vocab,), `mask` (shape S,
    optional) 1 where the position counts (e.g. not padding). Works on numpy
    arrays or tensors (e.g. inside a loop over a tf.data split); the one-hot
    targets exist one batch at a time.
    """

    def __init__(self, threshold: float = 0.5):
        import keras

        self.threshold = threshold
        self.accuracy = keras.metrics.SparseCategoricalAccuracy()
        self.precision = keras.metrics.Precision(thresholds=threshold)
        self.recall = keras.metrics.Recall(thresholds=threshold)
        self.batch_precision = keras.metrics.Mean()
        self.batch_recall = keras.metrics.Mean()
        self.batch_f1 = keras.metrics.Mean()
        self.batches = 0

    def reset(self) -> None:
        for metric in self._metrics():
            metric.reset_state()
        self.batches = 0

    def _metrics(self) -> list[Any]:
        return [
            self.accuracy,
            self.precision,
            self.recall,
            self.batch_precision,
            self.batch_recall,
            self.batch_f1,
        ]

    def update(self, y_true_ids: Any, probs: Any, mask: Any | None = None) -> None:
        from keras import ops

        probs = ops.convert_to_tensor(probs)
        vocab = ops.shape(probs)[-1]
        probs = ops.reshape(probs, (-1, vocab))
        ids = ops.reshape(ops.cast(ops.convert_to_tensor(y_true_ids), "int32"), (-1,))
        weight = (
            None
            if mask is None
            else ops.reshape(ops.cast(ops.convert_to_tensor(mask), probs.dtype), (-1,))
        )
        one_hot = ops.one_hot(ids, vocab, dtype=probs.dtype)
        self.accuracy.update_state(ids, probs, sample_weight=weight)
        self.precision.update_state(one_hot, probs, sample_weight=weight)
        self.recall.update_state(one_hot, probs, sample_weight=weight)
        # Keras-2 function-metric recipe, one value per batch.
        predicted = ops.cast(probs > self.threshold, probs.dtype)
        if weight is not None:
            predicted = predicted * weight[:, None]
            one_hot = one_hot * weight[:, None]
        true_positives = ops.sum(one_hot * predicted)
        batch_precision = true_positives / (ops.sum(predicted) + KERAS_EPSILON)
        batch_recall = true_positives / (ops.sum(one_hot) + KERAS_EPSILON)
        batch_f1 = (
            2 * batch_precision * batch_recall / (batch_precision + batch_recall + KERAS_EPSILON)
        )
        self.batch_precision.update_state(batch_precision)
        self.batch_recall.update_state(batch_recall)
        self.batch_f1.update_state(batch_f1)
        self.batches += 1

    def result(self) -> dict[str, Any]:
        precision = float(self.precision.result())
        recall = float(self.recall.result())
        return {
            "accuracy": float(self.accuracy.result()),
            "precision": precision,
            "recall": recall,
            "f1": f1_from_precision_recall(precision, recall),
            "batch_mean/precision": float(self.batch_precision.result()),
            "batch_mean/recall": float(self.batch_recall.result()),
            "batch_mean/f1": float(self.batch_f1.result()),
            "meta/batches": self.batches,
            "meta/next_word_flavour": (
                f"keras SparseCategoricalAccuracy, Precision/Recall(thresholds={self.threshold}) streaming over "
                "softmax vs one-hot, f1=2PR/(P+R); batch_mean/* = per-batch Keras-2 recipe averaged over batches"
            ),
        }


# ---------------------------------------------------------------------------
# Multi-label


def multilabel_metrics(
    y_true: Any, y_score: Any, *, threshold: float = 0.5, label_names: Sequence[str] | None = None
) -> dict[str, float]:
    """Multi-label metrics; `y_score` are probabilities (thresholded) or 0/1 predictions."""
    from sklearn import metrics

    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape or y_true.ndim != 2:
        raise ValueError(
            f"y_true and y_score must be (n, labels) of one shape, got {y_true.shape} and {y_score.shape}"
        )
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must be 0/1")
    y_true = y_true.astype(np.int64)
    y_pred = (y_score > threshold).astype(np.int64)
    names = (
        list(label_names) if label_names is not None else [str(i) for i in range(y_true.shape[1])]
    )
    if len(names) != y_true.shape[1]:
        raise ValueError(f"{len(names)} label names for {y_true.shape[1]} labels")
    out: dict[str, float] = {}
    for average, prefix in (("micro", "micro"), ("macro", "macro"), ("samples", "example")):
        p, r, f, _ = metrics.precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )
        out[f"{prefix}_precision"], out[f"{prefix}_recall"], out[f"{prefix}_f1"] = (
            float(p),
            float(r),
            float(f),
        )
    out["hamming_loss"] = float(metrics.hamming_loss(y_true, y_pred))
    out["exact_match_ratio"] = float(metrics.accuracy_score(y_true, y_pred))
    out["label_accuracy"] = 1.0 - out["hamming_loss"]
    aurocs = []
    for j, name in enumerate(names):
        column = y_true[:, j]
        value = (
            float(metrics.roc_auc_score(column, y_score[:, j]))
            if 0 < column.sum() < len(column)
            else float("nan")
        )
        out[f"auroc/{name}"] = value
        aurocs.append(value)
    defined = [a for a in aurocs if not np.isnan(a)]
    out["auroc_macro"] = float(np.mean(defined)) if defined else float("nan")
    return out


# ---------------------------------------------------------------------------
# Ordinal


def encode_ordinal(levels: Any, num_levels: int) -> np.ndarray:
    """Levels 1..num_levels -> (n, num_levels - 1) float32 cumulative targets."""
    levels = np.asarray(levels)
    if num_levels < 2:
        raise ValueError(f"num_levels must be >= 2, got {num_levels}")
    if levels.size and (
        levels.min() < 1 or levels.max() > num_levels or not np.all(levels == np.round(levels))
    ):
        raise ValueError(f"levels must be integers in 1..{num_levels}")
    return (levels.astype(np.int64)[..., None] > np.arange(1, num_levels)).astype(np.float32)


def decode_ordinal(outputs: Any, threshold: float = 0.5) -> np.ndarray:
    """(n, K - 1) cumulative sigmoid outputs -> levels 1 + count(outputs > threshold)."""
    return 1 + (np.asarray(outputs) > threshold).sum(axis=-1).astype(np.int64)


def ordinal_metrics(y_true_levels: Any, y_pred_levels: Any) -> dict[str, float]:
    from scipy import stats

    y_true = np.asarray(y_true_levels, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred_levels, dtype=np.float64).ravel()
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(
            f"need equal, non-empty level arrays, got {y_true.shape} and {y_pred.shape}"
        )
    accuracy = float(np.mean(y_true == y_pred))
    if np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        rho = float("nan")  # undefined for a constant side; scipy would warn and say nan too
    else:
        rho = float(stats.spearmanr(y_true, y_pred).statistic)
    return {
        "accuracy": accuracy,
        "mae": float(np.mean(np.abs(y_true - y_pred))),
        "mse": float(np.mean((y_true - y_pred) ** 2)),
        "spearman": rho,
        "acc_plus_corr": (accuracy + rho) / 2,
    }


# ---------------------------------------------------------------------------
# Retrieval


def cosine_similarity(a: Any, b: Any) -> np.ndarray:
    """Row-wise cosine similarity (len(a), len(b)); zero vectors give 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def retrieval_ranks(
    similarity: Any, groups: Sequence[Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks of the matching pair: (image->text per image, text->image per text).

    `similarity[i, j]` scores image i against text j; pair i matches i. Ties
    count against the query (`>=`): a constant similarity gets the worst rank.

    `groups[j]` names text j's content (e.g. the text itself). Texts of one
    group are one candidate: image i ranks the distinct groups by their best
    similarity, and finding any text identical to its own is a hit; text j's
    query is answered by any image whose text is in its group. Without
    `groups` every text is its own group. On IU X-ray 45 of 295 test studies
    share a verbatim report with another: identical texts embed identically,
    so ungrouped `>=` ranking would push every member of a duplicate group
    below its twins.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"similarity must be square (pair i matches i), got {sim.shape}")
    n = sim.shape[0]
    if groups is None:
        labels = np.arange(n)
    else:
        if len(groups) != n:
            raise ValueError(f"groups has {len(groups)} entries for {n} texts")
        _, labels = np.unique(np.asarray([str(g) for g in groups], dtype=object), return_inverse=True)
        labels = np.asarray(labels).reshape(-1)
    num_groups = int(labels.max()) + 1 if n else 0
    # best similarity of each image to each group of texts: (n, num_groups)
    group_sim = np.full((n, num_groups), -np.inf)
    for g in range(num_groups):
        group_sim[:, g] = sim[:, labels == g].max(axis=1)
    own = group_sim[np.arange(n), labels]
    image_to_text = (group_sim >= own[:, None]).sum(axis=1)
    # text j: its best image among those of its group vs every other image
    same = labels[:, None] == labels[None, :]  # same[i, j]: image i's text is in j's group
    best_own_image = np.where(same, sim, -np.inf).max(axis=0)
    text_to_image = 1 + (np.where(same, -np.inf, sim) >= best_own_image[None, :]).sum(axis=0)
    return image_to_text, text_to_image


def retrieval_metrics(
    similarity: Any, ks: Sequence[int] = (1, 5, 10), *, groups: Sequence[Any] | None = None
) -> dict[str, float]:
    """Recall@K and median rank, image->text (`i2t/...`) and text->image
    (`t2i/...`); `groups` de-duplicates identical texts (`retrieval_ranks`)."""
    out: dict[str, float] = {}
    for direction, ranks in zip(("i2t", "t2i"), retrieval_ranks(similarity, groups)):
        for k in ks:
            out[f"{direction}/R@{k}"] = float(np.mean(ranks <= k))
        out[f"{direction}/median_rank"] = float(np.median(ranks))
    return out
