"""Paper 000's next-word captioner: VGG16 `fc2` features + BiLSTM + attention.

Kanavos, Vonitsanos, Mylonas, "Integrating Convolutional and Recurrent
Neural Networks for Enhanced Medical Image Captioning" (Model-80 and
Model-70). Section 3.1 fixes the graph; section 4.2 the training recipe:

    image_features (4096, VGG16 fc2) -> Dropout -> Dense(ReLU)          (image encoder)
    tokens (caption prefix) -> Embedding(mask pad) -> Dropout
        -> Bidirectional(LSTM, return_sequences)                          (sequence encoder)
        -> attention -> context vector -> GlobalAveragePooling1D          (attention)
    Add(image, context) -> Dense(ReLU) -> Dropout -> Dense(vocab, softmax) (decoder)

    Adam; categorical cross-entropy (we feed sparse integer targets, the
    same loss without one-hot tensors); dropout and L2 regularisation.

Choices the paper leaves open, ours:

* The CNN: VGG16 `fc2` (4096-d) is our inference. The paper names no
  backbone; it says only that the image encoder "Includes an input layer for
  4096-dimensional vectors" (section 3.1) and that "a fully connected (dense)
  layer transforms the extracted features into a fixed-size vector"
  (section 3.2). The model itself takes any `feature_dim`.
* Widths: embedding 256, image Dense 256, BiLSTM 128 units per direction
  (concatenated to 256 so that `Add` with the image vector is defined),
  decoder Dense 256. Dropout 0.5 on both inputs and in the decoder.
* L2 strength 1e-4 on every Dense kernel and on both LSTM kernels
  (input and recurrent); embeddings and biases are not regularised.
* Attention: self-attention over the BiLSTM states (see
  `medcap.layers.attention`).
* "dense layers with ReLU" (plural) in the decoder: one Dense(ReLU) before
  the output layer (ours: the paper gives no count); `decoder_layers` adds
  more.
* Model-80 and Model-70 share the architecture; the paper distinguishes them
  only by split (80/10/10 vs 70/15/15) and batch size (Table 2), which live in
  the experiment configs. Both presets exist so a run names its paper model.
* The token input has no fixed length (`shape=(None,)`); training pads
  prefixes on the right to `max_words + 1` (`data.options.max_words`, see
  `medcap.models.model80_task`), which keeps the mask right-padded as cuDNN's
  LSTM kernel requires.
"""

from __future__ import annotations

import copy
from typing import Any

import keras

from medcap.layers.attention import AttentionPooling

#: The paper's architecture (section 3); Model-70 is the same model on another split
#: and batch size (Table 2), so both presets name this one config.
_PAPER_PRESET: dict[str, Any] = {
    "feature_dim": 4096,
    "embedding_dim": 256,
    "hidden_dim": 256,
    "decoder_dim": 256,
    "decoder_layers": 1,
    "dropout": 0.5,
    "l2": 1e-4,
    "attention_score": "dot",
}

#: Constructor arguments of each preset (besides `vocabulary_size`).
PRESETS: dict[str, dict[str, Any]] = {
    "model80": _PAPER_PRESET,
    "model70": _PAPER_PRESET,
    # Unit tests and smoke runs: the same graph, a few thousand weights.
    "tiny": {
        "feature_dim": 4096,
        "embedding_dim": 16,
        "hidden_dim": 16,
        "decoder_dim": 16,
        "decoder_layers": 1,
        "dropout": 0.1,
        "l2": 0.0,
        "attention_score": "dot",
    },
}

IMAGE_INPUT = "image_features"
TOKEN_INPUT = "tokens"


