"""Paper 001's STL / MTL-EQ / MTL-TP report: Tables 1-4 over the regimes' runs.

Aksoy, Sharoff, Ravikumar, "Enhancing Image-to-Text Generation in Radiology
Reports through Cross-modal Multi-Task Learning", section 5, Tables 1-4. Each
run is scored by `medcap.models.mtl_report`; this module reads the finished
workdirs. One idea, the paper's comparison of regimes: its length is the four
tables, the paired test, the overfitting plots, the BERTScore columns and the
loss-weight sweep that all read the same set of runs.

**The three regimes** (`python -m medcap.models.mtl_regimes results/mtl`)
read `results/mtl/{stl/report, stl/acuity, stl/findings, eq, tp}`, the
optional `tp_no_icd` (experiments/mtl_tp_no_icd.py: MTL-TP without the ICD
title input, which can name the target finding) and `sweep/*` when present,
and write `results/mtl/report.md` with Tables 1-4, the paper's numbers and
the trivial baselines side by side, and
`results/mtl/plots/val_<task>_loss.png`: per-task validation losses over
epochs for the three regimes, with a table of the epoch where each one is
lowest (the paper's claim that MTL delays overfitting is read off these).

**The loss-weight sweep** (experiments/mtl_tp_sweep.py, section 3.1: the
paper "explored various approaches" and kept alpha > beta > gamma): every
`sweep/<run>` is scored on the validation split (its `eval.split`), the
weights are chosen by validation BLEU-4 (`SWEEP_METRIC`; ties by ROUGE-L,
then by run name), and only the chosen run is scored on test: its
`metrics_test.json` (`medcap evaluate --workdir DIR --split test`, which
the CLI runs itself unless `--no-sweep-test`). `sweep/chosen.json` records
the choice.

Text metrics are pycocoevalcap's (`medcap.evaluation.text_metrics`), BLEU in
the flavour `eval.bleu_flavour`. **BERTScore** is bert-score's definition
(`medcap.evaluation.bertscore`: greedy cosine matching of contextual token
embeddings, `[CLS]`/`[SEP]` weighted 0, no idf, bert-score's default layer
for the model, optional baseline rescaling) from local keras-hub presets
(`--bert-preset DIR`, `--bert-model`, `--bert-layer`, `--bert-baseline FILE`;
Bio-ClinicalBERT: `--clinical-bert-*`). Without a preset the columns read
"n/a" and the report says why. The paper does not say how it configured
BERTScore: its BS_F1 (about 0.2) is plausible only with bert-score's
baseline rescaling (raw F1 of English text pairs is about 0.8 or more), so
the report says whether ours is raw or rescaled; its Bio-CBS_F1 (about
0.79) reads as raw (bert-score has no baseline for Bio-ClinicalBERT).
Paper 001's Equation 1 adds "sufficiency" and "fluency" terms it does not
define; its Table 1 reports the F1 part, which is what we compute.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medcap.evaluation.bertscore import BertScorer
from medcap.evaluation.report import format_value, markdown_table
from medcap.models.mtl_report import (
    ML_KEYS,
    ML_LABELS,
    OC_KEYS,
    OC_LABELS,
    TEXT_BASELINES,
    TEXT_KEYS,
    TEXT_LABELS,
    _banners,
    is_synthetic,
    read_json,
)

#: The experiment of each regime; each holds the paper's numbers for it
#: (`paper_results`: Tables 1, 3, 4 keyed like our metrics.json; MTL-TP also
#: Table 2's p-values as `p_stl_vs_tp/<key>`).
REGIME_EXPERIMENTS: dict[str, str] = {"STL": "mtl_stl", "MTL-EQ": "mtl_eq", "MTL-TP": "mtl_tp"}
P_VALUE_PREFIX = "p_stl_vs_tp/"


@dataclass
class PaperNumbers:
    """Paper 001's numbers, as its experiments hold them."""

    title: str
    #: Tables 1, 3, 4 per regime, keyed like our metrics.json.
    results: dict[str, dict[str, float]]
    #: Table 2: p-values of the paired t-test STL vs MTL-TP, by metric key.
    p_values: dict[str, float]


