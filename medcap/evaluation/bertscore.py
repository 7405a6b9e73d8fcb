"""BERTScore (Zhang et al., ICLR 2020) from a local keras-hub preset, as the `bert-score` package computes it.

Paper 001 (Aksoy et al., section 4.2, Table 1) reports "BERT Score F1" and
"Bio-ClinicalBERT Score F1" without saying how they were configured. Its
BS_F1 of about 0.2 is plausible only with bert-score's baseline rescaling:
raw BERTScore F1 of any two English texts with BERT or RoBERTa is about 0.8
or more. This module computes the `bert-score` package's definition
(`bert_score.score` with `idf=False`; repository Tiiiger/bert_score,
`bert_score/score.py` and `bert_score/utils.py`) so that either setting can
be reproduced:

API:

    scorer = BertScorer(preset, model_type="roberta-large", layer=None, baseline=None)
    scorer.score(references, candidates) -> (n, 3) array of P, R, F1
    bertscore(references, candidates, preset, ...)    # the same in one call
    default_layer(model_type) -> int                  # bert-score's `model2layers`
    read_baseline(path, layer) -> (3,) array          # one row of a rescale_baseline tsv
    rescale(scores, baseline) -> (score - b) / (1 - b)
    MODEL2LAYERS

The definition, step by step (each one is bert-score's):

* Tokens: the text is stripped, tokenised by the preset's tokenizer and
  wrapped as `[CLS] pieces [SEP]` (RoBERTa: `<s> pieces </s>`), truncated to
  the model's maximum length (512) with the special tokens kept. For
  byte-pair tokenizers (RoBERTa, GPT-2 style) a space is put in front of the
  text, as bert-score's `add_prefix_space=True` does.
* Embeddings: the hidden states after `layer` transformer layers (layer 0 =
  the embedding block's output, layer L = the output of the L-th layer),
  bert-score's `num_layers`, which truncates the model to its first L layers.
  Without `layer`, bert-score's default for `model_type`
  (`model2layers`, tuned on WMT16: bert-base-uncased 9, roberta-large 17, ...).
* Greedy matching: cosine similarity of every candidate token with every
  reference token, both including the special tokens; precision = mean over
  the candidate's tokens of its best reference match, recall = mean over the
  reference's tokens of its best candidate match, F1 = 2PR / (P + R).
  Without idf every token weighs 1 except `[CLS]` and `[SEP]`, which weigh 0:
  they are left out of the means, but a word may still have its best match
  at a reference's `[CLS]` or `[SEP]` (bert-score sets their idf to 0; it
  does not remove them from the similarity matrix).
* An empty candidate or reference scores P = R = F1 = 0 (bert-score warns
  and sets them to 0).
* Baseline rescaling (`rescale_with_baseline=True`): P, R and F1 are each
  mapped to `(score - b) / (1 - b)` with `b` the baseline's P, R, F of the
  same layer, read from a file in bert-score's
  `rescale_baseline/{lang}/{model}.tsv` format (comma-separated despite the
  name: a header `LAYER,P,R,F`, then one row per layer from 0). F1 is
  rescaled with the F baseline, not recomputed from the rescaled P and R.

Ours, where bert-score is not followed to the letter:

* The maximum is taken over the real tokens only. bert-score multiplies
  the similarity matrix by the padding mask of its batch, so a padded
  position counts as similarity 0 and its score can depend on which texts
  share a batch when every real similarity is negative; with contextual
  embeddings that almost never happens.
* Sentences are embedded in float32 (the preset's dtype) and matched in
  float64; bert-score runs the model in float32 and matches in float32.
* One reference per candidate (bert-score's multi-reference maximum is not
  needed by the papers here).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: bert-score's default layer per model (`bert_score.utils.model2layers`), for
#: the model families keras-hub ships as BERT-style backbones.
MODEL2LAYERS: dict[str, int] = {
    "bert-base-uncased": 9,
    "bert-large-uncased": 18,
    "bert-base-multilingual-cased": 9,
    "roberta-base": 10,
    "roberta-large": 17,
    "roberta-large-mnli": 19,
    "distilroberta-base": 5,
    "distilbert-base-uncased": 5,
    "xlm-roberta-base": 9,
    "xlm-roberta-large": 17,
    "microsoft/deberta-v3-base": 9,
    "microsoft/deberta-v3-large": 12,
    "google/electra-base-discriminator": 9,
    "google/bert_uncased_L-2_H-128_A-2": 1,
    "google/bert_uncased_L-4_H-256_A-4": 3,
    "google/bert_uncased_L-4_H-512_A-8": 3,
    "google/bert_uncased_L-8_H-512_A-8": 6,
}

BASELINE_HEADER = ("LAYER", "P", "R", "F")


def default_layer(model_type: str) -> int:
    """bert-score's `model2layers[model_type]`; a clear error for a model it has no default for."""
    try:
        return MODEL2LAYERS[model_type]
    except KeyError:
        raise ValueError(
            f"BERTScore: no default layer for model {model_type!r} (bert-score's model2layers has none "
            f"among {', '.join(sorted(MODEL2LAYERS))}); give the layer explicitly"
        ) from None


