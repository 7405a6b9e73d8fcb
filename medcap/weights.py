"""Where an image backbone's weights come from: one policy for every backbone.

`encoder_weights` (config) / `--weights` (CLI) takes

* `auto`: the ImageNet file in the Keras cache (`$KERAS_HOME/models/<file>`,
  default `~/.keras/models/`) when it is there; otherwise **random
  initialisation**, announced by a loud warning and recorded as
  `pretrained: false`. Never touches the network, so offline machines run.
* `imagenet`: the ImageNet file, required. When it is not cached we probe the
  download host with a short timeout and download through
  `keras.utils.get_file` (checked against Keras' own file hash); offline this
  fails at once with a message saying how to provide the file. It never hangs.
* `none`: random initialisation, on purpose.
* a path (`/path/to/weights.h5`, `.weights.h5`, `.keras`): that file, loaded by
  `keras.Model.load_weights`; a missing file is an error naming it.

`resolve_weights(...)` returns a `WeightsRecord`; its `to_dict()`
(`{"backbone", "policy", "pretrained", "source"}`) goes into
`environment.json` and the results table, so no one mistakes numbers from a
random backbone for a reproduction with ImageNet features.
`build_backbone(...)` builds the `keras.applications` model with the record.

Backbones are named by their `keras.applications` constructor in lower case
(`vgg16`, `densenet121`, `resnet50`, `efficientnetb0`); the file names, download
addresses and hashes below are the ones Keras itself uses.

The architecture never depends on where the weights come from. Keras'
EfficientNet (B0-B7) adds a last stem layer, `Rescaling(1 / sqrt(stddev))`
after its `Normalization`, only when built with `weights="imagenet"` (it
makes up for the ImageNet file storing the standard deviation where the
variance belongs). Built with `weights=None` and the same file loaded
afterwards, it would see inputs about 2x too small. `build_backbone` inserts
that layer for every weights source, so the model is the ImageNet model
whether its weights come from the Keras cache, a path, or a later
`load_weights`. VGG16 and DenseNet121 have no such layer: their ImageNet
preprocessing lives outside the model, in the pipeline normalisation named by
`BackboneWeights.pixel_normalization`, which `check_pixel_normalization`
enforces for pretrained weights.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

POLICIES = ("auto", "imagenet", "none")

#: Seconds to wait for the download host before declaring the machine offline.
PROBE_TIMEOUT_S = 5.0
#: Socket timeout while downloading (per blocking read, not the whole file).
DOWNLOAD_TIMEOUT_S = 60.0


class WeightsError(FileNotFoundError):
    """Weights were asked for and cannot be had; the message says what to do.

    A FileNotFoundError so the CLI prints it as a one-line user error.
    """


@dataclass(frozen=True)
class BackboneWeights:
    """Where Keras keeps one backbone's ImageNet weights (with and without the top)."""

    constructor: str
    top_file: str
    top_origin: str
    top_hash: str
    notop_file: str
    notop_origin: str
    notop_hash: str
    #: The `medcap.data.pipeline.normalize` mode the ImageNet weights expect.
    pixel_normalization: str
    #: Per-channel scales of the stem layer Keras adds only for
    #: weights="imagenet" (after the Normalization layer); None: no such layer.
    imagenet_stem_scale: tuple[float, ...] | None = None

    def file(self, include_top: bool) -> str:
        return self.top_file if include_top else self.notop_file

    def origin(self, include_top: bool) -> str:
        return self.top_origin if include_top else self.notop_origin

    def file_hash(self, include_top: bool) -> str:
        return self.top_hash if include_top else self.notop_hash


_GOOGLE = "https://storage.googleapis.com/tensorflow/keras-applications/"
#: keras.applications.efficientnet's IMAGENET_STDDEV_RGB.
_IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
_EFFICIENTNET = "https://storage.googleapis.com/keras-applications/"

