"""MediCat reader on a synthetic tree in the real format, and on broken copies."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from medcap.data import medicat, synthetic
from medcap.data.base import DataError, validate_example
from medcap.data.medicat import JSONL_NAME, MEDICAT
from medcap.registry import DATASETS
from medcap.text import clean_report

#: A leading figure label as the release writes them ("Figure 4. ", "Fig. 1. ", "FIGURE 2: ").
LABEL = re.compile(r"^(?:Figure|Fig\.?|FIGURE) (\d+)[.:]? ")


def _words(caption: str) -> int:
    """Tokens the model trains on: the cleaned caption's."""
    return len(clean_report(caption, "caption").split())

NUM = 80


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return MEDICAT.synthesize(tmp_path_factory.mktemp("medicat"), num=NUM, seed=0, image_size=64)


@pytest.fixture
def copy(tree: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tree, tmp_path / "copy"))


def _lines(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / JSONL_NAME).read_text(encoding="utf-8").splitlines()]


def _write_lines(root: Path, records: list) -> None:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    (root / JSONL_NAME).write_text(text, encoding="utf-8")


def test_registered():
    assert DATASETS.get("medicat") is MEDICAT
    assert MEDICAT.variants == ("model80", "model70")


def test_synthetic_tree_has_the_real_layout(tree: Path):
    records = _lines(tree)
    assert len(records) == NUM + NUM // 20
    keys = {"pdf_hash", "fig_key", "fig_uri", "s2_caption", "s2orc_caption", "s2orc_references", "radiology", "scope", "predicted_type", "oa_info"}
    assert all(set(r) == keys for r in records)
    assert any(r["s2orc_references"] is None for r in records)
    for r in records:
        assert (tree / "figures" / f"{r['pdf_hash']}_{r['fig_uri']}").is_file()
        # As in the release: fig_key "Figure4" for fig_uri "3-Figure4-1.png", oa_info with its oa block.
        assert re.fullmatch(r"\d+-Figure\d+-1\.png", r["fig_uri"]) and r["fig_uri"].split("-")[1] == r["fig_key"]
        assert set(r["oa_info"]) == {"doi", "doi_url", "oa"} and "license" in r["oa_info"]["oa"]
    assert sum(_words(r["s2_caption"]) > 20 for r in records) == NUM // 20


def test_synthetic_captions_carry_figure_labels_as_the_release_does(tree: Path):
    records = _lines(tree)
    labelled = [r for r in records if LABEL.match(r["s2_caption"])]
    assert len(records) - len(labelled) < len(records) // 5  # most captions have one, a few do not
    styles = set()
    for r in labelled:
        label = LABEL.match(r["s2_caption"])
        assert r["fig_key"] == f"Figure{label.group(1)}"  # numbered as the figure it captions
        styles.add(label.group(0).replace(label.group(1), "N"))
    assert {"Figure N. ", "Fig. N. ", "Fig N. "} <= styles  # the release sample's own styles
    assert MEDICAT.read(tree).info["figure_labels"] == len(labelled)


def test_figure_label_is_removed_by_default_and_kept_on_request(copy: Path):
    records = _lines(copy)
    index, record = _short_line(copy)
    records[index]["s2_caption"] = "Figure 4. Chest CT shows a right lower lobe nodule."
    _write_lines(copy, records)
    key = f"{record['pdf_hash']}_{record['fig_uri']}"

    def example(result):
        return next(e for split in result.splits.values() for e in split if e["id"] == key)

    stripped = MEDICAT.read(copy)
    assert example(stripped)["report_clean"].split() == ["chest", "ct", "shows", "a", "right", "lower", "lobe", "nodule"]
    assert example(stripped)["report"] == "Figure 4. Chest CT shows a right lower lobe nodule."  # as released
    assert stripped.info["figure_labels_stripped"] is True
    kept = MEDICAT.read(copy, options={"strip_figure_label": False})
    assert example(kept)["report_clean"] == "figure 4 chest ct shows a right lower lobe nodule"
    assert kept.info["figure_labels"] == stripped.info["figure_labels"] and kept.info["figure_labels_stripped"] is False
    with pytest.raises(DataError, match="strip_figure_label='no': expected true or false"):
        MEDICAT.read(copy, options={"strip_figure_label": "no"})


