"""Scoring a findings-classifier run, its report, and describing images with it.

`evaluate_run` predicts validation and the scored split, chooses each
label's threshold on validation (`eval.threshold_rule`), scores the split
with `medcap.evaluation.findings` (AUROC/AUPRC with bootstrap CIs, the
threshold metrics, calibration) beside the label baselines
(`eval.label_baselines`: prevalence, and a linear probe on features of the
same backbone never trained on the task, same weights policy), and writes:

    predictions_<split>.npz      ids, probabilities, targets, label names
    thresholds.json              the validation-chosen thresholds (used by caption)
    plots/reliability.png        the reliability diagram
    report.md                    the tables, with the paper's numbers where given

`describe_images` is `medcap caption` for this system: each image's
findings at or above their thresholds, with every label's probability.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data.findings_labels import findings_matrix, first_view
from medcap.evaluation import findings as fe
from medcap.evaluation.report import format_value, markdown_table

THRESHOLDS_FILE = "thresholds.json"
PROBE_LAYER = "head_pool"


def evaluate_run(task, model, splits: dict[str, list], split: str, workdir: Path) -> dict[str, Any]:
    config = task.config
    names = task.label_names
    evaluation = config.eval
    targets = {name: findings_matrix(splits[name], names) for name in ("train", "val", split)}
    val_scores = task.predict(model, splits["val"])
    scores = val_scores if split == "val" else task.predict(model, splits[split])
    thresholds = fe.choose_thresholds(targets["val"], val_scores, names, evaluation.threshold_rule)

    baselines: dict[str, tuple[Any, list[float], str]] = {}
    if "prevalence" in evaluation.label_baselines:
        prevalence = fe.prevalence_scores(targets["train"], len(targets[split]), names)
        val_prevalence = fe.prevalence_scores(targets["train"], len(targets["val"]), names)
        baselines["prevalence"] = (
            prevalence,
            fe.choose_thresholds(targets["val"], val_prevalence, names, evaluation.threshold_rule),
            "every image scored with the label's train prevalence",
        )
    if "linear_probe" in evaluation.label_baselines:
        features = probe_features(task, {name: splits[name] for name in ("train", "val", split)})
        probe_val = fe.linear_probe_scores(features["train"], targets["train"], features["val"], names, seed=config.train.seed)
        probe = fe.linear_probe_scores(features["train"], targets["train"], features[split], names, seed=config.train.seed)
        baselines["linear_probe"] = (
            probe,
            fe.choose_thresholds(targets["val"], probe_val, names, evaluation.threshold_rule),
            f"logistic regression per label on {PROBE_LAYER} features of the {task.config.model.preset} backbone, "
            f"never trained on the task ({'ImageNet weights' if task.pretrained else 'random weights'})",
        )
    metrics = fe.score_findings(
        targets[split],
        scores,
        names,
        thresholds=thresholds,
        baselines=baselines,
        bootstrap=evaluation.bootstrap,
        seed=config.train.seed,
        calibration_bins=evaluation.calibration_bins,
    )
    metrics["meta/threshold_rule"] = evaluation.threshold_rule
    metrics["meta/split"] = split
    from medcap.models.findings_explained import measure_explanations

    explained, gallery = measure_explanations(task, model, splits[split], workdir)
    metrics.update(explained)
    np.savez(
        workdir / f"predictions_{split}.npz",
        ids=np.asarray([e["id"] for e in splits[split]]),
        probabilities=scores,
        targets=targets[split],
        label_names=np.asarray(names),
    )
    (workdir / THRESHOLDS_FILE).write_text(
        json.dumps({"rule": evaluation.threshold_rule, "chosen_on": "val", "thresholds": dict(zip(names, thresholds))}, indent=1) + "\n"
    )
    table = fe.reliability(targets[split], scores, evaluation.calibration_bins)
    plot = plot_reliability(table, workdir / "plots" / "reliability.png", title=f"{config.name} ({split})")
    (workdir / "report.md").write_text(render_report(task, metrics, table, split, plot, gallery))
    return metrics


def probe_features(task, splits: dict[str, list]) -> dict[str, np.ndarray]:
    """GAP features of the same preset's backbone, freshly initialised per the
    run's weights policy (the model as it was before training)."""
    import keras

    from medcap.models.findings_classifier import build_findings_classifier

    keras.utils.set_random_seed(task.config.train.seed)
    untrained, _ = build_findings_classifier(
        task.config.model.preset,
        task.label_names,
        encoder_weights=task.weights_policy(),
        image_size=task.config.data.image_size[0],
        **task.overrides,
    )
    extractor = keras.Model(untrained.inputs[0], untrained.get_layer(PROBE_LAYER).output)
    out = {}
    for name, examples in splits.items():
        dataset = task.eval_dataset(examples, batch_size=task.config.train.batch_size)
        out[name] = np.asarray(extractor.predict(dataset.map(lambda image, target: image), verbose=0), dtype=np.float64)
    return out