#: Facts from keras.applications (file names, addresses and md5 hashes).
BACKBONES: dict[str, BackboneWeights] = {
    "vgg16": BackboneWeights(
        constructor="VGG16",
        top_file="vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        top_origin=_GOOGLE + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        top_hash="64373286793e3c8b2b4e3219cbf3544b",
        notop_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        notop_origin=_GOOGLE + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        notop_hash="6d6bbae143d832006294945121d1f1fc",
        pixel_normalization="imagenet_caffe",
    ),
    "densenet121": BackboneWeights(
        constructor="DenseNet121",
        top_file="densenet121_weights_tf_dim_ordering_tf_kernels.h5",
        top_origin=_GOOGLE + "densenet/densenet121_weights_tf_dim_ordering_tf_kernels.h5",
        top_hash="9d60b8095a5708f2dcce2bca79d332c7",
        notop_file="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        notop_origin=_GOOGLE + "densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        notop_hash="30ee3e1110167f948a6b9946edeeb738",
        pixel_normalization="imagenet_torch",
    ),
    "resnet50": BackboneWeights(
        constructor="ResNet50",
        top_file="resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        top_origin=_GOOGLE + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        top_hash="2cb95161c43110f7111970584f804107",
        notop_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        notop_origin=_GOOGLE + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        notop_hash="4d473c1dd8becc155b73f8504c6f6626",
        pixel_normalization="imagenet_caffe",
    ),
    "efficientnetb0": BackboneWeights(
        constructor="EfficientNetB0",
        top_file="efficientnetb0.h5",
        top_origin=_EFFICIENTNET + "efficientnetb0.h5",
        top_hash="902e53a9f72be733fc0bcb005b3ebbac",
        notop_file="efficientnetb0_notop.h5",
        notop_origin=_EFFICIENTNET + "efficientnetb0_notop.h5",
        notop_hash="50bc09e76180e00e4465e1a485ddc09d",
        # Rescales and normalises inside the model: pixels enter in [0, 255].
        pixel_normalization="none",
        imagenet_stem_scale=tuple(1.0 / math.sqrt(s) for s in _IMAGENET_STDDEV_RGB),
    ),
}


@dataclass(frozen=True)
class WeightsRecord:
    """What a backbone was initialised from."""

    backbone: str
    policy: str
    pretrained: bool
    #: The weights file, or why the backbone is randomly initialised.
    source: str
    #: What to pass to the keras.applications constructor: a path or None.
    keras_weights: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "policy": self.policy, "pretrained": self.pretrained, "source": self.source}

    @property
    def fingerprint(self) -> str:
        """Identifies the weights for cache keys: the file with its size and
        modification time, or the random-init marker."""
        if self.keras_weights is None:
            return "random"
        stat = Path(self.keras_weights).stat()
        return f"{Path(self.keras_weights).resolve()}:{stat.st_size}:{int(stat.st_mtime)}"


def backbone_spec(backbone: str) -> BackboneWeights:
    try:
        return BACKBONES[backbone.lower()]
    except KeyError:
        raise ValueError(f"unknown backbone {backbone!r}; valid backbones: {', '.join(sorted(BACKBONES))}") from None


def keras_home() -> Path:
    """Keras' cache root, read at call time: $KERAS_HOME or ~/.keras
    (Keras itself falls back to /tmp/.keras when the home is not writable)."""
    if os.environ.get("KERAS_HOME"):
        return Path(os.environ["KERAS_HOME"]).expanduser()
    home = Path("~").expanduser()
    return (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"


def cached_weights_path(backbone: str, include_top: bool = True) -> Path:
    """Where the Keras cache keeps the ImageNet file (whether or not it is there)."""
    return keras_home() / "models" / backbone_spec(backbone).file(include_top)


def find_cached_weights(backbone: str, include_top: bool = True) -> Path | None:
    """The cached ImageNet file, also looking where Keras' /tmp fallback puts it."""
    name = backbone_spec(backbone).file(include_top)
    for candidate in (cached_weights_path(backbone, include_top), Path("/tmp/.keras/models") / name):
        if candidate.is_file() and candidate.stat().st_size > 0:
            return candidate
    return None


def _announce_random(message: str) -> None:
    banner = "\n" + "!" * 78 + f"\n!! WARNING: {message}\n" + "!" * 78 + "\n"
    print(banner, file=sys.stderr, flush=True)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _host_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except Exception:  # noqa: BLE001  (offline, DNS failure, a test's network guard)
        return False


def _download(backbone: str, include_top: bool) -> Path:
    """Downloads the ImageNet file into the Keras cache, or fails fast offline."""
    spec = backbone_spec(backbone)
    target = cached_weights_path(backbone, include_top)
    origin = spec.origin(include_top)
    how = (
        f"put {spec.file(include_top)} into {target.parent} (copy it from a machine with internet, e.g. "
        f"after `python -c 'import keras; keras.applications.{spec.constructor}()'`), "
        f"pass a weights file path, or use weights=auto/none for a random backbone"
    )
    if not _host_reachable(origin):
        raise WeightsError(
            f"ImageNet weights for {backbone} are not cached at {target} and {urlsplit(origin).hostname} "
            f"cannot be reached (offline?): {how}"
        )
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        path = keras.utils.get_file(
            spec.file(include_top),
            origin,
            cache_subdir="models",
            cache_dir=str(keras_home()),
            file_hash=spec.file_hash(include_top),
        )
    except Exception as err:  # noqa: BLE001
        raise WeightsError(f"downloading ImageNet weights for {backbone} from {origin} failed ({err}): {how}") from err
    finally:
        socket.setdefaulttimeout(previous)
    return Path(path)


def resolve_weights(backbone: str, policy: str = "auto", *, include_top: bool = True) -> WeightsRecord:
    """Turns a weights policy into a concrete source (see the module docstring)."""
    backbone = backbone.lower()
    spec = backbone_spec(backbone)
    policy = str(policy)
    if policy == "none":
        return WeightsRecord(backbone, policy, False, "random init (weights=none)")
    if policy == "auto":
        found = find_cached_weights(backbone, include_top)
        if found is not None:
            return WeightsRecord(backbone, policy, True, str(found), str(found))
        target = cached_weights_path(backbone, include_top)
        _announce_random(
            f"no ImageNet weights for {backbone} in the Keras cache ({target}); the {spec.constructor} "
            "backbone is RANDOMLY INITIALISED (pretrained: false). Features and every number computed "
            "from them are not comparable with the paper. Run with internet and weights=imagenet once, "
            "or copy the file there."
        )
        return WeightsRecord(backbone, policy, False, f"random init (no cached ImageNet weights at {target})")
    if policy == "imagenet":
        found = find_cached_weights(backbone, include_top) or _download(backbone, include_top)
        return WeightsRecord(backbone, policy, True, str(found), str(found))
    path = Path(policy).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} does not exist; expected {', '.join(POLICIES)} or a path to a weights file"
        )
    return WeightsRecord(backbone, "path", True, str(path.resolve()), str(path.resolve()))


