"""Several trained systems on the same test reports: one leaderboard.

`compare_runs(workdirs, split=None, bootstrap=1000, seed=0) -> Comparison`
reads each run's `config.json`, `data.json`, `environment.json`, its metrics
(`metrics.json`, or `metrics_<split>.json` for another split) and the texts it
scored (`texts_<split>.json`, written by every report-writing system through
`medcap.evaluation.evaluator.save_scored_texts`), and refuses (`CompareError`,
naming both runs and what differs) unless every run

* read the same dataset: reader name, split scheme (variant), the seed of a
  drawn split, and real data vs the same synthetic tree (size, seed, image
  size, report variety); two copies of a real release in different folders
  are the same dataset;
* was scored on the same split, with the same BLEU flavour and the same
  clinical-efficacy convention for uncertain findings;
* covers the same test ids, scored against the same reference texts.

Then every system and every trivial baseline the runs made (`constant`,
`random_train`, `nearest_train`; each taken from the first run that has it)
is rescored from its texts with `medcap.evaluation.text_metrics.evaluate`,
and the rescored value of every leaderboard metric must equal the one in
the run's metrics file (else the run is refused: its files disagree). The
numbers shown are the metrics files' values.

On top of them (ours, where the issue and the papers are silent):

* 95% CIs: one percentile bootstrap over the report ids, the *same*
  resamples for every row (`bootstrap` resamples, `seed`), so rows are
  comparable and the paired test below reuses them. Retrieval R@K and
  findings AUROC are not text metrics: their CIs are the run's own
  `ci_low/...` keys when it has them, else absent.
* Paired tests against the best row of each text metric: the paired
  bootstrap test (`statistics.paired_bootstrap_test`, every metric) and
  paper 001's paired t-test over per-report scores (`statistics.paired_t_test`;
  per-report BLEU-n, METEOR, ROUGE-L and CIDEr; CE micro/macro F1 have no
  per-report score). No correction for multiple comparisons: the p-values
  are per cell, say so when reading many of them.
* Identical systems have p = 1 in both tests (the t-test's 0/0 is read as
  no evidence of a difference).

`medcap.evaluation.leaderboard` writes the result as
`leaderboard.{md,csv,json,png}`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medcap.errors import CommandError
from medcap.evaluation.evaluator import SCORED_TEXTS
from medcap.evaluation.ids import describe_id_mismatch

#: Text metrics of every row: (metrics key, column label, has per-report scores).
TEXT_COLUMNS = (
    ("Bleu_1", "BLEU-1", True),
    ("Bleu_2", "BLEU-2", True),
    ("Bleu_3", "BLEU-3", True),
    ("Bleu_4", "BLEU-4", True),
    ("METEOR", "METEOR", True),
    ("ROUGE_L", "ROUGE-L", True),
    ("CIDEr", "CIDEr", True),
    ("ce/micro_f1", "CE micro F1", False),
    ("ce/macro_f1", "CE macro F1", False),
)
#: Metrics only some systems have: (column key, label, candidate metrics keys).
EXTRA_COLUMNS = (
    ("retrieval/i2t/R@1", "R@1", ("retrieval/i2t/R@1",)),
    ("retrieval/i2t/R@5", "R@5", ("retrieval/i2t/R@5",)),
    ("retrieval/i2t/R@10", "R@10", ("retrieval/i2t/R@10",)),
    ("findings/auroc_macro", "findings AUROC", ("ml/auroc_macro", "classifier/ml/auroc_macro", "classifier/auroc_macro")),
)
PER_FINDING_PREFIX = "ce/f1/"
#: Relative and absolute tolerance of "the rescored value equals metrics.json".
TOLERANCE = 1e-9


class CompareError(CommandError, ValueError):
    """The runs cannot be compared on equal terms (the message says why)."""


@dataclass
class Run:
    """One trained system's files, as `compare_runs` reads them."""

    name: str
    workdir: Path
    config: Any
    metrics: dict[str, Any]
    references: dict[str, list[str]]
    predictions: dict[str, str]
    baselines: dict[str, dict[str, Any]]
    data_info: dict[str, Any]
    environment: dict[str, Any]


@dataclass
class Row:
    """One leaderboard row: a system or a trivial baseline."""

    name: str
    kind: str  # "system" | "baseline"
    source: str  # the workdir it came from
    experiment: str
    synthetic: bool
    pretrained: str  # yes | no | partly | n/a
    #: key -> {"value", "ci_low", "ci_high"} (None where the row has no such metric).
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    per_finding: dict[str, float] = field(default_factory=dict)
    note: str = ""


