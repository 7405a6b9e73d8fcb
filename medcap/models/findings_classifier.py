"""Paper 004's findings classifier: a transfer-learning CNN, one flat graph.

Tahami and Puranik, "ImageMedix: Using CNN Insights to Improve Medical
Imaging" (a project proposal): a CNN "incorporating transfer learning"
(Study of Existing System; Methodology: "Choose or design an appropriate CNN
architecture"), trained on medical images such as ChestX-ray8 and TCIA
(Resources), evaluated with accuracy, precision, recall "and other relevant
metrics" (Project Description), whose decisions are visualised for
clinicians (Visualization). The proposal names no architecture, so every
detail below is ours, chosen as the field's strongest reference does:
CheXNet (Rajpurkar et al. 2017: DenseNet121 pretrained on ImageNet, its
classifier replaced by one sigmoid output per finding, 224 x 224 input).

    image (raw [0, 255] RGB) -> PixelNormalization (the backbone's own)
      -> backbone layers (keras.applications, ImageNet-initialised)
      -> head_pool (GAP) -> head_dropout -> findings (Dense, sigmoid, float32)

**One flat functional graph.** The keras.applications backbone is built
(and its weights loaded) on its own, then a copy of each of its layers is
called on our input tensor in graph order (`Functional._run_through_graph`)
and given the original's weights. They are layers of this model, called
once, not a nested sub-model: `model.get_layer(feature_layer).output` is
the last convolutional block's output in this graph, and Grad-CAM
(`medcap explain`, tf-keras-vis) takes gradients with respect to it in one
model call. A nested backbone hides its inner tensors from the outer graph,
and reusing the original layers would leave their `.output` in the
backbone's own graph.

Presets (`PRESETS`):

* `chexnet`: DenseNet121, 224 px, no dropout (CheXNet 2.2).
* `efficientnet_b0`: EfficientNetB0, 224 px, dropout 0.2 (EfficientNet's own
  top dropout).
* `resnet50`: ResNet50, 224 px, no dropout.
* `vit_b16`: keras-hub's ViT-B/16 at 224 px (`medcap.models.vit_backbone`:
  its layers called one by one, the patch tokens reshaped to a map), for
  paper 003's "CNN or Vision Transformer"; fine-tune from
  `transformer_block_K`.
* `tiny_vit`: a two-block ViT at 32 px, randomly initialised: tests.
* `tiny`: a three-block CNN (conv 3x3, batch norm, ReLU, max-pool; 8/16/32
  filters) at 64 px, randomly initialised: tests and the synthetic default.

The ImageNet presets require their ImageNet file (`encoder_weights`
"imagenet": the Keras cache, else a download, else an error saying where to
put the file; `medcap.weights`); the synthetic default runs with "auto",
which falls back to a random backbone loudly and records `pretrained:
false`.

**Transfer learning** (`set_phase`): phase "head" freezes every backbone
layer (only the head learns); phase "fine_tune" unfreezes the backbone from
the first layer whose name starts with `fine_tune_from` (e.g. DenseNet's
`conv5_block1`, ResNet's `conv5_block1`, EfficientNet's `block6a`, tiny's
`block3`) to its end, keeping earlier layers frozen; phase "all" trains
everything. Batch normalisation layers of a pretrained backbone stay
frozen in every phase (`freeze_batchnorm`, default: when pretrained): a
frozen Keras BatchNormalization runs in inference mode, so its ImageNet
statistics are neither used as batch statistics nor overwritten by small
medical batches (the Keras transfer-learning guide's advice). A randomly
initialised backbone trains its batch norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from medcap.layers.preprocessing import PixelNormalization
from medcap.models import vit_backbone
from medcap.weights import WeightsRecord, backbone_spec, build_backbone

TINY = "tiny_cnn"
VIT = "vit"
BACKBONES = ("densenet121", "efficientnetb0", "resnet50", VIT, TINY)
PHASES = ("head", "fine_tune", "all")
HEAD_LAYERS = ("head_pool", "head_dropout", "findings")
#: The last layer of each backbone: the feature maps Grad-CAM explains.
FEATURE_LAYERS = {
    "densenet121": "relu",
    "efficientnetb0": "top_activation",
    "resnet50": "conv5_block3_out",
    VIT: vit_backbone.FEATURE_LAYER,
    TINY: "block3_relu",
}

#: The first layer of each backbone's last block: what the randomisation
#: sanity check re-initialises with the head (`medcap.explanations.sanity`);
#: a ViT's is its last transformer block (`FindingsClassifier.top_block`).
TOP_BLOCKS = {
    "densenet121": "conv5_block16",
    "efficientnetb0": "block7a",
    "resnet50": "conv5_block3",
    TINY: "block3",
}

PRESETS: dict[str, dict[str, Any]] = {
    "chexnet": {"backbone": "densenet121", "image_size": 224, "dropout": 0.0, "encoder_weights": "imagenet"},
    "efficientnet_b0": {"backbone": "efficientnetb0", "image_size": 224, "dropout": 0.2, "encoder_weights": "imagenet"},
    "resnet50": {"backbone": "resnet50", "image_size": 224, "dropout": 0.0, "encoder_weights": "imagenet"},
    "vit_b16": {"backbone": VIT, "image_size": 224, "dropout": 0.0, "encoder_weights": "imagenet", "vit": vit_backbone.VIT_B16},
    "tiny_vit": {
        "backbone": VIT,
        "image_size": 32,
        "dropout": 0.0,
        "encoder_weights": "none",
        "vit": {"patch_size": 8, "num_layers": 2, "num_heads": 2, "hidden_dim": 16, "mlp_dim": 32},
    },
    "tiny": {"backbone": TINY, "image_size": 64, "dropout": 0.0, "encoder_weights": "none", "tiny_filters": (8, 16, 32)},
}


def _tiny_backbone(x, filters: Sequence[int]):
    """Three conv blocks, named `blockN_*` like keras.applications' VGG."""
    for index, width in enumerate(filters, start=1):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{index}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{index}_bn")(x)
        x = keras.layers.Activation("relu", name=f"block{index}_relu")(x)
        if index < len(filters):
            x = keras.layers.MaxPooling2D(2, name=f"block{index}_pool")(x)
    return x


