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
    with pytest.raises(ValueError, match="densenet121, efficientnetb0, resnet50, vgg16"):
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


def _legacy_h5(model, path):
    """Writes `model`'s weights the way Keras' ImageNet release files are
    written (the legacy HDF5 layout that `load_weights` matches by layer order)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


def _built_the_imagenet_way(backbone, weights_file, shape):
    """`keras.applications.<Constructor>(weights="imagenet")` with Keras' download
    answered by `weights_file`: the architecture Keras gives ImageNet weights."""
    import importlib
    from unittest import mock

    import keras

    constructor = mw.backbone_spec(backbone).constructor
    module = importlib.import_module(getattr(keras.applications, constructor).__module__)
    with mock.patch.object(module.file_utils, "get_file", return_value=str(weights_file)):
        return getattr(keras.applications, constructor)(weights="imagenet", include_top=False, input_shape=shape)


@pytest.mark.parametrize("backbone", sorted(mw.BACKBONES))
def test_every_backbone_with_a_weights_file_is_the_imagenet_model(backbone, tmp_path, keras_home):
    """Keras adds EfficientNet's last stem layer, Rescaling(1/sqrt(stddev)),
    only for weights="imagenet"; built with weights=None and the file loaded
    afterwards, the network saw its inputs about 2x too small. Whatever the
    source (a path, the Keras cache, a later load_weights), our backbone
    must give the same output as the ImageNet-built Keras model on the same
    image, for every backbone we know."""
    import keras

    shape = (32, 32, 3)
    keras.utils.set_random_seed(3)
    donor = getattr(keras.applications, mw.backbone_spec(backbone).constructor)(
        weights=None, include_top=False, input_shape=shape
    )
    weights_file = _legacy_h5(donor, tmp_path / mw.backbone_spec(backbone).file(include_top=False))
    reference = _built_the_imagenet_way(backbone, weights_file, shape)
    image = np.random.default_rng(0).uniform(0, 255, (2, *shape)).astype("float32")
    expected = reference.predict(image, verbose=0)

    from_path, _ = mw.build_backbone(backbone, str(weights_file), include_top=False, input_shape=shape)
    cached = keras_home / "models" / weights_file.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(weights_file.read_bytes())
    from_cache, record = mw.build_backbone(backbone, "auto", include_top=False, input_shape=shape)
    assert record.pretrained and record.source == str(cached)
    loaded_later, _ = mw.build_backbone(backbone, "none", include_top=False, input_shape=shape)
    loaded_later.load_weights(str(weights_file))
    for model in (from_path, from_cache, loaded_later):
        assert [type(layer).__name__ for layer in model.layers] == [type(layer).__name__ for layer in reference.layers]
        np.testing.assert_allclose(model.predict(image, verbose=0), expected, rtol=1e-5, atol=1e-7)


def test_efficientnet_built_without_the_stem_layer_differs_by_the_stem_scale(tmp_path):
    """What the comparison above guards against: Keras' weights=<path> build of
    EfficientNetB0 lacks the stem layer, and its first convolution sees
    inputs scaled by sqrt(stddev), about 0.47 (the test above has teeth)."""
    import keras

    shape = (32, 32, 3)
    keras.utils.set_random_seed(3)
    donor = keras.applications.EfficientNetB0(weights=None, include_top=False, input_shape=shape)
    weights_file = _legacy_h5(donor, tmp_path / "efficientnetb0_notop.h5")
    plain = keras.applications.EfficientNetB0(weights=str(weights_file), include_top=False, input_shape=shape)
    ours, _ = mw.build_backbone("efficientnetb0", str(weights_file), include_top=False, input_shape=shape)
    image = np.random.default_rng(0).uniform(0, 255, (2, *shape)).astype("float32")

    def stem_input(model):
        return keras.Model(model.input, model.get_layer("stem_conv_pad").input).predict(image, verbose=0)

    ratio = stem_input(plain) / stem_input(ours)
    np.testing.assert_allclose(ratio.mean(axis=(0, 1, 2)), np.sqrt([0.229, 0.224, 0.225]), rtol=1e-4)


def test_pretrained_weights_require_their_pixel_normalization():
    pretrained = mw.WeightsRecord("vgg16", "auto", True, "/cache/vgg16.h5", "/cache/vgg16.h5")
    random = mw.WeightsRecord("vgg16", "none", False, "random init (weights=none)")
    mw.check_pixel_normalization("vgg16", "imagenet_caffe", pretrained)
    mw.check_pixel_normalization("vgg16", "unit", random)
    with pytest.raises(ValueError, match=r"vgg16 weights: its ImageNet weights expect normalization='imagenet_caffe'"):
        mw.check_pixel_normalization("vgg16", "imagenet_torch", pretrained)
    with pytest.raises(ValueError, match="expect normalization='imagenet_torch'"):
        mw.check_pixel_normalization("densenet121", "imagenet_caffe", {"pretrained": True})
    with pytest.raises(ValueError, match="expect normalization='none'"):
        mw.check_pixel_normalization("efficientnetb0", "unit", {"pretrained": True})
