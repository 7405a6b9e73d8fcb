"""Backbone features: VGG16 fc2, one cache file per split, keyed invalidation, CLI."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcap.data.base import DataError
from medcap.features import FeatureExtractor, FeatureSpec, extract_features

# Fast path: a random VGG16 accepts 32x32 inputs and still ends in 4096-d fc1/fc2.
SPEC = FeatureSpec(image_size=(32, 32), weights="none", seed=3)


def _examples(directory: Path, count: int, *, offset: int = 0) -> list[dict]:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(offset)
    examples = []
    for i in range(offset, offset + count):
        path = directory / f"img{i}.png"
        size = (20 + 7 * i, 30 + 3 * i)  # any size: the pipeline resizes
        Image.fromarray(rng.integers(0, 255, size=size, dtype=np.uint8)).save(path)
        examples.append({"id": f"ex{i}", "image": str(path), "report_clean": "x"})
    return examples


@pytest.fixture(scope="module")
def extractor():
    return FeatureExtractor(SPEC)


def test_fc2_features_are_cached_per_split(tmp_path, extractor):
    examples = _examples(tmp_path / "images", 5)
    cache = tmp_path / "cache"
    first = extract_features(examples, split="train", cache_dir=cache, extractor=extractor, batch_size=2, progress=False)
    assert first.features.shape == (5, 4096) and first.features.dtype == np.float16
    assert first.ids == [e["id"] for e in examples]
    assert not first.from_cache
    assert sorted(p.name for p in cache.iterdir()) == ["train.json", "train.npy"]
    meta = json.loads((cache / "train.json").read_text())
    assert meta["key"]["layer"] == "fc2" and meta["key"]["image_size"] == [32, 32]
    assert meta["weights"] == {"backbone": "vgg16", "policy": "none", "pretrained": False, "source": "random init (weights=none)"}

    again = extract_features(examples, split="train", cache_dir=cache, extractor=extractor, progress=False)
    assert again.from_cache
    np.testing.assert_array_equal(again.features, first.features)
    # Batch size does not change the numbers; the rows follow the examples.
    direct = extractor([e["image"] for e in examples[::-1]], batch_size=4, progress=False)
    np.testing.assert_allclose(direct[::-1], first.features.astype(np.float32), rtol=1e-2, atol=1e-4)
    assert np.ptp(first.features.astype(np.float32), axis=0).max() > 0  # images differ, so do features


def test_cache_is_invalidated_by_size_weights_split_and_examples(tmp_path, extractor):
    examples = _examples(tmp_path / "images", 3)
    cache = tmp_path / "cache"
    base = extract_features(examples, split="val", cache_dir=cache, extractor=extractor, progress=False)
    assert not base.from_cache
    bigger = extract_features(
        examples, split="val", cache_dir=cache, spec=FeatureSpec(image_size=(40, 40), weights="none", seed=3), progress=False
    )
    assert not bigger.from_cache
    reseeded = extract_features(
        examples, split="val", cache_dir=cache, spec=FeatureSpec(image_size=(40, 40), weights="none", seed=4), progress=False
    )
    assert not reseeded.from_cache
    assert not np.array_equal(reseeded.features, bigger.features)
    other_split = extract_features(examples, split="test", cache_dir=cache, extractor=extractor, progress=False)
    assert not other_split.from_cache and (cache / "test.npy").is_file()
    fewer = extract_features(examples[:2], split="test", cache_dir=cache, extractor=extractor, progress=False)
    assert not fewer.from_cache and fewer.features.shape == (2, 4096)


def test_random_backbone_is_seeded_without_touching_global_rng(tmp_path):
    examples = _examples(tmp_path / "images", 2)
    random.seed(123)
    expected_next = random.random()
    random.seed(123)
    a = FeatureExtractor(SPEC)([e["image"] for e in examples], progress=False)
    assert random.random() == expected_next  # python's global sequence is untouched
    b = FeatureExtractor(SPEC)([e["image"] for e in examples], progress=False)
    np.testing.assert_array_equal(a, b)


def test_imagenet_weights_need_the_native_size(tmp_path, monkeypatch):
    cached = tmp_path / "kh" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    with pytest.raises(ValueError, match=r"needs image_size=\(224, 224\)"):
        FeatureExtractor(FeatureSpec(image_size=(32, 32), weights="auto"))


def test_unreadable_image_is_named(tmp_path, extractor):
    examples = _examples(tmp_path / "images", 3)
    Path(examples[1]["image"]).write_bytes(b"not a png")
    with pytest.raises(DataError) as err:
        extract_features(examples, split="train", cache_dir=None, extractor=extractor, batch_size=2, progress=False)
    assert err.value.file == examples[1]["image"]
    assert err.value.record == "ex1" and err.value.field == "image"


def test_cli_module_does_not_import_tensorflow():
    code = "import sys, medcap.features, medcap.weights; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_extracts_every_split_and_refuses_imagenet_offline(tmp_path, monkeypatch, capsys):
    from medcap import cli
    from medcap.cli import main

    # Only the command groups this test needs (others may not be importable yet).
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("medcap.cli", "medcap.features"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    out = tmp_path / "features"
    common = ["features", "extract", "--backbone", "vgg16", "--dataset", "medicat", "--variant", "model80",
              "--root", str(tmp_path / "data"), "--synthetic-num", "12", "--out", str(out)]
    assert main([*common, "--weights", "none", "--image-size", "32", "32", "--batch-size", "8"]) == 0
    summary = json.loads((out / "extract.json").read_text())
    assert summary["weights"]["pretrained"] is False
    assert sum(s["examples"] for s in summary["splits"].values()) == 12
    for split, info in summary["splits"].items():
        assert info["shape"] == [info["examples"], 4096] and not info["cached"]
        assert np.load(out / f"{split}.npy").shape == (info["examples"], 4096)
    assert "pretrained: false" in capsys.readouterr().out
    # A second run reads the cache.
    assert main([*common, "--weights", "none", "--image-size", "32", "32"]) == 0
    assert all(s["cached"] for s in json.loads((out / "extract.json").read_text())["splits"].values())
    # ImageNet weights offline: one-line error, exit status 2, nothing hangs.
    assert main([*common, "--weights", "imagenet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medcap: error: ImageNet weights for vgg16 are not cached") and len(err.strip().splitlines()) == 1


def test_default_cache_dir_follows_the_synthetic_tree_key(tmp_path):
    from medcap.config import DataConfig
    from medcap.features import default_cache_dir

    base = DataConfig(name="medicat", variant="model80", data_dir=str(tmp_path), synthetic_num=600, synthetic_seed=1)
    small = DataConfig(**{**base.__dict__, "synthetic_image_size": 64})
    assert default_cache_dir(base) == tmp_path / "features" / "medicat-model80-synthetic-n600-s1" / "vgg16"
    assert default_cache_dir(small) == tmp_path / "features" / "medicat-model80-synthetic-n600-s1-px64" / "vgg16"
    real = DataConfig(**{**base.__dict__, "source_dir": str(tmp_path / "medicat")})
    assert "synthetic" not in default_cache_dir(real).parent.name


_MIRRORED_EXTRACT = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from medcap import cli
cli.COMMAND_MODULES = ("medcap.cli", "medcap.features")
common = ["features", "extract", "--backbone", "vgg16", "--dataset", "medicat", "--variant", "model80", "--root", sys.argv[1],
          "--synthetic-num", "13", "--weights", "none", "--image-size", "32", "32", "--batch-size", "4"]
for strategy in ("default", "mirrored"):
    assert cli.main([*common, "--strategy", strategy, "--out", os.path.join(sys.argv[1], strategy)]) == 0
"""


def test_extraction_split_between_two_replicas_writes_the_same_features(tmp_path):
    """`medcap features extract --strategy mirrored` over two logical CPUs
    (batches of 4 split 2 + 2, the last of each split uneven) writes the
    files a single device writes, rows in the same order. The files hold
    float16: float32 round-off between batch shapes can move a value to the
    neighbouring float16, one step, 2^-10 relative at most (measured: 1 in
    45,056 to 2 in 1,000 values, by up to 5e-4 relative), which is the tolerance."""
    proc = subprocess.run([sys.executable, "-c", _MIRRORED_EXTRACT, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = json.loads((tmp_path / "default" / "extract.json").read_text())
    mirrored = json.loads((tmp_path / "mirrored" / "extract.json").read_text())
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert sorted(single["splits"]) == sorted(mirrored["splits"])
    for split in single["splits"]:
        a, b = np.load(tmp_path / "default" / f"{split}.npy"), np.load(tmp_path / "mirrored" / f"{split}.npy")
        assert a.shape == b.shape and a.shape[0] == single["splits"][split]["examples"]
        np.testing.assert_allclose(b.astype(np.float32), a.astype(np.float32), rtol=2**-10, atol=1e-7)
