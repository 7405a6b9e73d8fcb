"""What paper 002's dual encoder reads and how it retrieves.

Shared by the task (training pairs, `medcap caption`) and the evaluation
(`clip_report`): which image of a study is embedded, which text the text
encoder reads, and top-1 retrieval by cosine similarity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medcap.data.base import Example


def first_view(image: Any) -> str:
    """The image path of a study: the first view when there are several."""
    if isinstance(image, (tuple, list)):
        if not image:
            raise ValueError("a study with no image")
        return str(image[0])
    return str(image)


def encoder_text(example: Example) -> str:
    """What the text encoder reads: the original report, whitespace-normalised
    (case and punctuation kept for a cased BioBERT; see the module docstring)."""
    return " ".join(str(example["report"]).split())


def normalized_rows(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def top1_retrieval(
    queries: np.ndarray, bank: np.ndarray, *, block: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """(index, cosine similarity) of each query's most similar bank row.

    One normalised matrix product per block of queries (ties: lowest index).
    """
    queries, bank = normalized_rows(queries), normalized_rows(bank)
    if queries.shape[1] != bank.shape[1]:
        raise ValueError(f"embedding sizes differ: queries {queries.shape}, bank {bank.shape}")
    indices, similarities = [], []
    for start in range(0, len(queries), block):
        similarity = queries[start : start + block] @ bank.T
        best = np.argmax(similarity, axis=1)
        indices.append(best)
        similarities.append(similarity[np.arange(len(best)), best])
    if not indices:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(indices), np.concatenate(similarities)
