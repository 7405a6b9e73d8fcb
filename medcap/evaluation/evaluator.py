"""One evaluator: every system's outputs are scored the same way, with the same keys.

A task hands over what it produced on a split; the evaluator computes every
metric that applies, for the model and for its trivial baselines:

* reports (`evaluate_texts`), below;
* multi-label finding scores (`evaluate_labels`: `ml/...`, baselines
  `prevalence` and `majority`);
* an ordinal target (`evaluate_ordinal`: `oc/...`, baseline `majority`);
* image-report retrieval (`evaluate_retrieval`: `retrieval/...`).

Reports: the task hands over `TextOutputs` (the report
each study got, the references, the train reports the trivial baselines
draw from, and any baseline only the task can make, such as the nearest
train image's report); `evaluate_texts` computes every text metric that
applies, for the model and for each baseline, with the same keys whatever
the system:

    Bleu_1..4, coco/Bleu_n, nltk/Bleu_n, METEOR, ROUGE_L,
    rouge_score/ROUGE_L_F1, CIDEr, ce/...     `medcap.evaluation.text_metrics`
    ci_low/<key>, ci_high/<key>               with `eval.bootstrap` resamples
    truth/ce/...                              on a synthetic tree: the findings
                                              the reports state vs those drawn
    baselines/<name>/<key>                    the same keys for each baseline
    meta/baselines/<name>                     how each baseline was made

Baselines are those `eval.baselines` names: `constant` (the train report of
best consensus) and `random_train` (a seeded random train report per study)
are made here; `nearest_train` needs image embeddings, so the task supplies
its texts (`TextOutputs.task_baselines`) or it is recorded as unavailable.
METEOR needs java: without it the METEOR cells are None and
`meta/meteor` says why, for the model and the baselines alike.

The per-report scores of the model (`TextEvaluation.evaluation.per_report`)
are kept for paired tests between systems on the same reports, and
`save_scored_texts` writes `texts_<split>.json` into the run: exactly the
references, the system's texts and each baseline's texts that were scored, the
one input `medcap compare` reads whatever the system.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medcap.evaluation.clinical import truth_ce_metrics

#: Baselines made from the train reports alone (`medcap.evaluation.baselines`).
TEXT_ONLY_BASELINES = ("constant", "random_train")


@dataclass
class TextOutputs:
    """What a task produced on one split, for the evaluator."""

    #: id -> reference report(s) (what the system is scored against).
    references: Mapping[str, Sequence[str]]
    #: id -> the system's report (generated or retrieved).
    generated: Mapping[str, str]
    #: The train split's reports, in the same text form as the references.
    train_texts: Sequence[str]
    #: Baselines only the task can make (e.g. nearest_train): name -> (id -> text, how it was made).
    task_baselines: Mapping[str, tuple[Mapping[str, str], str]] = field(default_factory=dict)


@dataclass
class TextEvaluation:
    """The flat metrics (model, baselines, meta) plus what reports and tests reuse."""

    metrics: dict[str, Any]
    #: name -> the baseline's numeric scores, unprefixed (for results tables).
    baselines: dict[str, dict[str, Any]]
    #: name -> (id -> text) of each baseline that was scored.
    baseline_texts: dict[str, dict[str, str]]
    #: The model's `text_metrics.Evaluation` (per-report arrays for paired tests).
    evaluation: Any


def text_baseline(name: str, ids: Sequence[str], train_texts: Sequence[str], seed: int) -> tuple[dict[str, str], str]:
    """(id -> text, how it was made) of a baseline made from the train reports alone."""
    from medcap.evaluation import baselines

    if name == "constant":
        predictions, choice = baselines.constant_baseline(list(ids), list(train_texts), seed=seed)
        note = choice.describe()
    elif name == "random_train":
        predictions = baselines.random_train_baseline(list(ids), list(train_texts), seed=seed)
        note = f"random_train baseline: a train report drawn per study, seed {seed}"
    else:
        raise ValueError(f"baseline {name!r} is not made from train reports alone; valid: {', '.join(TEXT_ONLY_BASELINES)}")
    return {key: texts[0] for key, texts in predictions.items()}, note


def _numeric(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in values.items()
        if not k.startswith("meta/") and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))
    }


def evaluate_texts(
    outputs: TextOutputs,
    eval_config: Any,
    *,
    seed: int,
    truth: Mapping[str, Any] | None = None,
    meteor: Any = None,
) -> TextEvaluation:
    """Scores the model's reports and every configured baseline (module docstring).

    `eval_config`: a `medcap.config.EvalConfig` (bleu_flavour, bootstrap,
    ce_uncertain, baselines). `truth`: the synthetic tree's findings
    (`medcap.data.synthetic.truth_for`), or None on real data. `meteor`: a
    running `MeteorJar` to reuse (else one is started here and closed).
    """
    from medcap.evaluation.text_metrics import MeteorJar, MeteorUnavailable, evaluate

    references = {str(k): list(v) for k, v in outputs.references.items()}
    ids = list(references)

    def score(predictions: Mapping[str, str], *, bootstrap: int, jar) -> Any:
        return evaluate(
            references,
            dict(predictions),
            bleu_flavour=eval_config.bleu_flavour,
            bootstrap=bootstrap,
            seed=seed,
            ce_uncertain=eval_config.ce_uncertain,
            meteor=jar,
        )

    metrics: dict[str, Any] = {}
    baseline_scores: dict[str, dict[str, Any]] = {}
    baseline_texts: dict[str, dict[str, str]] = {}
    with contextlib.ExitStack() as stack:
        jar = meteor
        if jar is None:
            try:
                jar = stack.enter_context(MeteorJar())
            except MeteorUnavailable:
                jar = None  # evaluate records why METEOR is missing
        evaluation = score(outputs.generated, bootstrap=eval_config.bootstrap, jar=jar)
        metrics.update(evaluation.corpus)
        if truth is not None:
            metrics.update(truth_ce_metrics(truth, dict(outputs.generated), uncertain=eval_config.ce_uncertain))
        for name in eval_config.baselines:
            if name in TEXT_ONLY_BASELINES:
                texts, note = text_baseline(name, ids, outputs.train_texts, seed)
            elif name in outputs.task_baselines:
                texts, note = outputs.task_baselines[name]
                texts = {str(k): v for k, v in texts.items()}
            else:
                metrics[f"meta/baselines/{name}"] = "unavailable: needs image embeddings this system does not make"
                continue
            scores = _numeric(score(texts, bootstrap=eval_config.bootstrap, jar=jar).corpus)
            if truth is not None:
                scores.update(_numeric(truth_ce_metrics(truth, texts, uncertain=eval_config.ce_uncertain)))
            baseline_scores[name] = scores
            baseline_texts[name] = dict(texts)
            metrics[f"meta/baselines/{name}"] = note
            metrics.update({f"baselines/{name}/{key}": value for key, value in scores.items()})
    return TextEvaluation(metrics, baseline_scores, baseline_texts, evaluation)


#: A run's scored texts on a split (`save_scored_texts`).
SCORED_TEXTS = "texts_{split}.json"


def save_scored_texts(workdir: Any, split: str, outputs: TextOutputs, evaluation: TextEvaluation) -> Any:
    """Writes `texts_<split>.json`: {split, references (id -> [text]),
    predictions (id -> text), baselines (name -> {note, texts})}, the texts
    exactly as scored, so another program can rescore them on equal terms."""
    import json
    from pathlib import Path

    record = {
        "split": split,
        "references": {str(k): list(v) for k, v in outputs.references.items()},
        "predictions": {str(k): v for k, v in outputs.generated.items()},
        "baselines": {
            name: {"note": evaluation.metrics.get(f"meta/baselines/{name}", ""), "texts": texts}
            for name, texts in evaluation.baseline_texts.items()
        },
    }
    path = Path(workdir) / SCORED_TEXTS.format(split=split)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


@dataclass
class Scores:
    """A head's metrics (prefixed keys, baselines included) and each baseline's, unprefixed."""

    metrics: dict[str, Any]
    baselines: dict[str, dict[str, Any]]


def _with_baselines(ours: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> Scores:
    metrics = dict(ours)
    for name, values in baselines.items():
        metrics.update({f"baselines/{name}/{key}": value for key, value in values.items()})
    return Scores(metrics, baselines)


def _multilabel(y_true: Any, y_score: Any, names: Sequence[str]) -> dict[str, float]:
    from medcap.evaluation.classification import multilabel_metrics

    values = multilabel_metrics(y_true, y_score, label_names=names)
    out = {f"ml/{k}": v for k, v in values.items()}
    out["ml/precision"] = values["micro_precision"]
    out["ml/recall"] = values["micro_recall"]
    out["ml/f1"] = values["micro_f1"]
    return out


def evaluate_labels(
    labels: Any, scores: Any, names: Sequence[str], *, train_labels: Any, seed: int
) -> Scores:
    """Multi-label findings: `ml/...` (`classification.multilabel_metrics`; precision,
    recall and F1 micro-averaged) for the model's scores and for the `prevalence`
    (seeded draws at each label's train rate) and `majority` (each label at its
    train majority) baselines."""
    import numpy as np

    from medcap.evaluation.baselines import majority_labels_baseline, prevalence_baseline

    labels = np.asarray(labels, dtype=np.int64)
    train_labels = np.asarray(train_labels, dtype=np.float64)
    baselines = {
        "prevalence": _multilabel(labels, prevalence_baseline(train_labels, len(labels), seed=seed), names),
        "majority": _multilabel(labels, majority_labels_baseline(train_labels, len(labels)), names),
    }
    ours = {**_multilabel(labels, scores, names), "meta/findings_names": ",".join(names)}
    return _with_baselines(ours, baselines)


def evaluate_ordinal(levels: Sequence[int], predicted: Sequence[int], *, train_levels: Sequence[int]) -> Scores:
    """An ordinal target (acuity): `oc/...` (`classification.ordinal_metrics`) for the
    model and for the `majority` baseline (the most frequent train level)."""
    from medcap.evaluation.baselines import majority_level
    from medcap.evaluation.classification import ordinal_metrics

    def ordinal(pred: Sequence[int]) -> dict[str, float]:
        return {f"oc/{k}": v for k, v in ordinal_metrics(list(levels), list(pred)).items()}

    majority = majority_level(train_levels)
    ours = {**ordinal(predicted), "meta/acuity_majority_level": majority}
    return _with_baselines(ours, {"majority": ordinal([majority] * len(levels))})


def evaluate_retrieval(similarity: Any, texts: Sequence[str], ks: Sequence[int] = (1, 5, 10)) -> dict[str, Any]:
    """Image-report retrieval over the test pairs: `retrieval/{i2t,t2i}/R@K` and median
    ranks against the de-duplicated texts (identical reports are one candidate, and
    retrieving any copy is a hit), `retrieval/chance/R@K` = K / distinct texts, and
    the counts `retrieval/num_distinct_reports` and `retrieval/num_studies_sharing_a_report`."""
    from collections import Counter

    from medcap.evaluation.classification import retrieval_metrics

    metrics = {f"retrieval/{k}": v for k, v in retrieval_metrics(similarity, ks=ks, groups=list(texts)).items()}
    counts = Counter(texts)
    metrics["retrieval/num_distinct_reports"] = len(counts)
    metrics["retrieval/num_studies_sharing_a_report"] = sum(n for n in counts.values() if n > 1)
    for k in ks:
        metrics[f"retrieval/chance/R@{k}"] = min(1.0, k / len(counts))
    return metrics
