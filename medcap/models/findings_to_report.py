"""Paper 003's run: classify, describe, write, score. What `findings_to_report_task` calls.

For the evaluated split, in the workdir:

    classifier/                  the findings classifier's own evaluation (its report.md,
                                 predictions, explanations): paper 004's run, stage 1
    thresholds.json              the classifier's validation-chosen thresholds
    sentence_bank.json           the template writer's sentences (train split only)
    descriptions_<split>.jsonl   one structured description per study
    descriptions_train.jsonl     LLM writers with ICIL: the train studies' descriptions and
                                 reports the in-context examples are drawn from
    reports_<split>.jsonl        id, written report, the text scored, reference, writer extras
    texts_<split>.json           the references, scored reports and baselines (`medcap compare`)
    prompts_<split>.jsonl        LLM writers: exactly what was sent for each study
    llm_cache/                   LLM writers: every reply, keyed by (writer, model, prompt)
    samples.md                   the first studies: findings block, report, reference
    review.csv                   a rating sheet for radiologists (the proposal plans
                                 expert review): study, image, findings, report, empty scores
    report.md                    text metrics, clinical efficacy, faithfulness, baselines

Scoring goes through the shared evaluator (`evaluate_texts`: BLEU-1..4,
METEOR, ROUGE-L, CIDEr, clinical efficacy with the `constant` and
`random_train` baselines) against `report_clean`, the reference every
system on the dataset is scored against (an LLM's prose cleaned first with
the dataset's own cleaner, `CLEANERS`, so it is compared in the same text
form; the template writes that form already), plus `faithfulness/...`
(`medcap.evaluation.faithfulness`). The classifier's metrics come along
under `classifier/...`.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data import synthetic
from medcap.data.findings_labels import first_view
from medcap.reporting.description import CertaintyBands, StudyDescription, describe
from medcap.reporting.prompts import ExampleIndex

CLASSIFIER_DIR = "classifier"
TRAIN_EXAMPLES = "descriptions_train.jsonl"
LORA_DIR = "llm_lora"
#: The `medcap.text.clean_report` style that made each dataset's `report_clean`.
CLEANERS = {"iu_xray": "iu_xray", "mimic": "mimic_cxr"}
BANK_FILE = "sentence_bank.json"
SAMPLES = 20
REVIEW_COLUMNS = ("study_id", "image", "structured_findings", "report", "reference", "accuracy_1to5", "completeness_1to5", "clinically_acceptable_yes_no", "comments")
CE_KEYS = ("ce/micro_f1", "ce/micro_precision", "ce/micro_recall", "ce/macro_f1")
TEXT_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
FAITHFULNESS_KEYS = (
    "faithfulness/precision",
    "faithfulness/recall",
    "faithfulness/f1",
    "faithfulness/state_agreement",
    "faithfulness/hallucinated",
    "faithfulness/omitted",
    "faithfulness/unchecked",
)


def load_images(task, paths: list[str]) -> np.ndarray:
    import tensorflow as tf

    from medcap.data.pipeline import read_image

    size = tuple(task.config.data.image_size)
    return np.stack([read_image(tf.constant(first_view(str(p))), size).numpy() for p in paths]).astype("float32")


def map_peaks(task, model, images: np.ndarray, probabilities: np.ndarray, thresholds: list[float]) -> list[dict[str, tuple[float, float]]]:
    """For each image, finding -> (x, y) of its explanation map's peak, for
    the findings at or above their threshold; one batched pass per 32 pairs."""
    from medcap.explanations.methods import Explainer, peaks

    method = task.options["explain_method"]
    out: list[dict[str, tuple[float, float]]] = [{} for _ in range(len(images))]
    if method == "none":
        return out
    pairs = [(i, j) for i in range(len(images)) for j, t in enumerate(thresholds) if probabilities[i, j] >= t]
    explainer = Explainer(model, method, feature_layer=model.feature_layer)
    for start in range(0, len(pairs), 32):
        chunk = pairs[start : start + 32]
        maps = explainer(images[[i for i, _ in chunk]], [j for _, j in chunk])
        for (i, j), peak in zip(chunk, peaks(maps)):
            out[i][task.label_names[j]] = (float(peak["x"]), float(peak["y"]))
    return out


def certainty_bands(options: dict[str, Any]) -> CertaintyBands:
    return CertaintyBands(tuple(options["certainty_edges"]), tuple(options["certainty_words"]))


def load_examples(workdir: Path) -> ExampleIndex | None:
    """The ICIL examples saved by an evaluation, or None before one ran."""
    path = Path(workdir) / TRAIN_EXAMPLES
    if not path.is_file():
        return None
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return ExampleIndex([StudyDescription.from_dict(r["description"]) for r in records], [r["report"] for r in records])


def train_examples(task, model, train: list, thresholds: list[float], workdir: Path) -> ExampleIndex:
    """Describes every train study with the trained classifier and saves them with their reports."""
    ids = [str(e["id"]) for e in train]
    probabilities = task.predict(model, train)
    descriptions = describe_studies(task, model, ids, [first_view(e["image"]) for e in train], probabilities, thresholds)
    reports = [str(e.get("report") or e["report_clean"]) for e in train]
    with open(workdir / TRAIN_EXAMPLES, "w", encoding="utf-8") as f:
        for d, r in zip(descriptions, reports):
            f.write(json.dumps({"description": d.to_dict(), "report": r}) + "\n")
    return ExampleIndex(descriptions, reports)


def fine_tune_writer(task, workdir: Path) -> dict[str, Any]:
    """LoRA factors for the keras_hub writer's model from the train pairs, once per run
    (`medcap.reporting.fine_tune`); the prompts are the writer's own, ICIL and CoT as configured."""
    from medcap.reporting.fine_tune import LORA_FILE, RECORD_FILE, fine_tune_causal_lm
    from medcap.reporting.prompts import build_messages, render_prompt

    out = workdir / LORA_DIR
    if (out / LORA_FILE).is_file() and (out / RECORD_FILE).is_file():
        record = json.loads((out / RECORD_FILE).read_text())
    else:
        examples = task.examples
        settings = task.prompt_settings()
        prompts = [render_prompt(build_messages(d, settings, examples if settings.icil else None)) for d in examples.descriptions]
        o = task.options
        record = fine_tune_causal_lm(
            task.llm_preset_dir(),
            prompts,
            [" " + " ".join(r.split()) for r in examples.reports],
            out,
            lora_rank=int(o["lora_rank"]),
            epochs=int(o["lora_epochs"]),
            batch_size=int(o["lora_batch_size"]),
            learning_rate=float(o["lora_learning_rate"]),
            sequence_length=int(o["lora_sequence_length"]),
            seed=task.config.train.seed,
        )
    task.lora_weights = str(out / LORA_FILE)
    return record


