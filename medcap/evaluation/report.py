"""Readable results: markdown tables and the plain-text `medcap score` listing.

API:

    results_table(ours, *, paper=None, baselines=None, keys=None, synthetic=False,
                  title=None, digits=4) -> str              # markdown
    t_test_table(tests, *, paper_p_values=None, digits=5) -> str   # markdown
    score_listing(result, digits=4) -> str                 # plain text
    truth_section(ours, baselines) -> list[str]            # markdown lines; [] without `truth/ce/...`
    SYNTHETIC_BANNER

`results_table` puts three column groups side by side: the paper's number,
ours, and each trivial baseline (`constant`, `random_train`,
`nearest_train`, ...). When a dict holds `ci_low/<key>` and `ci_high/<key>`
(bootstrap 95% CI), its cell reads `value [low, high]`. A metric the paper
does not report shows "-"; one that could not be computed (None, e.g.
METEOR without java) shows "n/a". With `synthetic=True` the table starts
with SYNTHETIC_BANNER.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medcap.evaluation.text_metrics import COCO_KEYS

SYNTHETIC_BANNER = (
    "> **Synthetic data: numbers not comparable with the paper.** These results come from medcap's "
    "synthetic stand-in for the dataset; they check that the pipeline learns, not what the paper's model scores."
)
_NAMESPACES_SKIPPED = ("meta/", "ci_low/", "ci_high/", "ce/f1/")
_GROUP_OF = {
    **{f"Bleu_{n}": "bleu" for n in range(1, 5)},
    "METEOR": "meteor",
    "ROUGE_L": "rouge",
    "CIDEr": "cider",
}


def _is_metric_key(key: str, value: Any) -> bool:
    if key.startswith(_NAMESPACES_SKIPPED):
        return False
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _format(value: Any, digits: int) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}f}"


def format_value(value: Any, digits: int = 4) -> str:
    """A table cell: numbers with `digits` decimals, None as "n/a", NaN as "nan", text as is."""
    if value is None:
        return "n/a"
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        return _format(value, digits)
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a markdown table: the first column left-aligned, the others right-aligned."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    return [line(header), "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|", *(line(r) for r in rows)]


def _cell(source: Mapping[str, Any] | None, key: str, digits: int) -> str:
    if source is None or key not in source:
        return "-"
    text = _format(source[key], digits)
    low, high = source.get(f"ci_low/{key}"), source.get(f"ci_high/{key}")
    if low is not None and high is not None:
        text += f" [{_format(low, digits)}, {_format(high, digits)}]"
    return text


def default_keys(ours: Mapping[str, Any], paper: Mapping[str, Any] | None = None) -> list[str]:
    """Canonical keys first (those present anywhere), then ours' other metric keys in order."""
    requested = ours.get("meta/metrics")
    groups = requested.split(",") if isinstance(requested, str) else None

    def shown(key: str) -> bool:
        if paper and key in paper:
            return True
        if groups is not None:  # a score_corpus result: show what was asked for, computed or not
            return _GROUP_OF[key] in groups
        return ours.get(key) is not None

    keys = [k for k in COCO_KEYS if shown(k)]
    extras = [k for k, v in ours.items() if k not in COCO_KEYS and _is_metric_key(k, v)]
    extras += [k for k in (paper or {}) if k not in keys and k not in extras]
    return keys + extras


def results_table(
    ours: Mapping[str, Any],
    *,
    paper: Mapping[str, Any] | None = None,
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
    keys: Sequence[str] | None = None,
    synthetic: bool = False,
    title: str | None = None,
    digits: int = 4,
) -> str:
    """Markdown table: metric | paper | ours | one column per baseline."""
    baselines = dict(baselines or {})
    keys = list(keys) if keys is not None else default_keys(ours, paper)
    header = ["metric", "paper", "ours"] + [f"baseline: {name}" for name in baselines]
    lines = []
    if title:
        lines += [f"### {title}", ""]
    if synthetic:
        lines += [SYNTHETIC_BANNER, ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for key in keys:
        row = [f"`{key}`", _cell(paper, key, digits), _cell(ours, key, digits)]
        row += [_cell(values, key, digits) for values in baselines.values()]
        lines.append("| " + " | ".join(row) + " |")
    notes = []
    if any(f"ci_low/{k}" in s for s in [ours, *baselines.values()] for k in keys):
        notes.append("Brackets: bootstrap 95% confidence interval over test reports.")
    if "meta/bleu_flavour" in ours:
        notes.append(
            f"BLEU flavour: {ours['meta/bleu_flavour']}; normalisation: {ours.get('meta/normalisation', '?')}."
        )
    if isinstance(ours.get("meta/meteor"), str) and ours["meta/meteor"].startswith("unavailable"):
        notes.append(f"METEOR {ours['meta/meteor']}.")
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


TRUTH_KEYS = ("truth/ce/micro_f1", "truth/ce/macro_f1", "truth/ce/micro_precision", "truth/ce/micro_recall")


def truth_section(
    ours: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]] | None = None
) -> list[str]:
    """The findings-vs-ground-truth table of a run on a synthetic tree, as
    markdown lines (none when `ours` has no `truth/ce/...` keys)."""
    if "truth/ce/micro_f1" not in ours:
        return []
    return [
        "## Findings against the synthetic ground truth",
        "",
        "Our labeler reads each generated report; its findings are compared with those drawn in the "
        "image (`truth/ce/...`). On synthetic data this tells a model that sees the findings from one "
        "that writes plausible text: most of BLEU's differences here are wording.",
        "",
        results_table(ours, baselines=baselines, keys=TRUTH_KEYS),
    ]


def t_test_table(
    tests: Mapping[str, Mapping[str, float]],
    *,
    paper_p_values: Mapping[str, float] | None = None,
    digits: int = 5,
) -> str:
    """Markdown table of `statistics.compare_systems` output (optionally beside the paper's p-values)."""
    lines = [
        "| metric | mean A | mean B | t | p (ours) | p (paper) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, test in tests.items():
        paper_p = (
            "-"
            if not paper_p_values or key not in paper_p_values
            else _format(paper_p_values[key], digits)
        )
        lines.append(
            f"| `{key}` | {_format(test['mean_a'], 4)} | {_format(test['mean_b'], 4)} | {_format(test['t'], 3)} | "
            f"{_format(test['p'], digits)} | {paper_p} |"
        )
    return "\n".join(lines) + "\n"


def score_listing(result: Mapping[str, Any], digits: int = 4) -> str:
    """Plain-text listing of a `score_corpus` result: metrics, then how they were computed."""
    keys = default_keys(result)
    width = max(len(k) for k in keys) if keys else 0
    lines = [f"{k:<{width}}  {_cell(result, k, digits)}" for k in keys]
    lines.append("")
    lines += [f"{k}: {v}" for k, v in result.items() if k.startswith("meta/")]
    return "\n".join(lines) + "\n"
