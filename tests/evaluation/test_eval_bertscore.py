"""BERTScore against bert-score's published definition, on a tiny random BERT.

The reference below is written from bert-score's `score(idf=False)`
(Tiiiger/bert_score, `bert_score/utils.py`: `greedy_cos_idf`) with its own
BERT forward pass in numpy, so it shares nothing with `medcap.evaluation.bertscore`
but the preset's weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest

from medcap.evaluation.bertscore import (
    MODEL2LAYERS,
    BertScorer,
    bertscore,
    default_layer,
    read_baseline,
    rescale,
)

WORDS = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "no", "pleural", "effusion", "##s", "heart", "size", "is",
    "normal", "the", "lungs", "are", "clear", "mild", "edema", ".", "and",
]  # fmt: skip
NUM_LAYERS, HIDDEN, HEADS = 2, 8, 2

#: (reference, candidate, the reference's and the candidate's word pieces as the WordPiece vocabulary splits them)
PAIRS = [
    ("no pleural effusion .", "no pleural effusion .", "no pleural effusion .", "no pleural effusion ."),
    ("heart size is normal .", "no pleural effusions", "heart size is normal .", "no pleural effusion ##s"),
    ("the lungs are clear and heart size is normal .", "mild edema", "the lungs are clear and heart size is normal .",
     "mild edema"),
    ("mild edema and pleural effusions .", "  the heart is normal  ", "mild edema and pleural effusion ##s .",
     "the heart is normal"),
    ("no pleural effusion", "", "no pleural effusion", ""),
]  # fmt: skip

#: Written as bert-score writes `rescale_baseline/en/<model>.tsv` (the first rows of its roberta-large file).
BASELINE_TSV = "LAYER,P,R,F\n0,0.3712891,0.37132213,0.36826715\n1,0.67176163,0.6717439,0.6703483\n2,0.70031923,0.7003052,0.69969934\n"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """A keras-hub BERT preset with random weights large enough to make every layer differ."""
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(WORDS), num_layers=NUM_LAYERS, num_heads=HEADS, hidden_dim=HIDDEN,
        intermediate_dim=16, max_sequence_length=32,
    )  # fmt: skip
    rng = np.random.default_rng(7)
    for weight in backbone.weights:
        shape = tuple(weight.shape)
        value = (
            1.0 + 0.2 * rng.standard_normal(shape)
            if weight.path.endswith("gamma")
            else 0.5 * rng.standard_normal(shape)
        )
        weight.assign(value.astype("float32"))
    preset = tmp_path_factory.mktemp("bertscore") / "tiny_bert"
    backbone.save_to_preset(str(preset))
    keras_hub.models.BertTokenizer(vocabulary=WORDS).save_to_preset(str(preset))
    return preset, {w.path: np.asarray(w.numpy(), dtype=np.float64) for w in backbone.weights}


# ---------------------------------------------------------------------------
# The reference: BERT in numpy, bert-score's greedy matching


def _layer_norm(x, weights, name):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * weights[f"{name}/gamma"] + weights[f"{name}/beta"]


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _hidden_states(weights: dict[str, np.ndarray], pieces: str, layers: int) -> np.ndarray:
    """Hugging Face's `hidden_states[layers]` of `[CLS] pieces [SEP]` (post-LN BERT, no padding)."""
    ids = [WORDS.index(p) for p in ["[CLS]", *pieces.split(), "[SEP]"]]
    x = (
        weights["token_embedding/embeddings"][ids]
        + weights["position_embedding/embeddings"][: len(ids)]
    )
    x = _layer_norm(
        x + weights["segment_embedding/embeddings"][0], weights, "embeddings_layer_norm"
    )
    for n in range(layers):
        p = f"transformer_layer_{n}"
        q, k, v = (np.einsum("tc,chd->thd", x, weights[f"{p}/self_attention_layer/{m}/kernel"])
                   + weights[f"{p}/self_attention_layer/{m}/bias"] for m in ("query", "key", "value"))  # fmt: skip
        logits = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(q.shape[-1])
        attention = np.exp(logits - logits.max(axis=-1, keepdims=True))
        attention /= attention.sum(axis=-1, keepdims=True)
        context = np.einsum("hqk,khd->qhd", attention, v)
        out = np.einsum(
            "qhd,hdc->qc", context, weights[f"{p}/self_attention_layer/attention_output/kernel"]
        )
        x = _layer_norm(x + out + weights[f"{p}/self_attention_layer/attention_output/bias"], weights,
                        f"{p}/self_attention_layer_norm")  # fmt: skip
        inner = _gelu_tanh(
            x @ weights[f"{p}/feedforward_intermediate_dense/kernel"]
            + weights[f"{p}/feedforward_intermediate_dense/bias"]
        )
        out = (
            inner @ weights[f"{p}/feedforward_output_dense/kernel"]
            + weights[f"{p}/feedforward_output_dense/bias"]
        )
        x = _layer_norm(x + out, weights, f"{p}/feedforward_layer_norm")
    return x


