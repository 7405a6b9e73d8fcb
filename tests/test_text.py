"""Report cleaning (R2Gen-exact) and the Vocabulary."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import tensorflow as tf

from medcap.testing import shared_path
from medcap.text import END_ID, PAD_ID, START_ID, UNK_ID, Vocabulary, clean_report


# R2Gen's cleaners written out literally as test oracles: the expected
# behaviour, quirks included, against which our implementation is checked.
def r2gen_iu_xray(report):
    report_cleaner = lambda t: (  # noqa: E731
        t.replace("..", ".").replace("..", ".").replace("..", ".").replace("1. ", "")
        .replace(". 2. ", ". ").replace(". 3. ", ". ").replace(". 4. ", ". ").replace(". 5. ", ". ")
        .replace(" 2. ", ". ").replace(" 3. ", ". ").replace(" 4. ", ". ").replace(" 5. ", ". ")
        .strip().lower().split(". ")
    )
    sent_cleaner = lambda t: re.sub(  # noqa: E731
        "[.,?;*!%^&_+():-\\[\\]{}]", "",
        t.replace('"', "").replace("/", "").replace("\\", "").replace("'", "").strip().lower(),
    )
    tokens = [sent_cleaner(sent) for sent in report_cleaner(report) if sent_cleaner(sent) != []]
    return " . ".join(tokens) + " ."


def r2gen_mimic_cxr(report):
    t = report.replace("\n", " ")
    for _ in range(7):
        t = t.replace("__", "_")
    for _ in range(6):
        t = t.replace("  ", " ")
    for _ in range(8):
        t = t.replace("..", ".")
    for old, new in (("1. ", ""), (". 2. ", ". "), (". 3. ", ". "), (". 4. ", ". "), (". 5. ", ". "),
                     (" 2. ", ". "), (" 3. ", ". "), (" 4. ", ". "), (" 5. ", ". ")):
        t = t.replace(old, new)
    sentences = t.strip().lower().split(". ")
    sent_cleaner = lambda s: re.sub(  # noqa: E731
        "[.,?;*!%^&_+():-\\[\\]{}]", "",
        s.replace('"', "").replace("/", "").replace("\\", "").replace("'", "").strip().lower(),
    )
    return " . ".join(sent_cleaner(s) for s in sentences) + " ."


MESSY = [
    "1. No acute disease.. 2. Heart size normal. 3. Lungs clear...",
    "The heart is <normal> = size @ 5cm; lungs: clear! (no effusion) {ok} [x]",
    "Stable  appearance\n\nof the chest__ __ since 01/02/2003.  Pneumothorax?? \"no\"",
    "",
    ". . .",
    "Left basilar opacity 4. 5. right upper lobe 'nodule' \\ back/slash",
    "ÉCHO: cœur normal. Ünïcode done.",
]


@pytest.mark.parametrize("text", MESSY)
def test_iu_xray_and_mimic_styles_match_r2gen_on_messy_text(text):
    assert clean_report(text, "iu_xray") == r2gen_iu_xray(text)
    assert clean_report(text, "mimic_cxr") == r2gen_mimic_cxr(text)


def test_r2gen_quirks_are_kept():
    # The class range ':-[' also removes '<=>?@'; empty sentences survive.
    assert clean_report("a <b> = c @ d. . e", "iu_xray") == "a b  c  d .  . e ."


def test_iu_xray_style_matches_r2gen_on_every_real_report():
    data = json.loads(shared_path("data/iu_xray/annotation.json").read_text())
    reports = [ex["report"] for split in ("train", "val", "test") for ex in data[split]]
    assert len(reports) == 2955
    mismatches = [r for r in reports if clean_report(r, "iu_xray") != r2gen_iu_xray(r)]
    assert not mismatches, mismatches[:3]
    mimic_mismatches = [r for r in reports if clean_report(r, "mimic_cxr") != r2gen_mimic_cxr(r)]
    assert not mimic_mismatches, mimic_mismatches[:3]


def test_vocabulary_on_r2gen_iu_xray_train_split_equals_r2gen():
    data = json.loads(shared_path("data/iu_xray/annotation.json").read_text())
    cleaned = [clean_report(ex["report"], "iu_xray") for ex in data["train"]]
    vocab = Vocabulary.build(cleaned, min_count=3)
    # R2Gen: words with count >= 3 on train, plus <unk>, sorted; 761 embedding
    # rows in its checkpoints (760 tokens + the id 0 shared by pad/bos/eos).
    counts = {}
    for text in cleaned:
        for token in text.split():
            counts[token] = counts.get(token, 0) + 1
    r2gen_words = sorted([k for k, v in counts.items() if v >= 3] + ["<unk>"])
    assert len(vocab.words) == 759
    assert sorted(vocab.words + ["<unk>"]) == r2gen_words
    assert len(r2gen_words) + 1 == 761
    # Built from the train split only: a val/test-only word is unknown.
    val_words = {t for ex in data["val"] + data["test"] for t in clean_report(ex["report"], "iu_xray").split()}
    assert val_words - set(counts), "expected some words that appear only outside train"
    for word in sorted(val_words - set(counts))[:5]:
        assert vocab.token_to_id(word) == UNK_ID


def test_caption_style():
    assert clean_report("  CT scan: Axial view (arrow)—showing a 3-cm mass!\n", "caption") == (
        "ct scan axial view arrow showing a 3 cm mass"
    )


def test_caption_style_removes_the_figure_label_unless_asked_to_keep_it():
    caption = "Figure 4. Chest CT shows a 3-cm mass in the right lower lobe."
    tokens = clean_report(caption, "caption").split()
    assert tokens == ["chest", "ct", "shows", "a", "3", "cm", "mass", "in", "the", "right", "lower", "lobe"]
    assert "figure" not in tokens and "4" not in tokens
    from medcap.text import clean_caption, figure_label, strip_figure_label

    assert clean_caption(caption, strip_label=False).split()[:3] == ["figure", "4", "chest"]
    assert figure_label(caption) == "Figure 4. "
    # Label styles of the MediCat release's own sample, and others PMC captions use.
    for caption, label in [
        ("Fig 3. Control computed tomography (CT) angiogram 3 months postoperatively.", "Fig 3. "),
        ("Fig. 1. Brain CT (A) and MR diffusion images (B, C) showing no intracranial lesion.", "Fig. 1. "),
        ("FIG. 2: Axial T2-weighted MRI.", "FIG. 2: "),
        ("Figure 1A. Chest radiograph.", "Figure 1A. "),
        ("Figures 2 and 3. Serial radiographs.", "Figures 2 and 3. "),
        ("Supplementary Figure S1 | Workflow.", "Supplementary Figure S1 | "),
        ("Figure 2 Lateral view.", "Figure 2 "),
    ]:
        assert figure_label(caption) == label, caption
        assert strip_figure_label(caption) == caption[len(label) :]
    # Not a label: no number, a word that only starts like one, a label later in the text.
    for caption in ("Figure showing the lesion.", "Figurehead 3 of the ship.", "Chest CT, see Figure 4."):
        assert figure_label(caption) is None and strip_figure_label(caption) == caption
    assert clean_caption("Figure 10.") == ""
    with pytest.raises(ValueError, match="valid styles: iu_xray, mimic_cxr, caption"):
        clean_report("x", "nope")


@pytest.fixture
def vocab():
    return Vocabulary.build(["the heart is normal .", "the lungs are clear .", "the heart is enlarged ."], min_count=1)


def test_reserved_ids_and_sorted_words(vocab):
    assert vocab.tokens[:4] == ["<pad>", "<unk>", "<start>", "<end>"]
    assert vocab.words == sorted(vocab.words)
    assert len(vocab) == 4 + 9


def test_encode_decode_round_trip(vocab):
    ids = vocab.encode("the heart is enlarged .")
    assert ids[0] == START_ID and ids[-1] == END_ID
    assert vocab.decode(ids) == "the heart is enlarged ."
    assert vocab.decode(vocab.encode("the spleen is big")) == "the <unk> is <unk>"
    # Decoding stops at the first <end>, skipping padding and <start>.
    assert vocab.decode([START_ID, vocab.token_to_id("heart"), END_ID, vocab.token_to_id("lungs"), PAD_ID]) == "heart"
    assert vocab.encode("the heart is normal .", max_length=4) == [START_ID, vocab.token_to_id("the"), vocab.token_to_id("heart"), END_ID]


def test_min_count_and_max_size():
    texts = ["a a a b b c", "a b d"]
    assert Vocabulary.build(texts, min_count=2).words == ["a", "b"]
    # max_size bounds the vocabulary (most frequent words, ties by word), not a caption's length.
    assert Vocabulary.build(texts, min_count=1, max_size=2).words == ["a", "b"]
    assert Vocabulary.build(texts, min_count=1, max_size=3).words == ["a", "b", "c"]
    assert len(Vocabulary.build(texts, min_count=1, max_size=3)) == 4 + 3
    with pytest.raises(ValueError, match="reserved"):
        Vocabulary(["<end>", "x"])


def test_json_round_trip(vocab, tmp_path):
    path = tmp_path / "vocabulary.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.tokens == vocab.tokens
    path.write_text("{not json")
    with pytest.raises(ValueError, match="vocabulary.json"):
        Vocabulary.load(path)


def test_tf_encode_matches_python_encode_inside_tf_data(vocab):
    texts = ["the heart is enlarged .", "the spleen", "", "the lungs are clear . the heart is normal ."]
    max_length = 8
    ds = tf.data.Dataset.from_tensor_slices(texts).map(lambda t: vocab.tf_encode(t, max_length))
    got = np.stack(list(ds.as_numpy_iterator()))
    expected = np.zeros((len(texts), max_length), np.int32)
    for row, text in enumerate(texts):
        ids = vocab.encode(text, max_length=max_length)
        expected[row, : len(ids)] = ids
    np.testing.assert_array_equal(got, expected)
    batched = vocab.tf_encode(tf.constant(texts), max_length).numpy()
    np.testing.assert_array_equal(batched, expected)
    assert vocab.decode_batch(batched) == [vocab.decode(r) for r in expected]