def paper_numbers() -> PaperNumbers:
    """Reads the paper's numbers from the regimes' experiment configs (`REGIME_EXPERIMENTS`)."""
    from medcap.config import load_experiment

    configs = {regime: load_experiment(name) for regime, name in REGIME_EXPERIMENTS.items()}
    results = {
        regime: {k: v for k, v in config.paper_results.items() if not k.startswith(P_VALUE_PREFIX)}
        for regime, config in configs.items()
    }
    p_values = {
        k[len(P_VALUE_PREFIX) :]: v
        for k, v in configs["MTL-TP"].paper_results.items()
        if k.startswith(P_VALUE_PREFIX)
    }
    return PaperNumbers(f"{configs['STL'].paper.rsplit(' (', 1)[0]}, {configs['STL'].table}.", results, p_values)
#: Where `make reproduce-mtl` puts each regime's run(s) under the results directory.
REGIME_DIRS: dict[str, dict[str, str]] = {
    "STL": {"report": "stl/report", "acuity": "stl/acuity", "findings": "stl/findings"},
    "MTL-EQ": {"report": "eq", "acuity": "eq", "findings": "eq"},
    "MTL-TP": {"report": "tp", "acuity": "tp", "findings": "tp"},
}
#: Runs that are not one of the paper's regimes, reported beside them when present: label -> directory.
EXTRA_RUNS: dict[str, str] = {"mtl_tp_no_icd": "tp_no_icd"}
EXTRA_RUNS_NOTE = (
    "The primary ED diagnosis title (`icd_title`) can name the target finding (e.g. \"Pleural effusion\"); "
    "`mtl_tp_no_icd` trains MTL-TP without it, and both are reported."
)

#: The loss-weight sweep picks its weights by this validation metric (ours; the paper's main task is ITG
#: and BLEU-4 its headline score), ties broken by `SWEEP_TIE_BREAK`, then by run name.
SWEEP_METRIC = "Bleu_4"
SWEEP_TIE_BREAK = "ROUGE_L"
SWEEP_SPLIT = "val"
SWEEP_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "ml/f1", "oc/accuracy")
SWEEP_LABELS = ("B_1", "B_2", "B_3", "B_4", "R_L", "ML F1", "OC acc.")

#: BERTScore settings of the CLI. BS_F1: bert-score's English default model (`lang="en"` -> roberta-large,
#: layer 17). Bio-CBS_F1: bert-score has no default layer for Bio-ClinicalBERT; 9 is ours, bert-score's
#: default for bert-base-uncased, the architecture Bio-ClinicalBERT shares.
BERT_MODEL = "roberta-large"
CLINICAL_BERT_MODEL = "emilyalsentzer/Bio_ClinicalBERT"
CLINICAL_BERT_LAYER = 9
#: bert-score's `rescale_baseline/en/roberta-large.tsv`, layer 17, column F.
ROBERTA_LARGE_L17_F_BASELINE = 0.83122575


# ---------------------------------------------------------------------------
# The three regimes


class RunResult:
    """What the cross-regime report reads from one finished workdir."""

    def __init__(self, workdir: Path):
        from medcap.config import ExperimentConfig
        from medcap.plots import read_history

        self.workdir = Path(workdir)
        self.config = ExperimentConfig.from_json((self.workdir / "config.json").read_text())
        self.metrics: dict[str, Any] = read_json(self.workdir / "metrics.json")
        history = self.workdir / "history.csv"
        self.history = read_history(history) if history.is_file() else {}
        environment = self.workdir / "environment.json"
        self.environment = read_json(environment) if environment.is_file() else {}
        split = self.metrics.get("meta/split", "test")
        self.split = split
        self.per_report = self._optional(f"per_report_{split}.json")
        self.predictions = self._optional(f"predictions_{split}.json")
        self.baselines = self._optional(f"baselines_{split}.json") or {}
        self.tasks = tuple(str(self.metrics.get("meta/tasks", "")).split(",")) if self.metrics.get("meta/tasks") else ()

    def _optional(self, name: str) -> Any:
        path = self.workdir / name
        return read_json(path) if path.is_file() else None

    @property
    def synthetic(self) -> bool:
        return is_synthetic(self.config)

    def val_loss(self, task: str) -> list[float] | None:
        """Unweighted validation loss of `task` per epoch."""
        key = "val_loss" if self.tasks == (task,) else f"val_{task}_loss"
        return self.history.get(key)


