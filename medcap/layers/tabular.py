"""The unified data block of paper 001: non-imaging features as a token sequence.

Aksoy, Sharoff, Ravikumar, section 3.3: "The unified data block first
encodes all numerical data into a single vector [...], then passes this
through a dense layer to obtain a condensed representation [...].
Categorical data is one-hot encoded and passed through a separate dense
layer to obtain categorical embeddings. Text-based data from each modality
is passed through distinct embedding layers, with the resulting embeddings
further processed by dense layers to obtain the final text data
representations." The result is the key/value sequence of the
cross-attention block (image features are the queries).

`UnifiedDataBlock` maps a dict of inputs to `(tokens, mask)`:

* each numeric input (paper 001: the 6 min-max scaled vitals as one vector)
  -> its own Dense -> **one** token;
* each categorical input (gender, ethnicity; one-hot vectors) -> its own
  Dense -> one token;
* each text input (chief complaint, ICD title; word ids, 0 = padding) -> its
  own Embedding -> its own Dense -> one token per word;

concatenated along the sequence axis in that order: (batch, N, hidden_dim),
with a (batch, N) boolean mask that is False exactly at padded words, so
attention never reads padding (numeric and categorical tokens are always
valid, hence no row is fully masked).

Ours, where the paper is silent:

* One Dense per categorical field (the paper's "a separate dense layer" is
  read as separate from the numeric one; gender and ethnicity each get their
  own, so the two are distinguishable tokens).
* Gender is a categorical input here, a 3-way one-hot (F, M, unknown) with
  its own Dense, although section 3.2 lists it among the "binary variables
  [...] converted to numerical representations" (a single 0/1 number). The
  `unknown` slot is kept on purpose: an image-only caption and a subject
  with no recorded gender need a value that claims neither F nor M. The
  block itself takes any one-hot width (`num_genders` of the model).
* Dense activation ReLU (`activation`), embedding width = `hidden_dim`
  unless `text_embedding_dim` is given.
* No positional encoding of the words inside a text field (each field is a
  short phrase; fields are told apart by their own Embedding and Dense).
* The padding id 0 has an embedding row like any other id; the mask, not a
  zero vector, keeps it out of attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="medcap")
class UnifiedDataBlock(keras.layers.Layer):
    """Numeric, categorical and text features -> one token sequence + mask.

    Args:
        hidden_dim: width of every token.
        text_vocabulary_sizes: `{input name: vocabulary size}` of the text
            inputs (ids 0 = padding), in token order.
        numeric_inputs: names of the numeric vector inputs (one token each).
        categorical_inputs: names of the one-hot inputs (one token each).
        text_embedding_dim: Embedding width (default `hidden_dim`).
        activation: activation of every Dense.

    Call arguments:
        inputs: dict with every named input: numeric/categorical (batch,
            features) floats, text (batch, words) integer ids.

    Returns:
        `(tokens, mask)`: (batch, N, hidden_dim) and (batch, N) bool, where
        N = len(numeric_inputs) + len(categorical_inputs) + total words.
    """

    def __init__(
        self,
        hidden_dim: int,
        text_vocabulary_sizes: dict[str, int],
        numeric_inputs: Sequence[str] = ("vitals",),
        categorical_inputs: Sequence[str] = ("gender", "race"),
        text_embedding_dim: int | None = None,
        activation: str | None = "relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        names = [*numeric_inputs, *categorical_inputs, *text_vocabulary_sizes]
        if len(set(names)) != len(names):
            raise ValueError(f"input names must be unique, got {names}")
        if not numeric_inputs and not categorical_inputs:
            raise ValueError("need at least one numeric or categorical input (an always-valid token)")
        for name, size in text_vocabulary_sizes.items():
            if int(size) < 2:
                raise ValueError(f"text_vocabulary_sizes[{name!r}]={size}: need padding and at least one word")
        self.hidden_dim = int(hidden_dim)
        self.text_vocabulary_sizes = {str(k): int(v) for k, v in text_vocabulary_sizes.items()}
        self.numeric_inputs = tuple(numeric_inputs)
        self.categorical_inputs = tuple(categorical_inputs)
        self.text_embedding_dim = int(text_embedding_dim or hidden_dim)
        self.activation = activation

        def dense(name: str) -> keras.layers.Dense:
            return keras.layers.Dense(self.hidden_dim, activation=activation, dtype=self.dtype_policy, name=name)

        self.vector_dense = {name: dense(f"{name}_dense") for name in (*self.numeric_inputs, *self.categorical_inputs)}
        self.text_embedding = {
            name: keras.layers.Embedding(size, self.text_embedding_dim, dtype=self.dtype_policy, name=f"{name}_embedding")
            for name, size in self.text_vocabulary_sizes.items()
        }
        self.text_dense = {name: dense(f"{name}_dense") for name in self.text_vocabulary_sizes}

    @property
    def input_names(self) -> tuple[str, ...]:
        return (*self.numeric_inputs, *self.categorical_inputs, *self.text_vocabulary_sizes)

    def build(self, input_shape):
        missing = [name for name in self.input_names if name not in input_shape]
        if missing:
            raise ValueError(f"UnifiedDataBlock: missing inputs {missing}; got {sorted(input_shape)}")
        for name, layer in self.vector_dense.items():
            layer.build(tuple(input_shape[name]))
        for name in self.text_vocabulary_sizes:
            shape = tuple(input_shape[name])
            self.text_embedding[name].build(shape)
            self.text_dense[name].build((*shape, self.text_embedding_dim))
        self.built = True

    def call(self, inputs):
        tokens, masks = [], []
        batch = None
        for name, layer in self.vector_dense.items():
            values = ops.cast(inputs[name], self.compute_dtype)
            tokens.append(layer(values)[:, None, :])
            batch = ops.shape(values)[0]
        vector_mask = ops.ones((batch, len(self.vector_dense)), dtype="bool")
        masks.append(vector_mask)
        for name in self.text_vocabulary_sizes:
            ids = ops.cast(inputs[name], "int32")
            tokens.append(self.text_dense[name](self.text_embedding[name](ids)))
            masks.append(ops.not_equal(ids, 0))
        return ops.concatenate(tokens, axis=1), ops.concatenate(masks, axis=1)

    def compute_output_spec(self, inputs):
        batch = next(iter(inputs.values())).shape[0]
        words = 0
        for name in self.text_vocabulary_sizes:
            length = inputs[name].shape[1]
            words = None if length is None or words is None else words + length
        length = None if words is None else len(self.vector_dense) + words
        return (
            keras.KerasTensor((batch, length, self.hidden_dim), dtype=self.compute_dtype),
            keras.KerasTensor((batch, length), dtype="bool"),
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "text_vocabulary_sizes": dict(self.text_vocabulary_sizes),
                "numeric_inputs": list(self.numeric_inputs),
                "categorical_inputs": list(self.categorical_inputs),
                "text_embedding_dim": self.text_embedding_dim,
                "activation": self.activation,
            }
        )
        return config
