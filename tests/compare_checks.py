"""One check every report-writing system's end-to-end test runs on its real
workdir: `medcap compare` reads it, and each leaderboard number is the run's
own metrics.json value (the system's and each baseline's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcap.evaluation.compare import EXTRA_COLUMNS, TEXT_COLUMNS, compare_runs


def assert_leaderboard_matches(workdir: Path, metrics: dict[str, Any]) -> None:
    comparison = compare_runs([workdir], bootstrap=50)
    [system] = [row for row in comparison.rows if row.kind == "system"]
    baselines = [row for row in comparison.rows if row.kind == "baseline"]
    text_baselines = {key.split("/")[1] for key in metrics if key.startswith("baselines/") and key.endswith("/Bleu_4")}
    assert {row.name for row in baselines} == {f"baseline: {name}" for name in text_baselines}
    for key, _, _ in TEXT_COLUMNS:
        assert system.metrics[key]["value"] == metrics[key], key
        for row in baselines:
            assert row.metrics[key]["value"] == metrics[f"baselines/{row.name.split(': ')[1]}/{key}"], (row.name, key)
    for key, _, candidates in EXTRA_COLUMNS:
        stated = next((metrics[k] for k in candidates if metrics.get(k) is not None), None)
        assert system.metrics[key]["value"] == stated, key
    assert system.per_finding == {k[len("ce/f1/"):]: v for k, v in metrics.items() if k.startswith("ce/f1/")}