def check_pixel_normalization(backbone: str, normalization: str, record: WeightsRecord | Any) -> None:
    """Pretrained ImageNet weights need the pixels their training used.

    Raises ValueError when `record` (a WeightsRecord or its dict) is
    pretrained and `normalization` is not the backbone's
    `pixel_normalization`; random weights accept any normalisation.
    """
    pretrained = record.pretrained if isinstance(record, WeightsRecord) else bool(record["pretrained"])
    expected = backbone_spec(backbone).pixel_normalization
    if pretrained and normalization != expected:
        raise ValueError(
            f"data.normalization={normalization!r} with pretrained {backbone} weights: its ImageNet weights "
            f"expect normalization={expected!r}; set data.normalization={expected}"
        )


def _with_imagenet_stem(model, scale: Sequence[float]):
    """A fresh copy of `model` (same layer names and configs, new weights)
    with `Rescaling(scale)` after its stem Normalization layer, as Keras
    builds it for weights="imagenet". Copied rather than shared, so that every
    layer's `.input`/`.output` belong to the new graph."""
    import keras

    normalization = [layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)]
    if len(normalization) != 1:
        raise RuntimeError(f"{model.name}: expected one stem Normalization layer, found {len(normalization)}")
    stem = normalization[0].name

    def call(layer, *args, **kwargs):
        outputs = layer(*args, **kwargs)
        if layer.name == stem:
            outputs = keras.layers.Rescaling(list(scale), name=f"{stem}_imagenet_rescaling")(outputs)
        return outputs

    inputs = keras.Input(batch_shape=model.inputs[0].shape, name=model.layers[0].name)
    return keras.models.clone_model(model, input_tensors=inputs, call_function=call)


def build_backbone(
    backbone: str,
    policy: str | WeightsRecord = "auto",
    *,
    include_top: bool = True,
    input_shape: tuple[int, int, int] | None = None,
    **kwargs: Any,
):
    """Builds `keras.applications.<Constructor>` initialised per the policy.

    Returns `(model, record)`. The model is the ImageNet architecture for
    every policy (see the module docstring on EfficientNet's stem), so
    weights loaded later with `model.load_weights` give the ImageNet model.
    With pretrained ImageNet weights and `include_top=True` the input must be
    the backbone's native size (224x224 for VGG16/DenseNet121/EfficientNetB0);
    random or user weights accept any size Keras accepts.
    """
    import keras

    spec = backbone_spec(backbone)
    record = policy if isinstance(policy, WeightsRecord) else resolve_weights(backbone, policy, include_top=include_top)
    constructor = getattr(keras.applications, spec.constructor)
    try:
        if spec.imagenet_stem_scale is None:
            model = constructor(include_top=include_top, weights=record.keras_weights, input_shape=input_shape, **kwargs)
        else:
            # Built without weights, the stem layer inserted, then the file loaded
            # into the ImageNet architecture (the layer has no weights, so the
            # file's layer order still matches).
            model = constructor(include_top=include_top, weights=None, input_shape=input_shape, **kwargs)
            model = _with_imagenet_stem(model, spec.imagenet_stem_scale)
            if record.keras_weights is not None:
                model.load_weights(record.keras_weights)
    except ValueError as err:
        raise WeightsError(f"cannot build {backbone} from {record.source}: {err}") from err
    return model, record
