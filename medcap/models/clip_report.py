"""Evaluation and reports of paper 002's dual encoder (Table 1 and Table 3).

Rahman, Lee, Kim, "Leveraging Contrastive Learning and Domain Prompts for
Efficient Radiology Report Generation". Section 4.2: reports are retrieved,
not generated: each test image gets the train report whose embedding is the
most cosine-similar to its own.

`evaluate_run(task, model, splits, split, workdir)` (called by the trainer
through `ClipTask.evaluate`) writes into the run's workdir

    report.md                 the run's metrics beside the paper and the baselines
    samples.md                retrieved vs reference reports
    predictions_<split>.json  id -> [retrieved report]  (pycocoevalcap format)
    texts_<split>.json        the references, reports and baselines as scored (`medcap compare`)
    retrieval_bank.npz/.json  train report embeddings and texts (for `medcap caption`)

and returns the metrics dict (metrics.json): every `score_corpus` key
(`Bleu_1..4`, `METEOR`, `ROUGE_L`, `CIDEr`, `coco/...`, `nltk/...`, `ce/...`),
`retrieval/i2t/R@K`, `retrieval/t2i/R@K`, median ranks and
`retrieval/chance/R@K` (K / distinct reports) on the test pairs, ranked
against the de-duplicated test reports (studies whose encoder texts are
verbatim equal are one candidate, and retrieving any of them is a hit;
`retrieval/num_distinct_reports`, `retrieval/num_studies_sharing_a_report`
count them), on a synthetic tree
`truth/ce/...` (the findings the retrieved reports state vs those drawn in
the image), `baselines/<name>/<key>`, `paper/<key>` and `meta/...`. The
text keys, for the model and each baseline, are those of every system
(`medcap.evaluation.evaluator`).

`python -m medcap.models.clip_report results/clip` reads
`results/clip/clip_densenet/metrics.json` and
`results/clip/clip_densenet_baseline/metrics.json` and writes
`results/clip/report.md`: Table 1 (the paper's rows with ours added) and
Table 3 (DenseNet vs proposed) side by side with the paper, plus retrieval,
clinical efficacy and the baselines.

Paper facts, as printed (IU X-ray, 7:2:1 split, section 4.1):

    Table 1  Proposed method  BLEU-1 0.48  BLEU-2 0.31  BLEU-3 0.22  BLEU-4 0.18  ROUGE 0.37  METEOR 0.22
    Table 3  DenseNet         BLEU-1 0.39  BLEU-2 0.13  BLEU-3 0.10  BLEU-4 0.07  ROUGE 0.30  METEOR 0.15

Section 5.1's prose says "BLEU-4 score increased from 0.39 to 0.48"; those
are Table 3's BLEU-1 values (its BLEU-4 goes 0.07 -> 0.18). Table 3's DenseNet
row from BLEU-2 on equals Table 1's Show-Tell row. The paper does not say
which BLEU/METEOR implementation it used; we report pycocoevalcap (coco)
numbers in the tables (both BLEU flavours are in metrics.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data import synthetic
from medcap.data.base import Example
from medcap.evaluation.report import format_value, markdown_table

#: The paper's metric names -> our keys (pycocoevalcap names).
TABLE_KEYS = (
    ("BLEU-1", "Bleu_1"),
    ("BLEU-2", "Bleu_2"),
    ("BLEU-3", "Bleu_3"),
    ("BLEU-4", "Bleu_4"),
    ("ROUGE", "ROUGE_L"),
    ("METEOR", "METEOR"),
)
METRIC_KEYS = tuple(k for _, k in TABLE_KEYS)

def paper_rows() -> tuple[dict[str, dict[str, float | None]], dict[str, float], dict[str, float]]:
    """(Table 1's other methods, the proposed method's numbers, the DenseNet baseline's), read from
    the experiments (`RUN_NAMES`): each one's `paper_results`, and clip_densenet's
    `TABLE1_OTHER_METHODS`."""
    from medcap.config import load_experiment, load_experiment_module

    others = dict(load_experiment_module(RUN_NAMES["proposed"]).TABLE1_OTHER_METHODS)
    proposed = dict(load_experiment(RUN_NAMES["proposed"]).paper_results)
    baseline = dict(load_experiment(RUN_NAMES["baseline"]).paper_results)
    return others, proposed, baseline


CE_KEYS = (
    "ce/micro_precision",
    "ce/micro_recall",
    "ce/micro_f1",
    "ce/example_f1",
    "ce/five_micro_f1",
)
RETRIEVAL_KS = (1, 5, 10)
RUN_NAMES = {"proposed": "clip_densenet", "baseline": "clip_densenet_baseline"}


# ---------------------------------------------------------------------------
# One run


def _nearest_train_features(
    task, train: list[Example], test: list[Example]
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Baseline DenseNet121 (+ GAP) image features: the same backbone and weights policy, never trained."""
    import keras

    from medcap.models.clip_dual_encoder import build_vision_backbone

    preset = task.preset
    backbone, record = build_vision_backbone(
        preset["backbone"],
        task.config.model.encoder_weights,
        image_size=tuple(task.config.data.image_size),
        output_layer=preset["backbone_output_layer"],
    )
    extractor = keras.Sequential(
        [backbone, keras.layers.GlobalAveragePooling2D()], name="baseline_densenet_gap"
    )
    batch = int(task.options["embed_batch_size"])
    from medcap.models.clip_retrieval import first_view

    def features(examples):
        ds = task.image_dataset([first_view(e["image"]) for e in examples], batch_size=batch)
        return np.asarray(extractor.predict(ds, verbose=task._verbose), np.float32)

    return features(train), features(test), record.to_dict()


def evaluate_run(
    task, model, splits: dict[str, list[Example]], split: str, workdir: Path
) -> dict[str, Any]:
    """Retrieval-based reports for `split`, scored; see the module docstring for outputs."""
    from medcap.evaluation import baselines as trivial
    from medcap.evaluation.classification import cosine_similarity
    from medcap.evaluation.evaluator import (
        TextOutputs,
        evaluate_retrieval,
        evaluate_texts,
        save_scored_texts,
    )
    from medcap.models.clip_retrieval import encoder_text, top1_retrieval

    config = task.config
    workdir = Path(workdir)
    examples, train = splits[split], splits["train"]
    ids = [str(e["id"]) for e in examples]
    train_reports = [e["report_clean"] for e in train]
    references = {i: [e["report_clean"]] for i, e in zip(ids, examples)}

    image_embeddings = task.embed_images(model, [e["image"] for e in examples])
    test_texts = [encoder_text(e) for e in examples]
    test_text_embeddings = task.embed_reports(model, test_texts)
    train_text_embeddings = task.embed_reports(model, [encoder_text(e) for e in train])
    task.save_bank(workdir, train, train_text_embeddings)

    nearest, similarity = top1_retrieval(image_embeddings, train_text_embeddings)
    predictions = {i: [train_reports[int(j)]] for i, j in zip(ids, nearest)}
    (workdir / f"predictions_{split}.json").write_text(
        json.dumps(predictions, indent=1) + "\n", encoding="utf-8"
    )

    task_baselines = {}
    if "nearest_train" in config.eval.baselines:  # the report of the nearest train image, under the baseline DenseNet
        train_features, test_features, record = _nearest_train_features(task, train, examples)
        nearest_texts = trivial.nearest_train_baseline(ids, test_features, train_features, train_reports)
        task_baselines["nearest_train"] = (
            {key: texts[0] for key, texts in nearest_texts.items()},
            "nearest_train baseline: report of the train image nearest (cosine) under untrained "
            "DenseNet121 + GAP features: " + json.dumps(record),
        )
    outputs = TextOutputs(references, {key: texts[0] for key, texts in predictions.items()}, train_reports, task_baselines)
    texts = evaluate_texts(outputs, config.eval, seed=config.train.seed, truth=synthetic.truth_for(config.data))
    save_scored_texts(workdir, split, outputs, texts)
    metrics: dict[str, Any] = dict(texts.metrics)
    baseline_scores = texts.baselines

    metrics.update(
        evaluate_retrieval(cosine_similarity(image_embeddings, test_text_embeddings), test_texts, RETRIEVAL_KS)
    )

    metrics.update({f"paper/{k}": v for k, v in config.paper_results.items()})
    metrics.update(
        {
            "meta/split": split,
            "meta/num_examples": len(examples),
            "meta/num_train_reports": len(train_reports),
            "meta/variant": task.options["variant"],
            "meta/preset": config.model.preset,
            "meta/synthetic_data": config.data.synthetic,
            "meta/weights": json.dumps(task.weights_info, sort_keys=True),
            "meta/report_source": "top-1 train report by cosine similarity of image and report embeddings",
            "meta/data_source": _data_source(workdir),
            "meta/mean_top1_similarity": float(np.mean(similarity)) if len(similarity) else None,
            "meta/temperature": model.learned_temperature,
        }
    )
    pooling = getattr(model.vision_encoder, "pooling", None)
    if pooling is not None and hasattr(pooling, "average_weight"):
        metrics["meta/adaptive_pooling_gap_weight"] = float(np.asarray(pooling.average_weight))
    write_samples(
        workdir / "samples.md", examples, predictions, similarity, config.eval.num_samples
    )
    write_run_report(workdir / "report.md", task, metrics, baseline_scores)
    return metrics


def _data_source(workdir: Path) -> str | None:
    """Which IU X-ray source the run read, with its counts (the trainer's data.json)."""
    path = workdir / "data.json"
    if not path.is_file():
        return None
    info = json.loads(path.read_text(encoding="utf-8")).get("info", {})
    if "source" not in info:
        return None
    return f"{info['source']}: {info.get('studies')} studies, {info.get('images')} images listed"


def write_samples(
    path: Path, examples: list[Example], predictions: dict, similarity: np.ndarray, num: int
) -> None:
    lines = [
        "# Retrieved vs reference reports",
        "",
        "| id | cosine | retrieved | reference |",
        "|---|---:|---|---|",
    ]
    for example, score in list(zip(examples, similarity))[:num]:
        key = str(example["id"])
        retrieved = predictions[key][0].replace("|", "\\|") or "*(empty)*"
        reference = example["report_clean"].replace("|", "\\|")
        lines.append(f"| `{key}` | {float(score):.3f} | {retrieved} | {reference} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _banners(config, weights: dict[str, Any]) -> list[str]:
    lines = []
    if config.data.synthetic:
        from medcap.evaluation.report import SYNTHETIC_BANNER

        lines += [SYNTHETIC_BANNER, ""]
    vision, text = weights.get("vision", {}), weights.get("text", {})
    if vision and not vision.get("pretrained", False):
        lines += [
            f"> **RANDOM IMAGE BACKBONE.** {vision.get('backbone')}: {vision.get('source')} (`pretrained: false`).",
            "",
        ]
    if text and not text.get("pretrained", False):
        lines += [
            f"> **RANDOM TEXT ENCODER.** {text.get('source')} (`pretrained: false`; the paper used BioBERT).",
            "",
        ]
    return lines


def write_run_report(
    path: Path, task, metrics: dict[str, Any], baseline_scores: dict[str, dict[str, Any]]
) -> None:
    from medcap.evaluation.report import results_table, truth_section

    config = task.config
    ours = {k: v for k, v in metrics.items() if not k.startswith(("baselines/", "paper/"))}
    table_keys = [*METRIC_KEYS, "CIDEr", *CE_KEYS]
    lines = [
        f"# {config.name}: {config.paper}",
        "",
        f"{config.table}. Variant `{task.options['variant']}`.",
        "",
    ]
    lines += _banners(config, task.weights_info)
    lines += [
        results_table(ours, paper=config.paper_results, baselines=baseline_scores, keys=table_keys)
    ]
    lines += [
        "## Retrieval on the test pairs",
        "",
        "| direction | " + " | ".join(f"R@{k}" for k in RETRIEVAL_KS) + " | median rank |",
    ]
    lines += ["|---|" + "---:|" * (len(RETRIEVAL_KS) + 1)]
    for direction, label in (
        ("i2t", "image → text"),
        ("t2i", "text → image"),
        ("chance", "chance"),
    ):
        cells = [format_value(metrics.get(f"retrieval/{direction}/R@{k}")) for k in RETRIEVAL_KS]
        cells.append(format_value(metrics.get(f"retrieval/{direction}/median_rank"), 1))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Ranked against {metrics.get('retrieval/num_distinct_reports', '—')} distinct test reports: "
        f"{metrics.get('retrieval/num_studies_sharing_a_report', '—')} studies share a verbatim report with "
        "another, and retrieving any identical report is a hit (chance: K / distinct reports).",
        "",
        f"Split `{metrics['meta/split']}`: {metrics['meta/num_examples']} studies; reports retrieved from "
        f"{metrics['meta/num_train_reports']} train reports. Learned temperature: {format_value(metrics['meta/temperature'])}.",
        "",
        f"Data source: {metrics.get('meta/data_source') or 'not recorded'} (paper 002 counts 3,955 reports "
        "and 7,470 images, the OpenI release; R2Gen's annotation.json holds 2,955 studies).",
        "",
        f"Weights: `{metrics['meta/weights']}`",
        "",
        *truth_section(ours, baseline_scores),
        "## Choices where the paper is silent",
        "",
    ]
    lines += [f"- {choice}" for choice in config.choices]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------
# Both runs: Table 1 and Table 3


def _row(label: str, values: dict[str, Any] | None, digits: int = 4) -> str:
    """Paper rows are printed with two decimals (`digits=2`), as the paper prints them."""
    return f"| {label} | " + " | ".join(format_value((values or {}).get(k), digits) for k in METRIC_KEYS) + " |"


def _header() -> list[str]:
    return markdown_table(["model", *(name for name, _ in TABLE_KEYS)], [])


def load_run(directory: Path) -> dict[str, Any] | None:
    path = directory / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def combined_report(results_dir: str | Path) -> str:
    """Markdown of Table 1 and Table 3 with our runs beside the paper's rows."""
    results_dir = Path(results_dir)
    runs = {variant: load_run(results_dir / name) for variant, name in RUN_NAMES.items()}
    if not any(runs.values()):
        raise FileNotFoundError(
            f"{results_dir}: neither {RUN_NAMES['proposed']}/metrics.json nor {RUN_NAMES['baseline']}/metrics.json; "
            "run `make reproduce-clip` first"
        )
    proposed, baseline = runs["proposed"], runs["baseline"]
    paper_others, paper_proposed, paper_densenet = paper_rows()
    lines = [
        "# Paper 002: CLIP-style dual encoder on IU X-ray (Rahman, Lee, Kim)",
        "",
        "Reports are retrieved (top-1 train report by cosine similarity, section 4.2). "
        "Paper numbers are as printed (two decimals); ours are pycocoevalcap (coco flavour).",
        "",
    ]
    if any(run and run.get("meta/synthetic_data") for run in runs.values()):
        from medcap.evaluation.report import SYNTHETIC_BANNER

        lines += [SYNTHETIC_BANNER, ""]
    for variant, run in runs.items():
        if run is None:
            lines += [f"> {RUN_NAMES[variant]}: not run (no metrics.json).", ""]
        else:
            weights = json.loads(run.get("meta/weights", "{}"))
            for part in ("vision", "text"):
                info = weights.get(part, {})
                if info and not info.get("pretrained", False):
                    lines += [
                        f"> {RUN_NAMES[variant]}: {part} encoder NOT pretrained ({info.get('source')}).",
                        "",
                    ]

    lines += ["## Table 1: natural language generation metrics", ""] + _header()
    lines += [_row(f"paper: {label}", values, 2) for label, values in paper_others.items()]
    lines.append(_row("paper: Proposed method", paper_proposed, 2))
    lines.append(_row("**ours: proposed (clip_densenet)**", proposed))
    for name in ("nearest_train", "random_train", "constant"):
        source = proposed or baseline or {}
        if any(f"baselines/{name}/{k}" in source for k in METRIC_KEYS):
            lines.append(
                _row(
                    f"ours: baseline `{name}`",
                    {k: source.get(f"baselines/{name}/{k}") for k in METRIC_KEYS},
                )
            )

    lines += ["", "## Table 3: DenseNet vs proposed modifications", ""] + _header()
    lines.append(_row("paper: DenseNet", paper_densenet, 2))
    lines.append(_row("**ours: DenseNet (clip_densenet_baseline)**", baseline))
    lines.append(_row("paper: Proposed method", paper_proposed, 2))
    lines.append(_row("**ours: proposed (clip_densenet)**", proposed))
    if proposed and baseline:
        delta = {
            k: (proposed.get(k) - baseline.get(k))
            if proposed.get(k) is not None and baseline.get(k) is not None
            else None
            for k in METRIC_KEYS
        }
        paper_delta = {
            k: paper_proposed[k] - paper_densenet[k]
            if paper_proposed.get(k) is not None and paper_densenet.get(k) is not None
            else None
            for k in METRIC_KEYS
        }
        lines.append(_row("paper: proposed − DenseNet", paper_delta, 2))
        lines.append(_row("ours: proposed − DenseNet", delta))

    lines += ["", "## Retrieval (test pairs) and clinical efficacy", ""]
    columns = (
        [f"i2t R@{k}" for k in RETRIEVAL_KS]
        + [f"t2i R@{k}" for k in RETRIEVAL_KS]
        + ["CE micro F1", "CE example F1"]
    )
    lines += ["| run | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for variant, run in runs.items():
        if run is None:
            continue
        cells = [format_value(run.get(f"retrieval/i2t/R@{k}")) for k in RETRIEVAL_KS]
        cells += [format_value(run.get(f"retrieval/t2i/R@{k}")) for k in RETRIEVAL_KS]
        cells += [format_value(run.get("ce/micro_f1")), format_value(run.get("ce/example_f1"))]
        lines.append(f"| {RUN_NAMES[variant]} | " + " | ".join(cells) + " |")
    some = proposed or baseline
    chance = [format_value(some.get(f"retrieval/chance/R@{k}")) for k in RETRIEVAL_KS]
    lines.append("| chance | " + " | ".join(chance * 2) + " | — | — |")
    lines += [
        "",
        "The paper reports no retrieval recall and no clinical efficacy; CE uses medcap's rule-based labeler "
        "(not CheXpert), so it is comparable only between medcap runs.",
        "",
        f"Per-run details: `{RUN_NAMES['proposed']}/report.md`, `{RUN_NAMES['baseline']}/report.md`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m medcap.models.clip_report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "results_dir",
        help="directory holding clip_densenet/ and clip_densenet_baseline/ run workdirs",
    )
    args = parser.parse_args(argv)
    try:
        text = combined_report(args.results_dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.results_dir) / "report.md"
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    trained = [name for name in RUN_NAMES.values() if (Path(args.results_dir) / name / "model.keras").exists()]
    if RUN_NAMES["proposed"] in trained:  # `medcap caption --workdir results/clip` uses the proposed model
        from medcap.workdir import write_results_index

        write_results_index(args.results_dir, RUN_NAMES["proposed"], trained)
    return 0


if __name__ == "__main__":
    sys.exit(main())