def read_baseline(path: str | Path, layer: int) -> np.ndarray:
    """The (P, R, F) baseline of `layer` from a bert-score `rescale_baseline` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BERTScore baseline {path}: no such file")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if not rows or tuple(cell.strip() for cell in rows[0]) != BASELINE_HEADER:
        found = ",".join(rows[0]) if rows else "an empty file"
        raise ValueError(
            f"BERTScore baseline {path}: expected the header {','.join(BASELINE_HEADER)}, found {found}"
        )
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 4:
            raise ValueError(
                f"BERTScore baseline {path}, line {number}: expected 4 values, found {len(row)}"
            )
        try:
            values = [float(cell) for cell in row]
        except ValueError:
            raise ValueError(
                f"BERTScore baseline {path}, line {number}: not a number in {','.join(row)}"
            ) from None
        if values[0] == layer:
            baseline = np.asarray(values[1:], dtype=np.float64)
            if np.any(baseline >= 1.0):
                raise ValueError(
                    f"BERTScore baseline {path}, line {number}: a baseline of 1 or more cannot rescale"
                )
            return baseline
    layers = ", ".join(row[0] for row in rows[1:]) or "none"
    raise ValueError(f"BERTScore baseline {path}: no row for layer {layer} (layers {layers})")


def rescale(scores: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """bert-score's baseline rescaling, column by column: `(score - b) / (1 - b)`."""
    baseline = np.asarray(baseline, dtype=np.float64)
    return (np.asarray(scores, dtype=np.float64) - baseline) / (1.0 - baseline)


