"""Scores of a multi-label findings classifier, with masked labels left out.

The same keys for every findings system (paper 004's classifier, and the
classifier stage of paper 003), so runs compare line by line:

    auroc/<label>, auprc/<label>           per label, over its labelled images
    auroc_ci/<label>                       [low, high], 95% percentile bootstrap
                                           over images (`bootstrap` resamples)
    positives/<label>, negatives/<label>
    auroc_macro, auprc_macro               means over the labels whose AUROC is
                                           defined (both classes present)
    auroc_macro_ci                         bootstrap CI of that mean
    labels_scored                          how many labels that is
    threshold/<label>                      chosen on validation (`threshold_rule`)
    accuracy/<label>, precision/<label>, recall/<label>, f1/<label>
                                           on this split at those thresholds
    macro_<metric>, micro_<metric>         mean over labels / pooled counts
    ece, calibration_bins                  expected calibration error over
                                           every labelled (image, label) pair
    baselines/<name>/<key>                 the same keys for each baseline

Targets follow `medcap.data.findings_labels`: 1, 0, or -1 (masked: left out
of that label's every score). Choices (ours):

* AUROC is sklearn's `roc_auc_score`, AUPRC its `average_precision_score`
  (step-wise, no interpolation); a label with one class among its labelled
  images has NaN for both and is left out of the macro means.
* Bootstrap: images are resampled with replacement, the same resamples for
  every label (so the macro CI respects their correlation); a resample in
  which a label lost a class is left out of that label's interval.
* Thresholds: `threshold_rule` "f1" takes the validation score that
  maximises F1 (predict positive when p >= t), "youden" the one that
  maximises TPR - FPR; ties go to the higher threshold; a label with no
  validation positives or negatives keeps 0.5. Chosen on validation, applied
  to the scored split: never tuned on test.
* Calibration: equal-width bins over [0, 1] (`calibration_bins`, 10),
  ECE = sum over bins of (pairs in bin / all pairs) x |mean p - positive
  rate|, pooled over labels; `reliability` gives the bins for the plot.
* Baselines (`baseline_scores`): "prevalence" scores every image with the
  label's train prevalence (AUROC 0.5 by construction, AUPRC the test
  prevalence); "linear_probe" is a per-label logistic regression on
  features of a backbone never trained on the task (the caller's
  features).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medcap.evaluation.statistics import bootstrap_weights, percentile_interval

THRESHOLD_RULES = ("f1", "youden")


def _check(targets: Any, scores: Any, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    targets = np.asarray(targets, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if targets.shape != scores.shape or targets.ndim != 2 or targets.shape[1] != len(names):
        raise ValueError(f"targets {targets.shape} and scores {scores.shape} must be (n, {len(names)})")
    if not np.isin(targets, (-1, 0, 1)).all():
        raise ValueError("targets must be 1, 0 or -1 (masked)")
    return targets, scores


# ---------------------------------------------------------------------------
# Ranking scores


def ranking_scores(targets: Any, scores: Any, names: Sequence[str], *, bootstrap: int = 0, seed: int = 0) -> dict[str, Any]:
    """AUROC / AUPRC per label and macro, with bootstrap CIs when `bootstrap` > 0."""
    from sklearn import metrics

    targets, scores = _check(targets, scores, names)
    out: dict[str, Any] = {}
    defined = []
    for j, name in enumerate(names):
        labelled = targets[:, j] >= 0
        y, s = targets[labelled, j], scores[labelled, j]
        positives, negatives = int((y == 1).sum()), int((y == 0).sum())
        out[f"positives/{name}"] = positives
        out[f"negatives/{name}"] = negatives
        if positives and negatives:
            out[f"auroc/{name}"] = float(metrics.roc_auc_score(y, s))
            out[f"auprc/{name}"] = float(metrics.average_precision_score(y, s))
            defined.append(j)
        else:
            out[f"auroc/{name}"] = out[f"auprc/{name}"] = float("nan")
    out["auroc_macro"] = float(np.mean([out[f"auroc/{names[j]}"] for j in defined])) if defined else float("nan")
    out["auprc_macro"] = float(np.mean([out[f"auprc/{names[j]}"] for j in defined])) if defined else float("nan")
    out["labels_scored"] = len(defined)
    if bootstrap and defined:
        weights = bootstrap_weights(len(targets), bootstrap, seed)
        per_label = np.full((bootstrap, len(names)), np.nan)
        for j in defined:
            labelled = targets[:, j] >= 0
            y, s = targets[labelled, j], scores[labelled, j]
            for b in range(bootstrap):
                w = weights[b, labelled]
                if w[y == 1].sum() and w[y == 0].sum():
                    per_label[b, j] = metrics.roc_auc_score(y, s, sample_weight=w)
        for j in defined:
            out[f"auroc_ci/{names[j]}"] = list(percentile_interval(per_label[:, j]))
        macro = np.nanmean(per_label[:, defined], axis=1)
        out["auroc_macro_ci"] = list(percentile_interval(macro))
        out["bootstrap_resamples"] = int(bootstrap)
    return out


# ---------------------------------------------------------------------------
# Thresholds and the metrics at them


def choose_thresholds(targets: Any, scores: Any, names: Sequence[str], rule: str = "f1") -> list[float]:
    """One threshold per label from validation predictions (module docstring)."""
    from sklearn import metrics

    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule {rule!r}: expected one of {', '.join(THRESHOLD_RULES)}")
    targets, scores = _check(targets, scores, names)
    thresholds = []
    for j in range(len(names)):
        labelled = targets[:, j] >= 0
        y, s = targets[labelled, j], scores[labelled, j]
        if not (y == 1).any() or not (y == 0).any():
            thresholds.append(0.5)
            continue
        if rule == "youden":
            fpr, tpr, cut = metrics.roc_curve(y, s, drop_intermediate=False)
            finite = np.isfinite(cut)
            gain = (tpr - fpr)[finite]
            # roc_curve lists thresholds in decreasing order: argmax takes the highest on ties.
            thresholds.append(float(cut[finite][int(np.argmax(gain))]))
        else:
            precision, recall, cut = metrics.precision_recall_curve(y, s)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)[:-1]
            best = np.flatnonzero(f1 == f1.max())
            thresholds.append(float(cut[best[-1]]))
    return thresholds


def threshold_scores(targets: Any, scores: Any, names: Sequence[str], thresholds: Sequence[float]) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 per label at `thresholds`, macro and micro."""
    targets, scores = _check(targets, scores, names)
    out: dict[str, Any] = {}
    totals = np.zeros(4)
    per_metric: dict[str, list[float]] = {"accuracy": [], "precision": [], "recall": [], "f1": []}
    for j, name in enumerate(names):
        labelled = targets[:, j] >= 0
        y = targets[labelled, j] == 1
        predicted = scores[labelled, j] >= thresholds[j]
        tp, fp = int((predicted & y).sum()), int((predicted & ~y).sum())
        fn, tn = int((~predicted & y).sum()), int((~predicted & ~y).sum())
        totals += (tp, fp, fn, tn)
        values = _from_counts(tp, fp, fn, tn)
        out[f"threshold/{name}"] = float(thresholds[j])
        for key, value in values.items():
            out[f"{key}/{name}"] = value
            per_metric[key].append(value)
    for key, values in per_metric.items():
        out[f"macro_{key}"] = float(np.mean(values)) if values else float("nan")
    for key, value in _from_counts(*totals).items():
        out[f"micro_{key}"] = value
    return out


