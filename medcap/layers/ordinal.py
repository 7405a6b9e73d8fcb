"""Sequence-averaged sigmoid heads of paper 001 and the cumulative ordinal encoding.

Aksoy, Sharoff, Ravikumar, "Enhancing Image-to-Text Generation in Radiology
Reports through Cross-modal Multi-Task Learning", section 3.3:

    "The ordinal classification (OC) and the multi-label classification
    (MLC) decoders take the encoder outputs and normalise them. The
    normalised outputs are subsequently input to a dense layer with a
    sigmoid activation function to derive probabilities. These
    probabilities are then averaged across the sequence dimension,
    resulting in scalar predictions."

`SequenceSigmoidHead(units)` is that decoder: LayerNormalization ->
Dense(units, sigmoid) at every position -> mean over the positions. The
multi-label head is `SequenceSigmoidHead(5)` (5 findings, BCE); the ordinal
head is `OrdinalHead(num_levels=5)`, i.e. 4 cumulative sigmoid outputs.

Cumulative encoding (section 3.2: "binary vectors ... of length equal to the
number of ordinal levels minus one"): level `t` in 1..K becomes
`target[k] = 1 if t > k + 1` (k = 0..K-2), and outputs decode to
`1 + #(outputs > 0.5)`. The functions are the evaluation module's
(`medcap.evaluation.classification.encode_ordinal` / `decode_ordinal`),
re-exported here so model code and metrics cannot disagree.

Ours, where the paper is silent:

* The average is over probabilities (after the sigmoid), as the quoted text
  orders it, so the BCE loss is applied to averaged probabilities.
* Positions with a False mask (when a mask is given) are left out of the
  average; the encoder output of paper 001 (image positions) has no padding.
* LayerNormalization epsilon 1e-5, keras_hub's transformer default.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from medcap.evaluation.classification import decode_ordinal, encode_ordinal

__all__ = ["OrdinalHead", "SequenceSigmoidHead", "decode_ordinal", "encode_ordinal"]


@keras.saving.register_keras_serializable(package="medcap")
class SequenceSigmoidHead(keras.layers.Layer):
    """LayerNorm -> Dense(units, sigmoid) per position -> mean over the sequence.

    Args:
        units: sigmoid outputs (5 findings; K - 1 for an ordinal target of K levels).
        layer_norm_epsilon: epsilon of the LayerNormalization.

    Call arguments:
        sequence: (batch, length, dim) encoder outputs.
        mask: optional (batch, length) boolean; False positions are left out.

    Returns:
        (batch, units) averaged probabilities in [0, 1].
    """

    def __init__(self, units: int, layer_norm_epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"units={units}: must be >= 1")
        self.units = int(units)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="norm")
        self.dense = keras.layers.Dense(self.units, activation="sigmoid", dtype=self.dtype_policy, name="dense")
        self.supports_masking = True

    def build(self, input_shape):
        self.norm.build(input_shape)
        self.dense.build(input_shape)
        self.built = True

    def call(self, sequence, mask=None):
        probabilities = self.dense(self.norm(sequence))
        if mask is None:
            return ops.mean(probabilities, axis=1)
        weights = ops.cast(mask, probabilities.dtype)[..., None]
        total = ops.sum(probabilities * weights, axis=1)
        return total / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_mask(self, inputs, mask=None):
        return None  # the sequence axis is averaged away

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"units": self.units, "layer_norm_epsilon": self.layer_norm_epsilon})
        return config


@keras.saving.register_keras_serializable(package="medcap")
class OrdinalHead(SequenceSigmoidHead):
    """The ordinal-classification decoder: `num_levels - 1` cumulative sigmoids.

    Train with binary cross-entropy against `encode_ordinal(levels, num_levels)`;
    read levels with `OrdinalHead.decode(outputs)`.
    """

    def __init__(self, num_levels: int = 5, layer_norm_epsilon: float = 1e-5, **kwargs):
        if int(num_levels) < 2:
            raise ValueError(f"num_levels={num_levels}: need at least 2 ordinal levels")
        kwargs.pop("units", None)
        super().__init__(units=int(num_levels) - 1, layer_norm_epsilon=layer_norm_epsilon, **kwargs)
        self.num_levels = int(num_levels)

    def encode(self, levels: Any) -> np.ndarray:
        """Levels 1..num_levels -> (n, num_levels - 1) cumulative targets."""
        return encode_ordinal(levels, self.num_levels)

    @staticmethod
    def decode(outputs: Any, threshold: float = 0.5) -> np.ndarray:
        """(n, K - 1) cumulative probabilities -> levels `1 + #(p > threshold)`."""
        return decode_ordinal(np.asarray(outputs), threshold)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("units")
        config["num_levels"] = self.num_levels
        return config