def test_twenty_word_rule_counts_the_cleaned_tokens_the_model_trains_on(copy: Path):
    records = _lines(copy)
    base = MEDICAT.read(copy)
    short = [i for i, r in enumerate(records) if _words(r["s2_caption"]) <= 20]
    # 18 whitespace words, 23 cleaned tokens: the hyphens split "CT-guided" and four more.
    long = (
        "CT-guided biopsy of a well-defined left-sided mass with post-operative changes near the "
        "T2-hyperintense right upper lobe of lung"
    )
    assert len(long.split()) == 18 and _words(long) == 23
    exactly = "Figure 3. " + " ".join(["nodule"] * 20)
    records[short[0]]["s2_caption"] = long
    records[short[1]]["s2_caption"] = exactly
    records[short[2]]["s2_caption"] = "Figure 5."  # nothing left once the label is gone
    _write_lines(copy, records)
    result = MEDICAT.read(copy)
    ids = {e["id"]: e for split in result.splits.values() for e in split}
    key = lambda i: f"{records[i]['pdf_hash']}_{records[i]['fig_uri']}"  # noqa: E731
    assert key(short[0]) not in ids and key(short[2]) not in ids
    assert ids[key(short[1])]["report_clean"] == " ".join(["nodule"] * 20)  # exactly max_words: kept
    assert result.info["filtered_long_captions"] == base.info["filtered_long_captions"] + 1
    assert result.info["empty_captions"] == base.info["empty_captions"] + 1 == 1
    assert sum(result.counts().values()) == NUM - 2
    # Kept labels count as words: the 20-token caption becomes 22 and is filtered.
    kept = MEDICAT.read(copy, options={"strip_figure_label": False})
    assert key(short[1]) not in {e["id"] for split in kept.splits.values() for e in split}
    assert MEDICAT.read(copy, options={"max_words": 23}).info["filtered_long_captions"] == base.info["filtered_long_captions"]
    with pytest.raises(DataError, match="max_words=0: expected an integer >= 1"):
        MEDICAT.read(copy, options={"max_words": 0})


def test_read_keeps_short_captions_and_splits_by_paper(tree: Path):
    result = MEDICAT.read(tree)
    examples = [e for split in result.splits.values() for e in split]
    assert len(examples) == NUM
    assert result.info["filtered_long_captions"] == NUM // 20
    assert result.info["records"] == NUM + NUM // 20
    assert result.skipped == []
    truth = synthetic.load_truth(result.info["truth_file"])
    for example in examples:
        validate_example(example)
        assert 1 <= len(example["report_clean"].split()) <= 20
        assert example["report_clean"] == clean_report(example["report"], "caption")
        assert "figure" not in example["report_clean"].split()[:1] and "fig" not in example["report_clean"].split()[:1]
        assert Path(example["image"]).is_file()
        assert example["id"] == Path(example["image"]).name and example["id"] in truth
        assert example["id"].startswith(example["patient_id"] + "_")
    papers = {name: {e["patient_id"] for e in split} for name, split in result.splits.items()}
    assert not (papers["train"] & papers["val"]) and not (papers["train"] & papers["test"]) and not (papers["val"] & papers["test"])
    counts = result.counts()
    assert abs(counts["train"] - 0.8 * NUM) <= 4 and abs(counts["val"] - 0.1 * NUM) <= 4


def test_model70_split_and_seeds(tree: Path):
    counts = MEDICAT.read(tree, variant="model70").counts()
    assert abs(counts["train"] - 0.7 * NUM) <= 4 and abs(counts["test"] - 0.15 * NUM) <= 4
    ids = lambda r: {k: [e["id"] for e in v] for k, v in r.splits.items()}  # noqa: E731
    assert ids(MEDICAT.read(tree, split_seed=1)) == ids(MEDICAT.read(tree, split_seed=1))
    assert ids(MEDICAT.read(tree, split_seed=1)) != ids(MEDICAT.read(tree, split_seed=2))
    with pytest.raises(DataError, match="unknown MediCat variant 'model90'"):
        MEDICAT.read(tree, variant="model90")


def test_max_figures_is_a_seeded_sample(tree: Path):
    a = MEDICAT.read(tree, options={"max_figures": 30}, split_seed=5)
    b = MEDICAT.read(tree, options={"max_figures": 30}, split_seed=6)
    assert sum(a.counts().values()) == 30 and a.info["sampled_out"] == NUM - 30
    ids = lambda r: sorted(e["id"] for s in r.splits.values() for e in s)  # noqa: E731
    assert ids(a) == ids(MEDICAT.read(tree, options={"max_figures": 30}, split_seed=5))
    assert ids(a) != ids(b)
    assert medicat.DEFAULT_OPTIONS["max_figures"] == 50_000


