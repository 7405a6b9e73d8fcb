"""Soft prompts with a context-dependent scale (paper 002, section 3.2, eqs. 2-3).

Rahman, Lee, Kim, "Leveraging Contrastive Learning and Domain Prompts for
Efficient Radiology Report Generation": P learnable prompt embeddings
P in R^(P x d), initialised from a truncated normal with std 0.02, are
prepended to the token embeddings E in R^(L x d) of a frozen BERT,
E_hat = [alpha(x) * P; E] (eqs. 2-3), where alpha(x) "is an attention-based
scaling function that computes context-dependent importance weights for each
prompt token".

The paper gives no formula for alpha(x). Ours, one weight per prompt token,
computed from the input's token embeddings E (padding masked out):

    q_p      = P_p W_q                         (P x a)   query of prompt p
    k_l      = E_l W_k                         (L x a)   key of token l
    a_{p,l}  = softmax_l(q_p . k_l / sqrt(a))            attention of prompt p over tokens
    v_l      = E_l . u                         (scalar)  value of token l
    alpha_p  = 2 * sigmoid(sum_l a_{p,l} v_l + b_p)      in (0, 2)

with W_q, W_k in R^(d x a) (Glorot uniform), u in R^d and b in R^P
initialised at zero, so alpha = 1 exactly at initialisation: training starts
from plain prompt tuning and learns how much each prompt should count for
each report. The range (0, 2) lets a prompt be damped or amplified. `a`
(`attention_dim`) is ours, 64 by default. The attention is computed in
float32 whatever the dtype policy. Prompt tokens are always valid positions:
the returned mask is [1] * P + padding_mask.
"""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="medcap")
class SoftPromptEmbedding(keras.layers.Layer):
    """Prepends alpha(x)-scaled learnable prompts to token embeddings.

    Args:
        num_prompts: P, the number of prompt tokens.
        attention_dim: a, the width of alpha's query/key projections.
        initializer_stddev: std of the truncated-normal prompt initialisation
            (paper: 0.02).

    Call arguments:
        token_embeddings: (batch, L, d) embeddings of the input tokens.
        padding_mask: optional (batch, L), 1 (or True) at real tokens, 0 at
            padding; None: every token is real.

    Returns:
        `(embeddings, mask)`: (batch, P + L, d) = [alpha(x) * P; E] and the
        (batch, P + L) int32 mask with the prompts marked valid.
    """

    def __init__(
        self, num_prompts: int, attention_dim: int = 64, initializer_stddev: float = 0.02, **kwargs
    ):
        super().__init__(**kwargs)
        if num_prompts < 1:
            raise ValueError(f"num_prompts={num_prompts}: must be >= 1")
        if attention_dim < 1:
            raise ValueError(f"attention_dim={attention_dim}: must be >= 1")
        self.num_prompts = int(num_prompts)
        self.attention_dim = int(attention_dim)
        self.initializer_stddev = float(initializer_stddev)

    def build(self, token_embeddings_shape):
        dim = int(token_embeddings_shape[-1])
        self.prompts = self.add_weight(
            name="prompts",
            shape=(self.num_prompts, dim),
            initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_stddev),
        )
        self.query_kernel = self.add_weight(
            name="query_kernel", shape=(dim, self.attention_dim), initializer="glorot_uniform"
        )
        self.key_kernel = self.add_weight(
            name="key_kernel", shape=(dim, self.attention_dim), initializer="glorot_uniform"
        )
        self.value_kernel = self.add_weight(name="value_kernel", shape=(dim,), initializer="zeros")
        self.alpha_bias = self.add_weight(
            name="alpha_bias", shape=(self.num_prompts,), initializer="zeros"
        )
        self.built = True

    def alpha(self, token_embeddings, padding_mask=None):
        """alpha(x): (batch, P) float32 scale of each prompt token."""
        embeddings = ops.cast(token_embeddings, "float32")
        if padding_mask is None:
            padding_mask = ops.ones(ops.shape(token_embeddings)[:2], dtype="int32")
        valid = ops.cast(padding_mask, "bool")
        prompts = ops.cast(self.prompts, "float32")
        queries = ops.matmul(prompts, ops.cast(self.query_kernel, "float32"))  # (P, a)
        keys = ops.einsum(
            "bld,da->bla", embeddings, ops.cast(self.key_kernel, "float32")
        )  # (B, L, a)
        scores = ops.einsum("pa,bla->bpl", queries, keys) / math.sqrt(self.attention_dim)
        # A large finite negative keeps an all-padding row finite (uniform) rather than NaN.
        scores = ops.where(valid[:, None, :], scores, ops.full_like(scores, -1e9))
        attention = ops.softmax(scores, axis=-1)
        values = ops.einsum(
            "bld,d->bl", embeddings, ops.cast(self.value_kernel, "float32")
        )  # (B, L)
        context = ops.einsum("bpl,bl->bp", attention, values)
        return 2.0 * ops.sigmoid(context + ops.cast(self.alpha_bias, "float32"))

    def call(self, token_embeddings, padding_mask=None):
        batch, length = ops.shape(token_embeddings)[0], ops.shape(token_embeddings)[1]
        if padding_mask is None:
            padding_mask = ops.ones((batch, length), dtype="int32")
        alpha = ops.cast(self.alpha(token_embeddings, padding_mask), token_embeddings.dtype)
        prompts = ops.cast(self.prompts, token_embeddings.dtype)[None, :, :] * alpha[:, :, None]
        embeddings = ops.concatenate([prompts, token_embeddings], axis=1)
        prompt_mask = ops.ones((batch, self.num_prompts), dtype="int32")
        mask = ops.concatenate([prompt_mask, ops.cast(padding_mask, "int32")], axis=1)
        return embeddings, mask

    def compute_output_shape(self, token_embeddings_shape, padding_mask_shape=None):
        batch, length, dim = token_embeddings_shape
        total = None if length is None else length + self.num_prompts
        return (batch, total, dim), (batch, total)

    def compute_output_spec(self, token_embeddings, padding_mask=None):
        (batch, total, dim), mask_shape = self.compute_output_shape(token_embeddings.shape)
        return (
            keras.KerasTensor((batch, total, dim), dtype=self.compute_dtype),
            keras.KerasTensor(mask_shape, dtype="int32"),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_prompts": self.num_prompts,
            "attention_dim": self.attention_dim,
            "initializer_stddev": self.initializer_stddev,
        }
