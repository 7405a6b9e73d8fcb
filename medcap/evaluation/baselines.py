"""Trivial baselines from the train split, printed beside every model result.

API:

    choose_constant_report(train_reports, *, criterion="bleu4", max_candidates=5000,
                           max_references=5000, seed=0) -> ConstantChoice
    constant_baseline(target_ids, train_reports, **same) -> (predictions, ConstantChoice)
    random_train_baseline(target_ids, train_reports, *, seed=0) -> predictions
    nearest_train_baseline(query_ids, query_embeddings, train_embeddings, train_reports) -> predictions
    consensus_scores(candidates, references, *, criterion, exclude_self=True) -> np.ndarray

`predictions` is `{id: [text]}`, the format `medcap score` reads.

constant (ours): the one train report that, predicted for every other train
report, scores best on the train split itself: corpus BLEU-4 (pycocoevalcap
formula, `criterion="bleu4"`, default) or CIDEr-D (`criterion="cider"`). This
is the test-time score of predicting that report everywhere, measured on the
train split, so it needs no test data. It is computed exactly for every
candidate at once: with I_t the indicator "n-gram count >= t", the clipped
match count min(a, b) = sum_t [a >= t][b >= t], so the clipped matches of one
candidate against all references are sum_t I_t[c] . (sum_r I_t[r]), one
sparse product per t; CIDEr-D's sum_g w_g^2 min(a, b) b is handled the same
way, in candidate blocks. The candidate is not scored against its own copy
(one instance of its text is left out of the references); CIDEr's document
frequencies come from all the references (leaving each candidate's copy out
would change them per candidate). To stay tractable on MIMIC-CXR-sized
splits: at most `max_candidates` distinct texts are candidates (the most
frequent first; equally frequent ones in a seeded random order) and at most
`max_references` train reports (a seeded sample) are the references. The
defaults cover IU X-ray's 2,069 train reports exactly. Texts are whitespace
normalised as the scorer does.

random_train: each target id gets a train report drawn uniformly with
replacement by `numpy.random.default_rng(seed)`, in the order the ids are
given.

nearest_train: each query gets the report of the train image with the
highest cosine similarity of the given embeddings (argmax of one normalised
matrix product, in query blocks; ties go to the lower train index).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medcap.evaluation.text_metrics import _coco_bleu_formula, normalise_text

CRITERIA = ("bleu4", "cider")
CIDER_SIGMA = 6.0


@dataclass
class ConstantChoice:
    text: str
    criterion: str
    score: float
    num_candidates: int
    num_references: int
    seed: int

    def describe(self) -> str:
        return (
            f"constant baseline: train report with the best {self.criterion} consensus "
            f"({self.score:.4f} over {self.num_references} train references, {self.num_candidates} candidates, "
            f"seed {self.seed}): {self.text!r}"
        )


class _NgramTable:
    """Sparse n-gram count matrices (orders 1-4) of distinct texts, pycocoevalcap's tokens."""

    def __init__(self, texts: Sequence[str]):
        from pycocoevalcap.bleu.bleu_scorer import precook
        from scipy import sparse

        vocab: list[dict[tuple[str, ...], int]] = [{} for _ in range(4)]
        rows: list[list[int]] = [[] for _ in range(4)]
        cols: list[list[int]] = [[] for _ in range(4)]
        vals: list[list[int]] = [[] for _ in range(4)]
        lengths = []
        for i, text in enumerate(texts):
            length, counts = precook(text, 4)
            lengths.append(length)
            for gram, count in counts.items():
                order = len(gram) - 1
                rows[order].append(i)
                cols[order].append(vocab[order].setdefault(gram, len(vocab[order])))
                vals[order].append(count)
        self.lengths = np.array(lengths, dtype=np.float64)
        self.counts = [
            sparse.csr_matrix(
                (np.array(vals[k], dtype=np.float64), (rows[k], cols[k])),
                shape=(len(texts), max(1, len(vocab[k]))),
            )
            for k in range(4)
        ]

    def thresholds(self, order: int) -> list[Any]:
        """[I_1, I_2, ...]: sparse 0/1 matrices "count >= t" for this order."""
        counts = self.counts[order]
        top = int(counts.max()) if counts.nnz else 0
        return [(counts >= t).astype(np.float64) for t in range(1, top + 1)]


