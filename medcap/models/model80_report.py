"""Evaluation, report, samples and plots of a Model-80 / Model-70 run.

`evaluate(task, model, splits, split, workdir)` writes into the workdir

    report.md     paper numbers (Tables 2 and 3), ours and the trivial
                  baselines side by side (`medcap.evaluation.report`); a
                  banner on synthetic data or a randomly initialised backbone
    samples.md    generated vs reference captions
    plots/        loss.png, accuracy.png (history.csv) and attention_*.png
    predictions_<split>.json   id -> generated caption
    texts_<split>.json         the references, captions and baselines as scored (`medcap compare`)

and returns the metrics dict the trainer saves as metrics.json:

    accuracy, precision, recall, f1    next-word, Table 2 (Keras semantics,
                                       `medcap.evaluation.classification.NextWordMetrics`)
    batch_mean/...                     the Keras-2 per-batch flavour of the same
    loss                               mean next-word cross-entropy (no L2 term)
    Bleu_1, Bleu_2                     Table 3, flavour = eval.bleu_flavour
    Bleu_3..4, coco/..., nltk/...,     every text metric, the same keys as every
    METEOR, ROUGE_L, CIDEr, ce/...,    other system's (`medcap.evaluation.evaluator`)
    truth/ce/..., baselines/<name>/...
    paper/<metric>                     the paper's numbers
    meta/...                           split, decoding, weights, synthetic

Table 2's metrics are computed over every (prefix, next word) pair of the
split, streamed from the same lazily expanded pairs as training; the one-hot
targets Keras' Precision/Recall need exist one batch at a time. Pairs whose
target is `<unk>` count like any other (the model is trained to predict
`<unk>` for words outside the vocabulary and is credited when it does);
`meta/unk_targets` says how many there are. The `<end>` target of each
caption counts too. Decoded captions never hold `<unk>` (`medcap.decoding`
forbids it), so BLEU compares words only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data import synthetic
from medcap.data.base import Example
from medcap.evaluation.evaluator import TextOutputs, evaluate_texts, save_scored_texts

#: Table 2 and Table 3 rows of report.md, in order.
TABLE_KEYS = ("accuracy", "precision", "recall", "f1", "Bleu_1", "Bleu_2")
BLEU_KEYS = tuple(f"{flavour}/Bleu_{n}" for flavour in ("coco", "nltk") for n in range(1, 5))


def next_word_metrics(model, dataset) -> dict[str, float]:
    """Table 2's next-word metrics (and the mean cross-entropy) over a pair dataset."""
    import keras

    from medcap.evaluation.classification import NextWordMetrics

    metrics = NextWordMetrics(threshold=0.5)
    loss = keras.metrics.Mean()
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    for inputs, targets in dataset:
        probabilities = model(inputs, training=False)
        metrics.update(targets, probabilities)
        loss.update_state(cross_entropy(targets, probabilities))
    return {**metrics.result(), "loss": float(loss.result())}


