"""Paper 004's findings classifier: the graph, transfer-learning phases, the masked loss, the trainer's phases."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from medcap import training
from medcap.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from medcap.data.chestxray14 import SYNTHETIC_LABELS
from medcap.layers.masked_losses import MaskedAUC, MaskedBinaryCrossentropy, label_weights
from medcap.layers.preprocessing import PixelNormalization
from medcap.models.findings_classifier import (
    FindingsClassifier,
    build_findings_classifier,
    set_phase,
)
from medcap.testing import run_layer_test, run_model_saving_test
from medcap.weights import WeightsError

LABELS = ("Atelectasis", "Cardiomegaly", "Effusion")


def tiny(**kwargs) -> FindingsClassifier:
    keras.utils.set_random_seed(0)
    model, record = build_findings_classifier("tiny", LABELS, image_size=32, **kwargs)
    assert record is None
    return model


def images(n: int = 4, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def test_pixel_normalization_matches_keras_applications():
    from keras.applications import imagenet_utils

    x = images(2, 8)
    for mode in ("caffe", "torch"):
        expected = imagenet_utils.preprocess_input(x.copy(), mode=mode)
        np.testing.assert_allclose(PixelNormalization(f"imagenet_{mode}")(x), expected, rtol=1e-5, atol=1e-4)
    run_layer_test(PixelNormalization, {"mode": "unit"}, input_data=x, expected_output_shape=(2, 8, 8, 3), run_training_check=False)


def test_masked_bce_equals_the_hand_computation_and_ignores_masked_entries():
    y = np.array([[1, 0, -1], [0, -1, 1]], "float32")
    p = np.array([[0.8, 0.3, 0.5], [0.4, 0.9, 0.6]], "float32")
    loss = MaskedBinaryCrossentropy([2.0, 1.0, 1.0], [1.0, 1.0, 3.0])
    expected = (-2 * np.log(0.8) - np.log(0.7) - np.log(0.6) - np.log(0.6)) / 4
    assert float(loss(y, p)) == pytest.approx(expected, rel=1e-6)
    # A masked entry's prediction changes nothing.
    p2 = p.copy()
    p2[0, 2], p2[1, 1] = 0.01, 0.99
    assert float(loss(y, p2)) == pytest.approx(float(loss(y, p)), rel=1e-7)
    restored = MaskedBinaryCrossentropy.from_config(loss.get_config())
    assert float(restored(y, p)) == pytest.approx(expected, rel=1e-6)


def test_label_weights_chexnet_and_positive():
    targets = np.array([[1, 0], [0, 0], [0, -1], [0, 1]])
    w_pos, w_neg = label_weights(targets, "chexnet")
    assert w_pos == pytest.approx([3 / 4, 2 / 3]) and w_neg == pytest.approx([1 / 4, 1 / 3])
    w_pos, w_neg = label_weights(targets, "positive")
    assert w_pos == pytest.approx([3.0, 2.0]) and w_neg == [1.0, 1.0]
    assert label_weights(np.zeros((3, 1)), "chexnet") == ([1.0], [1.0])


def test_masked_auc_leaves_masked_entries_out():
    metric = MaskedAUC(1)
    metric.update_state(np.array([[1.0], [0.0], [-1.0]]), np.array([[0.9], [0.2], [0.95]]))
    assert float(metric.result()) == pytest.approx(1.0)


def test_tiny_model_shape_graph_and_keras_round_trip(tmp_path):
    model = tiny()
    x = images()
    assert model(x).shape == (4, 3) and model(x).dtype == "float32"
    maps, out = model.maps_and_outputs()(x)
    assert maps.shape == (4, 8, 8, 32)
    np.testing.assert_allclose(out, model(x), atol=1e-6)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    restored = run_model_saving_test(model, x, tmp_path)
    assert isinstance(restored, FindingsClassifier) and restored.label_names == LABELS
    np.testing.assert_allclose(restored.maps_and_outputs()(x)[0], maps, atol=1e-5)


@pytest.mark.parametrize("preset, feature_layer", [("chexnet", "relu"), ("resnet50", "conv5_block3_out"), ("efficientnet_b0", "top_activation")])
def test_imagenet_backbones_are_one_flat_graph(preset, feature_layer):
    model, record = build_findings_classifier(preset, LABELS, encoder_weights="none", image_size=32)
    assert record.to_dict()["pretrained"] is False
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.feature_layer == feature_layer
    # The last conv block is reachable: one model call gives maps and outputs, and gradients flow.
    import tensorflow as tf

    probe = model.maps_and_outputs()
    with tf.GradientTape() as tape:
        maps, out = probe(images(1))
        score = out[:, 1]
    assert maps.shape[-1] > 0 and tape.gradient(score, maps) is not None


def test_paper_preset_without_imagenet_file_says_where_to_put_it(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(WeightsError, match="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5") as err:
        build_findings_classifier("chexnet", LABELS)
    assert str(tmp_path / "keras" / "models") in str(err.value)


def _one_step(model: FindingsClassifier, freeze_batchnorm: bool = True) -> None:
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=MaskedBinaryCrossentropy())
    y = np.array([[1, 0, -1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], "float32")
    model.fit(images(), y, epochs=1, batch_size=4, verbose=0, shuffle=False)


def _snapshot(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.array(w) for w in layer.weights] for layer in model.layers if layer.weights}


def test_head_phase_leaves_every_backbone_weight_bitwise_unchanged():
    model = tiny()
    trainable = set_phase(model, "head", freeze_batchnorm=False)
    assert trainable == []
    before = _snapshot(model)
    _one_step(model)
    after = _snapshot(model)
    for layer in model.backbone_layers:
        for a, b in zip(before.get(layer.name, []), after.get(layer.name, [])):
            np.testing.assert_array_equal(a, b, err_msg=layer.name)  # batch norm statistics included
    assert not np.array_equal(before["findings"][0], after["findings"][0])


def test_fine_tune_phase_trains_from_the_configured_block_only():
    model = tiny()
    trainable = set_phase(model, "fine_tune", fine_tune_from="block3", freeze_batchnorm=True)
    assert trainable == ["block3_conv", "block3_relu"]
    before = _snapshot(model)
    _one_step(model)
    after = _snapshot(model)
    for name in ("block1_conv", "block1_bn", "block2_conv", "block2_bn", "block3_bn"):
        for a, b in zip(before[name], after[name]):
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert not np.array_equal(before["block3_conv"][0], after["block3_conv"][0])
    assert not np.array_equal(before["findings"][0], after["findings"][0])
    with pytest.raises(ValueError, match="fine_tune_from='conv9': no tiny_cnn layer starts with it"):
        set_phase(model, "fine_tune", fine_tune_from="conv9")


def test_a_phase_survives_the_keras_round_trip(tmp_path):
    model = tiny()
    set_phase(model, "fine_tune", fine_tune_from="block3", freeze_batchnorm=True)
    _one_step(model)
    path = tmp_path / "phase.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert [layer.name for layer in restored.layers if layer.trainable and layer.weights] == [
        layer.name for layer in model.layers if layer.trainable and layer.weights
    ]
    assert len(restored.optimizer.variables) == len(model.optimizer.variables)


def test_random_backbone_trains_its_batch_norm_in_the_all_phase():
    model = tiny()
    set_phase(model, "all", freeze_batchnorm=False)
    before = _snapshot(model)
    _one_step(model)
    after = _snapshot(model)
    assert not np.array_equal(before["block1_bn"][2], after["block1_bn"][2])  # moving mean moved


def findings_config(tmp_path: Path, *, epochs: int = 3, frozen_epochs: int = 1) -> ExperimentConfig:
    return ExperimentConfig(
        name="findings_phases",
        data=DataConfig(
            name="chestxray14",
            data_dir=str(tmp_path / "data"),
            synthetic_num=60,
            synthetic_image_size=32,
            image_size=(32, 32),
            normalization="none",
            augment=True,
            options={"labels": list(SYNTHETIC_LABELS)},
        ),
        model=ModelConfig(name="findings_classifier", preset="tiny", encoder_weights="none"),
        train=TrainConfig(
            epochs=epochs,
            frozen_epochs=frozen_epochs,
            fine_tune_from="block2",
            batch_size=16,
            learning_rate=3e-3,
            monitor="val_auc",
            early_stopping_patience=0,
            tensorboard=False,
            verbose=0,
        ),
    )


class _Interrupt(Exception):
    pass


class _KillAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Interrupt(f"killed after epoch {epoch + 1}")


def _weights(run: Path) -> list[np.ndarray]:
    return [np.array(w) for w in keras.saving.load_model(run / "model.keras").weights]


@pytest.mark.parametrize("killed_after, resumed_epochs", [(0, [1, 2]), (1, [2])])
def test_two_phase_run_resumes_exactly(tmp_path, killed_after, resumed_epochs):
    """Head phase (epoch 0), then fine-tuning (epochs 1-2) at a tenth of the rate. A run
    killed after the head phase's last epoch (before it was marked finished), or inside
    the fine-tune phase, resumes where it stopped and ends bitwise equal to an
    uninterrupted run, best-checkpoint choice included."""
    config = findings_config(tmp_path)
    reference = training.fit(config, tmp_path / "reference")
    env = json.loads((tmp_path / "reference" / "environment.json").read_text())
    assert env["phases"] == [
        {"name": "head", "epochs": 1, "learning_rate": 3e-3},
        {"name": "fine_tune", "epochs": 2, "learning_rate": pytest.approx(3e-4)},
    ]
    assert not (tmp_path / "reference" / "phases").exists()
    rows = (tmp_path / "reference" / "history.csv").read_text().strip().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["0", "1", "2"]

    run = tmp_path / "resumed"
    with pytest.raises(_Interrupt):
        training.fit(config, run, callbacks=[_KillAfterEpoch(killed_after)])
    assert (run / "phases" / "head.weights.h5").is_file() == (killed_after == 1)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    resumed = training.fit(config, run, callbacks=[Record()])
    assert seen == resumed_epochs
    assert resumed["metrics"] == reference["metrics"]
    for a, b in zip(_weights(tmp_path / "reference"), _weights(run)):
        np.testing.assert_array_equal(a, b)


def test_head_phase_of_a_run_keeps_the_backbone(tmp_path):
    config = findings_config(tmp_path, epochs=1, frozen_epochs=1)
    keras.utils.set_random_seed(config.train.seed)
    fresh, _ = build_findings_classifier("tiny", SYNTHETIC_LABELS, image_size=32)
    training.fit(config, tmp_path / "run")
    trained = keras.saving.load_model(tmp_path / "run" / "model.keras")
    for layer in fresh.backbone_layers:
        for a, b in zip(layer.weights, trained.get_layer(layer.name).weights):
            np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=layer.name)
    assert not np.array_equal(np.array(fresh.get_layer("findings").weights[0]), np.array(trained.get_layer("findings").weights[0]))


def test_caption_lists_findings_with_probabilities(tmp_path):
    config = findings_config(tmp_path, epochs=1, frozen_epochs=0)
    training.fit(config, tmp_path / "run")
    image = sorted((tmp_path / "data").rglob("*.png"))[0]
    (output,) = training.caption_images(tmp_path / "run", [str(image)])
    assert set(output["probabilities"]) == set(SYNTHETIC_LABELS)
    assert all(0.0 <= p <= 1.0 for p in output["probabilities"].values())
    # The thresholds are the ones evaluation chose on validation and saved in the workdir.
    saved = json.loads((tmp_path / "run" / "thresholds.json").read_text())["thresholds"]
    assert output["thresholds"] == pytest.approx(saved)
    ranked = sorted(output["probabilities"].items(), key=lambda kv: -kv[1])
    assert output["findings"] == [n for n, p in ranked if p >= saved[n]]
    assert output["text"].startswith(output["findings"][0]) if output["findings"] else "no finding" in output["text"]


def test_other_tasks_refuse_a_frozen_phase(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from toy_task import toy_config

    config = toy_config(tmp_path, epochs=2)
    config.train.frozen_epochs = 1
    from medcap.config import ConfigError

    with pytest.raises(ConfigError, match="no frozen-backbone phase"):
        training.fit(config, tmp_path / "run")


def test_imagenet_resnet50_spec_matches_keras():
    from medcap.weights import backbone_spec

    spec = backbone_spec("resnet50")
    assert spec.notop_file == "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert spec.pixel_normalization == "imagenet_caffe"
    assert os.path.basename(spec.notop_origin) == spec.notop_file


def test_transfer_from_a_findings_run_copies_the_backbone_not_the_head(tmp_path):
    source = tiny()
    _one_step(source)
    source.save(tmp_path / "source.keras")
    target, record = build_findings_classifier("tiny", ("X", "Y"), image_size=32, encoder_weights=str(tmp_path / "source.keras"))
    assert record.pretrained and "source.keras" in record.source and "Atelectasis" in record.source
    for layer in target.backbone_layers:
        for a, b in zip(layer.get_weights(), source.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert target.get_layer("findings").get_weights()[0].shape == (32, 2)
    with pytest.raises(WeightsError, match="does not exist"):
        build_findings_classifier("tiny", ("X",), image_size=32, encoder_weights=str(tmp_path / "missing.keras"))
    with pytest.raises(ValueError, match="has no ImageNet weights"):
        build_findings_classifier("tiny", ("X",), image_size=32, encoder_weights="imagenet")


def test_ablation_variants_differ_only_in_initialisation_and_trainable_depth():
    from medcap.models.findings_ablation import VARIANTS, variant_overrides

    sets = {v: variant_overrides(v, pretrained="/runs/source/model.keras", backbone="densenet121", epochs=20, frozen_epochs=2) for v in VARIANTS}
    assert sets["pretrained_head_only"] == [
        "model.encoder_weights=/runs/source/model.keras",
        "train.epochs=20",
        "train.frozen_epochs=20",
    ]
    assert "train.fine_tune_from=conv5_block1" in sets["pretrained_fine_tune_top"]
    assert "train.fine_tune_from=conv4_block1" in sets["pretrained_fine_tune_deep"]
    assert "train.fine_tune_from=" in sets["pretrained_fine_tune_all"]
    assert "model.encoder_weights=none" in sets["scratch"] and "train.frozen_epochs=0" in sets["scratch"]