def load_run(workdir: Path) -> RunResult | None:
    return RunResult(workdir) if (Path(workdir) / "metrics.json").is_file() else None


def _regime_runs(results_dir: Path) -> dict[str, dict[str, RunResult | None]]:
    cache: dict[str, RunResult | None] = {}
    runs: dict[str, dict[str, RunResult | None]] = {}
    for regime, by_task in REGIME_DIRS.items():
        runs[regime] = {}
        for task, relative in by_task.items():
            if relative not in cache:
                cache[relative] = load_run(results_dir / relative)
            runs[regime][task] = cache[relative]
    return runs


def _extra_runs(results_dir: Path) -> dict[str, RunResult | None]:
    return {label: load_run(results_dir / relative) for label, relative in EXTRA_RUNS.items()}


@dataclass(frozen=True)
class BertSetting:
    """How one BERTScore column is computed (`medcap.evaluation.bertscore`)."""

    preset: str | None
    model_type: str | None = None
    layer: int | None = None
    baseline: str | None = None


def _add_bertscores(runs: Sequence[RunResult | None], settings: Mapping[str, BertSetting]) -> dict[str, str]:
    """Fills the BERTScore keys of every report run (and its text baselines) in place;
    returns a note per metric saying how it was computed or why not."""
    notes = {}
    report_runs = [r for r in {id(r): r for r in runs if r is not None}.values() if "report" in r.tasks]
    for key, setting in settings.items():
        if not setting.preset:
            flag = "--bert-preset" if key == "BERTScore_F1" else "--clinical-bert-preset"
            notes[key] = f"unavailable: no local keras-hub BERT preset given ({flag} DIR); no network access assumed"
            continue
        if not Path(setting.preset).is_dir():
            notes[key] = f"unavailable: preset directory {setting.preset} does not exist"
            continue
        scorer = BertScorer(setting.preset, model_type=setting.model_type, layer=setting.layer, baseline=setting.baseline)
        for run in report_runs:
            if not run.predictions:
                continue
            ids = sorted(run.predictions)
            refs = [run.predictions[i]["reference"] for i in ids]
            scores = scorer.score(refs, [run.predictions[i]["report"] for i in ids])
            run.metrics[key] = float(scores[:, 2].mean())
            if run.per_report is not None:
                order = {i: n for n, i in enumerate(ids)}
                run.per_report["scores"][key] = [float(scores[order[i], 2]) for i in run.per_report["ids"]]
            for name, texts in run.baselines.items():
                base = scorer.score(refs, [texts[i] for i in ids])
                run.metrics[f"baselines/{name}/{key}"] = float(base[:, 2].mean())
        notes[key] = scorer.describe()
    return notes