def scored_text(report: str, writer, dataset: str) -> str:
    if writer.writes_clean_text or dataset not in CLEANERS:
        return report
    from medcap.text import clean_report

    return clean_report(report, CLEANERS[dataset])


def describe_studies(
    task, model, ids: list[str], image_paths: list[str], probabilities: np.ndarray, thresholds: list[float], images: np.ndarray | None = None
) -> list[StudyDescription]:
    """One description per study; `images` are the decoded first views when the caller has them already."""
    images = load_images(task, image_paths) if images is None else images
    located = map_peaks(task, model, images, probabilities, thresholds)
    bands = certainty_bands(task.options)
    names = task.label_names
    return [
        describe(
            study_id,
            dict(zip(names, (float(p) for p in row))),
            dict(zip(names, thresholds)),
            peaks=where,
            bands=bands,
            uncertain_below=float(task.options["uncertain_below"]),
            image=first_view(path),
        )
        for study_id, path, row, where in zip(ids, image_paths, probabilities, located)
    ]


def evaluate_run(task, model, splits: dict[str, list], split: str, workdir: Path) -> dict[str, Any]:
    from medcap.evaluation.evaluator import TextOutputs, evaluate_texts, save_scored_texts
    from medcap.evaluation.faithfulness import faithfulness
    from medcap.models import findings_report

    config = task.config
    workdir = Path(workdir)
    classifier_dir = workdir / CLASSIFIER_DIR
    classifier_dir.mkdir(exist_ok=True)
    # The classifier's own evaluation (thresholds chosen on val, AUROC, explanations) in its folder,
    # reused while it is newer than the model (another writer on the same classifier: the ablation).
    saved = classifier_dir / f"metrics_{split}.json"
    model_file = workdir / "model.keras"
    if saved.is_file() and model_file.is_file() and saved.stat().st_mtime >= model_file.stat().st_mtime:
        classifier = json.loads(saved.read_text())
    else:
        classifier = findings_report.evaluate_run(task, model, splits, split, classifier_dir)
        saved.write_text(json.dumps({k: v for k, v in classifier.items() if isinstance(v, (int, float, str))}, indent=1) + "\n")
    shutil.copyfile(classifier_dir / findings_report.THRESHOLDS_FILE, workdir / findings_report.THRESHOLDS_FILE)
    thresholds = findings_report.load_thresholds(task)

    examples = splits[split]
    ids = [str(e["id"]) for e in examples]
    probabilities = np.load(classifier_dir / f"predictions_{split}.npz")["probabilities"]
    descriptions = describe_studies(task, model, ids, [first_view(e["image"]) for e in examples], probabilities, thresholds)
    if task.uses_examples:
        task.examples = train_examples(task, model, splits["train"], thresholds, workdir)
    fine_tuned = fine_tune_writer(task, workdir) if task.options["fine_tune_llm"] else None
    writer = task.writer()
    written = writer.write(descriptions)
    generated = {w.study_id: scored_text(w.report, writer, config.data.name) for w in written}
    references = {i: [e["report_clean"]] for i, e in zip(ids, examples)}
    train_texts = [e["report_clean"] for e in splits["train"]]

    outputs = TextOutputs(references, generated, train_texts)
    texts = evaluate_texts(outputs, config.eval, seed=config.train.seed, truth=synthetic.truth_for(config.data))
    save_scored_texts(workdir, split, outputs, texts)
    metrics: dict[str, Any] = dict(texts.metrics)
    faithful = faithfulness(descriptions, [generated[w.study_id] for w in written])
    per_study = faithful.pop("per_study_f1")
    metrics.update(faithful)
    for name, baseline_texts in texts.baseline_texts.items():
        scores = faithfulness(descriptions, [baseline_texts[i] for i in ids])
        scores.pop("per_study_f1")
        texts.baselines[name].update(scores)
        metrics.update({f"baselines/{name}/{k}": v for k, v in scores.items()})
    metrics.update({f"classifier/{k}": v for k, v in classifier.items() if isinstance(v, (int, float, str)) and not k.startswith("baselines/")})
    if fine_tuned is not None:
        metrics["meta/llm_fine_tune"] = json.dumps(fine_tuned)
    metrics.update(
        {
            "meta/split": split,
            "meta/num_examples": len(ids),
            "meta/writer": json.dumps(writer.info()),
            "meta/reference": "report_clean",
            "meta/labeler": "medcap.evaluation.clinical (rule-based CheXpert-14, ours); CE over its five observations, micro and macro; "
            + ("uncertain read as positive" if config.eval.ce_uncertain else "uncertain read as negative"),
        }
    )
    _write_outputs(workdir, split, descriptions, written, generated, references, per_study)
    (workdir / "report.md").write_text(render_report(task, metrics, texts.baselines, writer.info()))
    return metrics