def plot_reliability(table: dict[str, list[float]], path: Path, *, title: str) -> Path | None:
    try:
        from medcap.plots import _pyplot

        plt = _pyplot()
    except ImportError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    bins = len(table["count"])
    centres = (np.arange(bins) + 0.5) / bins
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    rate = np.asarray(table["positive_rate"], dtype=float)
    axis.bar(centres, np.nan_to_num(rate), width=1.0 / bins, alpha=0.6, edgecolor="black", label="observed positive rate")
    axis.set_xlabel("predicted probability")
    axis.set_ylabel("fraction positive")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _ci(metrics: dict[str, Any], key: str) -> str:
    interval = metrics.get(key)
    if not interval:
        return ""
    return f" [{format_value(interval[0], 3)}, {format_value(interval[1], 3)}]"


def explanation_section(task, metrics: dict[str, Any], gallery: list[dict[str, Any]]) -> list[str]:
    method = task.config.eval.explain_method
    if method == "none":
        return []
    lines = [f"## Where the model looks ({method})", ""]
    findings = [n for n in task.label_names if f"localisation/{method}/n/{n}" in metrics]
    if findings:
        rows = [
            [
                name,
                str(int(metrics[f"localisation/{method}/n/{name}"])),
                format_value(metrics[f"localisation/{method}/pointing_game/{name}"]),
                format_value(metrics[f"localisation/baselines/centre/pointing_game/{name}"]),
                format_value(metrics.get(f"localisation/baselines/random_point/pointing_game/{name}")),
                format_value(metrics[f"localisation/{method}/iou/{name}"]),
                format_value(metrics[f"localisation/baselines/uniform/iou/{name}"]),
            ]
            for name in findings
        ]
        rows.append(
            [
                "**all**",
                str(int(metrics.get("localisation/pairs", 0))),
                format_value(metrics.get(f"localisation/{method}/pointing_game")),
                format_value(metrics.get("localisation/baselines/centre/pointing_game")),
                format_value(metrics.get("localisation/baselines/random_point/pointing_game")),
                format_value(metrics.get(f"localisation/{method}/iou")),
                format_value(metrics.get("localisation/baselines/uniform/iou")),
            ]
        )
        lines += markdown_table(["finding", "boxed images", "pointing game", "centre point", "random point", "IoU (map >= 0.5)", "uniform map IoU"], rows)
        lines += ["", f"Boxes: {metrics.get('meta/localisation/boxes')}. Pointing game: the map's maximum inside a box of the finding; "
                  "random point: the share of the image inside the boxes (a pixel drawn uniformly).", ""]
    else:
        lines += ["No boxes for this split: localisation not measured.", ""]
    key = f"sanity/{method}/rank_correlation"
    if f"{key}/head" in metrics:
        lines += ["### Model-parameter randomisation (Adebayo et al. 2018)", ""]
        lines += markdown_table(
            ["weights randomised", "rank correlation with the trained model's maps"],
            [
                ["output layer", format_value(metrics[f"{key}/head"])],
                [f"output layer + last block (from {metrics.get(f'sanity/{method}/top_block')})", format_value(metrics[f"{key}/top_block"])],
            ],
        )
        lines += ["", f"Spearman correlation over pixels, mean of {metrics.get(f'sanity/{method}/pairs')} maps; near 1 would mean the maps ignore the learnt weights.", ""]
    if gallery:
        lines += ["### Gallery", ""]
        lines += [f"![{g['finding']} on {g['id']}]({g['file']})" for g in gallery] + [""]
    return lines


