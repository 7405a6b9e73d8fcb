"""A keras-hub Vision Transformer as the findings classifier's backbone, one flat graph.

Paper 003 names the image encoder of its findings classifier "CNN or Vision
Transformer"; paper 004 asks for transfer learning. keras-hub's
`ViTBackbone` (Dosovitskiy et al. 2021) holds all its transformer blocks
inside one `ViTEncoder` layer, so neither "fine-tune from block k" nor a
per-patch map for Grad-CAM can reach inside it. `vit_features` therefore
calls keras-hub's own layers one by one on our tensor:

    pixels -> ViTPatchingAndEmbedding (patch conv, class token, positions)
      -> vit_dropout -> transformer_block_1 ... transformer_block_L (ViTEncoderBlock)
      -> vit_ln (LayerNormalization)
      -> vit_patch_tokens (the class token cropped off)
      -> token_map (reshape to the (H/p, W/p, hidden) patch grid)

`token_map` plays the last conv block's part: the head pools it (GAP over
patch tokens, ViT's "gap" classifier; ours, since keras-hub's classifier
reads the class token, which has no place on the image) and Grad-CAM
weights it per patch, the usual way of drawing CAMs from ViT patch tokens.
The layer names inside each block (`ln_1`, `mha`, `ln_2`, `mlp`) and the
weight shapes are keras-hub's, so a keras-hub preset's weights copy over
layer by layer (`load_vit_weights`).

Weights (`resolve_vit_weights`): a keras-hub preset directory
(`config.json` + `model.weights.h5`, as `Backbone.save_to_preset` writes
it; or a Hugging Face `transformers` ViT checkpoint directory, which
keras-hub converts) given as a path, or under the names `imagenet` / `auto`
the ImageNet-1k `vit_base_patch16_224_imagenet` preset found where
keras-hub or kagglehub keep it on disk. Nothing is downloaded here: on a
connected machine, `keras_hub.models.ViTBackbone.from_preset(
"vit_base_patch16_224_imagenet").save_to_preset(DIR)` writes the directory
`imagenet` looks for (`imagenet_preset_dir()`). Its pixels are scaled to
[-1, 1] ("symmetric"), as Google's ViT checkpoints were trained.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import keras

from medcap.weights import WeightsError, WeightsRecord, _announce_random, keras_home

#: The ImageNet-1k ViT-B/16 at 224 px (keras-hub's `vit_base_patch16_224_imagenet`).
VIT_B16: dict[str, Any] = {"patch_size": 16, "num_layers": 12, "num_heads": 12, "hidden_dim": 768, "mlp_dim": 3072}
IMAGENET_PRESET = "vit_base_patch16_224_imagenet"
KAGGLE_HANDLE = "keras/vit/keras/vit_base_patch16_224_imagenet/4"
PIXEL_NORMALIZATION = "symmetric"
FEATURE_LAYER = "token_map"
#: keras-hub ViTBackbone config keys that fix the architecture, and ours for them.
_CONFIG_KEYS = ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim")


def check_vit_config(vit: dict[str, Any], image_size: int) -> dict[str, Any]:
    """The ViT options with their types; raises ValueError naming what is off."""
    unknown = sorted(set(vit) - set(_CONFIG_KEYS) - {"dropout_rate", "layer_norm_epsilon"})
    missing = [k for k in _CONFIG_KEYS if k not in vit]
    if unknown or missing:
        raise ValueError(f"vit options: unknown {unknown}, missing {missing}; expected {', '.join(_CONFIG_KEYS)}")
    out = {k: int(vit[k]) for k in _CONFIG_KEYS}
    out["dropout_rate"] = float(vit.get("dropout_rate", 0.0))
    out["layer_norm_epsilon"] = float(vit.get("layer_norm_epsilon", 1e-6))
    if image_size % out["patch_size"]:
        raise ValueError(f"image_size={image_size} is not a multiple of the ViT patch size {out['patch_size']}")
    if out["hidden_dim"] % out["num_heads"]:
        raise ValueError(f"vit hidden_dim={out['hidden_dim']} is not a multiple of num_heads={out['num_heads']}")
    return out


def vit_features(x, image_size: int, vit: dict[str, Any]):
    """Calls keras-hub's ViT layers on `x` (normalised pixels) and returns
    the (batch, grid, grid, hidden) patch-token map (module docstring)."""
    from keras_hub.src.models.vit.vit_layers import ViTEncoderBlock, ViTPatchingAndEmbedding

    cfg = check_vit_config(vit, image_size)
    patch, hidden = cfg["patch_size"], cfg["hidden_dim"]
    grid = image_size // patch
    x = ViTPatchingAndEmbedding(
        image_size=(image_size, image_size),
        patch_size=(patch, patch),
        hidden_dim=hidden,
        num_channels=3,
        use_class_token=True,
        name="vit_patching_and_embedding",
    )(x)
    x = keras.layers.Dropout(cfg["dropout_rate"], name="vit_dropout")(x)
    for index in range(1, cfg["num_layers"] + 1):
        x = ViTEncoderBlock(
            num_heads=cfg["num_heads"],
            hidden_dim=hidden,
            mlp_dim=cfg["mlp_dim"],
            dropout_rate=cfg["dropout_rate"],
            attention_dropout=0.0,
            layer_norm_epsilon=cfg["layer_norm_epsilon"],
            name=f"transformer_block_{index}",
        )(x)
    x = keras.layers.LayerNormalization(epsilon=cfg["layer_norm_epsilon"], name="vit_ln")(x)
    x = keras.layers.Cropping1D((1, 0), name="vit_patch_tokens")(x)
    return keras.layers.Reshape((grid, grid, hidden), name=FEATURE_LAYER)(x)


def top_block(vit: dict[str, Any]) -> str:
    """The last transformer block: what the randomisation sanity check re-initialises."""
    return f"transformer_block_{int(vit['num_layers'])}"


def imagenet_preset_dir() -> Path:
    """Where `imagenet` looks first: `$KERAS_HOME/models/vit_base_patch16_224_imagenet/`."""
    return keras_home() / "models" / IMAGENET_PRESET


def _kagglehub_dir() -> Path:
    cache = Path(os.environ.get("KAGGLEHUB_CACHE", "~/.cache/kagglehub")).expanduser()
    return cache / "models" / KAGGLE_HANDLE


def _is_preset(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def find_imagenet_preset() -> Path | None:
    for candidate in (imagenet_preset_dir(), _kagglehub_dir()):
        if _is_preset(candidate):
            return candidate
    return None


def resolve_vit_weights(policy: str) -> WeightsRecord:
    """`none`, `auto`, `imagenet` or a preset directory (module docstring)."""
    policy = str(policy)
    if policy == "none":
        return WeightsRecord("vit", policy, False, "random init (weights=none)")
    if policy in ("auto", "imagenet"):
        found = find_imagenet_preset()
        if found is not None:
            return WeightsRecord("vit", policy, True, str(found), str(found))
        where = f"{imagenet_preset_dir()} (or kagglehub's {_kagglehub_dir()})"
        if policy == "imagenet":
            raise WeightsError(
                f"no keras-hub {IMAGENET_PRESET} preset at {where}. On a connected machine run "
                f"keras_hub.models.ViTBackbone.from_preset({IMAGENET_PRESET!r}).save_to_preset(DIR) "
                "and copy DIR there, or pass the directory as encoder_weights"
            )
        _announce_random(
            f"no {IMAGENET_PRESET} preset at {where}; the ViT backbone is RANDOMLY INITIALISED "
            "(pretrained: false). Numbers from it are not comparable with an ImageNet-initialised ViT."
        )
        return WeightsRecord("vit", policy, False, f"random init (no {IMAGENET_PRESET} preset at {imagenet_preset_dir()})")
    path = Path(policy).expanduser()
    if not _is_preset(path):
        raise WeightsError(
            f"ViT weights {path} is not a keras-hub preset directory (no config.json there); "
            "expected none, auto, imagenet or a directory written by ViTBackbone.save_to_preset"
        )
    return WeightsRecord("vit", "path", True, str(path.resolve()), str(path.resolve()))


def preset_vit_config(path: str | Path) -> dict[str, Any]:
    """The architecture a keras-hub ViT preset directory holds, in our option names."""
    config = json.loads((Path(path) / "config.json").read_text())
    inner = config.get("config", config)
    patch = inner.get("patch_size")
    if isinstance(patch, (list, tuple)):
        if len(set(patch)) != 1:
            raise WeightsError(f"{path}: non-square ViT patches {patch} are not supported")
        patch = patch[0]
    return {"patch_size": patch, **{k: inner.get(k) for k in _CONFIG_KEYS if k != "patch_size"}}


def load_vit_weights(model: keras.Model, path: str | Path, image_size: int, vit: dict[str, Any]) -> None:
    """Copies a keras-hub ViT preset's weights into `model`'s ViT layers.

    The preset must have our architecture and input size (its position
    embeddings are per patch of that size); a mismatch is an error naming
    both, not a silent partial load."""
    from keras_hub.models import ViTBackbone

    path = Path(path)
    theirs = preset_vit_config(path) if (path / "config.json").is_file() else None
    ours = {k: int(vit[k]) for k in _CONFIG_KEYS}
    if theirs is not None and all(v is not None for v in theirs.values()) and {k: int(v) for k, v in theirs.items()} != ours:
        raise WeightsError(f"{path} holds a ViT {theirs}; this model is a ViT {ours}: choose the matching preset or options")
    try:
        source = ViTBackbone.from_preset(str(path))
    except Exception as err:  # noqa: BLE001  (keras-hub raises several types for a bad directory)
        raise WeightsError(f"cannot load the keras-hub ViT preset {path}: {err}") from err
    shape = tuple(source.image_shape)
    if shape[:2] != (image_size, image_size):
        raise WeightsError(f"{path} is a ViT for {shape[0]}x{shape[1]} images; this model takes {image_size}x{image_size}")
    encoder = source.get_layer("vit_encoder")
    pairs = [(model.get_layer("vit_patching_and_embedding"), source.get_layer("vit_patching_and_embedding"))]
    pairs += [(model.get_layer(f"transformer_block_{i + 1}"), block) for i, block in enumerate(encoder.encoder_layers)]
    pairs.append((model.get_layer("vit_ln"), encoder.layer_norm))
    for ours_layer, their_layer in pairs:
        ours_layer.set_weights(their_layer.get_weights())
