"""Paper 002: a CLIP-style dual encoder of chest X-rays and radiology reports.

One idea, the model of Fig. 1: its two towers, the contrastive logits and
loss, and the presets; over 600 lines because each tower is a subclassed
functional model with its own config round-trip.

Rahman, Lee, Kim, "Leveraging Contrastive Learning and Domain Prompts for
Efficient Radiology Report Generation" (section 3, Fig. 1):

* **Vision encoder** (section 3.3): DenseNet121 on 312x312x3 images, then the
  multi-scale depthwise block, squeeze-and-excitation channel attention (r=4),
  7x7 spatial attention and adaptive GAP/GMP pooling
  (`medcap.layers.vision`). Variant `baseline` (Table 3's "DenseNet"): plain
  DenseNet121 + global average pooling.
* **Text encoder** (section 3.2): a frozen BioBERT (`keras_hub.models.BertBackbone`
  + `BertTokenizer`) whose token embeddings get P soft prompts prepended,
  scaled by alpha(x) (`medcap.layers.prompts`); the frozen embedding and
  encoder stages of the backbone are called one by one in our functional graph
  (`token_embedding`, then prompts, then `position_embedding`,
  `segment_embedding`, `embeddings_add`, `embeddings_layer_norm`,
  `embeddings_dropout`, `transformer_layers`), reusing the backbone's own
  layers and weights. Mean pooling, then K residual projections
  (`medcap.layers.projection`). Only the prompts, alpha and the projection
  layers train.
* **Contrastive objective** (section 3.4, eqs. 13-15): cosine similarity of
  L2-normalised embeddings divided by a temperature tau (learned as
  CLIP's log-scale, initialised at 0.07, or fixed), symmetric categorical
  cross-entropy over the batch (`ContrastiveLoss`).

Choices where the paper is silent, ours:

* Shared embedding size 256 (= the vision encoder's 2d); both towers end with
  a linear projection to it (CLIP's design): the text tower's K residual
  layers keep BERT's width d (eq. 6: W_k in R^(d x d)), and the Table 3
  baseline's 1024 GAP channels need one anyway.
* K = 2 residual projection layers; P = 10 prompts; alpha's attention width 64.
* Under mixed precision the two final projections and the logits compute in
  float32: retrieval compares embeddings by cosine.
* Prompts are prepended *before* BERT adds position and segment embeddings,
  as Hugging Face's `inputs_embeds` path does for prompt tuning: the prompts
  take positions 0..P-1, `[CLS]` position P; segment id 0 everywhere.
  P + sequence_length must fit BERT's `max_sequence_length`.
* The frozen BERT runs in inference mode (its dropout off) also while the
  prompts train: frozen means a fixed function of its input.
* Mean pooling (eq. 5) averages the hidden states of every valid position,
  prompts included, padding excluded.
* Temperature: learned log-scale initialised at log(1/0.07) and clipped at
  log(100), as CLIP; `learn_temperature=False` keeps tau fixed.
* Under multi-replica training each replica contrasts its own share of the
  global batch (no cross-replica gathering of negatives).
* Without a pretrained BERT (`text_encoder_preset` empty or `none`, e.g.
  offline), a small randomly initialised BERT (`fallback_bert` of the preset)
  and a WordPiece vocabulary computed from the train reports with
  `keras_hub.tokenizers.compute_word_piece_vocabulary`; recorded as
  `pretrained: false` in environment.json and the report. Where the BERT
  comes from is decided in `medcap.models.clip_text_source`; this module
  takes a built backbone.
* Presets: `paper` (DenseNet121 at the data's image size, paper widths) and
  `tiny` (tests and smoke runs: DenseNet121 cut after its first transition
  block, `pool2_relu`, 51 layers, at 32x32 images; a one-layer BERT). Full
  DenseNet121 takes about 100 s to trace a training step on two CPU cores;
  the cut keeps the family while making tests fast. The tiny preset also
  sets the backbone's BatchNorm momentum to 0.9 (Keras: 0.99): over the few
  hundred steps a test trains from random initialisation, 0.99 leaves the
  moving statistics far behind the batch statistics, and evaluation-mode
  embeddings (validation, retrieval) lag the trained network.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from medcap.layers.projection import ResidualProjection
from medcap.layers.prompts import SoftPromptEmbedding
from medcap.layers.vision import (
    AdaptivePooling,
    MultiScaleDepthwiseBlock,
    SpatialAttention,
    SqueezeExcitation,
)

log = logging.getLogger("medcap.models.clip")

VARIANTS = ("proposed", "baseline")
SPATIAL_SOURCES = ("multiscale", "channel")

#: Constructor arguments of each preset (see the module docstring for why).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "backbone": "densenet121",
        "backbone_output_layer": None,
        "backbone_bn_momentum": None,
        "multiscale_filters": 128,  # d; 2d = 256 matches eq. 10's W1 in R^(256x64)
        "se_reduction": 4,
        "spatial_kernel_size": 7,
        "spatial_source": "multiscale",
        "num_prompts": 10,
        "prompt_attention_dim": 64,
        "num_projection_layers": 2,
        "projection_dropout": 0.1,
        "embedding_dim": 256,
        "temperature": 0.07,
        "learn_temperature": True,
        "sequence_length": 128,
        "fallback_bert": {
            "num_layers": 2,
            "num_heads": 4,
            "hidden_dim": 256,
            "intermediate_dim": 512,
            "max_sequence_length": 256,
            "vocabulary_size": 4000,
        },
    },
    "tiny": {
        "backbone": "densenet121",
        "backbone_output_layer": "pool2_relu",
        "backbone_bn_momentum": 0.9,
        "multiscale_filters": 16,
        "se_reduction": 4,
        "spatial_kernel_size": 7,
        "spatial_source": "multiscale",
        "num_prompts": 4,
        "prompt_attention_dim": 8,
        "num_projection_layers": 1,
        "projection_dropout": 0.1,
        "embedding_dim": 32,
        "temperature": 0.07,
        "learn_temperature": True,
        "sequence_length": 64,
        "fallback_bert": {
            "num_layers": 1,
            "num_heads": 2,
            "hidden_dim": 32,
            "intermediate_dim": 64,
            "max_sequence_length": 96,
            "vocabulary_size": 500,
        },
    },
}


def preset_config(preset: str, **overrides: Any) -> dict[str, Any]:
    """The preset's arguments with `overrides` applied; unknown keys are errors."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    config = json.loads(json.dumps(PRESETS[preset]))  # deep copy
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise ValueError(
            f"unknown option {unknown[0]!r} for preset {preset!r}; valid: {', '.join(config)}"
        )
    for key, value in overrides.items():
        if key == "fallback_bert" and isinstance(value, dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    if config["spatial_source"] not in SPATIAL_SOURCES:
        raise ValueError(
            f"spatial_source={config['spatial_source']!r}: expected one of {', '.join(SPATIAL_SOURCES)}"
        )
    return config


# ---------------------------------------------------------------------------
# Contrastive objective (eqs. 13-15)


@keras.saving.register_keras_serializable(package="medcap")
class ContrastiveLogits(keras.layers.Layer):
    """S / tau: cosine similarities of image i and text j, divided by the temperature.

    The temperature is kept as CLIP's logit scale, log(1 / tau), initialised at
    log(1 / temperature), clipped at log(max_logit_scale), and trained when
    `learn_temperature`. Computed in float32 whatever the dtype policy.

    Call: `(image_embeddings (N, e), text_embeddings (M, e))` -> (N, M) logits.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature={temperature}: must be > 0")
        self.temperature = float(temperature)
        self.learn_temperature = bool(learn_temperature)
        self.max_logit_scale = float(max_logit_scale)

    def build(self, image_embeddings_shape, text_embeddings_shape=None):
        self.logit_scale = self.add_weight(
            name="logit_scale",
            shape=(),
            initializer=keras.initializers.Constant(math.log(1.0 / self.temperature)),
            trainable=self.learn_temperature,
        )
        self.built = True

    def scale(self):
        return ops.exp(ops.minimum(self.logit_scale, math.log(self.max_logit_scale)))

    def call(self, image_embeddings, text_embeddings):
        images = ops.normalize(ops.cast(image_embeddings, "float32"), axis=-1, order=2)
        texts = ops.normalize(ops.cast(text_embeddings, "float32"), axis=-1, order=2)
        return self.scale() * ops.matmul(images, ops.transpose(texts))

    def compute_output_shape(self, image_embeddings_shape, text_embeddings_shape):
        return (image_embeddings_shape[0], text_embeddings_shape[0])

    def get_config(self):
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "learn_temperature": self.learn_temperature,
            "max_logit_scale": self.max_logit_scale,
        }


def symmetric_contrastive_loss(logits):
    """Eq. 15 per pair: -(log P_ii^(image->text) + log P_ii^(text->image)) / 2, shape (N,).

    Rows of `logits` are images, columns texts; pair i is (image i, text i).
    """
    logits = ops.cast(logits, "float32")
    image_to_text = ops.diagonal(ops.log_softmax(logits, axis=1))
    text_to_image = ops.diagonal(ops.log_softmax(logits, axis=0))
    return -0.5 * (image_to_text + text_to_image)


@keras.saving.register_keras_serializable(package="medcap")
class ContrastiveLoss(keras.losses.Loss):
    """Symmetric categorical cross-entropy over the batch (eqs. 14-15).

    `y_pred` is the (N, N) logit matrix; the matching text of image i is text
    i, so `y_true` is ignored (the data pipeline feeds a placeholder). The
    default reduction averages over the N pairs: -1/(2N) sum_i [...].
    """

    def __init__(
        self, name: str = "contrastive_loss", reduction: str = "sum_over_batch_size", **kwargs
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)

    def call(self, y_true, y_pred):
        return symmetric_contrastive_loss(y_pred)


@keras.saving.register_keras_serializable(package="medcap")
def contrastive_accuracy(y_true, y_pred):
    """In-batch image->text top-1 accuracy: is text i the most similar to image i?"""
    predicted = ops.argmax(y_pred, axis=1)
    return ops.cast(
        ops.equal(predicted, ops.arange(ops.shape(y_pred)[0], dtype=predicted.dtype)), "float32"
    )


# ---------------------------------------------------------------------------
# Vision encoder (section 3.3)


def build_vision_backbone(
    backbone: str = "densenet121",
    weights: str = "auto",
    *,
    image_size: Sequence[int] = (312, 312),
    output_layer: str | None = None,
    bn_momentum: float | None = None,
):
    """keras.applications DenseNet121 without its top, per the shared weights policy.

    `output_layer` cuts it at that layer (the tiny preset); `bn_momentum`
    replaces the momentum of its BatchNormalization moving statistics (None:
    Keras' 0.99). Returns `(model, record)` with `record` a
    `medcap.weights.WeightsRecord`.
    """
    from medcap.weights import build_backbone

    shape = (int(image_size[0]), int(image_size[1]), 3)
    model, record = build_backbone(backbone, weights, include_top=False, input_shape=shape)
    if output_layer:
        try:
            output = model.get_layer(output_layer).output
        except ValueError:
            raise ValueError(f"backbone {backbone} has no layer {output_layer!r}") from None
        model = keras.Model(model.input, output, name=f"{model.name}_to_{output_layer}")
    if bn_momentum is not None:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = float(bn_momentum)
    return model, record


@keras.saving.register_keras_serializable(package="medcap")
class ClipVisionEncoder(keras.Model):
    """Image -> embedding: DenseNet121 + paper 002's blocks (or plain GAP for `baseline`).

    Args:
        backbone: a keras.Model mapping (h, w, 3) images to a feature map
            (DenseNet121 without its top, `build_vision_backbone`).
        variant: `proposed` (eqs. 8-12) or `baseline` (GAP only, Table 3).
        multiscale_filters: d of eq. 9 (the pooled features have 2d channels).
        se_reduction: r of eq. 10.
        spatial_kernel_size: the spatial attention convolution's kernel (eq. 11).
        spatial_source: compute A_s from `multiscale` F_m (eq. 11) or from the
            `channel`-recalibrated F_c.
        embedding_dim: width of the shared embedding space.
    """

    def __init__(
        self,
        backbone: keras.Model,
        variant: str = "proposed",
        multiscale_filters: int = 128,
        se_reduction: int = 4,
        spatial_kernel_size: int = 7,
        spatial_source: str = "multiscale",
        embedding_dim: int = 256,
        **kwargs,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant={variant!r}: expected one of {', '.join(VARIANTS)}")
        if spatial_source not in SPATIAL_SOURCES:
            raise ValueError(
                f"spatial_source={spatial_source!r}: expected one of {', '.join(SPATIAL_SOURCES)}"
            )
        # === Layers ===
        self.backbone = backbone
        # float32 whatever the policy: embeddings are compared by cosine for retrieval.
        self.image_projection = keras.layers.Dense(
            embedding_dim, dtype="float32", name="image_projection"
        )
        if variant == "proposed":
            self.multiscale = MultiScaleDepthwiseBlock(multiscale_filters, name="multiscale")
            self.channel_attention = SqueezeExcitation(se_reduction, name="channel_attention")
            self.spatial_attention = SpatialAttention(spatial_kernel_size, name="spatial_attention")
            self.pooling = AdaptivePooling(name="adaptive_pooling")
        else:
            self.pooling = keras.layers.GlobalAveragePooling2D(name="global_average_pooling")

        # === Functional model ===
        images = keras.Input(shape=tuple(backbone.input_shape[1:]), name="images")
        features = backbone(images)
        if variant == "proposed":
            multiscale = self.multiscale(features)
            recalibrated = self.channel_attention(multiscale)
            attention_map = self.spatial_attention(
                multiscale if spatial_source == "multiscale" else recalibrated
            )
            features = recalibrated * attention_map
        embeddings = self.image_projection(self.pooling(features))
        super().__init__(inputs=images, outputs=embeddings, **kwargs)

        # === Config ===
        self.variant = variant
        self.multiscale_filters = int(multiscale_filters)
        self.se_reduction = int(se_reduction)
        self.spatial_kernel_size = int(spatial_kernel_size)
        self.spatial_source = spatial_source
        self.embedding_dim = int(embedding_dim)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "variant": self.variant,
            "multiscale_filters": self.multiscale_filters,
            "se_reduction": self.se_reduction,
            "spatial_kernel_size": self.spatial_kernel_size,
            "spatial_source": self.spatial_source,
            "embedding_dim": self.embedding_dim,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


# ---------------------------------------------------------------------------
# Text encoder (section 3.2)


@keras.saving.register_keras_serializable(package="medcap")
class ClipTextEncoder(keras.Model):
    """Report tokens -> embedding through a frozen BERT with soft prompts.

    Args:
        backbone: a `keras_hub.models.BertBackbone`; frozen here.
        num_prompts: P, soft prompt tokens (eq. 2).
        prompt_attention_dim: width of alpha(x)'s attention (ours).
        num_projection_layers: K residual projection layers (eqs. 6-7).
        projection_dropout: their dropout (paper: 0.1).
        embedding_dim: width of the shared embedding space.

    Inputs: `{"token_ids": (batch, L) int32, "padding_mask": (batch, L) int32}`.
    """

    def __init__(
        self,
        backbone: keras.Model,
        num_prompts: int = 10,
        prompt_attention_dim: int = 64,
        num_projection_layers: int = 2,
        projection_dropout: float = 0.1,
        embedding_dim: int = 256,
        **kwargs,
    ):
        # === Layers ===
        backbone.trainable = False
        self.backbone = backbone
        self.soft_prompts = SoftPromptEmbedding(
            num_prompts, attention_dim=prompt_attention_dim, name="soft_prompts"
        )
        self.projections = [
            ResidualProjection(dropout=projection_dropout, name=f"residual_projection_{k}")
            for k in range(num_projection_layers)
        ]
        self.text_projection = keras.layers.Dense(
            embedding_dim, dtype="float32", name="text_projection"
        )

        # === Functional model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        word_embeddings = backbone.token_embedding(token_ids)  # E of eq. 1
        prompted, mask = self.soft_prompts(word_embeddings, padding_mask)  # eqs. 2-3
        hidden = self.bert_encode(prompted, mask)  # eq. 4, frozen
        weights = ops.cast(mask, hidden.dtype)[:, :, None]
        pooled = ops.sum(hidden * weights, axis=1) / ops.maximum(
            ops.sum(weights, axis=1), 1.0
        )  # eq. 5
        for projection in self.projections:  # eqs. 6-7
            pooled = projection(pooled)
        embeddings = self.text_projection(pooled)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs=embeddings,
            **kwargs,
        )

        # === Config ===
        self.num_prompts = int(num_prompts)
        self.prompt_attention_dim = int(prompt_attention_dim)
        self.num_projection_layers = int(num_projection_layers)
        self.projection_dropout = float(projection_dropout)
        self.embedding_dim = int(embedding_dim)

    def bert_encode(self, input_embeddings, mask):
        """BERT's embedding and encoder stages on given input embeddings, in inference mode.

        Mirrors what `BertBackbone` does after its token lookup, calling the
        backbone's own layers: + position and segment embeddings, LayerNorm,
        dropout, transformer layers.
        """
        backbone = self.backbone
        positions = backbone.position_embedding(input_embeddings)
        segments = backbone.segment_embedding(ops.zeros_like(mask))
        hidden = backbone.embeddings_add((input_embeddings, positions, segments))
        hidden = backbone.embeddings_layer_norm(hidden)
        hidden = backbone.embeddings_dropout(hidden, training=False)
        for transformer_layer in backbone.transformer_layers:
            hidden = transformer_layer(hidden, padding_mask=mask, training=False)
        return hidden

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_prompts": self.num_prompts,
            "prompt_attention_dim": self.prompt_attention_dim,
            "num_projection_layers": self.num_projection_layers,
            "projection_dropout": self.projection_dropout,
            "embedding_dim": self.embedding_dim,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


# ---------------------------------------------------------------------------
# Dual encoder


@keras.saving.register_keras_serializable(package="medcap")
class ClipDualEncoder(keras.Model):
    """Images and reports -> the (N, N) logit matrix S / tau of eqs. 13-14.

    Args:
        vision_encoder: a `ClipVisionEncoder`.
        text_encoder: a `ClipTextEncoder` with the same `embedding_dim`.
        temperature: tau's initial (or fixed) value (paper: learned; CLIP 0.07).
        learn_temperature: train tau.

    Inputs: `{"images": (N, h, w, 3), "token_ids": (N, L), "padding_mask": (N, L)}`.
    `vision_encoder` / `text_encoder` embed one modality for retrieval.
    """

    def __init__(
        self,
        vision_encoder: keras.Model,
        text_encoder: keras.Model,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        **kwargs,
    ):
        if vision_encoder.embedding_dim != text_encoder.embedding_dim:
            raise ValueError(
                f"embedding sizes differ: vision {vision_encoder.embedding_dim}, text {text_encoder.embedding_dim}"
            )
        # === Layers ===
        self.vision_encoder = vision_encoder
        self.text_encoder = text_encoder
        self.logits = ContrastiveLogits(temperature, learn_temperature, name="logits")

        # === Functional model ===
        inputs = {
            "images": keras.Input(shape=tuple(vision_encoder.input_shape[1:]), name="images"),
            "token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids"),
            "padding_mask": keras.Input(shape=(None,), dtype="int32", name="padding_mask"),
        }
        image_embeddings = vision_encoder(inputs["images"])
        text_embeddings = text_encoder(
            {"token_ids": inputs["token_ids"], "padding_mask": inputs["padding_mask"]}
        )
        logits = self.logits(image_embeddings, text_embeddings)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        # === Config ===
        self.temperature = float(temperature)
        self.learn_temperature = bool(learn_temperature)

    @property
    def learned_temperature(self) -> float:
        """tau now (1 / the clipped logit scale)."""
        return float(1.0 / keras.ops.convert_to_numpy(self.logits.scale()))

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vision_encoder": keras.saving.serialize_keras_object(self.vision_encoder),
            "text_encoder": keras.saving.serialize_keras_object(self.text_encoder),
            "temperature": self.temperature,
            "learn_temperature": self.learn_temperature,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["vision_encoder"] = keras.saving.deserialize_keras_object(config["vision_encoder"])
        config["text_encoder"] = keras.saving.deserialize_keras_object(config["text_encoder"])
        return cls(**config)

    @classmethod
    def from_preset(
        cls,
        preset: str,
        *,
        text_backbone: keras.Model,
        image_size: Sequence[int],
        variant: str = "proposed",
        encoder_weights: str = "auto",
        **overrides: Any,
    ) -> ClipDualEncoder:
        """The `preset` architecture (`PRESETS`; keyword overrides of its
        config) around a built BERT backbone, its vision backbone initialised
        per `encoder_weights` (`medcap.weights`). Returns the model, as
        keras-hub's `from_preset` does; `build_dual_encoder` also returns the
        weights record."""
        model, _ = build_dual_encoder(
            preset,
            text_backbone=text_backbone,
            image_size=image_size,
            variant=variant,
            encoder_weights=encoder_weights,
            **overrides,
        )
        return model


def build_dual_encoder(
    preset: str,
    *,
    text_backbone: keras.Model,
    image_size: Sequence[int],
    variant: str = "proposed",
    encoder_weights: str = "auto",
    **overrides: Any,
) -> tuple[ClipDualEncoder, dict[str, Any]]:
    """`ClipDualEncoder.from_preset` and the record of where its vision
    weights came from (`medcap.weights`), which the task writes into
    environment.json and report.md."""
    config = preset_config(preset, **overrides)
    backbone, record = build_vision_backbone(
        config["backbone"],
        encoder_weights,
        image_size=image_size,
        output_layer=config["backbone_output_layer"],
        bn_momentum=config["backbone_bn_momentum"],
    )
    vision = ClipVisionEncoder(
        backbone,
        variant=variant,
        multiscale_filters=config["multiscale_filters"],
        se_reduction=config["se_reduction"],
        spatial_kernel_size=config["spatial_kernel_size"],
        spatial_source=config["spatial_source"],
        embedding_dim=config["embedding_dim"],
        name="vision_encoder",
    )
    text = ClipTextEncoder(
        text_backbone,
        num_prompts=config["num_prompts"],
        prompt_attention_dim=config["prompt_attention_dim"],
        num_projection_layers=config["num_projection_layers"],
        projection_dropout=config["projection_dropout"],
        embedding_dim=config["embedding_dim"],
        name="text_encoder",
    )
    model = ClipDualEncoder(
        vision,
        text,
        temperature=config["temperature"],
        learn_temperature=config["learn_temperature"],
        name="clip_dual_encoder",
    )
    info = {
        **record.to_dict(),
        "variant": variant,
        "image_size": [int(s) for s in image_size],
        "output_layer": config["backbone_output_layer"] or "(full network)",
    }
    return model, info