def reference_bertscore(
    weights, ref_pieces: str, cand_pieces: str, layers: int
) -> tuple[float, float, float]:
    """bert-score, idf=False: idf 1 for every token, 0 for [CLS] and [SEP]; cosine similarities over all
    tokens (special ones included); P, R = idf-weighted means of the best matches; empty text -> 0."""
    if not ref_pieces.split() or not cand_pieces.split():
        return 0.0, 0.0, 0.0
    ref = _hidden_states(weights, ref_pieces, layers)
    hyp = _hidden_states(weights, cand_pieces, layers)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    hyp /= np.linalg.norm(hyp, axis=1, keepdims=True)
    sim = hyp @ ref.T
    hyp_idf = np.r_[0.0, np.ones(len(hyp) - 2), 0.0]
    ref_idf = np.r_[0.0, np.ones(len(ref) - 2), 0.0]
    precision = float((sim.max(axis=1) * hyp_idf).sum() / hyp_idf.sum())
    recall = float((sim.max(axis=0) * ref_idf).sum() / ref_idf.sum())
    return precision, recall, 2 * precision * recall / (precision + recall)


def _expected(weights, layers: int) -> np.ndarray:
    return np.array([reference_bertscore(weights, rp, cp, layers) for _, _, rp, cp in PAIRS])


REFS = [p[0] for p in PAIRS]
CANDS = [p[1] for p in PAIRS]


# ---------------------------------------------------------------------------
# Tests


def test_bertscore_matches_the_published_definition_with_batches_and_padding(tiny_bert):
    preset, weights = tiny_bert
    expected = _expected(weights, NUM_LAYERS)
    # batch_size 2: texts of different lengths share a padded batch
    scores = BertScorer(preset, layer=NUM_LAYERS, batch_size=2).score(REFS, CANDS)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    np.testing.assert_allclose(scores[0], [1.0, 1.0, 1.0], atol=1e-6)
    assert scores[-1].tolist() == [0.0, 0.0, 0.0]  # empty candidate
    # A word may find its best match at the reference's [CLS]/[SEP]: dropping them from the matrix
    # (rather than only from the means) changes the numbers on this model.
    assert 0 < scores[1, 2] < 1 and not np.allclose(
        scores[1:4], _without_special_columns(weights), atol=1e-4
    )


def _without_special_columns(weights) -> np.ndarray:
    out = []
    for _, _, rp, cp in PAIRS[1:4]:
        ref = _hidden_states(weights, rp, NUM_LAYERS)[1:-1]
        hyp = _hidden_states(weights, cp, NUM_LAYERS)[1:-1]
        sim = (hyp / np.linalg.norm(hyp, axis=1, keepdims=True)) @ (
            ref / np.linalg.norm(ref, axis=1, keepdims=True)
        ).T
        p, r = sim.max(axis=1).mean(), sim.max(axis=0).mean()
        out.append([p, r, 2 * p * r / (p + r)])
    return np.array(out)


def test_layer_selection_follows_bert_score_num_layers(tiny_bert):
    preset, weights = tiny_bert
    by_layer = {}
    for layer in range(NUM_LAYERS + 1):  # 0 = the embedding block's output, as hidden_states[0]
        by_layer[layer] = bertscore(REFS, CANDS, preset, layer=layer)
        np.testing.assert_allclose(by_layer[layer], _expected(weights, layer), atol=1e-5)
    assert (
        np.abs(by_layer[0] - by_layer[1]).max() > 1e-3
        and np.abs(by_layer[1] - by_layer[2]).max() > 1e-3
    )
    # bert-score's model2layers defaults, as published
    assert (
        MODEL2LAYERS["bert-base-uncased"],
        MODEL2LAYERS["roberta-large"],
        MODEL2LAYERS["bert-large-uncased"],
    ) == (9, 17, 18)
    scorer = BertScorer(preset, model_type="google/bert_uncased_L-2_H-128_A-2")
    assert scorer.layer == default_layer("google/bert_uncased_L-2_H-128_A-2") == 1
    np.testing.assert_array_equal(scorer.score(REFS, CANDS), by_layer[1])
    with pytest.raises(
        ValueError,
        match=r"layer 17 \(bert-score's default for roberta-large\) but the backbone has 2",
    ):
        BertScorer(preset, model_type="roberta-large")
    with pytest.raises(
        ValueError, match="no default layer for model 'emilyalsentzer/Bio_ClinicalBERT'"
    ):
        BertScorer(preset, model_type="emilyalsentzer/Bio_ClinicalBERT")
    with pytest.raises(ValueError, match="give `layer` or a `model_type`"):
        BertScorer(preset)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        BertScorer(preset.parent / "missing", layer=1)