def _write_outputs(workdir: Path, split: str, descriptions, written, generated, references, per_study) -> None:
    with open(workdir / f"descriptions_{split}.jsonl", "w", encoding="utf-8") as f:
        for d in descriptions:
            f.write(json.dumps(d.to_dict()) + "\n")
    with open(workdir / f"reports_{split}.jsonl", "w", encoding="utf-8") as f:
        for w, score in zip(written, per_study):
            extras = {k: v for k, v in w.extras.items() if k != "prompt"}
            record = {"id": w.study_id, "report": w.report, "scored": generated[w.study_id], "reference": references[w.study_id][0], "faithfulness_f1": float(score), **extras}
            f.write(json.dumps(record) + "\n")
    if any("prompt" in w.extras for w in written):
        with open(workdir / f"prompts_{split}.jsonl", "w", encoding="utf-8") as f:
            for w in written:
                f.write(json.dumps({"id": w.study_id, "cache_key": w.extras.get("cache_key"), "messages": w.extras["prompt"]}) + "\n")
    with open(workdir / "review.csv", "w", newline="", encoding="utf-8") as f:
        sheet = csv.writer(f)
        sheet.writerow(REVIEW_COLUMNS)
        for d, w in zip(descriptions, written):
            sheet.writerow([d.study_id, d.image, d.to_text(), w.report, references[w.study_id][0], "", "", "", ""])
    lines = ["# Samples", ""]
    for d, w in list(zip(descriptions, written))[:SAMPLES]:
        lines += [f"## {d.study_id}", "", f"Image: `{d.image}`", "", "```", d.to_text(), "```", "", f"**Report:** {w.report}", "", f"**Reference:** {references[w.study_id][0]}", ""]
    (workdir / "samples.md").write_text("\n".join(lines))