def test_caption_falls_back_to_s2orc_caption(copy: Path):
    records = _lines(copy)
    short = next(i for i, r in enumerate(records) if _words(r["s2_caption"]) <= 20)
    records[short]["s2orc_caption"] = records[short]["s2_caption"]
    records[short]["s2_caption"] = None
    _write_lines(copy, records)
    result = MEDICAT.read(copy)
    assert result.info["caption_fallbacks"] == 1 and sum(result.counts().values()) == NUM
    records[short]["s2orc_caption"] = "  "
    _write_lines(copy, records)
    with pytest.raises(DataError) as info:
        MEDICAT.read(copy)
    assert (info.value.record, info.value.field) == (f"line {short + 1}", "s2_caption")


def _short_line(root: Path) -> tuple[int, dict]:
    records = _lines(root)
    index = next(i for i, r in enumerate(records) if _words(r["s2_caption"]) <= 20)
    return index, records[index]


def test_missing_image_names_file_line_field(copy: Path):
    index, record = _short_line(copy)
    (copy / "figures" / f"{record['pdf_hash']}_{record['fig_uri']}").unlink()
    with pytest.raises(DataError) as info:
        MEDICAT.read(copy)
    err = info.value
    assert err.file == str(copy / JSONL_NAME) and err.record == f"line {index + 1}" and err.field == "fig_uri"
    assert "missing image file" in str(err) and record["fig_uri"] in str(err)
    result = MEDICAT.read(copy, skip_invalid=True)
    assert len(result.skipped) == 1 and sum(result.counts().values()) == NUM - 1
    assert "skipped 1 invalid records" in result.summary()


def test_truncated_png_fails_when_decoding(copy: Path):
    index, record = _short_line(copy)
    image = copy / "figures" / f"{record['pdf_hash']}_{record['fig_uri']}"
    image.write_bytes(image.read_bytes()[:200])
    assert sum(MEDICAT.read(copy).counts().values()) == NUM  # "exists" does not decode
    with pytest.raises(DataError) as info:
        MEDICAT.read(copy, options={"check_images": "decode"})
    assert info.value.record == f"line {index + 1}" and info.value.field == "fig_uri"
    assert "unreadable image" in str(info.value)


def test_malformed_line_and_bad_fields(copy: Path):
    records = _lines(copy)
    first = dict(records[0])
    records[2] = '{"pdf_hash": "abc", "fig_uri": '
    _write_lines(copy, records)
    with pytest.raises(DataError) as info:
        MEDICAT.read(copy)
    assert info.value.record == "line 3" and "malformed JSON" in str(info.value)
    records[2] = {**first, "pdf_hash": None}
    _write_lines(copy, records)
    with pytest.raises(DataError) as info:
        MEDICAT.read(copy)
    assert info.value.record == "line 3" and info.value.field == "pdf_hash"
    result = MEDICAT.read(copy, skip_invalid=True)
    assert [e.record for e in result.skipped] == ["line 3"]


def test_non_utf8_bytes_name_the_line(copy: Path):
    path = copy / JSONL_NAME
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b'"s2_caption": "', b'"s2_caption": "\xff', 1)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError) as info:
        MEDICAT.read(copy)
    assert info.value.file == str(path) and info.value.record == "line 5" and "not valid UTF-8" in str(info.value)


def test_duplicate_figure_is_an_error(copy: Path):
    records = _lines(copy)
    _write_lines(copy, records + [records[0]])
    with pytest.raises(DataError, match=r"line 85: field .fig_uri.: duplicate figure .* \(first on line 1\)"):
        MEDICAT.read(copy)


def test_missing_jsonl_and_check(copy: Path, tree: Path):
    report = MEDICAT.check(tree)
    assert report.ok and sum(report.counts.values()) == NUM
    index, record = _short_line(copy)
    (copy / "figures" / f"{record['pdf_hash']}_{record['fig_uri']}").write_bytes(b"\x89PNG\r\n\x1a\n")
    report = MEDICAT.check(copy)
    assert not report.ok and len(report.problems) == 1
    assert report.problems[0].record == f"line {index + 1}"
    (copy / JSONL_NAME).unlink()
    with pytest.raises(DataError, match=JSONL_NAME):
        MEDICAT.read(copy)
    report = MEDICAT.check(copy)
    assert not report.ok and JSONL_NAME in str(report.problems[0])
