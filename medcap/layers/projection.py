"""Residual projection layers of the text encoder (paper 002, section 3.2, eqs. 6-7).

Rahman, Lee, Kim, "Leveraging Contrastive Learning and Domain Prompts for
Efficient Radiology Report Generation": the mean-pooled BERT state H_0 goes
through K layers

    H_k = GELU(W_k H_(k-1) + B_k) + H_(k-1)          (eq. 6, W_k in R^(d x d))
    H_k = LayerNorm(Dropout(H_k))                     (eq. 7, dropout rate 0.1)

so one layer is H_k = LayerNorm(Dropout(GELU(W H + b) + H)), in exactly that
order (dropout after the residual sum, as eq. 7 writes it). K is ours
(`ClipTextEncoder(num_projection_layers=...)`).

Ours where the paper is silent: exact GELU (erf, not the tanh approximation),
Glorot-uniform W and zero b (Keras Dense defaults), LayerNorm epsilon 1e-6.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="medcap")
class ResidualProjection(keras.layers.Layer):
    """One layer of eqs. 6-7: LayerNorm(Dropout(GELU(W x + b) + x)); width preserved.

    Args:
        dropout: dropout rate (paper: 0.1).
        layer_norm_epsilon: LayerNorm epsilon.
        seed: seed of the dropout.
    """

    def __init__(
        self,
        dropout: float = 0.1,
        layer_norm_epsilon: float = 1e-6,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout}: expected 0 <= dropout < 1")
        self.dropout = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.seed = seed
        self.dropout_layer = keras.layers.Dropout(
            self.dropout, seed=seed, dtype=self.dtype_policy, name="dropout"
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.dense = keras.layers.Dense(dim, activation=None, dtype=self.dtype_policy, name="dense")
        self.dense.build(input_shape)
        self.dropout_layer.build(input_shape)
        self.layer_norm.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        hidden = keras.activations.gelu(self.dense(inputs), approximate=False) + inputs
        return self.layer_norm(self.dropout_layer(hidden, training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "dropout": self.dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "seed": self.seed,
        }