def render_report(
    task, metrics: dict[str, Any], table: dict[str, list[float]], split: str, plot: Path | None, gallery: list[dict[str, Any]] | None = None
) -> str:
    config = task.config
    names = task.label_names
    weights = task.weights_info
    paper = config.paper_results
    baselines = [b for b in config.eval.label_baselines]
    lines = [f"# {config.name}: findings classifier ({config.model.preset})", ""]
    if config.paper:
        lines += [f"Reproduces: {config.paper}" + (f" ({config.table})" if config.table else ""), ""]
    if config.data.synthetic:
        lines += ["> **Synthetic data**: these numbers say the pipeline learns, not how the system performs on radiographs.", ""]
    if not weights.get("pretrained"):
        lines += [f"> **Backbone not pretrained**: {weights.get('source', 'random init')}. Not comparable with ImageNet-initialised results.", ""]
    has_paper = any(f"auroc/{name}" in paper for name in names)
    header = ["finding", "AUROC [95% CI]", "AUPRC"]
    if has_paper:
        header.append("paper AUROC")
    header += [f"{b} AUROC" for b in baselines] + ["positives"]
    rows = []
    for name in names:
        row = [name, format_value(metrics.get(f"auroc/{name}")) + _ci(metrics, f"auroc_ci/{name}"), format_value(metrics.get(f"auprc/{name}"))]
        if has_paper:
            row.append(format_value(paper.get(f"auroc/{name}")))
        row += [format_value(metrics.get(f"baselines/{b}/auroc/{name}")) for b in baselines]
        row.append(str(int(metrics.get(f"positives/{name}", 0))))
        rows.append(row)
    macro = ["**mean**", format_value(metrics.get("auroc_macro")) + _ci(metrics, "auroc_macro_ci"), format_value(metrics.get("auprc_macro"))]
    if has_paper:
        macro.append(format_value(paper.get("auroc_macro")))
    macro += [format_value(metrics.get(f"baselines/{b}/auroc_macro")) for b in baselines] + [""]
    rows.append(macro)
    lines += [f"## AUROC and AUPRC per finding ({split})", ""]
    lines += markdown_table(header, rows)
    paper_labels = sum(1 for key in paper if key.startswith("auroc/"))
    lines += [
        "",
        (f"Paper column: {config.table}; its mean is over its {paper_labels} findings. " if has_paper else "")
        + f"Means over the {metrics.get('labels_scored', 0)} findings with both classes in {split}. "
        + (f"Intervals: percentile bootstrap over images, {metrics.get('bootstrap_resamples')} resamples." if metrics.get("bootstrap_resamples") else "No bootstrap (eval.bootstrap = 0)."),
        "",
    ]
    lines += [f"## At thresholds chosen on validation ({config.eval.threshold_rule})", ""]
    rows = [
        [name] + [format_value(metrics.get(f"{key}/{name}")) for key in ("threshold", "accuracy", "precision", "recall", "f1")]
        for name in names
    ]
    for average in ("macro", "micro"):
        rows.append([f"**{average}**", ""] + [format_value(metrics.get(f"{average}_{key}")) for key in ("accuracy", "precision", "recall", "f1")])
    lines += markdown_table(["finding", "threshold", "accuracy", "precision", "recall", "F1"], rows)
    lines += ["", "## Against the baselines", ""]
    rows = []
    for label, prefix in [("ours", "")] + [(b, f"baselines/{b}/") for b in baselines]:
        rows.append([label] + [format_value(metrics.get(prefix + key)) for key in ("auroc_macro", "auprc_macro", "macro_f1", "micro_f1", "ece")])
    lines += markdown_table(["system", "mean AUROC", "mean AUPRC", "macro F1", "micro F1", "ECE"], rows)
    lines += [""] + [f"- {b}: {metrics.get(f'meta/baselines/{b}', '')}" for b in baselines] + [""]
    lines += ["## Calibration", "", f"Expected calibration error {format_value(metrics.get('ece'))} over {int(sum(table['count']))} labelled (image, finding) pairs, {len(table['count'])} equal-width bins.", ""]
    bins = len(table["count"])
    rows = [
        [f"{i / bins:.1f}-{(i + 1) / bins:.1f}", str(int(c)), format_value(p), format_value(r)]
        for i, (c, p, r) in enumerate(zip(table["count"], table["mean_probability"], table["positive_rate"]))
    ]
    lines += markdown_table(["bin", "pairs", "mean probability", "positive rate"], rows)
    if plot is not None:
        lines += ["", f"![reliability diagram](plots/{plot.name})"]
    lines += [""] + explanation_section(task, metrics, gallery or [])
    lines += ["## Weights", "", f"`{json.dumps(weights)}`", ""]
    if config.choices:
        lines += ["## Choices (ours, where the paper is silent)", ""] + [f"- {choice}" for choice in config.choices] + [""]
    return "\n".join(lines) + "\n"


def describe_images(task, model, image_paths: list[str]) -> list[dict[str, Any]]:
    import tensorflow as tf

    from medcap.data.pipeline import read_image

    size = tuple(task.config.data.image_size)
    images = np.stack([read_image(tf.constant(first_view(str(path))), size).numpy() for path in image_paths])
    probabilities = np.asarray(model.predict(images, verbose=0), dtype=np.float64)
    thresholds = load_thresholds(task)
    outputs = []
    for row in probabilities:
        found = [(name, float(p)) for name, p, t in zip(task.label_names, row, thresholds) if p >= t]
        found.sort(key=lambda item: -item[1])
        text = ", ".join(f"{name} {p:.2f}" for name, p in found) or "no finding at or above its threshold"
        outputs.append(
            {
                "text": text,
                "findings": [name for name, _ in found],
                "probabilities": {name: float(p) for name, p in zip(task.label_names, row)},
                "thresholds": {name: float(t) for name, t in zip(task.label_names, thresholds)},
            }
        )
    return outputs


def load_thresholds(task) -> list[float]:
    """The thresholds evaluation chose on validation, else 0.5 each."""
    workdir = getattr(task, "workdir", None)
    if workdir is not None and (Path(workdir) / THRESHOLDS_FILE).is_file():
        record = json.loads((Path(workdir) / THRESHOLDS_FILE).read_text())
        return [float(record["thresholds"][name]) for name in task.label_names]
    return [0.5] * len(task.label_names)
