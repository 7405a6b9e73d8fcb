"""The findings classifier on a keras-hub Vision Transformer: one flat graph, keras-hub's weights, block-wise fine-tuning, Grad-CAM on patch tokens."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from medcap import training
from medcap.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from medcap.data.chestxray14 import SYNTHETIC_LABELS
from medcap.explanations.methods import Explainer
from medcap.layers.masked_losses import MaskedBinaryCrossentropy
from medcap.models.findings_classifier import (
    PRESETS,
    FindingsClassifier,
    build_findings_classifier,
    set_phase,
)
from medcap.models.vit_backbone import IMAGENET_PRESET, imagenet_preset_dir
from medcap.testing import run_model_saving_test
from medcap.weights import WeightsError

LABELS = ("Atelectasis", "Cardiomegaly", "Effusion")
TINY_VIT = PRESETS["tiny_vit"]["vit"]


def tiny_vit(**kwargs) -> FindingsClassifier:
    keras.utils.set_random_seed(0)
    model, _ = build_findings_classifier("tiny_vit", LABELS, **kwargs)
    return model


def images(n: int = 4, size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype("float32")


def keras_hub_vit(tmp_path: Path, **overrides):
    """A keras-hub ViTBackbone with random weights, saved as keras-hub saves presets."""
    from keras_hub.models import ViTBackbone

    keras.utils.set_random_seed(7)
    args = {"image_shape": (32, 32, 3), **TINY_VIT, **overrides}
    backbone = ViTBackbone(**args)
    preset = tmp_path / "vit_preset"
    backbone.save_to_preset(str(preset))
    return backbone, preset


def test_vit_is_one_flat_graph_with_a_patch_token_map(tmp_path):
    model = tiny_vit()
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.feature_layer == "token_map" and model.top_block == "transformer_block_2"
    x = images()
    maps, out = model.maps_and_outputs()(x)
    assert maps.shape == (4, 4, 4, 16) and out.shape == (4, 3) and out.dtype == "float32"
    # The head is GAP over the patch tokens: the map alone decides the output.
    head = model.get_layer("findings")
    np.testing.assert_allclose(out, head(np.mean(np.array(maps), axis=(1, 2))), atol=1e-6)
    restored = run_model_saving_test(model, x, tmp_path)
    assert isinstance(restored, FindingsClassifier) and restored.vit == model.vit


def test_a_keras_hub_preset_loads_into_the_flat_graph_exactly(tmp_path):
    backbone, preset = keras_hub_vit(tmp_path)
    model, record = build_findings_classifier("tiny_vit", LABELS, encoder_weights=str(preset))
    assert record.to_dict() == {"backbone": "vit", "policy": "path", "pretrained": True, "source": str(preset.resolve())}
    x = images()
    ours = keras.Model(model.inputs[0], model.get_layer("vit_ln").output)(x)
    # keras-hub's ViT presets take pixels scaled to [-1, 1]; ours scales inside the model.
    theirs = backbone(x / 127.5 - 1.0)
    np.testing.assert_allclose(np.array(ours), np.array(theirs), atol=1e-6)


def test_a_preset_of_another_architecture_or_size_is_refused(tmp_path):
    _, preset = keras_hub_vit(tmp_path, num_layers=3)
    with pytest.raises(WeightsError, match="num_layers': 3"):
        build_findings_classifier("tiny_vit", LABELS, encoder_weights=str(preset))
    with pytest.raises(WeightsError, match="not a keras-hub preset directory"):
        build_findings_classifier("tiny_vit", LABELS, encoder_weights=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="not a multiple of the ViT patch size 8"):
        build_findings_classifier("tiny_vit", LABELS, image_size=36)


def test_imagenet_vit_without_its_preset_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    with pytest.raises(WeightsError, match=IMAGENET_PRESET) as err:
        build_findings_classifier("vit_b16", LABELS)
    assert str(tmp_path / "keras" / "models" / IMAGENET_PRESET) in str(err.value) and "save_to_preset" in str(err.value)
    with pytest.warns(RuntimeWarning, match="RANDOMLY INITIALISED"):
        _, record = build_findings_classifier("tiny_vit", LABELS, encoder_weights="auto")
    assert record.pretrained is False
    # A preset where `imagenet` looks is found and loaded.
    _, preset = keras_hub_vit(tmp_path)
    target = imagenet_preset_dir()
    target.parent.mkdir(parents=True)
    preset.rename(target)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, record = build_findings_classifier("tiny_vit", LABELS, encoder_weights="imagenet")
    assert record.pretrained and record.source == str(target)


def _snapshot(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.array(w) for w in layer.weights] for layer in model.layers if layer.weights}


def test_fine_tuning_from_a_transformer_block_trains_that_block_and_no_earlier_one():
    model = tiny_vit()
    trainable = set_phase(model, "fine_tune", fine_tune_from="transformer_block_2")
    assert trainable == ["transformer_block_2", "vit_ln", "vit_patch_tokens", "token_map"]
    before = _snapshot(model)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=MaskedBinaryCrossentropy())
    y = np.array([[1, 0, -1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], "float32")
    model.fit(images(), y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    after = _snapshot(model)
    for name in ("vit_patching_and_embedding", "transformer_block_1"):
        for a, b in zip(before[name], after[name]):
            np.testing.assert_array_equal(a, b, err_msg=name)
    for name in ("transformer_block_2", "vit_ln", "findings"):
        assert any(not np.array_equal(a, b) for a, b in zip(before[name], after[name])), name


def test_gradcam_draws_a_map_per_image_from_the_patch_tokens():
    model = tiny_vit()
    x = images()
    explainer = Explainer(model, "gradcam", feature_layer=model.feature_layer)
    maps = explainer(x, [0, 1, 2, 0])
    assert maps.shape == (4, 32, 32) and maps.min() >= 0.0 and maps.max() <= 1.0
    looped = np.concatenate([explainer(x[i : i + 1], [label]) for i, label in enumerate([0, 1, 2, 0])])
    np.testing.assert_allclose(maps, looped, atol=1e-4)


def test_a_vit_run_trains_evaluates_and_captions(tmp_path):
    config = ExperimentConfig(
        name="findings_vit",
        data=DataConfig(
            name="chestxray14",
            data_dir=str(tmp_path / "data"),
            synthetic_num=40,
            synthetic_image_size=32,
            image_size=(32, 32),
            normalization="none",
            options={"labels": list(SYNTHETIC_LABELS)},
        ),
        model=ModelConfig(name="findings_classifier", preset="tiny_vit", encoder_weights="none"),
        train=TrainConfig(
            epochs=2,
            frozen_epochs=1,
            fine_tune_from="transformer_block_2",
            batch_size=16,
            learning_rate=1e-3,
            monitor="val_auc",
            early_stopping_patience=0,
            tensorboard=False,
            verbose=0,
        ),
    )
    training.fit(config, tmp_path / "run")
    env = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert [p["name"] for p in env["phases"]] == ["head", "fine_tune"]
    image = sorted((tmp_path / "data").rglob("*.png"))[0]
    (output,) = training.caption_images(tmp_path / "run", [str(image)])
    assert set(output["probabilities"]) == set(SYNTHETIC_LABELS)