@dataclass
class Comparison:
    """What `medcap compare` found: rows, paired tests and how they were made."""

    split: str
    dataset: dict[str, Any]
    num_reports: int
    rows: list[Row]
    #: metric key -> {"best": row name, "against": {row name: {diff, bootstrap_p, t_p, t, n}}}
    tests: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    notes: list[str]


# ---------------------------------------------------------------------------
# Reading runs


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise CompareError(f"{path.parent}: no {path.name} ({what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CompareError(f"{path}: not valid JSON ({err})") from None


def load_run(workdir: str | Path, split: str | None = None) -> tuple[Run, str]:
    """Reads one run's files; returns (run, the split read)."""
    from medcap.config import ExperimentConfig
    from medcap.workdir import resolve_workdir

    try:
        workdir = resolve_workdir(workdir)
    except FileNotFoundError as err:
        raise CompareError(str(err)) from None
    config = ExperimentConfig.from_json((workdir / "config.json").read_text())
    split = split or config.eval.split
    metrics_name = "metrics.json" if split == config.eval.split else f"metrics_{split}.json"
    metrics = _read_json(workdir / metrics_name, f"was it evaluated on {split}? `medcap evaluate --workdir {workdir} --split {split}`")
    texts_name = SCORED_TEXTS.format(split=split)
    if not (workdir / texts_name).is_file():
        raise CompareError(
            f"{workdir}: no {texts_name}: the run ({config.model.name}) wrote no scored report texts for {split}; "
            f"a report-writing run evaluated before `medcap compare` existed writes them on `medcap evaluate --workdir {workdir} --split {split}`"
        )
    texts = _read_json(workdir / texts_name, "scored texts")
    for key in ("references", "predictions", "baselines"):
        if not isinstance(texts.get(key), dict):
            raise CompareError(f"{workdir / texts_name}: field {key!r} is missing or not an object")
    data = _read_json(workdir / "data.json", "the data record the trainer writes") if (workdir / "data.json").is_file() else {}
    environment = json.loads((workdir / "environment.json").read_text()) if (workdir / "environment.json").is_file() else {}
    run = Run(
        name=config.name,
        workdir=workdir,
        config=config,
        metrics=metrics,
        references={str(k): [str(t) for t in (v if isinstance(v, list) else [v])] for k, v in texts["references"].items()},
        predictions={str(k): str(v) for k, v in texts["predictions"].items()},
        baselines=texts["baselines"],
        data_info=data.get("info", {}),
        environment=environment,
    )
    return run, split


def dataset_identity(run: Run) -> dict[str, Any]:
    """What must agree between runs for their test sets to be the same draw."""
    data = run.config.data
    info = run.data_info
    identity = {
        "dataset": info.get("dataset", data.name),
        "variant": info.get("variant", data.variant) or "(reader default)",
        "data": "real"
        if data.source_dir
        else f"synthetic tree (synthetic_num={data.synthetic_num}, synthetic_seed={data.synthetic_seed}, "
        f"synthetic_image_size={data.synthetic_image_size}, synthetic_reports={data.synthetic_reports})",
        "max_examples": data.max_examples,
    }
    if "split_seed" in info:
        identity["split_seed"] = info["split_seed"]
    return identity


def _pretrained(environment: dict[str, Any]) -> str:
    flags: list[bool] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "pretrained" and isinstance(item, bool):
                    flags.append(item)
                else:
                    walk(item)

    walk(environment.get("pretrained_weights", {}))
    if not flags:
        return "n/a"
    return "yes" if all(flags) else "no" if not any(flags) else "partly"


def check_comparable(runs: Sequence[Run], splits: Sequence[str]) -> None:
    """Raises CompareError naming the first pair of runs that differ, and how."""
    first, first_split = runs[0], splits[0]
    reference_identity = dataset_identity(first)
    for run, split in zip(runs[1:], splits[1:]):
        identity = dataset_identity(run)
        for key in sorted(set(reference_identity) | set(identity)):
            if reference_identity.get(key) != identity.get(key):
                raise CompareError(
                    f"runs read different datasets: {first.workdir} has {key} {reference_identity.get(key)!r}, "
                    f"{run.workdir} has {identity.get(key)!r}"
                )
        if split != first_split:
            raise CompareError(f"runs were scored on different splits: {first.workdir} on {first_split}, {run.workdir} on {split}; pass --split")
        for key in ("bleu_flavour", "ce_uncertain"):
            a, b = getattr(first.config.eval, key), getattr(run.config.eval, key)
            if a != b:
                raise CompareError(f"runs were scored differently: {first.workdir} has eval.{key}={a!r}, {run.workdir} has {b!r}")
        mismatch = describe_id_mismatch(first.references, run.references)
        if mismatch:
            raise CompareError(f"test ids differ between {first.workdir} and {run.workdir}: {mismatch.replace('references', 'the first').replace('predictions', 'the second')}")
        for key, texts in first.references.items():
            if run.references[key] != texts:
                raise CompareError(
                    f"reference texts differ for id {key}: {first.workdir} scored against {texts[0][:60]!r}, "
                    f"{run.workdir} against {run.references[key][0][:60]!r} (different text cleaning?)"
                )
    for run in runs:
        mismatch = describe_id_mismatch(run.references, run.predictions)
        if mismatch:
            raise CompareError(f"{run.workdir}: its texts file is inconsistent: {mismatch}")


# ---------------------------------------------------------------------------
# Scoring


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE * (1.0 + abs(b))


def _check_rescored(where: str, stated: dict[str, Any], prefix: str, corpus: dict[str, Any]) -> None:
    keys = [key for key, _, _ in TEXT_COLUMNS] + [k for k in corpus if k.startswith(PER_FINDING_PREFIX)]
    for key in keys:
        value, rescored = stated.get(prefix + key), corpus.get(key)
        if value is None or rescored is None:
            continue  # METEOR without java on one side
        if isinstance(value, float) and math.isnan(value) and math.isnan(rescored):
            continue
        if not _close(float(rescored), float(value)):
            raise CompareError(
                f"{where}: {prefix}{key} is {value} in its metrics file but its scored texts give {rescored}; "
                "the files disagree (rerun `medcap evaluate` on the run)"
            )


def _unique_names(runs: Sequence[Run]) -> list[str]:
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        names = [run.workdir.name for run in runs]
    if len(set(names)) < len(names):
        names = [str(run.workdir) for run in runs]
    return names


def compare_runs(
    workdirs: Sequence[str | Path], *, split: str | None = None, bootstrap: int = 1000, seed: int = 0, meteor: Any = None
) -> Comparison:
    """Reads, checks and rescores the runs (module docstring). `meteor`: a
    running `MeteorJar` to reuse (else one is started here and closed)."""
    from medcap.evaluation import statistics
    from medcap.evaluation.text_metrics import MeteorJar, MeteorUnavailable, evaluate

    if not workdirs:
        raise CompareError("give at least one run directory")
    if bootstrap < 2:
        raise CompareError(f"--bootstrap {bootstrap}: need at least 2 resamples for intervals and paired tests")
    loaded = [load_run(w, split) for w in workdirs]
    runs, splits = [r for r, _ in loaded], [s for _, s in loaded]
    check_comparable(runs, splits)
    names = _unique_names(runs)
    for run, name in zip(runs, names):
        run.name = name
    references = runs[0].references
    eval_cfg = runs[0].config.eval
    n = len(references)
    notes: list[str] = []

    # Rows: each system, then each baseline from the first run that made it.
    candidates: list[tuple[Row, dict[str, str], dict[str, Any], str]] = []
    for run in runs:
        row = Row(
            name=run.name,
            kind="system",
            source=str(run.workdir),
            experiment=run.config.name,
            synthetic=bool(run.config.data.synthetic),
            pretrained=_pretrained(run.environment),
        )
        candidates.append((row, run.predictions, run.metrics, ""))
    taken: dict[str, Run] = {}
    for run in runs:
        for name, baseline in run.baselines.items():
            texts = {str(k): str(v) for k, v in baseline["texts"].items()}
            if name in taken:
                if texts != taken[name].baselines[name]["texts"]:
                    notes.append(f"baseline {name}: {run.workdir} drew other texts than {taken[name].workdir} (another seed or other image features); the row is the latter's")
                continue
            taken[name] = run
            row = Row(
                name=f"baseline: {name}",
                kind="baseline",
                source=str(run.workdir),
                experiment=run.config.name,
                synthetic=bool(run.config.data.synthetic),
                pretrained="n/a",
                note=str(baseline.get("note", "")),
            )
            candidates.append((row, texts, run.metrics, f"baselines/{name}/"))

    weights = statistics.bootstrap_weights(n, bootstrap, seed)
    resampled: dict[str, dict[str, np.ndarray]] = {}
    per_report: dict[str, dict[str, np.ndarray]] = {}
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        try:
            jar = meteor or stack.enter_context(MeteorJar())
        except MeteorUnavailable as err:
            jar = None
            notes.append(f"METEOR unavailable here ({err}); its cells are the runs' own values without CIs or tests")
        for row, texts, stated, prefix in candidates:
            mismatch = describe_id_mismatch(references, texts)
            if mismatch:
                raise CompareError(f"{row.source}: {row.name} texts: {mismatch}")
            evaluation = evaluate(
                references, texts, bleu_flavour=eval_cfg.bleu_flavour, ce_uncertain=eval_cfg.ce_uncertain, seed=seed, meteor=jar
            )
            _check_rescored(f"{row.source} ({row.name})", stated, prefix, evaluation.corpus)
            resampled[row.name] = {}
            for key, _, _ in TEXT_COLUMNS:
                value = stated.get(prefix + key)
                cell: dict[str, float | None] = {"value": value, "ci_low": None, "ci_high": None}
                if key in evaluation.resamplers and value is not None:
                    values = np.asarray(evaluation.resamplers[key](weights), dtype=np.float64)
                    resampled[row.name][key] = values
                    cell["ci_low"], cell["ci_high"] = statistics.percentile_interval(values)
                row.metrics[key] = cell
            for column, _, keys in EXTRA_COLUMNS:
                key = next((prefix + k for k in keys if stated.get(prefix + k) is not None), None)
                row.metrics[column] = {
                    "value": stated.get(key) if key else None,
                    "ci_low": stated.get(f"ci_low/{key}") if key else None,
                    "ci_high": stated.get(f"ci_high/{key}") if key else None,
                }
            row.per_finding = {
                k[len(prefix) + len(PER_FINDING_PREFIX):]: float(v)
                for k, v in stated.items()
                if k.startswith(prefix + PER_FINDING_PREFIX) and v is not None
            }
            per_report[row.name] = {k: np.asarray(v) for k, v in evaluation.per_report.items()}
            rows.append(row)

    tests = paired_tests(rows, resampled, per_report)
    return Comparison(
        split=splits[0],
        dataset=dataset_identity(runs[0]),
        num_reports=n,
        rows=rows,
        tests=tests,
        settings={
            "bootstrap_resamples": bootstrap,
            "bootstrap_seed": seed,
            "bleu_flavour": eval_cfg.bleu_flavour,
            "ce_uncertain": eval_cfg.ce_uncertain,
            "ci": "percentile 95% over report ids resampled with replacement; the same resamples for every row",
            "tests": "two-sided paired bootstrap (shifted null, (count+1)/(B+1)) on the corpus metric; "
            "paired t-test (scipy ttest_rel) on per-report scores where they exist; no multiple-comparison correction",
        },
        notes=notes,
    )


def paired_tests(
    rows: Sequence[Row], resampled: dict[str, dict[str, np.ndarray]], per_report: dict[str, dict[str, np.ndarray]]
) -> dict[str, dict[str, Any]]:
    """Each text metric: its best row, and every other row tested against it."""
    from medcap.evaluation import statistics

    tests: dict[str, dict[str, Any]] = {}
    for key, _, has_per_report in TEXT_COLUMNS:
        scored = [r for r in rows if r.metrics[key]["value"] is not None and key in resampled[r.name]]
        if len(scored) < 2:
            continue
        best = max(scored, key=lambda r: r.metrics[key]["value"])
        against: dict[str, Any] = {}
        for row in scored:
            if row is best:
                continue
            boot = statistics.paired_bootstrap_test(
                resampled[best.name][key], resampled[row.name][key], best.metrics[key]["value"], row.metrics[key]["value"]
            )
            result: dict[str, Any] = {"diff": boot["diff"], "bootstrap_p": boot["p"], "t": None, "t_p": None}
            if has_per_report and key in per_report[best.name] and key in per_report[row.name]:
                t_test = statistics.paired_t_test(per_report[best.name][key], per_report[row.name][key])
                identical = t_test["mean_diff"] == 0 and math.isnan(t_test["p"])
                result["t"] = 0.0 if identical else t_test["t"]
                result["t_p"] = 1.0 if identical else t_test["p"]
            against[row.name] = result
        tests[key] = {"best": best.name, "against": against}
    return tests