@keras.saving.register_keras_serializable(package="medcap")
class FindingsClassifier(keras.Model):
    """Backbone + GAP + dropout + one sigmoid per finding (module docstring).

    Args:
        label_names: the findings, one output each, in this order.
        backbone: one of BACKBONES.
        image_size: input side in pixels (square).
        dropout: rate before the output layer.
        weights_path: an ImageNet (or user) weights file for the backbone, or
            None for random initialisation. Not kept in `get_config`: a saved
            model carries its own weights.
        tiny_filters: widths of the `tiny_cnn` blocks.
        vit: the ViT's architecture (`vit_backbone.check_vit_config`), for
            backbone "vit"; `weights_path` is then a keras-hub preset directory.
        frozen_layers: names of layers built non-trainable (`set_phase`
            records them through `get_config`).

    Input: (batch, image_size, image_size, 3) raw pixels in [0, 255].
    Output: (batch, len(label_names)) probabilities, float32.
    """

    def __init__(
        self,
        label_names: Sequence[str],
        backbone: str = "densenet121",
        image_size: int = 224,
        dropout: float = 0.0,
        weights_path: str | None = None,
        tiny_filters: Sequence[int] = (8, 16, 32),
        vit: dict[str, Any] | None = None,
        frozen_layers: Sequence[str] = (),
        **kwargs,
    ):
        if backbone not in BACKBONES:
            raise ValueError(f"backbone={backbone!r}: expected one of {', '.join(BACKBONES)}")
        if not label_names:
            raise ValueError("label_names must name at least one finding")
        label_names = tuple(str(n) for n in label_names)
        inputs = keras.Input((image_size, image_size, 3), name="image")
        if (backbone == VIT) != (vit is not None):
            raise ValueError(f"backbone={backbone!r}: the vit options go with backbone {VIT!r} and only with it")
        if backbone == TINY:
            normalized = PixelNormalization("unit", name="pixel_normalization")(inputs)
            features = _tiny_backbone(normalized, tiny_filters)
        elif backbone == VIT:
            vit = vit_backbone.check_vit_config(vit, image_size)
            normalized = PixelNormalization(vit_backbone.PIXEL_NORMALIZATION, name="pixel_normalization")(inputs)
            features = vit_backbone.vit_features(normalized, image_size, vit)
        else:
            mode = backbone_spec(backbone).pixel_normalization
            normalized = PixelNormalization(mode, name="pixel_normalization")(inputs)
            policy = weights_path if weights_path else "none"
            base, _ = build_backbone(backbone, policy, include_top=False, input_shape=(image_size, image_size, 3))
            # A fresh copy of each backbone layer is called on our tensor, so
            # every layer of this model is called once, in this graph: one flat
            # graph whose `layer.output` is ours (module docstring).
            copies: list[tuple[Any, Any]] = []

            def copy(operation):
                fresh = operation.__class__.from_config(operation.get_config())
                copies.append((fresh, operation))
                return fresh

            features = base._run_through_graph(normalized, operation_fn=copy)
        pooled = keras.layers.GlobalAveragePooling2D(name="head_pool")(features)
        pooled = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
        outputs = keras.layers.Dense(len(label_names), activation="sigmoid", dtype="float32", name="findings")(pooled)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        if backbone == VIT:
            if weights_path:
                vit_backbone.load_vit_weights(self, weights_path, image_size, vit)
        elif backbone != TINY:
            for fresh, original in copies:
                if original.weights:
                    fresh.set_weights(original.get_weights())
        self.label_names = label_names
        self.backbone = backbone
        self.image_size = int(image_size)
        self.dropout = float(dropout)
        self.weights_path = weights_path
        self.tiny_filters = tuple(int(f) for f in tiny_filters)
        self.vit = vit
        self.feature_layer = FEATURE_LAYERS[backbone]
        for name in frozen_layers:
            self.get_layer(name).trainable = False

    @property
    def top_block(self) -> str:
        """The first layer of the backbone's last block (`TOP_BLOCKS`)."""
        return vit_backbone.top_block(self.vit) if self.backbone == VIT else TOP_BLOCKS[self.backbone]

    def maps_and_outputs(self) -> keras.Model:
        """A model from the same input to (feature maps of `feature_layer`,
        probabilities), sharing this model's layers: what Grad-CAM needs in
        one call."""
        maps = self.get_layer(self.feature_layer).output
        return keras.Model(self.inputs[0], [maps, self.outputs[0]], name=f"{self.name}_maps")

    @property
    def backbone_layers(self) -> list[keras.layers.Layer]:
        """The backbone's layers in graph order (no input, normalisation or head)."""
        skip = {"image", "pixel_normalization", *HEAD_LAYERS}
        return [layer for layer in self.layers if layer.name not in skip and not isinstance(layer, keras.layers.InputLayer)]

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "label_names": list(self.label_names),
            "backbone": self.backbone,
            "image_size": self.image_size,
            "dropout": self.dropout,
            "weights_path": None,
            "tiny_filters": list(self.tiny_filters),
            "vit": dict(self.vit) if self.vit is not None else None,
            # The transfer-learning phase's frozen layers, so a saved model reloads
            # with the trainable weights (and optimizer variables) it was saved with.
            "frozen_layers": [layer.name for layer in self.layers if layer.weights and not layer.trainable],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        return cls(**config)


