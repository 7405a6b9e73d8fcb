"""Splits of the joined studies: the official split CSV, or the balanced 10k subset (paper 001, 4.1).

Rules in `medcap.data.mimic` (**Splits.**): normal vs abnormal, duplicate
reports removed, patient-disjoint, seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data.base import DataError
from medcap.data.mimic.cleaning import label_value
from medcap.data.mimic.formats import PATHOLOGY_LABELS
from medcap.data.mimic.join import _Errors, _Study


def is_normal(labels: dict[str, float], uncertain_label: int) -> bool:
    """"No Finding" = 1, or no pathology label positive (`medcap.data.mimic` docstring)."""
    if labels["No Finding"] == 1.0:
        return True
    return not any(label_value(labels[name], uncertain_label) for name in PATHOLOGY_LABELS)

def balanced_subset(
    studies: list[_Study], sizes: Sequence[int], seed: int, info: dict[str, Any]
) -> dict[str, list[_Study]]:
    """Paper 001's balanced, deduplicated, patient-disjoint subset (`medcap.data.mimic` docstring)."""
    unique: list[_Study] = []
    seen: set[str] = set()
    for study in sorted(studies, key=lambda s: s.study_id):
        if study.report_clean in seen:
            continue
        seen.add(study.report_clean)
        unique.append(study)
    available = {True: sum(s.normal for s in unique), False: sum(not s.normal for s in unique)}
    requested = list(sizes)
    scaled = 2 * min(available.values()) < sum(requested)
    if scaled:
        factor = 2 * min(available.values()) / sum(requested)
        sizes = [int(size * factor) for size in requested]
    targets = {
        split: {True: size // 2, False: size - size // 2} for split, size in zip(("train", "val", "test"), sizes)
    }
    chosen: dict[str, dict[bool, list[_Study]]] = {split: {True: [], False: []} for split in targets}
    patient_split: dict[int, str] = {}
    order = np.random.default_rng(seed).permutation(len(unique))

    def unfilled(split: str) -> float:
        total = sum(targets[split].values())
        filled = sum(len(v) for v in chosen[split].values())
        return (total - filled) / total if total else 0.0

    for index in order:
        study = unique[int(index)]
        split = patient_split.get(study.subject_id)
        if split is None:
            open_splits = [s for s in targets if len(chosen[s][study.normal]) < targets[s][study.normal]]
            if not open_splits:
                continue
            split = max(open_splits, key=unfilled)  # ties: first in train, val, test order
            patient_split[study.subject_id] = split
        if len(chosen[split][study.normal]) < targets[split][study.normal]:
            chosen[split][study.normal].append(study)
    result = {}
    for split, classes in chosen.items():
        normal, abnormal = classes[True], classes[False]
        if len(normal) < targets[split][True] or len(abnormal) < targets[split][False]:
            # Patient constraints left a class short: trim to keep the balance.
            n = min(len(normal), len(abnormal))
            normal, abnormal = normal[:n], abnormal[:n]
        result[split] = sorted(normal + abnormal, key=lambda s: s.study_id)
    info["subset"] = {
        "requested_sizes": requested,
        "sizes": [len(result[s]) for s in ("train", "val", "test")],
        "scaled": scaled,
        "pool_after_dedup": len(unique),
        "duplicate_reports_removed": len(studies) - len(unique),
        "available_normal": available[True],
        "available_abnormal": available[False],
        "normal_per_split": {s: sum(x.normal for x in result[s]) for s in result},
    }
    return result


def _official_splits(
    studies: list[_Study], split_of: dict[str, tuple[str, int]], path: Path, errors: _Errors
) -> dict[str, list[_Study]]:
    result: dict[str, list[_Study]] = {"train": [], "val": [], "test": []}
    for study in studies:
        entry = split_of.get(study.image.dicom_id)
        if entry is None:
            errors.handle(
                DataError(f"no split row for dicom_id {study.image.dicom_id}", file=path, record=f"study s{study.study_id}", field="dicom_id")
            )
            continue
        result[entry[0]].append(study)
    return result