@keras.saving.register_keras_serializable(package="medcap")
class CaptionBiLSTM(keras.Model):
    """Next-word model of paper 000 (section 3.1), a subclassed functional Model.

    Inputs: `{"image_features": (batch, feature_dim) float, "tokens": (batch,
    length) int}` where `tokens` is the caption prefix `<start> w1 .. wi`
    right-padded with 0. Output: (batch, vocabulary_size) float32
    probabilities of the next word.

    Args:
        vocabulary_size: output classes, including the reserved ids.
        feature_dim: image feature width (4096 for VGG16 fc2).
        embedding_dim: word embedding width.
        hidden_dim: image Dense width = BiLSTM output width (hidden_dim / 2
            units per direction), the width of the `Add`.
        decoder_dim: width of the decoder's Dense(ReLU) layer(s).
        decoder_layers: number of decoder Dense(ReLU) layers.
        dropout: rate of each Dropout layer.
        l2: L2 factor on Dense and LSTM kernels (0 disables).
        attention_score: "dot" or "concat" (see AttentionPooling).
    """

    def __init__(
        self,
        vocabulary_size: int,
        feature_dim: int = 4096,
        embedding_dim: int = 256,
        hidden_dim: int = 256,
        decoder_dim: int = 256,
        decoder_layers: int = 1,
        dropout: float = 0.5,
        l2: float = 1e-4,
        attention_score: str = "dot",
        **kwargs,
    ):
        if hidden_dim % 2:
            raise ValueError(f"hidden_dim={hidden_dim}: must be even (two LSTM directions of hidden_dim/2)")
        if vocabulary_size < 5:
            raise ValueError(f"vocabulary_size={vocabulary_size}: need the 4 reserved ids and at least one word")

        def regularizer():
            return keras.regularizers.L2(l2) if l2 else None

        # === Layers ===
        self.image_dropout = keras.layers.Dropout(dropout, name="image_dropout")
        self.image_dense = keras.layers.Dense(
            hidden_dim, activation="relu", kernel_regularizer=regularizer(), name="image_dense"
        )
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, mask_zero=True, name="token_embedding"
        )
        self.token_dropout = keras.layers.Dropout(dropout, name="token_dropout")
        self.sequence_encoder = keras.layers.Bidirectional(
            keras.layers.LSTM(
                hidden_dim // 2,
                return_sequences=True,
                kernel_regularizer=regularizer(),
                recurrent_regularizer=regularizer(),
            ),
            merge_mode="concat",
            name="sequence_encoder",
        )
        self.attention = AttentionPooling(score_mode=attention_score, name="attention")
        self.merge = keras.layers.Add(name="merge")
        self.decoder_dense = [
            keras.layers.Dense(decoder_dim, activation="relu", kernel_regularizer=regularizer(), name=f"decoder_dense_{i}")
            for i in range(decoder_layers)
        ]
        self.decoder_dropout = keras.layers.Dropout(dropout, name="decoder_dropout")
        self.next_word = keras.layers.Dense(
            vocabulary_size,
            activation="softmax",
            kernel_regularizer=regularizer(),
            dtype="float32",
            name="next_word",
        )

        # === Functional model ===
        image_input = keras.Input(shape=(feature_dim,), name=IMAGE_INPUT)
        token_input = keras.Input(shape=(None,), dtype="int32", name=TOKEN_INPUT)
        image = self.image_dense(self.image_dropout(image_input))
        sequence = self.sequence_encoder(self.token_dropout(self.token_embedding(token_input)))
        context, _ = self.attention(sequence)
        hidden = self.merge([image, context])
        for layer in self.decoder_dense:
            hidden = layer(hidden)
        probabilities = self.next_word(self.decoder_dropout(hidden))
        super().__init__(
            inputs={IMAGE_INPUT: image_input, TOKEN_INPUT: token_input},
            outputs=probabilities,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.feature_dim = feature_dim
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.decoder_dim = decoder_dim
        self.decoder_layers = decoder_layers
        self.dropout = dropout
        self.l2 = l2
        self.attention_score = attention_score

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocabulary_size": self.vocabulary_size,
            "feature_dim": self.feature_dim,
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
            "decoder_dim": self.decoder_dim,
            "decoder_layers": self.decoder_layers,
            "dropout": self.dropout,
            "l2": self.l2,
            "attention_score": self.attention_score,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CaptionBiLSTM:
        return cls(**config)

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> CaptionBiLSTM:
        """Builds a preset (`model80`, `model70`, `tiny`); `vocabulary_size`
        is required (it comes from the train split), other args override."""
        return cls(**preset_config(preset, **overrides))

    def attention_model(self) -> keras.Model:
        """Same inputs -> the attention weight of each prefix token (batch, length).

        Shares this model's layers (no copy); used for the attention plots."""
        weights = self.attention.output[1]
        return keras.Model(self.input, weights, name=f"{self.name}_attention")


def next_token_fn(model: CaptionBiLSTM):
    """`next_fn(prompt, cache, index)` for `medcap.decoding.Decoder`.

    `cache` holds the image features; only the filled part of the prompt,
    `prompt[:, :index]`, is fed to the model (the rest is padding the mask
    would skip anyway), which halves the LSTM steps of a decode on average.
    """

    def next_fn(prompt, cache, index):
        probabilities = model({IMAGE_INPUT: cache[IMAGE_INPUT], TOKEN_INPUT: prompt[:, :index]}, training=False)
        return probabilities, cache

    return next_fn


def preset_config(preset: str, **overrides: Any) -> dict[str, Any]:
    """The constructor arguments of `preset` with `overrides` applied."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    config = copy.deepcopy(PRESETS[preset])
    unknown = sorted(set(overrides) - set(config) - {"vocabulary_size", "name"})
    if unknown:
        valid = ", ".join(["vocabulary_size", *config])
        raise ValueError(f"unknown option {unknown[0]!r} for preset {preset!r}; valid options: {valid}")
    config.update(overrides)
    if "vocabulary_size" not in config:
        raise ValueError(f"preset {preset!r} needs vocabulary_size (the vocabulary is built from the train split)")
    return config


def from_preset(preset: str, **overrides: Any) -> CaptionBiLSTM:
    return CaptionBiLSTM.from_preset(preset, **overrides)
