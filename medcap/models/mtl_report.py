"""Paper 001's evaluation: one run's metrics, and the STL / MTL-EQ / MTL-TP report.

Aksoy, Sharoff, Ravikumar, "Enhancing Image-to-Text Generation in Radiology
Reports through Cross-modal Multi-Task Learning", section 5, Tables 1-4.

**One run** (`evaluate_run`, called by the trainer through `MTLTask.evaluate`)
writes into its workdir

    metrics.json (returned)    Table 1 (Bleu_1..4, ROUGE_L, CIDEr), Table 3
                               (ml/...), Table 4 (oc/...) for the run's tasks;
                               test losses (loss/...); trivial baselines
                               (baselines/<name>/...); on a synthetic tree the
                               findings the reports state vs the drawn ones
                               (truth/ce/...); paper/<key>; meta/...
    per_report_<split>.json    per-report text scores, for Table 2's paired t-test
    predictions_<split>.json   id -> generated report, reference, acuity, findings
    baselines_<split>.json     id -> each text baseline's report (scored by BERTScore later)
    report.md, samples.md

**The three regimes** (`python -m medcap.models.mtl_report results/mtl`)
read `results/mtl/{stl/report, stl/acuity, stl/findings, eq, tp}` (and
`sweep/*` when present) and write `results/mtl/report.md` with Tables 1-4,
the paper's numbers and the trivial baselines side by side, and
`results/mtl/plots/val_<task>_loss.png`: per-task validation losses over
epochs for the three regimes, with a table of the epoch where each one is
lowest (the paper's claim that MTL delays overfitting is read off these).

Text metrics are pycocoevalcap's (`medcap.evaluation.text_metrics`), BLEU in
the flavour `eval.bleu_flavour`. **BERTScore** F1 (Zhang et al. 2020,
without idf weighting or baseline rescaling) is computed from a local
keras-hub BERT preset (`--bert-preset DIR`; Bio-ClinicalBERT:
`--clinical-bert-preset DIR`): contextual token embeddings of `[CLS] text
[SEP]`, cosine similarity of every candidate/reference token pair, precision
= mean over candidate tokens of the best reference match, recall likewise,
F1 their harmonic mean; `[CLS]`/`[SEP]` are excluded from the matching as
bert-score excludes them. Without a preset the columns read "n/a" and the
report says why. Paper 001's Equation 1 adds "sufficiency" and "fluency"
terms it does not define; its Table 1 reports the F1 part, which is what we
compute.

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
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data import synthetic
from medcap.data.base import Example
from medcap.evaluation.clinical import truth_ce_metrics

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

PAPER_TITLE = (
    "Aksoy, Sharoff, Ravikumar, \"Enhancing Image-to-Text Generation in Radiology Reports through Cross-modal "
    "Multi-Task Learning\" (paper 001), Tables 1-4."
)
#: Paper 001, Tables 1, 3, 4 (keys as in our metrics.json).
PAPER_RESULTS: dict[str, dict[str, float]] = {
    "STL": {
        "Bleu_1": 0.3326, "Bleu_2": 0.2159, "Bleu_3": 0.1488, "Bleu_4": 0.0950,
        "BERTScore_F1": 0.2056, "BioClinicalBERTScore_F1": 0.7857, "ROUGE_L": 0.3096,
        "ml/precision": 0.7520, "ml/recall": 0.6552, "ml/f1": 0.7005,
        "ml/hamming_loss": 0.1466, "ml/exact_match_ratio": 0.8534,
        "oc/accuracy": 0.8790, "oc/mae": 0.1210, "oc/acc_plus_corr": 0.8197,
    },
    "MTL-EQ": {
        "Bleu_1": 0.3352, "Bleu_2": 0.2229, "Bleu_3": 0.1570, "Bleu_4": 0.0983,
        "BERTScore_F1": 0.1958, "BioClinicalBERTScore_F1": 0.7883, "ROUGE_L": 0.3235,
        "ml/precision": 0.6502, "ml/recall": 0.6641, "ml/f1": 0.6562,
        "ml/hamming_loss": 0.1618, "ml/exact_match_ratio": 0.8382,
        "oc/accuracy": 0.8553, "oc/mae": 0.1447, "oc/acc_plus_corr": 0.7907,
    },
    "MTL-TP": {
        "Bleu_1": 0.3424, "Bleu_2": 0.2295, "Bleu_3": 0.1616, "Bleu_4": 0.1035,
        "BERTScore_F1": 0.2065, "BioClinicalBERTScore_F1": 0.7898, "ROUGE_L": 0.3366,
        "ml/precision": 0.6603, "ml/recall": 0.6775, "ml/f1": 0.6694,
        "ml/hamming_loss": 0.1598, "ml/exact_match_ratio": 0.8402,
        "oc/accuracy": 0.8640, "oc/mae": 0.1360, "oc/acc_plus_corr": 0.8005,
    },
}  # fmt: skip
#: Paper 001, Table 2: p-values of the paired t-test STL vs MTL-TP.
PAPER_P_VALUES: dict[str, float] = {
    "Bleu_1": 0.00117, "Bleu_2": 0.00006, "Bleu_3": 0.00035, "Bleu_4": 0.02569,
    "BERTScore_F1": 0.83824, "BioClinicalBERTScore_F1": 0.00611, "ROUGE_L": 0.00000,
}  # fmt: skip

#: Where `make reproduce-mtl` puts each regime's run(s) under the results directory.
REGIME_DIRS: dict[str, dict[str, str]] = {
    "STL": {"report": "stl/report", "acuity": "stl/acuity", "findings": "stl/findings"},
    "MTL-EQ": {"report": "eq", "acuity": "eq", "findings": "eq"},
    "MTL-TP": {"report": "tp", "acuity": "tp", "findings": "tp"},
}
TEXT_BASELINES = ("constant", "random_train")


# ---------------------------------------------------------------------------
# Small helpers


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        value = float(value)
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [_row(header), "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|", *(_row(r) for r in rows)]


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def is_synthetic(config: Any) -> bool:
    """Synthetic when no download was configured, or the configured directory
    is a synthetic tree (it carries `synthetic_truth.json`)."""
    data = config.data
    return data.synthetic or (Path(data.source_dir) / synthetic.TRUTH_FILE).is_file()


# ---------------------------------------------------------------------------
# Trivial baselines of the classification heads


def prevalence_baseline(train_findings: Any, num: int, *, seed: int = 0) -> np.ndarray:
    """(num, labels) 0/1 draws, label j positive with its train prevalence."""
    prevalence = np.asarray(train_findings, dtype=np.float64).mean(axis=0)
    rng = np.random.default_rng(seed)
    return (rng.random((num, prevalence.size)) < prevalence).astype(np.float64)


def majority_labels_baseline(train_findings: Any, num: int) -> np.ndarray:
    """(num, labels): every label at its train majority value (ties -> 0)."""
    prevalence = np.asarray(train_findings, dtype=np.float64).mean(axis=0)
    return np.tile((prevalence > 0.5).astype(np.float64), (num, 1))


def majority_level(train_levels: Sequence[int]) -> int:
    """The most frequent train level (ties -> the lower level)."""
    values, counts = np.unique(np.asarray(train_levels, dtype=np.int64), return_counts=True)
    return int(values[np.argmax(counts)])


# ---------------------------------------------------------------------------
# BERTScore from a local keras-hub preset


def bertscore(
    references: Sequence[str],
    candidates: Sequence[str],
    preset: str | Path,
    *,
    layer: int | None = None,
    batch_size: int = 32,
    max_length: int = 512,
) -> np.ndarray:
    """(n, 3) BERTScore precision, recall, F1 per pair (module docstring).

    `preset`: a local keras-hub preset directory with a BERT-style backbone
    (inputs token_ids / segment_ids / padding_mask) and its tokenizer;
    `layer`: which transformer layer's output (0-based; default the last).
    """
    import keras
    import keras_hub

    if len(references) != len(candidates):
        raise ValueError(f"{len(references)} references for {len(candidates)} candidates")
    preset = str(preset)
    if not Path(preset).is_dir():
        raise FileNotFoundError(f"BERT preset {preset}: no such directory (a local keras-hub preset is needed)")
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset)
    backbone = keras_hub.models.Backbone.from_preset(preset)
    if layer is None:
        embed = backbone
        output_key = "sequence_output"
    else:
        embed = keras.Model(backbone.input, backbone.get_layer(f"transformer_layer_{layer}").output)
        output_key = None
    max_length = min(max_length, int(getattr(backbone, "max_sequence_length", max_length)))
    cls_id, sep_id = int(tokenizer.cls_token_id), int(tokenizer.sep_token_id)
    pad_id = int(getattr(tokenizer, "pad_token_id", 0) or 0)

    def embeddings(texts: Sequence[str]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for lo in range(0, len(texts), batch_size):
            chunk = list(texts[lo : lo + batch_size])
            pieces = [[int(t) for t in np.asarray(ids)][: max_length - 2] for ids in tokenizer(chunk)]
            width = max(len(p) for p in pieces) + 2
            token_ids = np.full((len(chunk), width), pad_id, np.int32)
            mask = np.zeros((len(chunk), width), bool)
            for i, p in enumerate(pieces):
                row = [cls_id, *p, sep_id]
                token_ids[i, : len(row)] = row
                mask[i, : len(row)] = True
            result = embed({"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": mask})
            hidden = np.asarray(result[output_key] if output_key else result, dtype=np.float64)
            for i, p in enumerate(pieces):
                vectors = hidden[i, 1 : 1 + len(p)]
                norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
                out.append(vectors / norms)
        return out

    ref_vectors = embeddings(references)
    cand_vectors = embeddings(candidates)
    scores = np.zeros((len(references), 3))
    for i, (ref, cand) in enumerate(zip(ref_vectors, cand_vectors)):
        if len(ref) == 0 or len(cand) == 0:
            continue
        similarity = cand @ ref.T
        precision = float(similarity.max(axis=1).mean())
        recall = float(similarity.max(axis=0).mean())
        f1 = 0.0 if precision + recall <= 0 else 2 * precision * recall / (precision + recall)
        scores[i] = (precision, recall, f1)
    return scores


# ---------------------------------------------------------------------------
# One run


def _text_scores(references: dict[str, list[str]], predictions: dict[str, str], flavour: str):
    from medcap.evaluation.text_metrics import evaluate

    return evaluate(references, predictions, metrics=["bleu", "rouge", "cider"], bleu_flavour=flavour)


def _text_metrics(evaluation: Any) -> dict[str, Any]:
    corpus = evaluation.corpus
    out = {key: corpus[key] for key in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr")}
    for flavour in ("coco", "nltk"):
        for n in range(1, 5):
            out[f"{flavour}/Bleu_{n}"] = corpus[f"{flavour}/Bleu_{n}"]
    out["BERTScore_F1"] = None
    out["BioClinicalBERTScore_F1"] = None
    return out


def _multilabel(y_true: np.ndarray, y_score: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    from medcap.evaluation.classification import multilabel_metrics

    values = multilabel_metrics(y_true, y_score, label_names=names)
    out = {f"ml/{k}": v for k, v in values.items()}
    out["ml/precision"] = values["micro_precision"]
    out["ml/recall"] = values["micro_recall"]
    out["ml/f1"] = values["micro_f1"]
    return out


def _ordinal(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    from medcap.evaluation.classification import ordinal_metrics

    return {f"oc/{k}": v for k, v in ordinal_metrics(y_true, y_pred).items()}


def evaluate_run(task, model, splits: dict[str, list[Example]], split: str, workdir: Path) -> dict[str, Any]:
    """Scores one trained model on `split` and writes the run's files (module docstring)."""
    from medcap.evaluation.classification import decode_ordinal
    from medcap.models.mtl_task import report_text

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
        evaluation = _text_scores(references, generated, config.eval.bleu_flavour)
        metrics.update(_text_metrics(evaluation))
        truth = synthetic.truth_for(config.data)
        if truth is not None:
            metrics.update(truth_ce_metrics(truth, generated, uncertain=config.eval.ce_uncertain))
        per_report = {"ids": evaluation.ids, "scores": {k: np.asarray(v).tolist() for k, v in evaluation.per_report.items()}}
        (workdir / f"per_report_{split}.json").write_text(json.dumps(per_report) + "\n", encoding="utf-8")
        for key in ids:
            predictions_file[key]["report"] = generated[key]
            predictions_file[key]["reference"] = references[key][0]
        train_texts = [report_text(e, keep) for e in train]
        baseline_texts: dict[str, dict[str, str]] = {}
        for name in config.eval.baselines:
            if name not in TEXT_BASELINES:
                metrics[f"meta/baseline_{name}"] = "unavailable: needs image embeddings (not part of paper 001's model)"
                continue
            baseline_texts[name] = _text_baseline(name, ids, train_texts, seed)
            scores = _text_metrics(_text_scores(references, baseline_texts[name], config.eval.bleu_flavour))
            if truth is not None:
                truth_scores = truth_ce_metrics(truth, baseline_texts[name], uncertain=config.eval.ce_uncertain)
                scores.update({k: v for k, v in truth_scores.items() if not k.startswith("meta/")})
            baselines.setdefault(name, {}).update(scores)
        (workdir / f"baselines_{split}.json").write_text(json.dumps(baseline_texts, indent=1) + "\n", encoding="utf-8")

    if "findings" in task.tasks:
        names = list(examples[0].get("findings_names") or task.state.get("findings_names") or [])
        names = names or [f"finding_{j}" for j in range(predicted["findings"].shape[1])]
        y_true = np.array([e["findings"] for e in examples], dtype=np.int64)
        metrics.update(_multilabel(y_true, predicted["findings"], names))
        train_findings = np.array([e["findings"] for e in train], dtype=np.float64)
        baselines.setdefault("prevalence", {}).update(
            _multilabel(y_true, prevalence_baseline(train_findings, len(examples), seed=seed), names)
        )
        baselines.setdefault("majority", {}).update(
            _multilabel(y_true, majority_labels_baseline(train_findings, len(examples)), names)
        )
        for key, row in zip(ids, predicted["findings"]):
            predictions_file[key]["findings"] = [round(float(p), 6) for p in row]
        metrics["meta/findings_names"] = ",".join(names)

    if "acuity" in task.tasks:
        truth = [int(e["acuity"]) for e in examples]
        levels = decode_ordinal(predicted["acuity"])
        metrics.update(_ordinal(truth, levels))
        majority = majority_level([int(e["acuity"]) for e in train])
        baselines.setdefault("majority", {}).update(_ordinal(truth, [majority] * len(truth)))
        metrics["meta/acuity_majority_level"] = majority
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
            "meta/bertscore": "not computed per run: `python -m medcap.models.mtl_report DIR --bert-preset ...`",
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