def write_samples(path: Path, examples: list[Example], predictions: dict[str, str], num: int) -> None:
    lines = ["# Generated vs reference captions", "", "| id | generated | reference |", "|---|---|---|"]
    for example in examples[:num]:
        key = str(example["id"])
        generated = predictions[key].replace("|", "\\|") or "*(empty)*"
        reference = example["report_clean"].replace("|", "\\|")
        lines.append(f"| `{key}` | {generated} | {reference} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_report(path: Path, task, metrics: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> None:
    from medcap.evaluation.report import results_table, truth_section

    config = task.config
    weights = task.weights_info
    lines = [f"# {config.name}: {config.paper}", ""]
    if not weights.get("pretrained", False):
        lines += [
            f"> **RANDOM BACKBONE (pretrained: false).** {weights.get('backbone', 'The backbone')} was not initialised "
            f"from ImageNet ({weights.get('source', '')}). The paper used ImageNet VGG16 features.",
            "",
        ]
    lines.append(
        results_table(
            metrics,
            paper=config.paper_results,
            baselines=baselines,
            keys=TABLE_KEYS,
            synthetic=config.data.synthetic,
            title=f"{config.table}: paper vs ours vs trivial baselines",
        )
    )
    lines += [
        f"Split `{metrics['meta/split']}`: {metrics['meta/num_examples']} images, {metrics['meta/num_pairs']} "
        f"(prefix, next word) pairs, {metrics.get('meta/unk_targets', 0)} of them with an `<unk>` target "
        f"(counted in Table 2). Decoding: {metrics['meta/decoding']}.",
        "",
        "Table 2 metrics: " + metrics.get("meta/next_word_flavour", "") + ". Baselines have no next-word "
        "probabilities, so their Table 2 cells are empty.",
        "",
        *[f"Baseline {value}" for key, value in metrics.items() if key.startswith("meta/baselines/")],
        "",
        f"Backbone: `{json.dumps(weights)}`",
        "",
        "## BLEU in both flavours",
        "",
        results_table(metrics, baselines=baselines, keys=BLEU_KEYS),
        *truth_section(metrics, baselines),
        "## Choices where the paper is silent",
        "",
        *[f"- {choice}" for choice in config.choices],
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_plots(
    task, model, workdir: Path, examples: list[Example], tokens: np.ndarray, features: np.ndarray, *, suffix: str = ""
) -> list[str]:
    from medcap.plots import plot_attention, plot_history

    plots_dir = workdir / "plots"
    written = [str(p) for p in plot_history(workdir / "history.csv", plots_dir, title=task.config.name)]
    count = min(int(task.options["attention_plots"]), len(examples))
    if count == 0:
        return written
    from medcap.models.model80 import IMAGE_INPUT, TOKEN_INPUT
    from medcap.text import END_ID, START_ID

    probe = model.attention_model()
    vocabulary = task.vocabulary
    for i in range(count):
        row = [int(t) for t in tokens[i]]
        length = row.index(END_ID) + 1 if END_ID in row else len(row)
        steps = row[:length]
        prompts = np.zeros((len(steps), len(steps)), np.int32)
        for t in range(len(steps)):
            prompts[t, 0] = START_ID
            prompts[t, 1 : t + 1] = steps[:t]
        weights = np.asarray(
            probe({IMAGE_INPUT: np.repeat(features[i : i + 1].astype(np.float32), len(steps), 0), TOKEN_INPUT: prompts})
        )
        labels = [vocabulary.id_to_token(t) for t in [START_ID, *steps[:-1]]]
        predicted = [vocabulary.id_to_token(t) for t in steps]
        path = plots_dir / f"attention{suffix}_{i}.png"
        plot_attention(labels, predicted, weights, path, title=f"{examples[i]['id']}")
        written.append(str(path))
    return written


def evaluate(task, model, splits: dict[str, list[Example]], split: str, workdir: Path) -> dict[str, Any]:
    config = task.config
    examples = splits[split]
    features = task.split_features(split, examples).features

    metrics: dict[str, Any] = next_word_metrics(model, task.eval_dataset(examples, batch_size=256))
    tokens = task.generate(model, features)
    ids = [str(e["id"]) for e in examples]
    predictions = {key: task.vocabulary.decode(row) for key, row in zip(ids, tokens)}
    references = {str(e["id"]): [e["report_clean"]] for e in examples}
    outputs = TextOutputs(references, predictions, [e["report_clean"] for e in splits["train"]])
    texts = evaluate_texts(outputs, config.eval, seed=config.train.seed, truth=synthetic.truth_for(config.data))
    save_scored_texts(workdir, split, outputs, texts)
    metrics.update(texts.metrics)
    baselines = texts.baselines

    for key, value in config.paper_results.items():
        metrics[f"paper/{key}"] = value
    from medcap.text import UNK_ID

    decoding = config.eval.decoding + (f" (beam {config.eval.beam_size})" if config.eval.decoding == "beam" else "")
    targets = task.caption_tokens(examples)[:, 1:]
    metrics.update(
        {
            "meta/split": split,
            "meta/num_examples": len(examples),
            "meta/num_pairs": task.num_pairs(examples),
            "meta/unk_targets": int(np.count_nonzero(targets == UNK_ID)),
            "meta/decoding": f"{decoding}, at most {task.decode_length} words, <unk> never generated",
            "meta/bleu_flavour": config.eval.bleu_flavour,
            "meta/synthetic": config.data.synthetic,
            "meta/pretrained": bool(task.weights_info.get("pretrained", False)),
            "meta/weights_source": task.weights_info.get("source", ""),
        }
    )

    workdir.mkdir(parents=True, exist_ok=True)
    # The configured split owns report.md / samples.md; others get suffixed files.
    suffix = "" if split == config.eval.split else f"_{split}"
    (workdir / f"predictions_{split}.json").write_text(json.dumps(predictions, indent=1) + "\n", encoding="utf-8")
    write_samples(workdir / f"samples{suffix}.md", examples, predictions, config.eval.num_samples)
    write_report(workdir / f"report{suffix}.md", task, metrics, baselines)
    metrics["meta/plots"] = write_plots(task, model, workdir, examples, tokens, features, suffix=suffix)
    if config.data.synthetic:
        print("NOTE: synthetic data: these numbers are not comparable with the paper (see report.md).")
    return metrics