def _from_counts(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    total = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (tp + tn) / total if total else float("nan"), "precision": precision, "recall": recall, "f1": f1}


# ---------------------------------------------------------------------------
# Calibration


def reliability(targets: Any, scores: Any, bins: int = 10) -> dict[str, list[float]]:
    """Equal-width bins over every labelled (image, label) pair: count, mean
    predicted probability and observed positive rate per bin."""
    targets = np.asarray(targets)
    scores = np.asarray(scores, dtype=np.float64)
    labelled = targets >= 0
    p, y = scores[labelled], (targets[labelled] == 1).astype(np.float64)
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(index, weights=p, minlength=bins) / count
        rate = np.bincount(index, weights=y, minlength=bins) / count
    return {"count": count.tolist(), "mean_probability": mean_p.tolist(), "positive_rate": rate.tolist()}


def expected_calibration_error(targets: Any, scores: Any, bins: int = 10) -> float:
    table = reliability(targets, scores, bins)
    count = np.asarray(table["count"])
    if count.sum() == 0:
        return float("nan")
    gap = np.abs(np.nan_to_num(np.asarray(table["mean_probability"])) - np.nan_to_num(np.asarray(table["positive_rate"])))
    return float((count / count.sum() * gap).sum())


# ---------------------------------------------------------------------------
# Everything for one system, and its baselines


