"""Paper 001's evaluation of one run: its metrics, report.md and samples.

Aksoy, Sharoff, Ravikumar, "Enhancing Image-to-Text Generation in Radiology
Reports through Cross-modal Multi-Task Learning", section 5, Tables 1-4.

**One run** (`evaluate_run`, called by the trainer through `MTLTask.evaluate`)
writes into its workdir

    metrics.json (returned)    Table 1 (Bleu_1..4, ROUGE_L), Table 3
                               (ml/...), Table 4 (oc/...) for the run's tasks;
                               test losses (loss/...); every text metric with
                               the keys of every system, its trivial baselines
                               and, on a synthetic tree, the findings the
                               reports state vs the drawn ones (truth/ce/...),
                               from `medcap.evaluation.evaluator`;
                               paper/<key>; meta/...
    per_report_<split>.json    per-report text scores, for Table 2's paired t-test
    predictions_<split>.json   id -> generated report, reference, acuity, findings
    baselines_<split>.json     id -> each text baseline's report (scored by BERTScore later)
    texts_<split>.json         the references, reports and baselines as scored (`medcap compare`)
    report.md, samples.md

The STL / MTL-EQ / MTL-TP report over several runs is `medcap.models.mtl_regimes`.

Ours, where the paper is silent:

* Table 3's precision / recall / F1 are micro averages over the 5 labels
  (sklearn; macro and example-based ones are in metrics.json). "Exact match
  ratio" is shown twice: subset accuracy (the usual definition) and label
  accuracy = 1 - Hamming loss, which is what the paper's numbers satisfy
  (Hamming + EMR = 1.0000 in every row).
* Table 4's ACC+Corr = (accuracy + Spearman rho) / 2 (see
  `medcap.evaluation.classification`).
* Table 2 pairs per-report scores of the same test reports (scipy
  `ttest_rel`, two-sided).
* Trivial baselines: text `constant` (the train report with the best BLEU-4
  consensus on train) and `random_train`; findings `prevalence` (each label
  drawn positive with its train prevalence, seeded) and `majority` (each
  label's majority value); acuity `majority` (the most frequent train level).
* Validation-loss plots use the unweighted per-task losses Keras logs
  (`val_<task>_loss`; a one-task STL run logs it as `val_loss`).
* BERTScore: BS_F1 with bert-score's English default model, roberta-large
  at layer 17 (`--bert-model`); Bio-CBS_F1 with Bio-ClinicalBERT at layer 9,
  bert-score's default for bert-base-uncased, whose architecture it shares
  (bert-score itself has no default for it); raw unless a baseline file is
  given (bert-score's rescale_baseline files are not shipped here).
* Sweep: weights chosen by validation BLEU-4 (the paper's main task is
  report generation, BLEU-4 its headline score), ties by ROUGE-L.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data import synthetic
from medcap.data.base import Example
from medcap.evaluation.evaluator import (
    TextOutputs,
    evaluate_labels,
    evaluate_ordinal,
    evaluate_texts,
    save_scored_texts,
)
from medcap.evaluation.report import format_value, markdown_table

TEXT_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "BERTScore_F1", "BioClinicalBERTScore_F1", "ROUGE_L")
TEXT_LABELS = {
    "Bleu_1": "B_1",
    "Bleu_2": "B_2",
    "Bleu_3": "B_3",
    "Bleu_4": "B_4",
    "BERTScore_F1": "BS_F1",
    "BioClinicalBERTScore_F1": "Bio-CBS_F1",
    "ROUGE_L": "R_L",
}
ML_KEYS = ("ml/precision", "ml/recall", "ml/f1", "ml/hamming_loss", "ml/exact_match_ratio", "ml/label_accuracy")
ML_LABELS = {
    "ml/precision": "Precision",
    "ml/recall": "Recall",
    "ml/f1": "F1",
    "ml/hamming_loss": "Hamming loss",
    "ml/exact_match_ratio": "Exact match (subset acc.)",
    "ml/label_accuracy": "1 - Hamming",
}
OC_KEYS = ("oc/accuracy", "oc/mae", "oc/acc_plus_corr", "oc/mse", "oc/spearman")
OC_LABELS = {
    "oc/accuracy": "Accuracy",
    "oc/mae": "MAE",
    "oc/acc_plus_corr": "ACC+Corr",
    "oc/mse": "MSE",
    "oc/spearman": "Spearman",
}

TEXT_BASELINES = ("constant", "random_train")
#: Computed by the cross-regime report from local BERT presets; None in each run's metrics.json.
BERT_KEYS = ("BERTScore_F1", "BioClinicalBERTScore_F1")


# ---------------------------------------------------------------------------
# Small helpers


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def is_synthetic(config: Any) -> bool:
    """Synthetic when no download was configured, or the configured directory
    is a synthetic tree (it carries `synthetic_truth.json`)."""
    data = config.data
    return data.synthetic or (Path(data.source_dir) / synthetic.TRUTH_FILE).is_file()


# ---------------------------------------------------------------------------
# One run


def report_text(example: Example, keep_punctuation: bool = False) -> str:
    """The text the decoder learns and is scored on: `report_clean`, by
    default without its sentence-final " ." tokens."""
    text = example["report_clean"]
    if keep_punctuation:
        return text
    return " ".join(word for word in text.split() if word != ".")


def evaluate_run(task, model, splits: dict[str, list[Example]], split: str, workdir: Path) -> dict[str, Any]:
    """Scores one trained model on `split` and writes the run's files (module docstring)."""
    from medcap.evaluation.classification import decode_ordinal

    config = task.config
    examples = splits[split]
    train = splits["train"]
    ids = [str(e["id"]) for e in examples]
    batch_size = int(task.options["eval_batch_size"])
    seed = config.train.seed
    metrics: dict[str, Any] = {}

    losses = model.evaluate(task.eval_dataset(examples, batch_size=batch_size), return_dict=True, verbose=0)
    for key, value in losses.items():
        if key == "loss" and len(task.tasks) == 1:
            metrics[f"loss/{task.tasks[0]}"] = float(value)
        elif key.endswith("_loss"):
            metrics[f"loss/{key[: -len('_loss')]}"] = float(value)
        metrics["loss/total" if key == "loss" else f"keras/{key}"] = float(value)

    predicted = task.predict(model, task.eval_dataset(examples, batch_size=batch_size))
    predictions_file: dict[str, dict[str, Any]] = {key: {} for key in ids}
    baselines: dict[str, dict[str, Any]] = {}

    if "report" in task.tasks:
        keep = task.keep_punctuation
        references = {key: [report_text(e, keep)] for key, e in zip(ids, examples)}
        generated = {key: task.report_vocabulary.decode(row) for key, row in zip(ids, predicted["report"])}
        train_texts = [report_text(e, keep) for e in train]
        outputs = TextOutputs(references, generated, train_texts)
        texts = evaluate_texts(outputs, config.eval, seed=seed, truth=synthetic.truth_for(config.data))
        save_scored_texts(workdir, split, outputs, texts)
        metrics.update(texts.metrics)
        # Filled per run by the cross-regime report (`--bert-preset`), not here.
        metrics.update(dict.fromkeys(BERT_KEYS))
        evaluation = texts.evaluation
        per_report = {"ids": evaluation.ids, "scores": {k: np.asarray(v).tolist() for k, v in evaluation.per_report.items()}}
        (workdir / f"per_report_{split}.json").write_text(json.dumps(per_report) + "\n", encoding="utf-8")
        for key in ids:
            predictions_file[key]["report"] = generated[key]
            predictions_file[key]["reference"] = references[key][0]
        baseline_texts = texts.baseline_texts
        for name, scores in texts.baselines.items():
            baselines.setdefault(name, {}).update({**scores, **dict.fromkeys(BERT_KEYS)})
        (workdir / f"baselines_{split}.json").write_text(json.dumps(baseline_texts, indent=1) + "\n", encoding="utf-8")

    if "findings" in task.tasks:
        names = list(examples[0].get("findings_names") or task.state.get("findings_names") or [])
        names = names or [f"finding_{j}" for j in range(predicted["findings"].shape[1])]
        scores = evaluate_labels(
            [e["findings"] for e in examples],
            predicted["findings"],
            names,
            train_labels=[e["findings"] for e in train],
            seed=seed,
        )
        metrics.update(scores.metrics)
        for name, values in scores.baselines.items():
            baselines.setdefault(name, {}).update(values)
        for key, row in zip(ids, predicted["findings"]):
            predictions_file[key]["findings"] = [round(float(p), 6) for p in row]

    if "acuity" in task.tasks:
        levels = decode_ordinal(predicted["acuity"])
        scores = evaluate_ordinal(
            [int(e["acuity"]) for e in examples], levels, train_levels=[int(e["acuity"]) for e in train]
        )
        metrics.update(scores.metrics)
        for name, values in scores.baselines.items():
            baselines.setdefault(name, {}).update(values)
        for key, level, row in zip(ids, levels, predicted["acuity"]):
            predictions_file[key]["acuity"] = int(level)
            predictions_file[key]["acuity_cumulative"] = [round(float(p), 6) for p in row]

    for name, values in baselines.items():
        for key, value in values.items():
            metrics[f"baselines/{name}/{key}"] = value
    for key, value in config.paper_results.items():
        metrics[f"paper/{key}"] = value
    decoding = config.eval.decoding + (f" (beam {config.eval.beam_size})" if config.eval.decoding == "beam" else "")
    metrics.update(
        {
            "meta/split": split,
            "meta/num_examples": len(examples),
            "meta/tasks": ",".join(task.tasks),
            "meta/regime": task.regime,
            "meta/loss_weights": ",".join(f"{w:g}" for w in task.loss_weights),
            "meta/decoding": f"{decoding}, at most {task.max_decode_length()} tokens, attention caches",
            "meta/bleu_flavour": config.eval.bleu_flavour,
            "meta/bertscore": "not computed per run: `python -m medcap.models.mtl_regimes DIR --bert-preset DIR "
            "[--bert-baseline FILE]` (bert-score's definition; see medcap.evaluation.bertscore)",
            "meta/synthetic": is_synthetic(config),
            "meta/pretrained": bool(task.weights_info.get("pretrained", False)),
            "meta/weights_source": task.weights_info.get("source", ""),
        }
    )
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"predictions_{split}.json").write_text(json.dumps(predictions_file, indent=1) + "\n", encoding="utf-8")
    write_samples(workdir / "samples.md", examples, predictions_file, config.eval.num_samples)
    write_run_report(workdir / "report.md", task, metrics, sorted(baselines))
    if is_synthetic(config):
        print("NOTE: synthetic data: these numbers are not comparable with the paper (see report.md).")
    return metrics


