"""TFDS builders: build tiny synthetic datasets, load them back, compare with the readers."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from medcap.data import tfds_builders as tb
from medcap.data.base import COMMON_KEYS, DataError
from medcap.data.iu_xray import IU_XRAY
from medcap.data.medicat import MEDICAT
from medcap.registry import DATASETS


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    return {
        "iu_xray": IU_XRAY.synthesize(root / "iu", num=24, seed=0, image_size=64),
        "medicat": MEDICAT.synthesize(root / "medicat", num=30, seed=0, image_size=64),
    }


def _by_id(dataset) -> dict[str, dict]:
    return {ex["id"].decode(): ex for ex in tfds.as_numpy(dataset)}


def test_config_names():
    assert tb.config_name("model80") == "model80"
    assert tb.config_name("r2gen", split_seed=3, skip_invalid=True, max_image_size=128) == "r2gen_seed3_skipinvalid_max128"
    a = tb.config_name("balanced_10k", options={"uncertain_label": 1})
    assert a.startswith("balanced_10k_opt") and a != tb.config_name("balanced_10k", options={"uncertain_label": 0})
    assert [c.name for c in tb.MedcapIuXray.BUILDER_CONFIGS] == ["r2gen", "random_721"]
    assert tb.MedcapMedicat.name == "medcap_medicat"
    with pytest.raises(DataError, match="unknown medicat config 'model90'"):
        tb.make_builder("medicat", variant="model90")
    with pytest.raises(DataError, match="no TFDS builder for dataset 'padchest'"):
        tb.make_builder("padchest")


def test_iu_xray_build_round_trip(trees, tmp_path: Path):
    builder = tb.prepare(tb.make_builder("iu_xray", data_dir=tmp_path), trees["iu_xray"])
    expected = IU_XRAY.read(trees["iu_xray"])
    assert {name: info.num_examples for name, info in builder.info.splits.items()} == expected.counts()
    assert builder.info.metadata["read_info"]["format"] == "r2gen"
    assert builder.info.metadata["skipped"] == []
    # Loads back by name, as any TFDS dataset.
    loaded = tfds.load("medcap_iu_xray/r2gen", data_dir=str(tmp_path), split="test")
    examples = _by_id(loaded)
    assert set(next(iter(examples.values()))) == set(COMMON_KEYS) | {"image_1"}
    for reference in expected.splits["test"]:
        got = examples[reference["id"]]
        assert got["report"].decode() == reference["report"]
        assert got["report_clean"].decode() == reference["report_clean"]
        assert got["patient_id"].decode() == reference["patient_id"]
        for key, path in zip(("image", "image_1"), reference["image"]):
            pixels = np.asarray(Image.open(path))
            assert got[key].shape == pixels.shape + (1,)
            np.testing.assert_array_equal(got[key][..., 0], pixels)


def test_medicat_custom_config_resized_rgb(trees, tmp_path: Path):
    builder = tb.make_builder("medicat", variant="model70", data_dir=tmp_path, split_seed=1, max_image_size=32)
    assert builder.builder_config.name == "model70_seed1_max32"
    tb.prepare(builder, trees["medicat"])
    expected = MEDICAT.read(trees["medicat"], variant="model70", split_seed=1)
    assert {name: info.num_examples for name, info in builder.info.splits.items()} == expected.counts()
    restored = tfds.builder_from_directory(str(Path(builder.data_dir)))
    assert restored.info.metadata["read_info"]["filtered_long_captions"] == 1
    examples = _by_id(restored.as_dataset(split="train"))
    assert set(examples) == {e["id"] for e in expected.splits["train"]}
    for example in examples.values():
        assert example["image"].shape == (32, 32, 3)
        np.testing.assert_array_equal(example["image"][..., 0], example["image"][..., 2])  # grey figure as RGB


def test_broken_image_fails_the_build_unless_skipped(trees, tmp_path: Path):
    source = Path(shutil.copytree(trees["iu_xray"], tmp_path / "broken"))
    victim = sorted((source / "images").glob("*/1.png"))[3]
    victim.write_bytes(victim.read_bytes()[:120])
    with pytest.raises(DataError) as info:
        tb.prepare(tb.make_builder("iu_xray", data_dir=tmp_path / "a"), source)
    assert info.value.field == "image_path[1]" and "unreadable image" in str(info.value)
    assert info.value.file == str(source.resolve() / "annotation.json")
    builder = tb.prepare(tb.make_builder("iu_xray", data_dir=tmp_path / "b", skip_invalid=True), source)
    total = sum(info.num_examples for info in builder.info.splits.values())
    assert total == sum(IU_XRAY.read(trees["iu_xray"]).counts().values()) - 1
    assert len(builder.read_result.skipped) == 1
    assert builder.info.metadata["skipped"][0]["field"] == "image_path[1]"
    with pytest.raises(DataError, match="does not exist or is empty"):
        tb.prepare(tb.make_builder("iu_xray", data_dir=tmp_path / "c"), tmp_path / "nowhere")


def test_image_for_tfds_passes_8bit_png_through_and_decodes_jpeg_accurately(tmp_path: Path):
    from medcap.data.images import load_pixels

    array = np.random.default_rng(0).integers(0, 255, (20, 30), dtype=np.uint8)
    png, jpeg, bmp = tmp_path / "a.png", tmp_path / "a.jpg", tmp_path / "a.bmp"
    Image.fromarray(array).save(png)
    Image.fromarray(array).save(jpeg, quality=90)
    Image.fromarray(array).save(bmp)
    assert tb.image_for_tfds(png, 1) == png.read_bytes()
    # A noise JPEG: TFDS's own decode (the fast IDCT) is off by many grey levels,
    # so the builder stores the accurate decode, the pixels training sees.
    stored = tb.image_for_tfds(jpeg, 3)
    np.testing.assert_array_equal(stored, load_pixels(jpeg))
    fast = tf.image.decode_image(jpeg.read_bytes(), channels=3).numpy()
    assert np.abs(fast.astype(int) - stored.astype(int)).max() > 2
    decoded = tb.image_for_tfds(bmp, 3)
    assert decoded.shape == (20, 30, 3) and np.array_equal(decoded[..., 1], array)
    resized = tb.image_for_tfds(png, 1, max_image_size=15)
    assert resized.shape == (10, 15, 1)
    assert np.asarray(Image.open(io.BytesIO(png.read_bytes()))).shape == (20, 30)


def test_mimic_builder_emits_the_optional_features(tmp_path: Path):
    source = DATASETS.get("mimic")
    tree = source.synthesize(tmp_path / "mimic", num=60, seed=0, image_size=64)
    builder = tb.prepare(tb.make_builder("mimic", variant="official", data_dir=tmp_path / "tfds"), tree)
    expected = source.read(tree, variant="official")
    assert {name: info.num_examples for name, info in builder.info.splits.items()} == expected.counts()
    examples = _by_id(builder.as_dataset(split="train"))
    for reference in expected.splits["train"]:
        got = examples[reference["id"]]
        np.testing.assert_allclose(got["vitals"], reference["vitals"], rtol=1e-6)
        np.testing.assert_array_equal(got["findings"], reference["findings"])
        assert [n.decode() for n in got["findings_names"]] == list(reference["findings_names"])
        assert got["acuity"] == reference["acuity"]
        assert got["chief_complaint"].decode() == reference["chief_complaint"]
        assert got["image"].ndim == 3 and got["image"].shape[-1] == 1


@pytest.mark.parametrize("dataset", ["chestxray14", "chexpert", "mimic_cxr_labels", "labelled_images"])
def test_findings_datasets_build_and_load_back_as_the_reader_reads_them(tmp_path, dataset):
    """Each findings reader's synthetic tree (ChestX-ray14 PNGs with NIH
    boxes, CheXpert JPEGs, MIMIC-CXR-JPG, DICOM in a labelled folder) builds
    and loads back: the same ids per split, the labels with -1 where the
    uncertain-label policy masks one, the names, the view, and the boxes."""
    from medcap.data.images import load_pixels

    source = DATASETS.get(dataset)
    tree = source.synthesize(tmp_path / "tree", num=40, seed=0, image_size=32)
    builder = tb.prepare(tb.make_builder(dataset, data_dir=tmp_path / "tfds"), tree)
    expected = source.read(tree)
    assert {name: info.num_examples for name, info in builder.info.splits.items()} == {k: v for k, v in expected.counts().items() if v}
    boxes_seen = 0
    for split, references in expected.splits.items():
        if not references:
            continue
        examples = _by_id(builder.as_dataset(split=split))
        assert sorted(examples) == sorted(r["id"] for r in references)
        for reference in references:
            got = examples[reference["id"]]
            assert got["findings"].tolist() == list(reference["findings"])
            assert [n.decode() for n in got["findings_names"]] == list(reference["findings_names"])
            assert got["view"].decode() == reference["view"]
            assert got["image"].shape[-1] == 1
            pixels = load_pixels(reference["image"])  # gray images come back as equal RGB channels
            np.testing.assert_array_equal(got["image"][..., 0], pixels[..., 0] if pixels.ndim == 3 else pixels)
            if "boxes" in reference:
                boxes = got["boxes"]
                assert [f.decode() for f in boxes["finding"]] == [b["finding"] for b in reference["boxes"]]
                assert boxes["x"].tolist() == pytest.approx([b["x"] for b in reference["boxes"]])
                boxes_seen += len(reference["boxes"])
    if dataset == "chestxray14":
        assert boxes_seen > 0
    if dataset == "chexpert":
        assert any(-1 in r["findings"] for refs in expected.splits.values() for r in refs)