def score_system(
    targets: Any,
    scores: Any,
    names: Sequence[str],
    *,
    thresholds: Sequence[float],
    bootstrap: int = 0,
    seed: int = 0,
    calibration_bins: int = 10,
) -> dict[str, Any]:
    out = ranking_scores(targets, scores, names, bootstrap=bootstrap, seed=seed)
    out.update(threshold_scores(targets, scores, names, thresholds))
    out["ece"] = expected_calibration_error(targets, scores, calibration_bins)
    out["calibration_bins"] = int(calibration_bins)
    return out


def prevalence_scores(train_targets: Any, num: int, names: Sequence[str]) -> np.ndarray:
    """(num, labels): every image scored with the label's train prevalence."""
    train_targets = np.asarray(train_targets, dtype=np.int64).reshape(-1, len(names))
    labelled = (train_targets >= 0).sum(axis=0)
    prevalence = np.where(labelled > 0, (train_targets == 1).sum(axis=0) / np.maximum(labelled, 1), 0.0)
    return np.broadcast_to(prevalence, (num, len(names))).astype(np.float64)


def linear_probe_scores(
    train_features: Any, train_targets: Any, features: Any, names: Sequence[str], *, seed: int = 0
) -> np.ndarray:
    """Per-label L2 logistic regression (C = 1, standardised features) on the
    labelled train rows; a label with one class scores its prevalence."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_features = np.asarray(train_features, dtype=np.float64)
    features = np.asarray(features, dtype=np.float64)
    train_targets = np.asarray(train_targets, dtype=np.int64)
    scaler = StandardScaler().fit(train_features)
    x_train, x = scaler.transform(train_features), scaler.transform(features)
    out = np.zeros((len(features), len(names)))
    for j in range(len(names)):
        labelled = train_targets[:, j] >= 0
        y = train_targets[labelled, j]
        if len(np.unique(y)) < 2:
            out[:, j] = float(y.mean()) if len(y) else 0.0
            continue
        probe = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(x_train[labelled], y)
        out[:, j] = probe.predict_proba(x)[:, 1]
    return out


def score_findings(
    targets: Any,
    scores: Any,
    names: Sequence[str],
    *,
    thresholds: Sequence[float],
    baselines: Mapping[str, tuple[Any, Sequence[float], str]] | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    calibration_bins: int = 10,
) -> dict[str, Any]:
    """A system's scores and each baseline's under `baselines/<name>/`.

    `baselines`: {name: (scores, thresholds chosen on validation, note)}.
    """
    out = score_system(targets, scores, names, thresholds=thresholds, bootstrap=bootstrap, seed=seed, calibration_bins=calibration_bins)
    for name, (baseline_scores, baseline_thresholds, note) in (baselines or {}).items():
        scored = score_system(
            targets,
            baseline_scores,
            names,
            thresholds=baseline_thresholds,
            bootstrap=0,
            calibration_bins=calibration_bins,
        )
        out.update({f"baselines/{name}/{key}": value for key, value in scored.items() if not key.startswith(("positives/", "negatives/"))})
        out[f"meta/baselines/{name}"] = note
    return out
