"""Paper 001's cross-modal multi-task transformer (report + acuity + findings).

Aksoy, Sharoff, Ravikumar, "Enhancing Image-to-Text Generation in Radiology
Reports through Cross-modal Multi-Task Learning" (sections 3.1, 3.3, 4.3).
What the paper states, all of it built here:

* **Visual block** (3.3): "the pre-trained EfficientNet model, trained on
  ImageNet, functions as the CNN encoder for extracting the features from the
  image [...] into L vectors. Each of these vectors is a D-dimensional
  representation [...] of distinct spatial locations." Then "two consecutive
  multi-head self-attention blocks": "The first self-attention block attends
  exclusively to the image features, while the cross-attention block focuses
  on the unified data representation, utilising the image features as
  queries."
* **Unified data block** (3.3): `medcap.layers.tabular.UnifiedDataBlock`.
* **OC and MLC decoders** (3.3): `medcap.layers.ordinal` (LayerNorm ->
  Dense(sigmoid) per position -> mean over positions); acuity in the
  cumulative encoding (3.2), 4 outputs for 5 levels; 5 findings.
* **Text decoder** (3.3): causal masking "combined with padding masks";
  "two consecutive multi-head self-attention layers. The first layer attends
  exclusively to the target sequence, while the second layer attends to the
  encoder outputs using the decoder inputs as queries. The attended
  representations are processed through a two-layer positionwise
  feedforward network. Finally, a linear layer produces predictions".
* **Sizes** (4.3): "Transformer layers implemented with 3 attention heads,
  and 256 dimensional feedforward layers."

How, with keras_hub blocks:

    image (H, W, 3) in [0, 255]
      -> EfficientNetB0 (keras.applications, include_top=False)  (h, w, 1280)
      -> reshape to L = h*w vectors -> Dense(hidden_dim) + learned position embedding
      -> [keras_hub TransformerEncoder] x self_attention_layers      (default 0, see below)
      -> keras_hub TransformerDecoder(use_causal_mask=False) x cross_attention_layers:
             self-attention over the image vectors, then cross-attention with the
             image vectors as queries and the unified tokens as keys/values
             (their padding masked), then the feed-forward network
      = encoder output (batch, L, hidden_dim)
    heads:  acuity   = OrdinalHead(5)(encoder output)            (batch, 4)  sigmoid
            findings = SequenceSigmoidHead(5)(encoder output)    (batch, 5)  sigmoid
            report   = TokenAndPositionEmbedding(report tokens)
                       -> keras_hub TransformerDecoder x decoder_layers (causal + padding
                          masks, cross-attention to the encoder output)
                       -> Dense(vocabulary_size), float32 logits  (batch, T, vocab)

The paper's encoder wording mirrors its decoder wording ("two consecutive
multi-head self-attention" blocks, the first over one sequence, the second
attending to another with the first as queries), and a keras_hub
`TransformerDecoder` without the causal mask is exactly that: self-attention
over the image vectors, then cross-attention to the unified data, then a
feed-forward network. So the paper preset uses one such block
(`cross_attention_layers=1`) and no separate `TransformerEncoder`
(`self_attention_layers=0`); a standalone self-attention block with its own
feed-forward network in front (a second reading of that wording) is
`self_attention_layers=1`. No keras_hub block does cross-attention alone, and
we add no hand-written attention block.

Ours, where the paper is silent (also in the experiment configs' `choices`):

* Model width `hidden_dim` = 256, the width of the paper's feed-forward
  layers; with 3 heads keras_hub uses `key_dim = 256 // 3 = 85` per head.
* EfficientNet variant B0 (the paper says "EfficientNet"), 224 x 224 input,
  its own built-in rescaling/normalisation (so pixels enter in [0, 255]).
  The backbone is **frozen** (`backbone_trainable=False`): section 3.2 says
  "a pre-trained model extracted visual features from the images"; its batch
  normalisation then runs in inference mode.
* A linear Dense from D = 1280 to `hidden_dim` and a learned position
  embedding over the L image vectors (keras_hub `PositionEmbedding`), so the
  attention blocks know where each vector lies.
* Dropout 0.1 in every transformer block; post-norm blocks (keras_hub's
  default, as in "Attention is all you need"); ReLU feed-forward.
* One decoder layer (the paper describes one), word embeddings with learned
  positions (keras_hub `TokenAndPositionEmbedding`), no weight tying.
* Logits (not softmax) leave the model, in float32 under mixed precision;
  the loss is sparse categorical cross-entropy from logits, padding ignored.
* Gender enters as a 3-way one-hot (F, M, unknown) with its own Dense,
  where the paper calls it a binary variable: the `unknown` slot carries
  image-only captioning and subjects without a recorded gender
  (`medcap.data.mimic`).
* `use_icd_title=False` (not the paper) drops the ICD title input: the ED
  diagnosis is coded during the stay and can name the finding the model is
  asked for ("Pleural effusion"), so experiments/mtl_tp_no_icd.py measures
  how much of the result rests on it.
* The `tiny` preset (tests, smoke runs) swaps EfficientNet for a two-layer
  strided CNN (`backbone="conv_tiny"`), 32 x 32 images and width 24.

Decoding reuses the decoder's attention caches (`call_with_cache`): keras_hub
`TransformerDecoder` self-attention caches (one slot per generated position)
and cross-attention caches over the encoder output, computed once per batch.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from medcap.layers.ordinal import OrdinalHead, SequenceSigmoidHead
from medcap.layers.tabular import UnifiedDataBlock

TASK_NAMES: tuple[str, ...] = ("report", "acuity", "findings")

IMAGE_INPUT = "image"
VITALS_INPUT = "vitals"
GENDER_INPUT = "gender"
RACE_INPUT = "race"
COMPLAINT_INPUT = "chief_complaint"
ICD_INPUT = "icd_title"
TOKEN_INPUT = "report_tokens"
ENCODER_OUTPUT = "encoder_output"

#: Backbones: keras.applications EfficientNets (weights via medcap.weights), or a small CNN.
BACKBONES: tuple[str, ...] = ("efficientnetb0", "conv_tiny")

#: Constructor arguments of each preset (besides the vocabulary sizes).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "image_size": (224, 224),
        "backbone": "efficientnetb0",
        "backbone_trainable": False,
        "hidden_dim": 256,
        "num_heads": 3,
        "intermediate_dim": 256,
        "self_attention_layers": 0,
        "cross_attention_layers": 1,
        "decoder_layers": 1,
        "dropout": 0.1,
        "max_report_length": 61,
    },
    # Unit tests and smoke runs: the same graph with a small CNN and width 24.
    "tiny": {
        "image_size": (32, 32),
        "backbone": "conv_tiny",
        "backbone_trainable": True,
        "hidden_dim": 24,
        "num_heads": 3,
        "intermediate_dim": 32,
        "self_attention_layers": 0,
        "cross_attention_layers": 1,
        "decoder_layers": 1,
        "dropout": 0.0,
        "max_report_length": 21,
    },
}


def _check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    tasks = tuple(tasks)
    unknown = [t for t in tasks if t not in TASK_NAMES]
    if not tasks or unknown or len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks={list(tasks)}: expected a non-empty subset of {', '.join(TASK_NAMES)} without repeats")
    return tuple(t for t in TASK_NAMES if t in tasks)


def build_image_backbone(backbone: str, image_size: Sequence[int], trainable: bool):
    """The randomly initialised CNN (weights are loaded afterwards, see
    `MTLTransformer.load_backbone_weights`). Pixels enter in [0, 255]."""
    shape = (int(image_size[0]), int(image_size[1]), 3)
    if backbone == "conv_tiny":
        model = keras.Sequential(
            [
                keras.Input(shape),
                keras.layers.Rescaling(1.0 / 255.0),
                keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
                keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            ],
            name="image_backbone",
        )
    elif backbone in BACKBONES:
        from medcap.weights import build_backbone

        model, _ = build_backbone(backbone, "none", include_top=False, input_shape=shape, name="image_backbone")
    else:
        raise ValueError(f"unknown backbone {backbone!r}; valid backbones: {', '.join(BACKBONES)}")
    model.trainable = bool(trainable)
    return model


@keras.saving.register_keras_serializable(package="medcap")
class MTLTransformer(keras.Model):
    """Cross-modal multi-task transformer of paper 001, a subclassed functional Model.

    Inputs (dict): `image` (batch, H, W, 3) float pixels in [0, 255];
    `vitals` (batch, num_vitals) scaled floats; `gender` (batch,
    num_genders) and `race` (batch, num_races) one-hot; `chief_complaint`,
    `icd_title` (batch, words) int ids (0 = padding; no `icd_title` when
    `use_icd_title=False`); and, when "report" is
    among `tasks`, `report_tokens` (batch, T) int ids `<start> w1 .. wn`
    right-padded with 0 (teacher forcing).

    Outputs (dict, float32), one entry per task: `report` (batch, T,
    vocabulary_size) next-token logits; `acuity` (batch, num_acuity_levels -
    1) cumulative probabilities; `findings` (batch, num_findings)
    probabilities.

    Args:
        vocabulary_size: report vocabulary (reserved ids included); unused
            without the "report" task.
        complaint_vocabulary_size, icd_vocabulary_size: text-field vocabularies.
        tasks: subset of ("report", "acuity", "findings"); one task = an STL model.
        image_size: (H, W) of the image input.
        backbone: "efficientnetb0" or "conv_tiny".
        backbone_trainable: fine-tune the CNN (False: frozen feature extractor).
        hidden_dim: width of every token and transformer block.
        num_heads: attention heads of every block.
        intermediate_dim: feed-forward width of every block.
        self_attention_layers: keras_hub TransformerEncoder blocks over the image vectors.
        cross_attention_layers: keras_hub TransformerDecoder blocks, no causal
            mask: image self-attention + cross-attention to the unified data.
        decoder_layers: keras_hub TransformerDecoder blocks of the report decoder.
        dropout: dropout of every transformer block.
        max_report_length: longest report token input (position embedding size).
        num_vitals, num_genders, num_races: non-imaging input widths.
        num_acuity_levels: ordinal levels (outputs = levels - 1).
        num_findings: multi-label outputs.
        unified_activation: activation of the unified data block's Dense layers.
        layer_norm_epsilon: of every LayerNormalization.
        use_icd_title: feed the ICD title (the paper does); False builds the
            model without the `icd_title` input, its Embedding and Dense.
    """

    def __init__(
        self,
        vocabulary_size: int = 0,
        complaint_vocabulary_size: int = 2,
        icd_vocabulary_size: int = 2,
        tasks: Sequence[str] = TASK_NAMES,
        image_size: Sequence[int] = (224, 224),
        backbone: str = "efficientnetb0",
        backbone_trainable: bool = False,
        hidden_dim: int = 256,
        num_heads: int = 3,
        intermediate_dim: int = 256,
        self_attention_layers: int = 0,
        cross_attention_layers: int = 1,
        decoder_layers: int = 1,
        dropout: float = 0.1,
        max_report_length: int = 61,
        num_vitals: int = 6,
        num_genders: int = 3,
        num_races: int = 6,
        num_acuity_levels: int = 5,
        num_findings: int = 5,
        unified_activation: str | None = "relu",
        layer_norm_epsilon: float = 1e-5,
        use_icd_title: bool = True,
        **kwargs,
    ):
        import keras_hub

        if not isinstance(use_icd_title, bool):
            raise ValueError(f"use_icd_title={use_icd_title!r}: expected true or false")

        tasks = _check_tasks(tasks)
        if "report" in tasks and vocabulary_size < 5:
            raise ValueError(f"vocabulary_size={vocabulary_size}: need the 4 reserved ids and at least one word")
        if cross_attention_layers < 1:
            raise ValueError("cross_attention_layers must be >= 1: the unified data reaches the model only there")
        if "report" in tasks and decoder_layers < 1:
            raise ValueError("decoder_layers must be >= 1 for the report task")
        image_size = (int(image_size[0]), int(image_size[1]))
        block = {
            "intermediate_dim": intermediate_dim,
            "num_heads": num_heads,
            "dropout": dropout,
            "layer_norm_epsilon": layer_norm_epsilon,
        }

        # === Layers ===
        self.image_backbone = build_image_backbone(backbone, image_size, backbone_trainable)
        image_input = keras.Input((*image_size, 3), name=IMAGE_INPUT)
        feature_map = self.image_backbone(image_input)
        _, grid_h, grid_w, channels = feature_map.shape
        num_positions = int(grid_h) * int(grid_w)
        self.feature_reshape = keras.layers.Reshape((num_positions, int(channels)), name="feature_reshape")
        self.image_projection = keras.layers.Dense(hidden_dim, name="image_projection")
        self.image_position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length=num_positions, name="image_position_embedding"
        )
        self.image_add = keras.layers.Add(name="image_add")
        self.self_attention_blocks = [
            keras_hub.layers.TransformerEncoder(**block, name=f"image_self_attention_{i}")
            for i in range(self_attention_layers)
        ]
        text_vocabularies = {COMPLAINT_INPUT: complaint_vocabulary_size}
        if use_icd_title:
            text_vocabularies[ICD_INPUT] = icd_vocabulary_size
        self.unified_block = UnifiedDataBlock(
            hidden_dim,
            text_vocabularies,
            numeric_inputs=(VITALS_INPUT,),
            categorical_inputs=(GENDER_INPUT, RACE_INPUT),
            activation=unified_activation,
            name="unified_data",
        )
        self.cross_attention_blocks = [
            keras_hub.layers.TransformerDecoder(**block, name=f"cross_attention_{i}")
            for i in range(cross_attention_layers)
        ]
        self.acuity_head = (
            OrdinalHead(num_acuity_levels, layer_norm_epsilon, dtype="float32", name="acuity_head")
            if "acuity" in tasks
            else None
        )
        self.findings_head = (
            SequenceSigmoidHead(num_findings, layer_norm_epsilon, dtype="float32", name="findings_head")
            if "findings" in tasks
            else None
        )
        if "report" in tasks:
            self.token_embedding = keras_hub.layers.TokenAndPositionEmbedding(
                vocabulary_size, max_report_length, hidden_dim, name="token_embedding"
            )
            self.decoder_blocks = [
                keras_hub.layers.TransformerDecoder(**block, name=f"report_decoder_{i}") for i in range(decoder_layers)
            ]
            self.report_projection = keras.layers.Dense(vocabulary_size, dtype="float32", name="report_logits")
        else:
            self.token_embedding = None
            self.decoder_blocks = []
            self.report_projection = None

        # === Functional model ===
        inputs = {
            IMAGE_INPUT: image_input,
            VITALS_INPUT: keras.Input((num_vitals,), name=VITALS_INPUT),
            GENDER_INPUT: keras.Input((num_genders,), name=GENDER_INPUT),
            RACE_INPUT: keras.Input((num_races,), name=RACE_INPUT),
            COMPLAINT_INPUT: keras.Input((None,), dtype="int32", name=COMPLAINT_INPUT),
        }
        if use_icd_title:
            inputs[ICD_INPUT] = keras.Input((None,), dtype="int32", name=ICD_INPUT)
        features = self.feature_reshape(feature_map)
        x = self.image_projection(features)
        x = self.image_add([x, self.image_position_embedding(x)])
        for layer in self.self_attention_blocks:
            x = layer(x)
        unified, unified_mask = self.unified_block({name: inputs[name] for name in self.unified_block.input_names})
        for layer in self.cross_attention_blocks:
            x = layer(x, unified, encoder_padding_mask=unified_mask, use_causal_mask=False)
        encoder_output = x

        outputs = {}
        if self.token_embedding is not None:
            inputs[TOKEN_INPUT] = keras.Input((None,), dtype="int32", name=TOKEN_INPUT)
            tokens = inputs[TOKEN_INPUT]
            padding_mask = ops.not_equal(tokens, 0)
            y = self.token_embedding(tokens)
            for layer in self.decoder_blocks:
                y = layer(y, encoder_output, decoder_padding_mask=padding_mask)
            outputs["report"] = self.report_projection(y)
        if self.acuity_head is not None:
            outputs["acuity"] = self.acuity_head(encoder_output)
        if self.findings_head is not None:
            outputs["findings"] = self.findings_head(encoder_output)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # Kept for `encoder_model` (plain attributes: tensors, not layers).
        self._encoder_tensors = (
            {k: v for k, v in inputs.items() if k != TOKEN_INPUT},
            {ENCODER_OUTPUT: encoder_output, **{k: v for k, v in outputs.items() if k != "report"}},
        )

        # === Config ===
        self.vocabulary_size = int(vocabulary_size)
        self.complaint_vocabulary_size = int(complaint_vocabulary_size)
        self.icd_vocabulary_size = int(icd_vocabulary_size)
        self.tasks = tasks
        self.image_size = image_size
        self.backbone = backbone
        self.backbone_trainable = bool(backbone_trainable)
        self.hidden_dim = int(hidden_dim)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.self_attention_layers = int(self_attention_layers)
        self.cross_attention_layers = int(cross_attention_layers)
        self.decoder_layers = int(decoder_layers)
        self.dropout = float(dropout)
        self.max_report_length = int(max_report_length)
        self.num_vitals = int(num_vitals)
        self.num_genders = int(num_genders)
        self.num_races = int(num_races)
        self.num_acuity_levels = int(num_acuity_levels)
        self.num_findings = int(num_findings)
        self.unified_activation = unified_activation
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.use_icd_title = use_icd_title
        self.num_image_positions = num_positions

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocabulary_size": self.vocabulary_size,
            "complaint_vocabulary_size": self.complaint_vocabulary_size,
            "icd_vocabulary_size": self.icd_vocabulary_size,
            "tasks": list(self.tasks),
            "image_size": list(self.image_size),
            "backbone": self.backbone,
            "backbone_trainable": self.backbone_trainable,
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "self_attention_layers": self.self_attention_layers,
            "cross_attention_layers": self.cross_attention_layers,
            "decoder_layers": self.decoder_layers,
            "dropout": self.dropout,
            "max_report_length": self.max_report_length,
            "num_vitals": self.num_vitals,
            "num_genders": self.num_genders,
            "num_races": self.num_races,
            "num_acuity_levels": self.num_acuity_levels,
            "num_findings": self.num_findings,
            "unified_activation": self.unified_activation,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "use_icd_title": self.use_icd_title,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MTLTransformer:
        return cls(**config)

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> MTLTransformer:
        """Builds `paper` or `tiny`; vocabulary sizes and any argument override."""
        return cls(**preset_config(preset, **overrides))

    # -- pretrained CNN weights ---------------------------------------------------
    def load_backbone_weights(self, policy: str = "auto") -> dict[str, Any]:
        """Initialises the CNN per `medcap.weights` (auto | imagenet | none |
        path) and returns the record for environment.json."""
        from medcap.weights import WeightsError, resolve_weights

        if self.backbone == "conv_tiny":
            if policy in ("auto", "none"):
                return {"backbone": "conv_tiny", "policy": policy, "pretrained": False, "source": "random init (conv_tiny)"}
            if policy == "imagenet":
                raise WeightsError("backbone conv_tiny has no ImageNet weights; use weights=none or a weights file")
            self.image_backbone.load_weights(policy)
            return {"backbone": "conv_tiny", "policy": "path", "pretrained": True, "source": str(policy)}
        record = resolve_weights(self.backbone, policy, include_top=False)
        if record.keras_weights is not None:
            self.image_backbone.load_weights(record.keras_weights)
        return record.to_dict()

    # -- inference helpers --------------------------------------------------------
    def encoder_model(self) -> keras.Model:
        """Non-token inputs -> {encoder_output, acuity?, findings?}, sharing this model's layers."""
        inputs, outputs = self._encoder_tensors
        # Plain dicts: attribute tracking wraps them, and a wrapped structure
        # would not match the plain dicts the model is called with.
        return keras.Model(dict(inputs), dict(outputs), name=f"{self.name}_encoder")

    def cache_shapes(self, batch_size: int, length: int, encoder_length: int | None = None) -> tuple[tuple, tuple]:
        """Shapes of the (self-attention, cross-attention) caches of all decoder layers."""
        head_dim = self.hidden_dim // self.num_heads
        encoder_length = self.num_image_positions if encoder_length is None else encoder_length
        return (
            (batch_size, len(self.decoder_blocks), 2, length, self.num_heads, head_dim),
            (batch_size, len(self.decoder_blocks), 2, encoder_length, self.num_heads, head_dim),
        )

    def empty_cache(self, encoder_output, length: int) -> dict[str, Any]:
        """Zero caches for `length` decoder positions and the cross-attention
        caches of `encoder_output`, filled by one pass over `<start>`."""
        from medcap.text import START_ID

        if self.token_embedding is None:
            raise ValueError("this model has no report decoder (tasks without 'report')")
        if length > self.max_report_length:
            raise ValueError(f"cache length {length} exceeds max_report_length={self.max_report_length}")
        encoder_output = ops.convert_to_tensor(encoder_output)
        batch = ops.shape(encoder_output)[0]
        dtype = self.decoder_blocks[0].compute_dtype
        self_shape, cross_shape = self.cache_shapes(batch, length, ops.shape(encoder_output)[1])
        self_cache = ops.zeros(self_shape, dtype=dtype)
        cross_cache = ops.zeros(cross_shape, dtype=dtype)
        start = ops.full((batch, 1), START_ID, dtype="int32")
        _, self_cache, cross_cache = self.call_with_cache(
            start, encoder_output, self_cache, cross_cache, 0, compute_cross_cache=True
        )
        return {ENCODER_OUTPUT: encoder_output, "self_cache": self_cache, "cross_cache": cross_cache}

    def call_with_cache(
        self, token_ids, encoder_output, self_cache, cross_cache, cache_update_index, *, compute_cross_cache=False
    ):
        """Logits of `token_ids` (batch, n) placed at `cache_update_index`,
        reading and updating the decoder's key/value caches.

        Returns `(logits (batch, n, vocab), self_cache, cross_cache)`. The
        cross-attention caches are recomputed only with `compute_cross_cache`.
        """
        x = self.token_embedding(token_ids, start_index=cache_update_index)
        new_self, new_cross = [], []
        for i, layer in enumerate(self.decoder_blocks):
            x, layer_self, layer_cross = layer(
                x,
                encoder_output,
                self_attention_cache=self_cache[:, i, ...],
                self_attention_cache_update_index=cache_update_index,
                cross_attention_cache=cross_cache[:, i, ...],
                cross_attention_cache_update_index=0 if compute_cross_cache else None,
                training=False,
            )
            new_self.append(layer_self)
            new_cross.append(layer_cross)
        logits = self.report_projection(x)
        return logits, ops.stack(new_self, axis=1), ops.stack(new_cross, axis=1)


def preset_config(preset: str, **overrides: Any) -> dict[str, Any]:
    """The constructor arguments of `preset` with `overrides` applied."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    config = copy.deepcopy(PRESETS[preset])
    allowed = set(config) | {
        "vocabulary_size",
        "complaint_vocabulary_size",
        "icd_vocabulary_size",
        "tasks",
        "num_vitals",
        "num_genders",
        "num_races",
        "num_acuity_levels",
        "num_findings",
        "unified_activation",
        "layer_norm_epsilon",
        "use_icd_title",
        "name",
    }
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} for preset {preset!r}; valid options: {', '.join(sorted(allowed))}")
    config.update(overrides)
    return config