class BertScorer:
    """BERTScore of one model, layer and (optional) baseline (module docstring).

    `preset`: a local keras-hub preset directory holding a BERT-style backbone
    (inputs `token_ids`, `padding_mask` and, for BERT, `segment_ids`; layers
    `embeddings_dropout` and `transformer_layer_<i>`) and its tokenizer.
    `model_type`: the Hugging Face name the preset was converted from (only
    used for bert-score's default layer). `layer`: bert-score's `num_layers`.
    `baseline`: a rescale_baseline file; without it the scores are raw.
    """

    def __init__(
        self,
        preset: str | Path,
        *,
        model_type: str | None = None,
        layer: int | None = None,
        baseline: str | Path | None = None,
        batch_size: int = 32,
        max_length: int = 512,
    ):
        import keras
        import keras_hub

        self.preset = str(preset)
        if not Path(self.preset).is_dir():
            raise FileNotFoundError(
                f"BERT preset {self.preset}: no such directory (a local keras-hub preset is needed)"
            )
        if layer is None:
            if model_type is None:
                raise ValueError(
                    f"BERT preset {self.preset}: give `layer` or a `model_type` with a bert-score default"
                )
            layer = default_layer(model_type)
        self.model_type = model_type
        self.tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(self.preset)
        backbone = keras_hub.models.Backbone.from_preset(self.preset)
        num_layers = int(getattr(backbone, "num_layers", 0))
        if not 0 <= layer <= num_layers:
            source = (
                f"bert-score's default for {model_type}"
                if model_type and layer == MODEL2LAYERS.get(model_type)
                else "asked for"
            )
            raise ValueError(
                f"BERT preset {self.preset}: layer {layer} ({source}) but the backbone has {num_layers} transformer "
                f"layers; give a layer between 0 and {num_layers}"
            )
        self.layer = int(layer)
        name = "embeddings_dropout" if layer == 0 else f"transformer_layer_{layer - 1}"
        try:
            output = backbone.get_layer(name).output
        except ValueError:
            raise ValueError(
                f"BERT preset {self.preset}: {type(backbone).__name__} has no layer {name!r}; BERTScore needs a "
                "BERT-style keras-hub backbone (BERT, RoBERTa, ...)"
            ) from None
        self.input_names = (
            tuple(backbone.input)
            if isinstance(backbone.input, dict)
            else ("token_ids", "padding_mask")
        )
        self.embed = keras.Model(backbone.input, output)
        self.max_length = min(max_length, int(getattr(backbone, "max_sequence_length", max_length)))
        self.start_id = int(self.tokenizer.start_token_id)
        self.end_id = int(self.tokenizer.end_token_id)
        self.pad_id = int(getattr(self.tokenizer, "pad_token_id", 0) or 0)
        self.prefix_space = isinstance(self.tokenizer, keras_hub.tokenizers.BytePairTokenizer)
        self.baseline_path = None if baseline is None else Path(baseline)
        self.baseline = None if baseline is None else read_baseline(baseline, self.layer)
        self.batch_size = batch_size

    @property
    def rescaled(self) -> bool:
        return self.baseline is not None

    def describe(self) -> str:
        """One line saying how the scores were computed."""
        model = f"{self.model_type}, " if self.model_type else ""
        how = (
            f"rescaled with the baseline {self.baseline_path}"
            if self.rescaled
            else "raw (no baseline rescaling)"
        )
        return f"BERTScore from {self.preset} ({model}layer {self.layer}, no idf, {how})"

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        texts = [str(t).strip() for t in texts]
        prepared = [(" " + t if self.prefix_space and t else t) for t in texts]
        pieces = self.tokenizer(prepared)
        return [
            [self.start_id, *[int(i) for i in np.asarray(ids)][: self.max_length - 2], self.end_id]
            for ids in pieces
        ]

    def embeddings(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Unit-length token embeddings of `[CLS] text [SEP]` per text, special tokens included."""
        out: list[np.ndarray] = []
        for lo in range(0, len(texts), self.batch_size):
            rows = self._token_ids(texts[lo : lo + self.batch_size])
            width = max(len(r) for r in rows)
            token_ids = np.full((len(rows), width), self.pad_id, np.int32)
            mask = np.zeros((len(rows), width), bool)
            for i, row in enumerate(rows):
                token_ids[i, : len(row)] = row
                mask[i, : len(row)] = True
            inputs = {
                "token_ids": token_ids,
                "padding_mask": mask,
                "segment_ids": np.zeros_like(token_ids),
            }
            hidden = np.asarray(
                self.embed({k: inputs[k] for k in self.input_names}), dtype=np.float64
            )
            for i, row in enumerate(rows):
                vectors = hidden[i, : len(row)]
                out.append(
                    vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
                )
        return out

    def score(self, references: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """(n, 3) precision, recall, F1 per (reference, candidate) pair, rescaled when a baseline is set."""
        if len(references) != len(candidates):
            raise ValueError(
                f"BERTScore: {len(references)} references for {len(candidates)} candidates"
            )
        scores = np.zeros((len(references), 3))
        if not references:
            return scores
        ref_vectors = self.embeddings(references)
        cand_vectors = self.embeddings(candidates)
        for i, (ref, cand) in enumerate(zip(ref_vectors, cand_vectors)):
            # Two rows = [CLS] [SEP] only: an empty text, scored 0 as bert-score does.
            if len(ref) <= 2 or len(cand) <= 2:
                continue
            similarity = cand @ ref.T
            precision = float(similarity[1:-1].max(axis=1).mean())
            recall = float(similarity[:, 1:-1].max(axis=0).mean())
            total = precision + recall
            scores[i] = (precision, recall, 0.0 if total == 0 else 2 * precision * recall / total)
        return rescale(scores, self.baseline) if self.rescaled else scores


def bertscore(
    references: Sequence[str],
    candidates: Sequence[str],
    preset: str | Path,
    *,
    model_type: str | None = None,
    layer: int | None = None,
    baseline: str | Path | None = None,
    batch_size: int = 32,
    max_length: int = 512,
) -> np.ndarray:
    """(n, 3) BERTScore P, R, F1 per pair: `BertScorer(...).score(references, candidates)`."""
    scorer = BertScorer(
        preset,
        model_type=model_type,
        layer=layer,
        baseline=baseline,
        batch_size=batch_size,
        max_length=max_length,
    )
    return scorer.score(references, candidates)