def test_baseline_rescaling_reads_bert_score_tsv_files(tiny_bert, tmp_path):
    preset, weights = tiny_bert
    path = tmp_path / "tiny.tsv"
    path.write_text(BASELINE_TSV)
    np.testing.assert_array_equal(read_baseline(path, 1), [0.67176163, 0.6717439, 0.6703483])
    raw = _expected(weights, 1)
    scorer = BertScorer(preset, layer=1, baseline=path)
    assert (
        scorer.rescaled
        and "rescaled with the baseline" in scorer.describe()
        and "layer 1" in scorer.describe()
    )
    rescaled = scorer.score(REFS, CANDS)
    # each of P, R, F with its own column of layer 1's row
    for column, b in enumerate((0.67176163, 0.6717439, 0.6703483)):
        np.testing.assert_allclose(rescaled[:, column], (raw[:, column] - b) / (1 - b), atol=1e-5)
    np.testing.assert_allclose(rescaled[0], [1.0, 1.0, 1.0], atol=1e-5)  # identical texts stay at 1
    np.testing.assert_allclose(rescaled[-1], [-0.67176163 / (1 - 0.67176163), -0.6717439 / (1 - 0.6717439),
                                              -0.6703483 / (1 - 0.6703483)], rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(
        rescale(np.array([[0.9, 0.8, 0.85]]), [0.8, 0.8, 0.8]), [[0.5, 0.0, 0.25]]
    )
    assert "raw (no baseline rescaling)" in BertScorer(preset, layer=1).describe()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("P,R,F\n0,0.1,0.1,0.1\n", "expected the header LAYER,P,R,F, found P,R,F"),
        ("LAYER,P,R,F\n0,0.1,0.1\n", "line 2: expected 4 values, found 3"),
        ("LAYER,P,R,F\n0,0.1,x,0.1\n", "line 2: not a number"),
        ("LAYER,P,R,F\n0,0.1,0.1,0.1\n", r"no row for layer 1 \(layers 0\)"),
        ("LAYER,P,R,F\n1,0.1,1.0,0.1\n", "a baseline of 1 or more"),
        ("", "found an empty file"),
    ],
)
def test_bad_baseline_files_are_named(tmp_path, text, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{path.name}.*{message}"):
        read_baseline(path, 1)


def test_missing_baseline_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.tsv: no such file"):
        read_baseline(tmp_path / "nothing.tsv", 9)


def test_byte_pair_tokenizers_get_bert_scores_prefix_space(tmp_path):
    """RoBERTa: `<s> Ġno Ġno </s>`, as bert-score's add_prefix_space=True encodes "no no"."""
    import keras_hub

    vocabulary = {
        "<s>": 0,
        "<pad>": 1,
        "</s>": 2,
        "<mask>": 3,
        "Ġ": 4,
        "n": 5,
        "o": 6,
        "Ġn": 7,
        "Ġno": 8,
        "no": 9,
    }
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.RobertaBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=16,
    )
    preset = tmp_path / "tiny_roberta"
    backbone.save_to_preset(str(preset))
    keras_hub.models.RobertaTokenizer(
        vocabulary=vocabulary, merges=["Ġ n", "Ġn o", "n o"]
    ).save_to_preset(str(preset))
    scorer = BertScorer(preset, layer=1)
    assert scorer._token_ids(["no no", "", " no "]) == [[0, 8, 8, 2], [0, 2], [0, 8, 2]]
    scores = scorer.score(["no no", "no"], ["no no", ""])
    np.testing.assert_allclose(scores, [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], atol=1e-6)