def _text_baseline(name: str, ids: list[str], train_texts: list[str], seed: int) -> dict[str, str]:
    from medcap.evaluation import baselines

    if name == "constant":
        predictions, _ = baselines.constant_baseline(ids, train_texts, seed=seed)
    else:
        predictions = baselines.random_train_baseline(ids, train_texts, seed=seed)
    return {key: texts[0] for key, texts in predictions.items()}


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
            row = [f"`{key}`", _fmt(paper.get(key)) if key in paper else "-", _fmt(metrics.get(key))]
            row += [_fmt(metrics.get(f"baselines/{b}/{key}")) for b in shown]
            rows.append(row)
        lines += [f"## {title}", ""]
        lines += _table(["metric", "paper", "ours", *(f"baseline: {b}" for b in shown)], rows)
        lines.append("")
    lines += [
        f"Split `{metrics['meta/split']}` ({metrics['meta/num_examples']} studies); tasks {metrics['meta/tasks']}; "
        f"loss weights (alpha, beta, gamma) = ({metrics['meta/loss_weights']}); decoding {metrics['meta/decoding']}; "
        f"BLEU flavour `{metrics['meta/bleu_flavour']}`. BERTScore columns: {metrics['meta/bertscore']}.",
        "",
        "Test losses (unweighted): " + ", ".join(f"{k[5:]} {_fmt(v)}" for k, v in metrics.items() if k.startswith("loss/")),
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


def _add_bertscores(
    runs: dict[str, dict[str, RunResult | None]], presets: dict[str, str | None], layer: int | None
) -> dict[str, str]:
    """Fills BERTScore keys of every report run (and its baselines) in place;
    returns a note per metric saying how it was computed or why not."""
    notes = {}
    report_runs = [r for r in {id(r): r for r in (by_task["report"] for by_task in runs.values())}.values() if r]
    for key, preset in presets.items():
        if not preset:
            flag = "--bert-preset" if key == "BERTScore_F1" else "--clinical-bert-preset"
            notes[key] = f"unavailable: no local keras-hub BERT preset given ({flag} DIR); no network access assumed"
            continue
        if not Path(preset).is_dir():
            notes[key] = f"unavailable: preset directory {preset} does not exist"
            continue
        for run in report_runs:
            if not run.predictions:
                continue
            ids = sorted(run.predictions)
            refs = [run.predictions[i]["reference"] for i in ids]
            scores = bertscore(refs, [run.predictions[i]["report"] for i in ids], preset, layer=layer)
            run.metrics[key] = float(scores[:, 2].mean())
            if run.per_report is not None:
                order = {i: n for n, i in enumerate(ids)}
                run.per_report["scores"][key] = [float(scores[order[i], 2]) for i in run.per_report["ids"]]
            for name, texts in run.baselines.items():
                base = bertscore(refs, [texts[i] for i in ids], preset, layer=layer)
                run.metrics[f"baselines/{name}/{key}"] = float(base[:, 2].mean())
        notes[key] = f"BERTScore F1 from {preset} ({'last layer' if layer is None else f'layer {layer}'}, no idf)"
    return notes


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
            rows.append([regime, task, str(len(values)), str(best), _fmt(float(np.nanmin(values)))])
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
    runs: dict[str, dict[str, RunResult | None]], task: str, keys: Sequence[str], baseline_names: Sequence[str]
) -> list[list[str]]:
    rows = []
    for regime, by_task in runs.items():
        run = by_task[task]
        paper = PAPER_RESULTS[regime]
        rows.append([f"{regime} (paper)", *(_fmt(paper[k]) if k in paper else "-" for k in keys)])
        if run is None:
            rows.append([f"{regime} (ours)", *("not run" for _ in keys)])
        else:
            rows.append([f"{regime} (ours)", *(_fmt(run.metrics.get(k)) for k in keys)])
    source = next((by_task[task] for by_task in runs.values() if by_task[task] is not None), None)
    for name in baseline_names:
        if source is not None and any(f"baselines/{name}/{k}" in source.metrics for k in keys):
            rows.append([f"baseline: {name}", *(_fmt(source.metrics.get(f"baselines/{name}/{k}")) for k in keys)])
    return rows


