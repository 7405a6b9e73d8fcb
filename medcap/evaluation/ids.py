"""Scores are paired by report id: both sides must name the same ids.

Shared by the text metrics (references vs predictions) and the paired
statistics (system A vs system B on the same reports).
"""

from __future__ import annotations

from collections.abc import Iterable


class IdMismatchError(ValueError):
    """References and predictions do not cover the same ids."""


def describe_id_mismatch(
    reference_ids: Iterable[str], prediction_ids: Iterable[str], *, show: int = 3
) -> str | None:
    """One line naming a few ids missing on each side, or None when the sets match."""
    refs, preds = set(reference_ids), set(prediction_ids)
    if refs == preds:
        return None

    def few(ids: set[str]) -> str:
        listed = sorted(ids)[:show]
        more = len(ids) - len(listed)
        return (", ".join(listed) or "none") + (f" (+{more} more)" if more else "")

    return (
        f"ids differ: references have {len(refs)}, predictions have {len(preds)}; "
        f"missing from predictions: {few(refs - preds)}; missing from references: {few(preds - refs)}"
    )
