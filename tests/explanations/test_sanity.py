"""The randomisation sanity check's parts: the copy keeps what it should, correlations by definition."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from medcap.explanations.sanity import layers_from, randomised_copy, rank_correlations
from medcap.models.findings_classifier import build_findings_classifier


def test_randomised_copy_reinitialises_only_the_named_layers():
    keras.utils.set_random_seed(0)
    model, _ = build_findings_classifier("tiny", ("a", "b"), image_size=32)
    randomise = layers_from(model, "block3")
    assert randomise == ["block3_conv", "block3_bn", "findings"]
    copy = randomised_copy(model, randomise, seed=7)
    for layer in model.layers:
        if not layer.weights:
            continue
        same = all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), copy.get_layer(layer.name).get_weights()))
        if layer.name in ("findings", "block3_conv"):
            assert not same, layer.name
        elif layer.name not in randomise:
            assert same, layer.name


def test_rank_correlations():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(2, 8, 8))
    assert rank_correlations(a, a) == pytest.approx([1.0, 1.0])
    assert rank_correlations(a, -a) == pytest.approx([-1.0, -1.0])
    assert np.isnan(rank_correlations(a[:1], np.zeros((1, 8, 8)))[0])