def bertscore_setting_lines(notes: Mapping[str, str], stl: Mapping[str, float]) -> list[str]:
    """What the paper's BERTScore numbers (`stl`: its STL row) imply, and whether ours are comparable."""
    paper = stl["BERTScore_F1"]
    raw = ROBERTA_LARGE_L17_F_BASELINE + paper * (1 - ROBERTA_LARGE_L17_F_BASELINE)
    ours = notes.get("BERTScore_F1", "")
    if ours.startswith("unavailable"):
        state = "Ours is not computed (see above)."
    elif "rescaled" in ours and "raw" not in ours:
        state = "Ours is rescaled, so it is on the paper's scale."
    else:
        state = "Ours is raw: it is not comparable with the paper's BS_F1 (give `--bert-baseline FILE`)."
    return [
        f"BERTScore setting: the paper does not say how it configured bert-score. Its BS_F1 ({paper:.4f} for STL) is "
        "plausible only with bert-score's baseline rescaling (`rescale_with_baseline=True`): raw BERTScore F1 of any "
        "two English texts with BERT or RoBERTa is about 0.8 or more. With bert-score's English default "
        f"(roberta-large, layer 17, baseline F {ROBERTA_LARGE_L17_F_BASELINE}) it is a raw F1 of about {raw:.3f}. "
        f"Its Bio-CBS_F1 ({stl['BioClinicalBERTScore_F1']:.4f}) reads as raw: bert-score ships no "
        f"baseline (and no default layer) for Bio-ClinicalBERT. {state}",
    ]


def _paired_tests(stl: RunResult | None, tp: RunResult | None) -> tuple[dict[str, dict[str, float]], str]:
    from medcap.evaluation.statistics import paired_t_test

    if stl is None or tp is None or stl.per_report is None or tp.per_report is None:
        return {}, "needs finished STL (report) and MTL-TP runs with per-report scores"
    if set(stl.per_report["ids"]) != set(tp.per_report["ids"]):
        return {}, "the STL and MTL-TP runs were scored on different test reports; rerun on the same split"
    index = {i: n for n, i in enumerate(tp.per_report["ids"])}
    order = [index[i] for i in stl.per_report["ids"]]
    tests = {}
    for key in TEXT_KEYS:
        a = stl.per_report["scores"].get(key)
        b = tp.per_report["scores"].get(key)
        if a is None or b is None:
            continue
        tests[key] = paired_t_test(a, np.asarray(b)[order])
    return tests, f"paired over {len(order)} test reports (scipy ttest_rel, two-sided)"


def overfitting_table(runs: dict[str, dict[str, RunResult | None]]) -> list[list[str]]:
    """Per regime and task: epochs trained and the epoch of the lowest validation loss."""
    rows = []
    for regime, by_task in runs.items():
        for task, run in by_task.items():
            curve = run.val_loss(task) if run else None
            if not curve:
                rows.append([regime, task, "-", "-", "-"])
                continue
            values = np.asarray(curve, dtype=float)
            best = int(np.nanargmin(values)) + 1
            rows.append([regime, task, str(len(values)), str(best), format_value(float(np.nanmin(values)))])
    return rows


