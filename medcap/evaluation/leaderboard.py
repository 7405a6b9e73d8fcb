"""A `Comparison` on disk: `leaderboard.{md,csv,json,png}`.

    write_leaderboard(comparison, out_dir) -> {"md": path, "csv": ..., "json": ..., "png": ...}

* `leaderboard.json`: everything (rows with each metric's value and CI, the
  per-finding CE F1, the paired tests, the settings and notes);
* `leaderboard.csv`: one line per row, for each metric `<key>`,
  `<key>/ci_low`, `<key>/ci_high`, and for text metrics the paired tests
  against that metric's best row, `<key>/p_bootstrap` and `<key>/p_t`;
* `leaderboard.md`: the main table (value [CI], the best in bold), the
  paired-test table, the per-finding CE F1 table, how it was made;
* `leaderboard.png`: the main metrics as bars with their CIs.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from medcap.evaluation.compare import EXTRA_COLUMNS, TEXT_COLUMNS, Comparison

#: Metrics drawn in leaderboard.png.
PLOTTED = ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "ce/micro_f1", "ce/macro_f1")


def _labels() -> dict[str, str]:
    return {key: label for key, label, _ in TEXT_COLUMNS} | {key: label for key, label, _ in EXTRA_COLUMNS}


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if _present(value) else "n/a"


def _columns(comparison: Comparison) -> list[str]:
    """Text columns always; an extra column only when some row has it."""
    keys = [key for key, _, _ in TEXT_COLUMNS]
    for key, _, _ in EXTRA_COLUMNS:
        if any(_present(row.metrics[key]["value"]) for row in comparison.rows):
            keys.append(key)
    return keys


def _to_json(comparison: Comparison) -> dict[str, Any]:
    return {
        "split": comparison.split,
        "dataset": comparison.dataset,
        "num_reports": comparison.num_reports,
        "columns": [{"key": key, "label": _labels()[key]} for key in _columns(comparison)],
        "rows": [asdict(row) for row in comparison.rows],
        "tests": comparison.tests,
        "settings": comparison.settings,
        "notes": comparison.notes,
    }


def _write_csv(comparison: Comparison, path: Path) -> None:
    keys = _columns(comparison)
    header = ["name", "kind", "experiment", "synthetic", "pretrained", "source"]
    for key in keys:
        header += [key, f"{key}/ci_low", f"{key}/ci_high"]
        if key in comparison.tests:
            header += [f"{key}/p_bootstrap", f"{key}/p_t"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in comparison.rows:
            line: list[Any] = [row.name, row.kind, row.experiment, row.synthetic, row.pretrained, row.source]
            for key in keys:
                cell = row.metrics[key]
                line += [cell["value"], cell["ci_low"], cell["ci_high"]]
                if key in comparison.tests:
                    test = comparison.tests[key]["against"].get(row.name, {})
                    line += [test.get("bootstrap_p"), test.get("t_p")]
            writer.writerow(["" if v is None else v for v in line])


def _markdown(comparison: Comparison) -> str:
    from medcap.evaluation.report import markdown_table

    labels = _labels()
    keys = _columns(comparison)
    best = {key: test["best"] for key, test in comparison.tests.items()}
    lines = [
        "# Leaderboard",
        "",
        f"Split `{comparison.split}`, {comparison.num_reports} reports; "
        + ", ".join(f"{k} {v}" for k, v in comparison.dataset.items() if v is not None)
        + ".",
        "",
        "Each cell: the run's own metrics file value [bootstrap 95% CI]. Bold: the best row of that metric.",
        "",
    ]
    table = []
    for row in comparison.rows:
        cells = [row.name, "yes" if row.synthetic else "no", row.pretrained]
        for key in keys:
            cell = row.metrics[key]
            text = _fmt(cell["value"])
            if _present(cell["ci_low"]):
                text += f" [{_fmt(cell['ci_low'])}, {_fmt(cell['ci_high'])}]"
            cells.append(f"**{text}**" if best.get(key) == row.name else text)
        table.append(cells)
    lines += markdown_table(["system", "synthetic data", "pretrained"] + [labels[k] for k in keys], table)
    lines += [
        "",
        "## Paired tests against the best row of each metric",
        "",
        "Each cell: difference to the best, p of the paired bootstrap test / p of the paired t-test over "
        "per-report scores (CE F1 has no per-report score). p < 0.05 is marked *. Not corrected for multiple comparisons.",
        "",
    ]
    tested = [key for key in keys if key in comparison.tests]
    table = []
    for row in comparison.rows:
        cells = [row.name]
        for key in tested:
            test = comparison.tests[key]
            if test["best"] == row.name:
                cells.append("best")
                continue
            result = test["against"].get(row.name)
            if result is None:
                cells.append("n/a")
                continue
            p_t = result["t_p"]
            star = "*" if result["bootstrap_p"] < 0.05 else ""
            cells.append(f"{result['diff']:+.4f} (p {_fmt(result['bootstrap_p'], 3)}{star} / {_fmt(p_t, 3)})")
        table.append(cells)
    lines += markdown_table(["system"] + [labels[k] for k in tested], table)
    findings = sorted({name for row in comparison.rows for name in row.per_finding})
    if findings:
        lines += ["", "## Clinical efficacy F1 per finding", ""]
        table = [[row.name] + [_fmt(row.per_finding.get(name), 3) for name in findings] for row in comparison.rows]
        lines += markdown_table(["system"] + findings, table)
    lines += ["", "## How it was made", ""]
    lines += [f"- {key}: {value}" for key, value in comparison.settings.items()]
    lines += [f"- {row.name}: {row.source}" + (f" ({row.note})" if row.note else "") for row in comparison.rows]
    lines += [f"- note: {note}" for note in comparison.notes]
    return "\n".join(lines) + "\n"


def _plot(comparison: Comparison, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    labels = _labels()
    names = [row.name for row in comparison.rows]
    figure, axes = plt.subplots(2, 3, figsize=(15, 2.5 + 0.45 * len(names) * 2), squeeze=False)
    positions = np.arange(len(names))
    for axis, key in zip(axes.ravel(), PLOTTED):
        values = np.array([row.metrics[key]["value"] if _present(row.metrics[key]["value"]) else np.nan for row in comparison.rows], float)
        low = np.array([row.metrics[key]["ci_low"] if _present(row.metrics[key]["ci_low"]) else np.nan for row in comparison.rows], float)
        high = np.array([row.metrics[key]["ci_high"] if _present(row.metrics[key]["ci_high"]) else np.nan for row in comparison.rows], float)
        errors = np.nan_to_num(np.vstack([values - low, high - values]), nan=0.0)
        colours = ["tab:blue" if row.kind == "system" else "tab:gray" for row in comparison.rows]
        axis.barh(positions, np.nan_to_num(values), xerr=errors, color=colours, capsize=3)
        axis.set_yticks(positions, names, fontsize=8)
        axis.invert_yaxis()
        axis.set_title(labels[key])
    figure.suptitle(f"{comparison.split} split, {comparison.num_reports} reports (bars: 95% bootstrap CI; grey: baselines)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_leaderboard(comparison: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Writes the four files into `out_dir`; returns their paths by suffix."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {suffix: out_dir / f"leaderboard.{suffix}" for suffix in ("md", "csv", "json", "png")}
    paths["json"].write_text(json.dumps(_to_json(comparison), indent=1, allow_nan=True) + "\n", encoding="utf-8")
    _write_csv(comparison, paths["csv"])
    paths["md"].write_text(_markdown(comparison), encoding="utf-8")
    _plot(comparison, paths["png"])
    return paths
