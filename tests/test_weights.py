"""Backbone weights policy: auto | imagenet | none | path (medcap.weights)."""

from __future__ import annotations

import numpy as np
import pytest

from medcap import weights as mw


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def test_cache_path_follows_keras_home(keras_home):
    path = mw.cached_weights_path("vgg16")
    assert path == keras_home / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    assert mw.cached_weights_path("densenet121", include_top=False).name == (
        "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    assert mw.cached_weights_path("efficientnetb0").name == "efficientnetb0.h5"


def test_auto_without_cache_falls_back_to_random_and_says_so(keras_home, capsys):
    with pytest.warns(RuntimeWarning, match="RANDOMLY INITIALISED"):
        record = mw.resolve_weights("vgg16", "auto")
    assert record.to_dict() == {
        "backbone": "vgg16",
        "policy": "auto",
        "pretrained": False,
        "source": f"random init (no cached ImageNet weights at {keras_home / 'models' / 'vgg16_weights_tf_dim_ordering_tf_kernels.h5'})",
    }
    assert record.keras_weights is None
    assert "pretrained: false" in capsys.readouterr().err


def test_auto_uses_the_cached_file(keras_home):
    cached = keras_home / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not empty")
    record = mw.resolve_weights("vgg16", "auto")
    assert record.pretrained is True
    assert record.source == str(cached)
    assert record.keras_weights == str(cached)


def test_imagenet_fails_fast_and_clearly_offline(keras_home):
    with pytest.raises(mw.WeightsError) as err:
        mw.resolve_weights("vgg16", "imagenet")
    message = str(err.value)
    assert "not cached at" in message and "cannot be reached" in message
    assert str(keras_home / "models") in message
    assert not (keras_home / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels.h5").exists()


def test_imagenet_probe_has_a_timeout(monkeypatch, keras_home):
    """Offline machines that drop packets must not hang: the probe passes a timeout."""
    seen = {}

    def fake_connection(address, timeout=None):
        seen["timeout"] = timeout
        raise OSError("unreachable")

    monkeypatch.setattr(mw.socket, "create_connection", fake_connection)
    with pytest.raises(mw.WeightsError):
        mw.resolve_weights("densenet121", "imagenet", include_top=False)
    assert seen["timeout"] == mw.PROBE_TIMEOUT_S


def test_none_and_missing_path(keras_home, tmp_path):
    record = mw.resolve_weights("vgg16", "none")
    assert record.to_dict() == {"backbone": "vgg16", "policy": "none", "pretrained": False, "source": "random init (weights=none)"}
    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(mw.WeightsError, match="nope.weights.h5 does not exist"):
        mw.resolve_weights("vgg16", str(missing))


def test_unknown_backbone_lists_valid_ones():
    with pytest.raises(ValueError, match="densenet121, efficientnetb0, vgg16"):
        mw.resolve_weights("resnet9000", "none")


def test_path_policy_loads_a_saved_weights_file(tmp_path, keras_home):
    """A user-supplied file is what the backbone ends up with."""
    source, record = mw.build_backbone("vgg16", "none", input_shape=(32, 32, 3), classes=3)
    assert record.pretrained is False
    path = tmp_path / "vgg16.weights.h5"
    source.save_weights(path)
    loaded, record = mw.build_backbone("vgg16", str(path), input_shape=(32, 32, 3), classes=3)
    assert record.to_dict() == {"backbone": "vgg16", "policy": "path", "pretrained": True, "source": str(path.resolve())}
    for a, b in zip(source.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    fresh, _ = mw.build_backbone("vgg16", "none", input_shape=(32, 32, 3), classes=3)
    assert not np.array_equal(np.asarray(fresh.weights[0]), np.asarray(source.weights[0]))
