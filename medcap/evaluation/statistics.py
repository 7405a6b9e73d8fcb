"""Significance tests and bootstrap confidence intervals.

API:

    paired_t_test(scores_a, scores_b) -> dict          # scipy.stats.ttest_rel
    compare_systems(eval_a, eval_b, keys=None) -> dict  # t-test per metric, aligned by report id
    bootstrap_weights(n, n_resamples, seed) -> (B, n) int array of resample counts
    percentile_interval(values, confidence=0.95) -> (low, high)
    bootstrap_ci(per_item, statistic, n_resamples, seed) -> (low, high)
    paired_bootstrap_test(values_a, values_b, observed_a, observed_b) -> dict

Seed 001 (Table 2) reports p-values of a "pairwise t-test" between two
training regimes for each text metric. The paper does not say over what; we
pair the two systems' per-report scores for the same test reports (the only
pairing that yields one p-value per metric) and run scipy's two-sided
`ttest_rel`. Per-report BLEU is pycocoevalcap's per-image BLEU (coco flavour)
or nltk's sentence_bleu (nltk flavour); see medcap.evaluation.text_metrics.

Bootstrap (ours): resample the report ids with replacement, recompute the
corpus metric on each resample, take the 2.5th and 97.5th percentiles. A
resample is represented by its count vector (how often each report was
drawn), so additive corpus metrics are one matrix product for all resamples.

Paired bootstrap test (ours, after Koehn 2004 and Berg-Kirkpatrick et al.
2012): both systems are rescored on the same resamples; the resampled
differences, shifted to mean zero by the observed difference, are the null
distribution, and the two-sided p-value is the share of them at least as far
from zero as the observed difference, (count + 1) / (B + 1). Unlike the t-test
it works for corpus metrics that are not means of per-report scores (BLEU,
METEOR, CE micro/macro F1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np


def paired_t_test(scores_a: Sequence[float], scores_b: Sequence[float]) -> dict[str, float]:
    """Two-sided paired t-test of per-report scores (same reports, same order).

    Returns t, p, n, mean_a, mean_b and mean_diff (b - a). Differences with zero
    variance give t = nan, p = nan when they are all 0 (no evidence either way)
    and t = +-inf, p = 0 when they are all the same non-zero shift.
    """
    from scipy import stats

    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores need equal 1-D shapes, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError(f"a paired t-test needs at least 2 reports, got {len(a)}")
    differences = b - a
    if np.all(differences == differences[0]):
        # Zero variance: scipy would warn and answer nan (equal) or +-inf / 0 (shifted).
        shift = float(differences[0])
        t, p = (float("nan"), float("nan")) if shift == 0 else (math.copysign(math.inf, shift), 0.0)
    else:
        result = stats.ttest_rel(b, a)
        t, p = float(result.statistic), float(result.pvalue)
    return {
        "t": t,
        "p": p,
        "n": int(len(a)),
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "mean_diff": float((b - a).mean()),
    }


def compare_systems(
    eval_a: Any, eval_b: Any, keys: Iterable[str] | None = None
) -> dict[str, dict[str, float]]:
    """Paired t-test per metric between two `Evaluation`s of the same reports.

    Reports are aligned by id; the id sets must match.
    """
    if set(eval_a.ids) != set(eval_b.ids):
        from medcap.evaluation.ids import IdMismatchError, describe_id_mismatch

        raise IdMismatchError(describe_id_mismatch(eval_a.ids, eval_b.ids))
    order_b = {report_id: i for i, report_id in enumerate(eval_b.ids)}
    index = np.array([order_b[report_id] for report_id in eval_a.ids])
    shared = [k for k in eval_a.per_report if k in eval_b.per_report]
    chosen = shared if keys is None else [k for k in keys if k in shared]
    return {
        k: paired_t_test(eval_a.per_report[k], np.asarray(eval_b.per_report[k])[index])
        for k in chosen
    }


def bootstrap_weights(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n) counts: row b says how often each report is in resample b."""
    if n < 1 or n_resamples < 1:
        raise ValueError(f"need n >= 1 and n_resamples >= 1, got n={n}, n_resamples={n_resamples}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_resamples, n))
    offsets = (np.arange(n_resamples) * n)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_resamples * n).reshape(n_resamples, n)


def percentile_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap values (NaNs ignored; all-NaN gives NaNs)."""
    values = np.asarray(values, dtype=np.float64)
    tail = (1 - confidence) / 2 * 100
    if np.all(np.isnan(values)):
        return float("nan"), float("nan")
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(
    per_item: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Bootstrap CI of a corpus statistic.

    `statistic(weights)` maps (B, n) resample counts to (B,) values; the
    default is the mean of `per_item` (right for metrics that average
    per-report scores).
    """
    values = np.asarray(per_item, dtype=np.float64)
    n = len(values)
    if statistic is None:

        def statistic(w: np.ndarray) -> np.ndarray:
            return (w @ values) / n

    return percentile_interval(statistic(bootstrap_weights(n, n_resamples, seed)), confidence)


def paired_bootstrap_test(
    values_a: Sequence[float] | np.ndarray,
    values_b: Sequence[float] | np.ndarray,
    observed_a: float,
    observed_b: float,
) -> dict[str, float]:
    """Two-sided paired bootstrap test of a corpus metric (module docstring).

    `values_a`, `values_b`: the metric of each system on the same B resamples
    (resample b drew the same reports for both). Returns diff (b - a, observed),
    p, n_resamples. Identical systems give p = 1.
    """
    a = np.asarray(values_a, dtype=np.float64)
    b = np.asarray(values_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 1:
        raise ValueError(f"paired resample values need equal non-empty 1-D shapes, got {a.shape} and {b.shape}")
    observed = float(observed_b) - float(observed_a)
    resampled = b - a
    keep = ~np.isnan(resampled)
    if not keep.any() or math.isnan(observed):
        return {"diff": observed, "p": float("nan"), "n_resamples": int(len(a))}
    # Rounding noise must not count against identical systems.
    tolerance = 1e-12 * max(1.0, abs(observed))
    extreme = np.abs(resampled[keep] - observed) >= abs(observed) - tolerance
    p = (int(extreme.sum()) + 1) / (int(keep.sum()) + 1)
    return {"diff": observed, "p": float(min(1.0, p)), "n_resamples": int(keep.sum())}
