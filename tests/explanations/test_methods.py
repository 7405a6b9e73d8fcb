"""Saliency maps: Grad-CAM against a hand computation, integrated gradients against PAIR's,
batched maps equal per-image maps, and every method runs on the findings classifier."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from medcap.explanations.methods import (
    METHODS,
    Explainer,
    integrated_gradients,
    normalize_maps,
    peaks,
)


def toy_model(seed: int = 0) -> keras.Model:
    """Conv(4 filters, 3x3, same) -> GAP -> Dense(2, sigmoid): Grad-CAM has a closed form."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3), name="image")
    maps = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(maps)
    outputs = keras.layers.Dense(2, activation="sigmoid", name="out")(pooled)
    return keras.Model(inputs, outputs)


def images(n: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, 8, 8, 3)).astype("float32")


def hand_gradcam(model: keras.Model, x: np.ndarray, labels: list[int]) -> np.ndarray:
    """dS/dA_k(i, j) = sigma'(z) W[k, c] / (H W) for S = sigmoid(z), z = W^T GAP(A) + b, so
    alpha_k = mean_ij dS/dA_k = sigma'(z) W[k, c] / (H W) and the map is ReLU(sum_k alpha_k A_k)."""
    activations = keras.Model(model.inputs, model.get_layer("conv").output)(x).numpy().astype(np.float64)
    kernel, bias = (w.astype(np.float64) for w in model.get_layer("out").get_weights())
    cams = []
    for a, c in zip(activations, labels):
        z = a.mean(axis=(0, 1)) @ kernel[:, c] + bias[c]
        s = 1 / (1 + np.exp(-z))
        alpha = s * (1 - s) * kernel[:, c] / (a.shape[0] * a.shape[1])
        cams.append(np.maximum((a * alpha).sum(axis=-1), 0.0))
    return np.stack(cams)


def test_gradcam_matches_the_hand_computation():
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.scores import CategoricalScore

    model, x, labels = toy_model(), images(), [0, 1, 1]
    expected = hand_gradcam(model, x, labels)
    raw = Gradcam(model, clone=False)(CategoricalScore(labels), x, penultimate_layer="conv", normalize_cam=False, expand_cam=False)
    np.testing.assert_allclose(np.asarray(raw), expected, atol=1e-5, rtol=1e-4)
    ours = Explainer(model, "gradcam", feature_layer="conv")(x, labels)
    np.testing.assert_allclose(ours, normalize_maps(expected), atol=1e-5)


def test_integrated_gradients_equal_pair_saliency():
    import saliency.core as pair
    import tensorflow as tf

    model, x, labels = toy_model(1), images(2, seed=3) * 255, [1, 0]

    def call_model(batch, call_model_args=None, expected_keys=None):
        batch = tf.constant(batch, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(batch)
            out = model(batch)[:, call_model_args["class"]]
        return {pair.INPUT_OUTPUT_GRADIENTS: tape.gradient(out, batch).numpy()}

    ours = integrated_gradients(model, x, labels, steps=16)
    for i, label in enumerate(labels):
        reference = pair.IntegratedGradients().GetMask(
            x[i], call_model, {"class": label}, x_steps=16, x_baseline=np.zeros_like(x[i]), batch_size=16
        )
        np.testing.assert_allclose(ours[i], reference, rtol=1e-4, atol=1e-6 * np.abs(reference).max())


@pytest.mark.parametrize("method", METHODS)
def test_batched_maps_equal_per_image_maps(method):
    from medcap.models.findings_classifier import build_findings_classifier

    keras.utils.set_random_seed(0)
    model, _ = build_findings_classifier("tiny", ("a", "b", "c"), image_size=32)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    labels = [0, 2, 1, 2]
    explainer = Explainer(model, method, feature_layer=model.feature_layer, smooth_samples=4, ig_steps=8, scorecam_channels=8)
    if method == "smoothgrad":
        keras.utils.set_random_seed(5)
    batched = explainer(x, labels)
    assert batched.shape == (4, 32, 32) and batched.min() >= 0 and batched.max() <= 1
    if method == "smoothgrad":
        return  # noisy copies are drawn per call: batch and loop see different noise
    looped = np.concatenate([explainer(x[i : i + 1], labels[i : i + 1]) for i in range(4)])
    np.testing.assert_allclose(batched, looped, atol=1e-4)


def test_peaks_and_normalisation():
    maps = np.zeros((2, 4, 5))
    maps[0, 1, 3] = 2.0
    maps[1] = 7.0
    normalized = normalize_maps(maps)
    assert normalized[0].max() == 1.0 and normalized[1].max() == 0.0
    first = peaks(normalized)[0]
    assert (first["row"], first["col"]) == (1, 3) and first["y"] == pytest.approx(1.5 / 4) and first["x"] == pytest.approx(3.5 / 5)


def test_score_cam_follows_its_definition():
    from medcap.explanations.methods import score_cam

    model, x, labels = toy_model(2), images(2, seed=4) * 255, [0, 1]
    maps_model = keras.Model(model.inputs[0], [model.get_layer("conv").output, model.outputs[0]])
    activations = maps_model(x)[0].numpy().astype(np.float64)
    expected = np.zeros((2, 8, 8))
    for i, label in enumerate(labels):
        for k in range(activations.shape[-1]):
            a = activations[i, :, :, k]
            mask = (a - a.min()) / (a.max() - a.min()) if a.max() > a.min() else np.zeros_like(a)
            weight = float(model(x[i : i + 1] * mask[None, :, :, None].astype("float32"))[0, label])
            expected[i] += weight * a
    np.testing.assert_allclose(score_cam(maps_model, model, x, labels), np.maximum(expected, 0), rtol=1e-4, atol=1e-5)