def set_phase(model: FindingsClassifier, phase: str, *, fine_tune_from: str = "", freeze_batchnorm: bool = True) -> list[str]:
    """Sets which layers train in a transfer-learning phase (module docstring).

    Returns the names of the trainable backbone layers. Recompile the model
    afterwards: Keras collects the trainable weights when it compiles.
    """
    if phase not in PHASES:
        raise ValueError(f"phase={phase!r}: expected one of {', '.join(PHASES)}")
    layers = model.backbone_layers
    start = 0 if phase == "all" else len(layers)
    if phase == "fine_tune":
        if fine_tune_from:
            matches = [i for i, layer in enumerate(layers) if layer.name.startswith(fine_tune_from)]
            if not matches:
                names = sorted({layer.name.split("_")[0] for layer in layers})
                raise ValueError(
                    f"fine_tune_from={fine_tune_from!r}: no {model.backbone} layer starts with it; "
                    f"block prefixes include {', '.join(names[:12])}"
                )
            start = matches[0]
        else:
            start = 0
    model.trainable = True
    trainable = []
    for index, layer in enumerate(layers):
        on = index >= start
        if freeze_batchnorm and isinstance(layer, keras.layers.BatchNormalization):
            on = False
        layer.trainable = on
        if on:
            trainable.append(layer.name)
    for name in HEAD_LAYERS:
        model.get_layer(name).trainable = True
    return trainable