def render_report(task, metrics, baselines, writer_info) -> str:
    from medcap.evaluation.report import SYNTHETIC_BANNER, results_table, truth_section

    config = task.config
    ours = {k: v for k, v in metrics.items() if not k.startswith(("baselines/", "paper/", "classifier/"))}
    lines = [f"# {config.name}: {config.paper}", "", f"{config.table}.", ""]
    if config.data.synthetic:
        lines += [SYNTHETIC_BANNER, ""]
    if not task.pretrained:
        lines += [f"**Random backbone:** the classifier's backbone was not pretrained ({task.weights_info.get('source', '')}).", ""]
    lines += [
        f"Writer: `{writer_info['writer']}`. Split `{metrics['meta/split']}`, {metrics['meta/num_examples']} studies; "
        f"references: `report_clean`, the text every system on `{config.data.name}` is scored against.",
        "",
        "## Text metrics and clinical efficacy",
        "",
        results_table(ours, baselines=baselines, keys=[*TEXT_KEYS, *CE_KEYS]),
        f"Clinical efficacy: {metrics['meta/labeler']}.",
        "",
        "## Faithfulness: does the report say what the classifier found?",
        "",
        "Our labeler reads the written report; its positive and uncertain observations are compared with the "
        "structured description the writer was given (hallucinated: stated, not found; omitted: found, not stated). "
        "A baseline column scores that baseline's text against the same descriptions.",
        "",
        results_table({k: ours[k] for k in FAITHFULNESS_KEYS}, baselines=baselines, keys=list(FAITHFULNESS_KEYS)),
        *truth_section(ours, baselines),
        "## The classifier (stage 1)",
        "",
        f"Macro AUROC {_fmt(metrics.get('classifier/auroc_macro'))}, macro F1 at validation thresholds "
        f"{_fmt(metrics.get('classifier/macro_f1'))}; its full report: `{CLASSIFIER_DIR}/report.md`.",
        "",
        "## Choices where the paper is silent",
        "",
        *[f"- {choice}" for choice in config.choices],
        "",
        f"Samples: `samples.md`; every study: `descriptions_{metrics['meta/split']}.jsonl`, "
        f"`reports_{metrics['meta/split']}.jsonl`; rating sheet for radiologists: `review.csv`.",
        "",
    ]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{float(value):.4f}"
