"""Synthetic radiographs and reports: learnable, consistent with the truth, deterministic."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medcap.data import synthetic
from medcap.data.iu_xray import IU_XRAY
from medcap.data.medicat import MEDICAT
from medcap.data.synthetic import FINDINGS


def test_findings_vocabulary_holds_the_paper_001_labels():
    assert synthetic.MIMIC_FINDINGS == ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
    assert set(synthetic.MIMIC_FINDINGS) < set(FINDINGS)
    assert {"Lung Lesion", "Pneumothorax"} < set(FINDINGS)


def test_sample_findings_matches_documented_prevalences():
    rng = np.random.default_rng(0)
    draws = [synthetic.sample_findings(rng) for _ in range(20_000)]
    assert all(tuple(d) == FINDINGS for d in draws)
    documented = re.findall(r"([A-Za-z]+(?: [A-Z][a-z]+)?) (0\.\d\d)", synthetic.__doc__.split("How each finding")[0])
    documented = dict((name, float(p)) for name, p in documented if name in FINDINGS or name == "normal")
    assert set(documented) == set(FINDINGS) | {"normal"}
    for name in FINDINGS:
        assert np.mean([d[name] for d in draws]) == pytest.approx(documented[name], abs=0.015), name
    assert np.mean([not any(d.values()) for d in draws]) == pytest.approx(documented["normal"], abs=0.015)
    # Edema brings cardiomegaly more often than chance (heart failure).
    edema = [d["Cardiomegaly"] for d in draws if d["Edema"]]
    assert np.mean(edema) > np.mean([d["Cardiomegaly"] for d in draws]) + 0.2


def test_draw_radiograph_shape_dtype_determinism():
    findings = {name: True for name in FINDINGS}
    a = synthetic.draw_radiograph(findings, np.random.default_rng(5))
    b = synthetic.draw_radiograph(findings, np.random.default_rng(5))
    c = synthetic.draw_radiograph(findings, np.random.default_rng(6))
    assert a.shape == (256, 256) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 20 < a.mean() < 200 and a.std() > 20  # an image, not a blank
    small = synthetic.draw_radiograph({}, np.random.default_rng(0), size=64, view="lateral")
    assert small.shape == (64, 64)
    with pytest.raises(ValueError, match="unknown findings"):
        synthetic.draw_radiograph({"Fracture": True}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown view"):
        synthetic.draw_radiograph({}, np.random.default_rng(0), view="oblique")


def test_each_finding_changes_the_image():
    """Same random stream, one finding toggled: the pixels differ where drawn."""
    base = synthetic.draw_radiograph({}, np.random.default_rng(1)).astype(int)
    for name in FINDINGS:
        image = synthetic.draw_radiograph({name: True}, np.random.default_rng(1)).astype(int)
        assert np.mean(np.abs(image - base) > 20) > 0.002, name


def _features(images: np.ndarray) -> np.ndarray:
    """Generic pixel statistics: a 16x16 thumbnail and, on an 8x8 grid, the
    max and std of a difference-of-Gaussians (local contrast) image."""
    n, size = images.shape[0], images.shape[1]
    thumb = images.reshape(n, 16, size // 16, 16, size // 16).mean((2, 4))
    dog = images - ndimage.gaussian_filter(images, (0, 2, 2))
    cells = dog.reshape(n, 8, size // 8, 8, size // 8)
    return np.concatenate([thumb.reshape(n, -1), cells.max((2, 4)).reshape(n, -1), cells.std((2, 4)).reshape(n, -1)], 1)


def test_synthetic_images_are_learnable():
    """Logistic regression on pixel statistics predicts every finding far
    above chance (balanced accuracy 0.5) on held-out images."""
    rng = np.random.default_rng(1)
    truth = [synthetic.sample_findings(rng) for _ in range(900)]
    images = np.stack([synthetic.draw_radiograph(f, rng, size=128) for f in truth]).astype(np.float32) / 255
    labels = np.array([[f[name] for name in FINDINGS] for f in truth])
    features = _features(images)
    train = 600
    scores = {}
    for j, name in enumerate(FINDINGS):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=500, class_weight="balanced"))
        model.fit(features[:train], labels[:train, j])
        scores[name] = balanced_accuracy_score(labels[train:, j], model.predict(features[train:]))
    assert all(score >= 0.75 for score in scores.values()), scores


# -- reports -------------------------------------------------------------------

_KEYWORDS = {
    "Cardiomegaly": r"heart|cardiac|cardiomegaly",
    "Pleural Effusion": r"effusion|pleural fluid",
    "Lung Lesion": r"nodule|mass",
    "Pneumothorax": r"pneumothorax",
    "Consolidation": r"consolidation",
    "Edema": r"edema",
    "Atelectasis": r"atelectasis",
}
_NEGATION = re.compile(r"\b(no|not|without|normal|within normal limits)\b")


def _label_sentences(text: str) -> dict[str, bool]:
    """A tiny negation-aware labeler: a finding is positive when a sentence
    names it without a negation cue."""
    found = {name: False for name in FINDINGS}
    for sentence in re.split(r"(?<=\.)\s+", text.lower()):
        for name, pattern in _KEYWORDS.items():
            if re.search(pattern, sentence) and not _NEGATION.search(sentence):
                found[name] = True
    return found


def _all_combinations():
    for bits in itertools.product((False, True), repeat=len(FINDINGS)):
        yield dict(zip(FINDINGS, bits))


def test_reports_state_exactly_the_findings():
    rng = np.random.default_rng(0)
    for findings in _all_combinations():
        for style in ("findings", "report", "impression", "caption"):
            text = synthetic.write_report(findings, rng, style)
            assert _label_sentences(text) == findings, (style, findings, text)


def test_findings_prose_mentions_every_finding_positive_or_negative():
    rng = np.random.default_rng(1)
    for findings in _all_combinations():
        text = synthetic.write_report(findings, rng, "findings").lower()
        for name, pattern in _KEYWORDS.items():
            assert re.search(pattern, text), (name, text)


def test_captions_have_at_most_20_words_and_wording_varies():
    from medcap.text import clean_report

    rng = np.random.default_rng(2)
    for findings in _all_combinations():
        for _ in range(5):
            caption = synthetic.write_report(findings, rng, "caption")
            # Counted as the captioner counts words: "X-ray" is two.
            assert len(clean_report(caption, "caption").split()) <= synthetic.CAPTION_MAX_WORDS, caption
    same = {"Cardiomegaly": True, "Pleural Effusion": True}
    reports = {synthetic.write_report(same, rng, "findings") for _ in range(200)}
    captions = {synthetic.write_report(same, rng, "caption") for _ in range(200)}
    assert len(reports) > 100 and len(captions) > 10


def test_report_style_layout_and_determinism():
    findings = {"Edema": True}
    text = synthetic.write_report(findings, np.random.default_rng(3), "report")
    assert re.fullmatch(r"FINDINGS: .+\n\nIMPRESSION: .+", text, flags=re.S)
    assert text == synthetic.write_report(findings, np.random.default_rng(3), "report")
    with pytest.raises(ValueError, match="unknown report style"):
        synthetic.write_report(findings, np.random.default_rng(0), "haiku")


def test_truth_sidecar_round_trip(tmp_path: Path):
    truth = {"a": {"Edema": True}, "b": {}}
    path = synthetic.write_truth(tmp_path, truth, dataset="x", seed=1)
    assert path.name == synthetic.TRUTH_FILE
    loaded = synthetic.load_truth(tmp_path)
    assert loaded["a"]["Edema"] is True and sum(loaded["a"].values()) == 1
    assert loaded["b"] == {name: False for name in FINDINGS}


# -- trees ---------------------------------------------------------------------


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("source", [MEDICAT, IU_XRAY], ids=lambda s: s.name)
def test_synthetic_trees_are_byte_identical_per_seed(source, tmp_path: Path):
    a = _tree_bytes(source.synthesize(tmp_path / "a", num=12, seed=7, image_size=64))
    b = _tree_bytes(source.synthesize(tmp_path / "b", num=12, seed=7, image_size=64))
    c = _tree_bytes(source.synthesize(tmp_path / "c", num=12, seed=8, image_size=64))
    assert a == b
    assert a.keys() != c.keys() or a != c
    assert synthetic.TRUTH_FILE in a


def test_synthetic_dir_keys_on_size_seed_and_image_size(tmp_path: Path):
    assert synthetic.synthetic_dir(tmp_path, "iu_xray", num=12, seed=3) == tmp_path / "synthetic" / "iu_xray-n12-s3"
    assert synthetic.synthetic_dir(tmp_path, "iu_xray", num=12, seed=3, image_size=64) == (
        tmp_path / "synthetic" / "iu_xray-n12-s3-px64"
    )


def test_ensure_synthetic_reuses_a_complete_tree_and_rewrites_an_interrupted_one(tmp_path: Path):
    out = synthetic.synthetic_dir(tmp_path, "medicat", num=12, seed=7, image_size=64)
    synthetic.ensure_synthetic(MEDICAT, out, num=12, seed=7, image_size=64)
    complete = _tree_bytes(out)
    assert complete[synthetic.COMPLETE_MARKER] == f"ok v{synthetic.WRITER_VERSION}\n".encode()
    figure = next((out / "figures").iterdir())
    assert image_dimensions(figure) == (64, 64)

    (out / "stray.txt").write_text("kept while the tree is complete")
    synthetic.ensure_synthetic(MEDICAT, out, num=12, seed=7, image_size=64)
    assert (out / "stray.txt").exists()

    (out / synthetic.COMPLETE_MARKER).unlink()  # as if killed before the marker was written
    synthetic.ensure_synthetic(MEDICAT, out, num=12, seed=7, image_size=64)
    assert not (out / "stray.txt").exists()
    assert _tree_bytes(out) == complete

    (out / "stray.txt").write_text("a tree from an older writer is written again")
    (out / synthetic.COMPLETE_MARKER).write_text("ok\n")
    synthetic.ensure_synthetic(MEDICAT, out, num=12, seed=7, image_size=64)
    assert not (out / "stray.txt").exists()
    assert _tree_bytes(out) == complete


def image_dimensions(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def test_realistic_reports_template_normal_studies_and_state_every_present_finding():
    """The `realistic` variety: a normal study is one of the whole templates
    (the first most often); an abnormal one states each present finding, never
    a present finding negated, and only one or two absent findings besides the heart."""
    rng = np.random.default_rng(4)
    templates = [text for text, _ in synthetic._NORMAL_TEMPLATES]
    normal = [synthetic.write_report_sections({}, rng, "realistic")[0] for _ in range(400)]
    assert set(normal) == set(templates)
    counts = [normal.count(t) for t in templates]
    assert counts[0] == max(counts) and counts[0] > 400 * 0.3
    for findings in _all_combinations():
        if not any(findings.values()):
            continue
        prose, impression = synthetic.write_report_sections(findings, rng, "realistic")
        assert prose not in templates
        assert _label_sentences(prose) == findings, (findings, prose)
        mentioned = {name for name, pattern in _KEYWORDS.items() if re.search(pattern, prose.lower())}
        absent = {name for name, present in findings.items() if not present and name != "Cardiomegaly"}
        assert 1 <= len(mentioned & absent) <= 2 or not absent, (findings, prose)
    with pytest.raises(ValueError, match="unknown report variety"):
        synthetic.write_report_sections({}, rng, "poetic")


def test_realistic_iu_xray_trees_live_apart_and_only_iu_xray_writes_them(tmp_path: Path):
    from medcap.config import ConfigError, DataConfig

    assert synthetic.synthetic_dir(tmp_path, "iu_xray", num=12, seed=3, image_size=64, reports="realistic") == (
        tmp_path / "synthetic" / "iu_xray-n12-s3-px64-realistic"
    )
    out = synthetic.ensure_synthetic(IU_XRAY, tmp_path / "iu", num=12, seed=3, image_size=64, reports="realistic")
    listed = IU_XRAY.synthesize(tmp_path / "listed", num=12, seed=3, image_size=64)
    realistic_reports = (out / "annotation.json").read_text()
    assert realistic_reports != (listed / "annotation.json").read_text()
    assert "The lungs are clear." in realistic_reports or "the lungs are clear" in realistic_reports.lower()
    with pytest.raises(ConfigError, match="only writes 'listed' reports"):
        synthetic.ensure_synthetic(MEDICAT, tmp_path / "m", num=12, seed=3, image_size=64, reports="realistic")
    with pytest.raises(ConfigError, match="data.synthetic_reports='poetic'"):
        DataConfig(name="iu_xray", synthetic_reports="poetic").validate()
    assert synthetic.tree_dir(DataConfig(name="iu_xray", data_dir=str(tmp_path), synthetic_reports="realistic")).name == "iu_xray-n600-s0-realistic"