def build_findings_classifier(
    preset: str,
    label_names: Sequence[str],
    *,
    encoder_weights: str | None = None,
    **overrides: Any,
) -> tuple[FindingsClassifier, WeightsRecord | None]:
    """A `FindingsClassifier` from a preset, its weights resolved per
    `encoder_weights` (default: the preset's). Returns (model, record);
    the record is None for the tiny backbone with no weights to load.

    `encoder_weights` may also name a `.keras` file of another findings
    classifier run with the same backbone (`transfer_backbone`): its backbone
    weights are copied, its head is not (its findings may differ), so one
    run's training is the next one's pretraining."""
    if preset not in PRESETS:
        raise ValueError(f"unknown findings classifier preset {preset!r}; valid: {', '.join(PRESETS)}")
    args = {**PRESETS[preset], **overrides}
    policy = encoder_weights or args.pop("encoder_weights")
    args.pop("encoder_weights", None)
    unknown = sorted(set(args) - {"backbone", "image_size", "dropout", "tiny_filters", "vit"})
    if unknown:
        raise ValueError(f"unknown findings classifier options {unknown}")
    if str(policy).endswith(".keras"):
        model = FindingsClassifier(label_names, **args)
        return model, transfer_backbone(model, policy)
    record = None
    weights_path = None
    if args["backbone"] == VIT:
        record = vit_backbone.resolve_vit_weights(policy)
        weights_path = record.keras_weights
    elif args["backbone"] != TINY:
        from medcap.weights import resolve_weights

        record = resolve_weights(args["backbone"], policy, include_top=False)
        weights_path = record.keras_weights
    elif policy not in ("none", "auto"):
        raise ValueError(f"the {TINY} backbone has no ImageNet weights; encoder_weights={policy!r} (use none, or a findings run's model.keras)")
    model = FindingsClassifier(label_names, weights_path=weights_path, **args)
    return model, record


def transfer_backbone(model: FindingsClassifier, path: str) -> WeightsRecord:
    """Copies the backbone weights of the findings classifier saved at `path`
    into `model` (same backbone, any findings) and says so in a record."""
    from pathlib import Path

    from medcap.weights import WeightsError

    source_path = Path(path).expanduser()
    if not source_path.is_file():
        raise WeightsError(f"weights file {source_path} does not exist; expected a findings classifier run's model.keras")
    source = keras.saving.load_model(source_path, compile=False)
    if not isinstance(source, FindingsClassifier) or source.backbone != model.backbone:
        found = getattr(source, "backbone", type(source).__name__)
        raise WeightsError(f"{source_path} holds a {found} model; this run's backbone is {model.backbone}")
    for layer in model.backbone_layers:
        layer.set_weights(source.get_layer(layer.name).get_weights())
    return WeightsRecord(model.backbone, "path", True, f"backbone of {source_path.resolve()} (findings: {', '.join(source.label_names)})")