def write_samples(path: Path, examples: list[Example], predictions: dict[str, dict[str, Any]], num: int) -> None:
    lines = ["# Generated vs reference", "", "| id | generated | reference | acuity (pred / true) | findings |", "|---|---|---|---|---|"]
    for example in examples[:num]:
        key = str(example["id"])
        entry = predictions[key]
        generated = entry.get("report", "-").replace("|", "\\|") or "*(empty)*"
        reference = entry.get("reference", "-").replace("|", "\\|")
        acuity = f"{entry['acuity']} / {example['acuity']}" if "acuity" in entry else "-"
        findings = (
            ", ".join(f"{p:.2f}/{t}" for p, t in zip(entry["findings"], example["findings"])) if "findings" in entry else "-"
        )
        lines.append(f"| `{key}` | {generated} | {reference} | {acuity} | {findings} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _banners(synthetic: bool, weights: Mapping[str, Any]) -> list[str]:
    lines = []
    if synthetic:
        from medcap.evaluation.report import SYNTHETIC_BANNER

        lines += [SYNTHETIC_BANNER, ""]
    if weights and not weights.get("pretrained", False):
        lines += [
            f"> **RANDOM BACKBONE.** {weights.get('backbone', 'the CNN')} was not initialised from ImageNet "
            f"({weights.get('source', '')}); the paper used a pre-trained EfficientNet.",
            "",
        ]
    return lines


def _baseline_values(metrics: Mapping[str, Any], name: str) -> dict[str, Any]:
    prefix = f"baselines/{name}/"
    return {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}


def write_run_report(path: Path, task, metrics: dict[str, Any], baselines: Sequence[str]) -> None:
    from medcap.evaluation.report import truth_section

    config = task.config
    lines = [f"# {config.name}: {task.regime}", "", f"{config.paper}", ""]
    lines += _banners(is_synthetic(config), task.weights_info)
    paper = dict(config.paper_results)
    sections = [
        ("report", "Table 1: report generation", TEXT_KEYS, TEXT_BASELINES),
        ("findings", "Table 3: multi-label findings", ML_KEYS, ("prevalence", "majority")),
        ("acuity", "Table 4: ordinal acuity", OC_KEYS, ("majority",)),
    ]
    for name, title, keys, names in sections:
        if name not in task.tasks:
            continue
        shown = [b for b in names if b in baselines]
        rows = []
        for key in keys:
            row = [f"`{key}`", format_value(paper.get(key)) if key in paper else "-", format_value(metrics.get(key))]
            row += [format_value(metrics.get(f"baselines/{b}/{key}")) for b in shown]
            rows.append(row)
        lines += [f"## {title}", ""]
        lines += markdown_table(["metric", "paper", "ours", *(f"baseline: {b}" for b in shown)], rows)
        lines.append("")
    lines += [
        f"Split `{metrics['meta/split']}` ({metrics['meta/num_examples']} studies); tasks {metrics['meta/tasks']}; "
        f"loss weights (alpha, beta, gamma) = ({metrics['meta/loss_weights']}); decoding {metrics['meta/decoding']}; "
        f"BLEU flavour `{metrics['meta/bleu_flavour']}`. BERTScore columns: {metrics['meta/bertscore']}.",
        "",
        f"Losses on `{metrics['meta/split']}` (unweighted): " + ", ".join(f"{k[5:]} {format_value(v)}" for k, v in metrics.items() if k.startswith("loss/")),
        "",
        f"Backbone: `{json.dumps(task.weights_info)}`",
        "",
        *truth_section(
            metrics, {b: _baseline_values(metrics, b) for b in TEXT_BASELINES if b in baselines}
        ),
        "## Choices where the paper is silent",
        "",
        *(f"- {choice}" for choice in config.choices),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
