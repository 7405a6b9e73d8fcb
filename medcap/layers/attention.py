"""Attention over the caption's BiLSTM states, pooled to one context vector.

Paper 000 (Kanavos et al.), section 3.1: "Attention Mechanism: Employed to
enhance the model's focus by computing a context vector, averaged using
GlobalAveragePooling1D." The paper names neither the query nor the key.

Our choice, written down as ours:

* **Self-attention over the BiLSTM states**: query = key = value = the
  sequence encoder's states `h_1..h_T` (padding masked out as keys and as
  queries). The image reaches the model only as one 4096-d `fc2` vector, so
  there are no image regions to attend to; attention can only weigh the
  caption prefix. And "averaged using GlobalAveragePooling1D" needs a
  *sequence* of context vectors to average, which self-attention gives (one
  per query position); an image-conditioned single query would leave
  nothing to average.
* **Luong dot-product scores with a learned scalar scale**
  (`keras.layers.Attention(score_mode="dot", use_scale=True)`);
  `score_mode="concat"` (additive, Bahdanau-style) is available.
* The pooled context is `mean_q sum_t a_qt h_t = sum_t w_t h_t` with
  `w_t = mean over valid queries q of a_qt`, so `w` (returned beside the
  context) is exactly how much each caption token contributes to the
  context vector; the plots in `results/*/plots/` show it.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="medcap")
class AttentionPooling(keras.layers.Layer):
    """Self-attention over a sequence, then masked GlobalAveragePooling1D.

    Args:
        score_mode: "dot" (Luong) or "concat" (additive), as in
            `keras.layers.Attention`.
        use_scale: learn a scale of the scores (a scalar for "dot").
        attention_dropout: dropout on the attention distribution.
        seed: seed of that dropout.

    Call arguments:
        states: (batch, time, dim) encoder states.
        mask: optional (batch, time) boolean padding mask (Keras propagates
            it from `Embedding(mask_zero=True)`).

    Returns:
        `(context, weights)`: the pooled context `(batch, dim)` and the weight
        of each position in it, `(batch, time)`, summing to 1 over valid
        positions and 0 at padding.
    """

    def __init__(
        self,
        score_mode: str = "dot",
        use_scale: bool = True,
        attention_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"score_mode={score_mode!r}: expected 'dot' or 'concat'")
        self.score_mode = score_mode
        self.use_scale = use_scale
        self.attention_dropout = attention_dropout
        self.seed = seed
        self.attention = keras.layers.Attention(
            use_scale=use_scale,
            score_mode=score_mode,
            dropout=attention_dropout,
            seed=seed,
            dtype=self.dtype_policy,
            name="self_attention",
        )
        self.pooling = keras.layers.GlobalAveragePooling1D(dtype=self.dtype_policy, name="context_pooling")
        self.supports_masking = True

    def build(self, states_shape):
        self.attention.build([states_shape, states_shape])
        self.pooling.build(states_shape)
        self.built = True

    def call(self, states, mask=None, training=None):
        masks = None if mask is None else [mask, mask]
        context, scores = self.attention(
            [states, states], mask=masks, return_attention_scores=True, training=training
        )
        pooled = self.pooling(context, mask=mask)
        scores = ops.cast(scores, "float32")
        if mask is None:
            weights = ops.mean(scores, axis=1)
        else:
            valid = ops.cast(mask, "float32")
            weights = ops.sum(scores * valid[:, :, None], axis=1) / ops.maximum(
                ops.sum(valid, axis=1, keepdims=True), 1.0
            )
            weights = weights * valid
        return pooled, weights

    def compute_mask(self, states, mask=None):
        return [None, None]

    def compute_output_shape(self, states_shape):
        batch, time, dim = states_shape
        return (batch, dim), (batch, time)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "score_mode": self.score_mode,
                "use_scale": self.use_scale,
                "attention_dropout": self.attention_dropout,
                "seed": self.seed,
            }
        )
        return config