def plot_validation_losses(runs: dict[str, dict[str, RunResult | None]], out_dir: Path) -> list[Path]:
    from medcap.plots import _pyplot

    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for task in ("report", "acuity", "findings"):
        curves = {regime: by_task[task].val_loss(task) for regime, by_task in runs.items() if by_task[task]}
        curves = {k: v for k, v in curves.items() if v}
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
        for regime, values in curves.items():
            epochs = np.arange(1, len(values) + 1)
            line = ax.plot(epochs, values, marker="o", markersize=3, label=regime)[0]
            best = int(np.nanargmin(values))
            ax.scatter([best + 1], [values[best]], color=line.get_color(), marker="*", s=80, zorder=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {task} loss (unweighted)")
        ax.set_title(f"paper 001: validation {task} loss (star = lowest)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"val_{task}_loss.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def _comparison_rows(
    paper_results: Mapping[str, Mapping[str, float]],
    runs: dict[str, dict[str, RunResult | None]],
    task: str,
    keys: Sequence[str],
    baseline_names: Sequence[str],
    extras: Mapping[str, RunResult | None] | None = None,
) -> list[list[str]]:
    rows = []
    for regime, by_task in runs.items():
        run = by_task[task]
        paper = paper_results[regime]
        rows.append([f"{regime} (paper)", *(format_value(paper[k]) if k in paper else "-" for k in keys)])
        if run is None:
            rows.append([f"{regime} (ours)", *("not run" for _ in keys)])
        else:
            rows.append([f"{regime} (ours)", *(format_value(run.metrics.get(k)) for k in keys)])
    for label, run in (extras or {}).items():
        if run is not None and task in run.tasks:
            rows.append([f"{label} (ours)", *(format_value(run.metrics.get(k)) for k in keys)])
    source = next((by_task[task] for by_task in runs.values() if by_task[task] is not None), None)
    for name in baseline_names:
        if source is not None and any(f"baselines/{name}/{k}" in source.metrics for k in keys):
            rows.append([f"baseline: {name}", *(format_value(source.metrics.get(f"baselines/{name}/{k}")) for k in keys)])
    return rows


@dataclass
class SweepResult:
    """The loss-weight sweep: validation rows, the chosen run, and its test scores (or why not)."""

    rows: list[list[str]]
    skipped: list[str]
    chosen: RunResult | None = None
    test_metrics: dict[str, Any] | None = None
    test_note: str = ""


def _sweep_value(run: RunResult, key: str) -> float:
    value = run.metrics.get(key)
    return float("-inf") if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _test_metrics_of(run: RunResult, score_on_test: bool) -> tuple[dict[str, Any] | None, str]:
    """The chosen run's test metrics (`metrics_test.json`, from `medcap evaluate --split test`);
    computed here when `score_on_test` and the file is missing or older than the model."""
    path = run.workdir / "metrics_test.json"
    model = run.workdir / "model.keras"
    stale = path.is_file() and model.is_file() and path.stat().st_mtime < model.stat().st_mtime
    if path.is_file() and not stale:
        return read_json(path), f"`{path}`"
    command = f"`medcap evaluate --workdir {run.workdir} --split test`"
    if not score_on_test:
        why = "its test scores are older than its model" if stale else "not scored on test yet"
        return None, f"{why}: run {command}, then this report again"
    if not model.is_file():
        return None, f"not scored on test: {run.workdir} has no model.keras"
    # The command the user would run, in a child process: the trainer sits above this
    # module, which only reads what a run wrote.
    import subprocess

    argv = [sys.executable, "-m", "medcap.cli", "evaluate", "--workdir", str(run.workdir), "--split", "test"]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0 or not path.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"not scored on test: {command} failed (exit {done.returncode}: {last})"
    return read_json(path), f"`{path}` (scored on test now: {command})"


def sweep_results(results_dir: Path, *, score_on_test: bool = False) -> SweepResult | None:
    """Reads `sweep/*`: each run scored on the validation split, the weights chosen by validation
    `SWEEP_METRIC`, and test scores for the chosen run only."""
    candidates: list[tuple[str, RunResult]] = []
    skipped: list[str] = []
    for workdir in sorted(p for p in (results_dir / "sweep").glob("*") if p.is_dir()):
        run = load_run(workdir)
        if run is None:
            continue
        if run.split != SWEEP_SPLIT:
            skipped.append(
                f"`{workdir.name}` was scored on `{run.split}`, not `{SWEEP_SPLIT}`: retrain it with "
                f"experiments/mtl_tp_sweep.py (eval.split = {SWEEP_SPLIT}) or rescore it with "
                f"`medcap evaluate --workdir {workdir} --split {SWEEP_SPLIT}`"
            )
            val = workdir / f"metrics_{SWEEP_SPLIT}.json"
            if not val.is_file():
                continue
            run.metrics, run.split = read_json(val), SWEEP_SPLIT
            skipped[-1] = f"`{workdir.name}`: validation scores read from `{val.name}`"
        candidates.append((workdir.name, run))
    if not candidates and not skipped:
        return None
    chosen = None
    if candidates:
        # max by the metric, then the tie-break; among equals the first name in sorted order
        ranked = sorted(candidates, key=lambda c: (-_sweep_value(c[1], SWEEP_METRIC), -_sweep_value(c[1], SWEEP_TIE_BREAK), c[0]))
        chosen = ranked[0][1]
    rows = [
        [
            f"**{name}** (chosen)" if run is chosen else name,
            str(run.metrics.get("meta/loss_weights", "?")),
            *(format_value(run.metrics.get(k)) for k in SWEEP_KEYS),
        ]
        for name, run in candidates
    ]
    result = SweepResult(rows=rows, skipped=skipped, chosen=chosen)
    if chosen is not None:
        result.test_metrics, result.test_note = _test_metrics_of(chosen, score_on_test)
        (results_dir / "sweep" / "chosen.json").write_text(
            json.dumps(
                {
                    "run": chosen.workdir.name,
                    "loss_weights": chosen.metrics.get("meta/loss_weights"),
                    "chosen_by": f"{SWEEP_SPLIT}/{SWEEP_METRIC}",
                    "value": chosen.metrics.get(SWEEP_METRIC),
                    "test": {k: result.test_metrics.get(k) for k in SWEEP_KEYS} if result.test_metrics else None,
                },
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )
    return result


def sweep_lines(sweep: SweepResult) -> list[str]:
    label = TEXT_LABELS.get(SWEEP_METRIC, SWEEP_METRIC)
    lines = [
        "## Loss-weight sweep (MTL, alpha, beta, gamma), validation split",
        "",
        f"Every sweep run is scored on the validation split (`{SWEEP_SPLIT}`); the weights are chosen by validation "
        f"{label} (ties: {TEXT_LABELS.get(SWEEP_TIE_BREAK, SWEEP_TIE_BREAK)}), and only the chosen run is scored on "
        "test.",
        "",
    ]
    header = ["run", "alpha,beta,gamma", *(f"val {c}" for c in SWEEP_LABELS)]
    lines += markdown_table(header, sweep.rows) + [""]
    lines += [f"- {s}" for s in sweep.skipped]
    if sweep.skipped:
        lines.append("")
    if sweep.chosen is not None:
        name = sweep.chosen.workdir.name
        weights = sweep.chosen.metrics.get("meta/loss_weights", "?")
        lines += [f"Chosen: `{name}` (alpha, beta, gamma = {weights}), validation {label} "
                  f"{format_value(sweep.chosen.metrics.get(SWEEP_METRIC))}.", ""]  # fmt: skip
        if sweep.test_metrics is not None:
            lines += ["Test split, chosen weights only:", ""]
            lines += markdown_table(["run", "alpha,beta,gamma", *SWEEP_LABELS],
                            [[name, str(weights), *(format_value(sweep.test_metrics.get(k)) for k in SWEEP_KEYS)]])  # fmt: skip
            lines += ["", f"From {sweep.test_note}.", ""]
        else:
            lines += [f"Test split: {sweep.test_note}.", ""]
    return lines


def write_regime_report(
    results_dir: str | Path,
    *,
    bert_preset: str | None = None,
    clinical_bert_preset: str | None = None,
    bert_layer: int | None = None,
    bert_model: str | None = BERT_MODEL,
    bert_baseline: str | None = None,
    clinical_bert_model: str | None = CLINICAL_BERT_MODEL,
    clinical_bert_layer: int | None = CLINICAL_BERT_LAYER,
    clinical_bert_baseline: str | None = None,
    score_sweep_on_test: bool = False,
) -> Path:
    """Writes `<results_dir>/report.md` and `<results_dir>/plots/` from the regime workdirs.

    `bert_layer` / `clinical_bert_layer`: bert-score's `num_layers` (None: its default for the model);
    `*_baseline`: a bert-score rescale_baseline file (None: raw scores). `score_sweep_on_test`: score
    the sweep's chosen run on test here when its `metrics_test.json` is missing or stale."""
    from medcap.evaluation.report import t_test_table

    results_dir = Path(results_dir)
    runs = _regime_runs(results_dir)
    extras = _extra_runs(results_dir)
    found = [r for by_task in runs.values() for r in by_task.values() if r is not None]
    found += [r for r in extras.values() if r is not None]
    sweep = sweep_results(results_dir, score_on_test=score_sweep_on_test)
    if not found and sweep is not None and sweep.chosen is not None:
        found = [sweep.chosen]  # a sweep alone still gets its report
    if not found:
        expected = sorted({relative for by_task in REGIME_DIRS.values() for relative in by_task.values()})
        raise FileNotFoundError(
            f"{results_dir}: no finished run (metrics.json) in any of {', '.join(expected)}; run `make reproduce-mtl`"
        )
    settings = {
        "BERTScore_F1": BertSetting(bert_preset, bert_model, bert_layer, bert_baseline),
        "BioClinicalBERTScore_F1": BertSetting(clinical_bert_preset, clinical_bert_model, clinical_bert_layer, clinical_bert_baseline),
    }
    notes = _add_bertscores([by_task["report"] for by_task in runs.values()] + list(extras.values()), settings)
    first = found[0]
    paper = paper_numbers()
    lines = [
        "# Paper 001: cross-modal multi-task learning (STL vs MTL-EQ vs MTL-TP)",
        "",
        paper.title,
        "",
    ]
    weights = next((r.environment.get("pretrained_weights") for r in found if r.environment), {}) or {}
    lines += _banners(any(r.synthetic for r in found), weights)
    lines += ["Runs:", ""]
    for regime, by_task in REGIME_DIRS.items():
        for task, relative in by_task.items():
            run = runs[regime][task]
            state = "finished" if run else "missing"
            lines.append(f"- {regime} / {task}: `{results_dir / relative}` ({state})")
    for label, relative in EXTRA_RUNS.items():
        how = f"`medcap train {label} --workdir {results_dir / relative}`"
        state = "finished" if extras[label] else f"not run; optional: {how}"
        lines.append(f"- {label}: `{results_dir / relative}` ({state})")
    lines += ["", EXTRA_RUNS_NOTE, ""]

    lines += ["## Table 1: report generation", ""]
    lines += markdown_table(
        ["Method", *(TEXT_LABELS[k] for k in TEXT_KEYS)],
        _comparison_rows(paper.results, runs, "report", TEXT_KEYS, TEXT_BASELINES, extras),
    )
    lines += ["", *(f"- {TEXT_LABELS[k]}: {v}" for k, v in notes.items())]
    lines += [f"- BLEU flavour `{first.config.eval.bleu_flavour}`; ROUGE-L is pycocoevalcap's.", ""]
    lines += [*bertscore_setting_lines(notes, paper.results["STL"]), ""]

    tests, how = _paired_tests(runs["STL"]["report"], runs["MTL-TP"]["report"])
    lines += ["## Table 2: paired t-test, STL vs MTL-TP (A = STL, B = MTL-TP)", ""]
    if tests:
        lines += [t_test_table(tests, paper_p_values=paper.p_values).rstrip(), "", f"{how}.", ""]
    else:
        lines += [f"Not computed: {how}.", ""]

    lines += ["## Table 3: multi-label findings", ""]
    lines += markdown_table(
        ["Method", *(ML_LABELS[k] for k in ML_KEYS)],
        _comparison_rows(paper.results, runs, "findings", ML_KEYS, ("prevalence", "majority"), extras),
    )
    lines += [
        "",
        "Precision/recall/F1: micro averages over the labels. The paper's 'Exact Match Ratio' equals 1 - Hamming "
        "loss in every row, so both readings are shown.",
        "",
    ]
    lines += ["## Table 4: ordinal acuity", ""]
    lines += markdown_table(
        ["Method", *(OC_LABELS[k] for k in OC_KEYS)],
        _comparison_rows(paper.results, runs, "acuity", OC_KEYS, ("majority",), extras),
    )
    lines += ["", "ACC+Corr = (accuracy + Spearman rho) / 2 (ours; the paper does not define it).", ""]

    plots = plot_validation_losses(runs, results_dir / "plots")
    lines += ["## Validation losses over epochs (overfitting)", ""]
    lines += markdown_table(["Regime", "task", "epochs trained", "lowest at epoch", "lowest val loss"], overfitting_table(runs))
    lines += [""] + [f"![{p.stem}](plots/{p.name})" for p in plots]
    lines += [
        "",
        "The paper reports that STL's multi-label head overfits after ~4 epochs and MTL delays this by 5-6 epochs: "
        "compare the 'lowest at epoch' column across regimes.",
        "",
    ]

    if sweep is not None:
        lines += sweep_lines(sweep)

    tp = runs["MTL-TP"]["report"] or first
    choices = list(tp.config.choices)
    if sweep is not None and sweep.chosen is not None:
        choices += [c for c in sweep.chosen.config.choices if c not in choices]
    lines += ["## Choices where the paper is silent", "", *(f"- {c}" for c in choices), ""]
    path = results_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m medcap.models.mtl_regimes",
        description="Paper 001: Tables 1-4 and validation-loss plots from the STL / MTL-EQ / MTL-TP workdirs.",
    )
    parser.add_argument("results_dir", help="directory holding stl/{report,acuity,findings}, eq, tp (and tp_no_icd, sweep/*)")
    parser.add_argument("--bert-preset", help="local keras-hub BERT preset directory for BERTScore (BS_F1)")
    parser.add_argument(
        "--bert-model", default=BERT_MODEL,
        help=f"Hugging Face name the BERT preset was converted from, for bert-score's default layer (default {BERT_MODEL})",
    )  # fmt: skip
    parser.add_argument(
        "--bert-layer", type=int, default=None,
        help="bert-score's num_layers: hidden states after this many transformer layers (0 = embeddings); "
        "default bert-score's for --bert-model",
    )  # fmt: skip
    parser.add_argument(
        "--bert-baseline", help="bert-score rescale_baseline file (e.g. rescale_baseline/en/roberta-large.tsv); without it BS_F1 is raw"
    )
    parser.add_argument("--clinical-bert-preset", help="local keras-hub Bio-ClinicalBERT preset directory (Bio-CBS_F1)")
    parser.add_argument("--clinical-bert-model", default=CLINICAL_BERT_MODEL, help=f"default {CLINICAL_BERT_MODEL}")
    parser.add_argument(
        "--clinical-bert-layer", type=int, default=CLINICAL_BERT_LAYER,
        help=f"bert-score's num_layers for Bio-ClinicalBERT (default {CLINICAL_BERT_LAYER}; bert-score has no default)",
    )  # fmt: skip
    parser.add_argument("--clinical-bert-baseline", help="rescale_baseline file for Bio-ClinicalBERT (default: raw)")
    parser.add_argument(
        "--no-sweep-test", action="store_true",
        help="do not score the sweep's chosen run on test here (`medcap evaluate --split test` does it)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        path = write_regime_report(
            args.results_dir,
            bert_preset=args.bert_preset,
            clinical_bert_preset=args.clinical_bert_preset,
            bert_layer=args.bert_layer,
            bert_model=args.bert_model,
            bert_baseline=args.bert_baseline,
            clinical_bert_model=args.clinical_bert_model,
            clinical_bert_layer=args.clinical_bert_layer,
            clinical_bert_baseline=args.clinical_bert_baseline,
            score_sweep_on_test=not args.no_sweep_test,
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    runs = sorted({run for regime in REGIME_DIRS.values() for run in regime.values()} | set(EXTRA_RUNS.values()))
    trained = [run for run in runs if (Path(args.results_dir) / run / "model.keras").exists()]
    if "tp" in trained:  # `medcap caption --workdir results/mtl` uses MTL-TP, the paper's best regime
        from medcap.workdir import write_results_index

        write_results_index(args.results_dir, "tp", trained)
    return 0


if __name__ == "__main__":
    sys.exit(main())