def _sweep_rows(results_dir: Path) -> list[list[str]]:
    rows = []
    for workdir in sorted(p for p in (results_dir / "sweep").glob("*") if p.is_dir()):
        run = load_run(workdir)
        if run is None:
            continue
        m = run.metrics
        rows.append(
            [
                workdir.name,
                m.get("meta/loss_weights", "?"),
                *(_fmt(m.get(k)) for k in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "ml/f1", "oc/accuracy")),
            ]
        )
    return rows


def write_regime_report(
    results_dir: str | Path,
    *,
    bert_preset: str | None = None,
    clinical_bert_preset: str | None = None,
    bert_layer: int | None = None,
) -> Path:
    """Writes `<results_dir>/report.md` and `<results_dir>/plots/` from the regime workdirs."""
    from medcap.evaluation.report import t_test_table

    results_dir = Path(results_dir)
    runs = _regime_runs(results_dir)
    found = [r for by_task in runs.values() for r in by_task.values() if r is not None]
    if not found:
        expected = sorted({relative for by_task in REGIME_DIRS.values() for relative in by_task.values()})
        raise FileNotFoundError(
            f"{results_dir}: no finished run (metrics.json) in any of {', '.join(expected)}; run `make reproduce-mtl`"
        )
    notes = _add_bertscores(
        runs, {"BERTScore_F1": bert_preset, "BioClinicalBERTScore_F1": clinical_bert_preset}, bert_layer
    )
    first = found[0]
    lines = [
        "# Paper 001: cross-modal multi-task learning (STL vs MTL-EQ vs MTL-TP)",
        "",
        f"{PAPER_TITLE}",
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
    lines.append("")

    lines += ["## Table 1: report generation", ""]
    lines += _table(["Method", *(TEXT_LABELS[k] for k in TEXT_KEYS)], _comparison_rows(runs, "report", TEXT_KEYS, TEXT_BASELINES))
    lines += ["", *(f"- {TEXT_LABELS[k]}: {v}" for k, v in notes.items())]
    lines += [f"- BLEU flavour `{first.config.eval.bleu_flavour}`; ROUGE-L is pycocoevalcap's.", ""]

    tests, how = _paired_tests(runs["STL"]["report"], runs["MTL-TP"]["report"])
    lines += ["## Table 2: paired t-test, STL vs MTL-TP (A = STL, B = MTL-TP)", ""]
    if tests:
        lines += [t_test_table(tests, paper_p_values=PAPER_P_VALUES).rstrip(), "", f"{how}.", ""]
    else:
        lines += [f"Not computed: {how}.", ""]

    lines += ["## Table 3: multi-label findings", ""]
    lines += _table(["Method", *(ML_LABELS[k] for k in ML_KEYS)], _comparison_rows(runs, "findings", ML_KEYS, ("prevalence", "majority")))
    lines += [
        "",
        "Precision/recall/F1: micro averages over the labels. The paper's 'Exact Match Ratio' equals 1 - Hamming "
        "loss in every row, so both readings are shown.",
        "",
    ]
    lines += ["## Table 4: ordinal acuity", ""]
    lines += _table(["Method", *(OC_LABELS[k] for k in OC_KEYS)], _comparison_rows(runs, "acuity", OC_KEYS, ("majority",)))
    lines += ["", "ACC+Corr = (accuracy + Spearman rho) / 2 (ours; the paper does not define it).", ""]

    plots = plot_validation_losses(runs, results_dir / "plots")
    lines += ["## Validation losses over epochs (overfitting)", ""]
    lines += _table(["Regime", "task", "epochs trained", "lowest at epoch", "lowest val loss"], overfitting_table(runs))
    lines += [""] + [f"![{p.stem}](plots/{p.name})" for p in plots]
    lines += [
        "",
        "The paper reports that STL's multi-label head overfits after ~4 epochs and MTL delays this by 5-6 epochs: "
        "compare the 'lowest at epoch' column across regimes.",
        "",
    ]

    sweep = _sweep_rows(results_dir)
    if sweep:
        lines += ["## Loss-weight sweep (MTL, alpha, beta, gamma)", ""]
        header = ["run", "alpha,beta,gamma", "B_1", "B_2", "B_3", "B_4", "R_L", "ML F1", "OC acc."]
        lines += _table(header, sweep) + [""]

    tp = runs["MTL-TP"]["report"] or first
    lines += ["## Choices where the paper is silent", "", *(f"- {c}" for c in tp.config.choices), ""]
    path = results_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m medcap.models.mtl_report",
        description="Paper 001: Tables 1-4 and validation-loss plots from the STL / MTL-EQ / MTL-TP workdirs.",
    )
    parser.add_argument("results_dir", help="directory holding stl/{report,acuity,findings}, eq, tp (and sweep/*)")
    parser.add_argument("--bert-preset", help="local keras-hub BERT preset directory for BERTScore")
    parser.add_argument("--clinical-bert-preset", help="local keras-hub Bio-ClinicalBERT preset directory")
    parser.add_argument("--bert-layer", type=int, default=None, help="transformer layer (0-based) whose outputs are matched")
    args = parser.parse_args(argv)
    try:
        path = write_regime_report(
            args.results_dir,
            bert_preset=args.bert_preset,
            clinical_bert_preset=args.clinical_bert_preset,
            bert_layer=args.bert_layer,
        )
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    runs = sorted({run for regime in REGIME_DIRS.values() for run in regime.values()})
    trained = [run for run in runs if (Path(args.results_dir) / run / "model.keras").exists()]
    if "tp" in trained:  # `medcap caption --workdir results/mtl` uses MTL-TP, the paper's best regime
        from medcap.training import write_results_index

        write_results_index(args.results_dir, "tp", trained)
    return 0


if __name__ == "__main__":
    sys.exit(main())
