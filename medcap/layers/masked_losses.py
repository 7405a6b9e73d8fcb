"""Multi-label training with missing labels: a masked, weighted binary cross-entropy and a masked AUC.

Targets use `medcap.data.findings_labels`' convention: 1 positive, 0
negative, -1 no usable label (uncertain under U-Ignore, or not recorded).
A masked entry adds nothing to the loss, its gradient or the metric.

`MaskedBinaryCrossentropy(positive_weights, negative_weights)`:

    L = sum_ij m_ij * -(w+_j y_ij log p_ij + w-_j (1 - y_ij) log(1 - p_ij)) / max(1, sum_ij m_ij)

with m_ij = 1 where y_ij >= 0, p clipped to [eps, 1 - eps] (Keras' epsilon,
1e-7), i.e. the mean over the labelled entries of the batch. The weights
come from `label_weights`: "chexnet" is CheXNet's w+ = |N| / (|P| + |N|),
w- = |P| / (|P| + |N|) per label over the train split (Rajpurkar et al.
2017, section 2.1), "positive" is w+ = |N| / |P|, w- = 1 (the
`pos_weight` of torch's BCEWithLogitsLoss), "none" is 1 and 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

WEIGHTINGS = ("none", "chexnet", "positive")


def label_weights(findings: np.ndarray, weighting: str) -> tuple[list[float], list[float]]:
    """(w+, w-) per label from train targets (n, labels) in {1, 0, -1}.

    A label with no positives or no negatives gets (1, 1): no ratio exists.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r}: expected one of {', '.join(WEIGHTINGS)}")
    findings = np.asarray(findings)
    positives = (findings == 1).sum(axis=0).astype(np.float64)
    negatives = (findings == 0).sum(axis=0).astype(np.float64)
    w_pos, w_neg = np.ones_like(positives), np.ones_like(positives)
    usable = (positives > 0) & (negatives > 0)
    if weighting == "chexnet":
        total = positives + negatives
        w_pos = np.where(usable, negatives / np.maximum(total, 1), 1.0)
        w_neg = np.where(usable, positives / np.maximum(total, 1), 1.0)
    elif weighting == "positive":
        w_pos = np.where(usable, negatives / np.maximum(positives, 1), 1.0)
    return [float(v) for v in w_pos], [float(v) for v in w_neg]


@keras.saving.register_keras_serializable(package="medcap")
class MaskedBinaryCrossentropy(keras.losses.Loss):
    """Weighted BCE over the labelled entries only (module docstring)."""

    def __init__(
        self,
        positive_weights: Sequence[float] | None = None,
        negative_weights: Sequence[float] | None = None,
        name: str = "masked_binary_crossentropy",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.positive_weights = None if positive_weights is None else [float(v) for v in positive_weights]
        self.negative_weights = None if negative_weights is None else [float(v) for v in negative_weights]

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.clip(ops.cast(y_pred, "float32"), keras.config.epsilon(), 1.0 - keras.config.epsilon())
        mask = ops.cast(y_true >= 0.0, "float32")
        target = ops.maximum(y_true, 0.0)
        w_pos = 1.0 if self.positive_weights is None else ops.convert_to_tensor(self.positive_weights, "float32")
        w_neg = 1.0 if self.negative_weights is None else ops.convert_to_tensor(self.negative_weights, "float32")
        loss = -(w_pos * target * ops.log(y_pred) + w_neg * (1.0 - target) * ops.log(1.0 - y_pred))
        # One value per example, so Keras' reduction averages over the batch;
        # scaled so the batch mean equals the mean over labelled entries.
        per_example = ops.sum(loss * mask, axis=-1)
        batch = ops.cast(ops.shape(y_true)[0], "float32")
        return per_example * batch / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        return {
            **super().get_config(),
            "positive_weights": self.positive_weights,
            "negative_weights": self.negative_weights,
        }


@keras.saving.register_keras_serializable(package="medcap")
class MaskedAUC(keras.metrics.AUC):
    """ROC AUC averaged over labels (Keras' multi-label AUC), masked entries left out."""

    def __init__(self, num_labels: int, name: str = "auc", **kwargs):
        kwargs.pop("multi_label", None)
        kwargs.pop("num_labels", None)
        super().__init__(name=name, multi_label=True, num_labels=num_labels, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "float32")
        mask = ops.cast(y_true >= 0.0, "float32")
        if sample_weight is not None:
            mask = mask * ops.cast(ops.reshape(sample_weight, (-1, 1)), "float32")
        return super().update_state(ops.maximum(y_true, 0.0), y_pred, sample_weight=mask)

    def get_config(self):
        return {**super().get_config(), "num_labels": self.num_labels}