def consensus_scores(
    candidates: Sequence[str],
    references: Sequence[str],
    *,
    criterion: str = "bleu4",
    exclude_self: bool = True,
    block: int = 256,
) -> np.ndarray:
    """Corpus score of predicting each candidate for every reference (see module docstring).

    `references` may repeat texts; with `exclude_self`, one copy of the
    candidate's own text (when present) is left out of its references.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if not references:
        raise ValueError("no reference reports")
    distinct = list(dict.fromkeys(list(candidates) + list(references)))
    index = {text: i for i, text in enumerate(distinct)}
    table = _NgramTable(distinct)
    multiplicity = np.zeros(len(distinct))
    for text in references:
        multiplicity[index[text]] += 1
    cand = np.array([index[c] for c in candidates], dtype=np.int64)
    excluded = (multiplicity[cand] >= 1).astype(np.float64) if exclude_self else np.zeros(len(cand))
    num_refs = multiplicity.sum() - excluded
    if criterion == "bleu4":
        return _bleu4_consensus(table, cand, multiplicity, excluded, num_refs)
    return _cider_consensus(table, cand, multiplicity, excluded, num_refs, block)


def _bleu4_consensus(
    table: _NgramTable,
    cand: np.ndarray,
    multiplicity: np.ndarray,
    excluded: np.ndarray,
    num_refs: np.ndarray,
) -> np.ndarray:
    lengths = table.lengths
    correct = np.zeros((len(cand), 4))
    guess = np.zeros((len(cand), 4))
    for order in range(4):
        grams = np.maximum(0.0, lengths[cand] - order)
        for indicator in table.thresholds(order):
            reference_totals = indicator.T @ multiplicity
            correct[:, order] += indicator[cand] @ reference_totals
        correct[:, order] -= excluded * grams  # the candidate matches its own copy fully
        guess[:, order] = num_refs * grams
    testlen = num_refs * lengths[cand]
    reflen = multiplicity @ lengths - excluded * lengths[cand]
    return _coco_bleu_formula(correct, guess, testlen, reflen)[:, 3]


def _cider_consensus(
    table: _NgramTable,
    cand: np.ndarray,
    multiplicity: np.ndarray,
    excluded: np.ndarray,
    num_refs: np.ndarray,
    block: int,
) -> np.ndarray:
    from scipy import sparse

    ref_len = math.log(float(multiplicity.sum()))
    bigrams = np.maximum(0.0, table.lengths - 1)  # pycocoevalcap's "length" counts bigrams
    present = multiplicity > 0
    ref_rows = np.flatnonzero(present)
    per_order = []
    for order in range(4):
        counts = table.counts[order]
        document_frequency = (counts > 0).astype(np.float64).T @ multiplicity
        weight = ref_len - np.log(np.maximum(1.0, document_frequency))
        norms = np.sqrt(np.asarray(counts.multiply(counts).multiply(weight**2).sum(axis=1)).ravel())
        indicators = table.thresholds(order)
        hyp_side = [sparse.csr_matrix(i.multiply(weight**2)) for i in indicators]
        ref_side = [sparse.csr_matrix(i.multiply(counts))[ref_rows] for i in indicators]
        per_order.append((norms, hyp_side, ref_side))
    scores = np.zeros(len(cand))
    for lo in range(0, len(cand), block):
        chunk = cand[lo : lo + block]
        total = np.zeros((len(chunk), len(ref_rows)))
        for norms, hyp_side, ref_side in per_order:
            overlap = np.zeros_like(total)
            for h, r in zip(hyp_side, ref_side):
                overlap += (h[chunk] @ r.T).toarray()
            denominator = np.outer(norms[chunk], norms[ref_rows])
            total += np.divide(overlap, denominator, out=overlap.copy(), where=denominator != 0)
        penalty = np.exp(
            -((bigrams[chunk][:, None] - bigrams[ref_rows][None, :]) ** 2) / (2 * CIDER_SIGMA**2)
        )
        pair = total / 4 * penalty * 10.0  # mean over orders, x10, one reference per "image"
        weighted = pair @ multiplicity[ref_rows]
        own = np.array(
            [
                pair[i, np.searchsorted(ref_rows, c)] if present[c] else 0.0
                for i, c in enumerate(chunk)
            ]
        )
        scores[lo : lo + block] = weighted - excluded[lo : lo + block] * own
    return np.divide(scores, num_refs, out=np.zeros_like(scores), where=num_refs > 0)


def choose_constant_report(
    train_reports: Sequence[str],
    *,
    criterion: str = "bleu4",
    max_candidates: int = 5000,
    max_references: int = 5000,
    seed: int = 0,
) -> ConstantChoice:
    """The train report with the best consensus score (module docstring)."""
    if not train_reports:
        raise ValueError("the train split has no reports")
    texts = [normalise_text(t) for t in train_reports]
    rng = np.random.default_rng(seed)
    frequency = Counter(texts)
    distinct = list(frequency)
    tie_break = rng.permutation(len(distinct))
    order = sorted(range(len(distinct)), key=lambda i: (-frequency[distinct[i]], tie_break[i]))
    candidates = [distinct[i] for i in order[:max_candidates]]
    if len(texts) > max_references:
        references = [
            texts[i] for i in np.sort(rng.choice(len(texts), size=max_references, replace=False))
        ]
    else:
        references = texts
    scores = consensus_scores(candidates, references, criterion=criterion)
    best = int(np.argmax(scores))
    return ConstantChoice(
        text=candidates[best],
        criterion=criterion,
        score=float(scores[best]),
        num_candidates=len(candidates),
        num_references=len(references),
        seed=seed,
    )


def constant_baseline(
    target_ids: Sequence[str], train_reports: Sequence[str], **kwargs: Any
) -> tuple[dict[str, list[str]], ConstantChoice]:
    choice = choose_constant_report(train_reports, **kwargs)
    return {str(i): [choice.text] for i in target_ids}, choice


def random_train_baseline(
    target_ids: Sequence[str], train_reports: Sequence[str], *, seed: int = 0
) -> dict[str, list[str]]:
    if not train_reports:
        raise ValueError("the train split has no reports")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(train_reports), size=len(target_ids))
    return {str(i): [train_reports[int(p)]] for i, p in zip(target_ids, picks)}


def nearest_train_baseline(
    query_ids: Sequence[str],
    query_embeddings: Any,
    train_embeddings: Any,
    train_reports: Sequence[str],
    *,
    block: int = 1024,
) -> dict[str, list[str]]:
    """Report of the most cosine-similar train image for each query image."""
    queries = np.asarray(query_embeddings, dtype=np.float64)
    train = np.asarray(train_embeddings, dtype=np.float64)
    if queries.ndim != 2 or train.ndim != 2 or queries.shape[1] != train.shape[1]:
        raise ValueError(
            f"embeddings must be (n, d) with one d, got {queries.shape} and {train.shape}"
        )
    if len(queries) != len(query_ids) or len(train) != len(train_reports):
        raise ValueError("one embedding per id and one per train report are needed")
    queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    train = train / np.maximum(np.linalg.norm(train, axis=1, keepdims=True), 1e-12)
    nearest = np.concatenate(
        [
            np.argmax(queries[lo : lo + block] @ train.T, axis=1)
            for lo in range(0, len(queries), block)
        ]
    )
    return {str(i): [train_reports[int(j)]] for i, j in zip(query_ids, nearest)}


# ---------------------------------------------------------------------------
# Label and ordinal outputs


def prevalence_baseline(train_findings: Any, num: int, *, seed: int = 0) -> np.ndarray:
    """(num, labels) 0/1 draws, label j positive with its train prevalence."""
    prevalence = np.asarray(train_findings, dtype=np.float64).mean(axis=0)
    rng = np.random.default_rng(seed)
    return (rng.random((num, prevalence.size)) < prevalence).astype(np.float64)


def majority_labels_baseline(train_findings: Any, num: int) -> np.ndarray:
    """(num, labels): every label at its train majority value (ties -> 0)."""
    prevalence = np.asarray(train_findings, dtype=np.float64).mean(axis=0)
    return np.tile((prevalence > 0.5).astype(np.float64), (num, 1))


def majority_level(train_levels: Sequence[int]) -> int:
    """The most frequent train level (ties -> the lower level)."""
    values, counts = np.unique(np.asarray(train_levels, dtype=np.int64), return_counts=True)
    return int(values[np.argmax(counts)])
