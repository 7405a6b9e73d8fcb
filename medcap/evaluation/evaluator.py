"""One evaluator for generated (or retrieved) reports: every system is scored the same way.

A task hands over what it produced on a split (`TextOutputs`: the report
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
are kept for paired tests between systems on the same reports.
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
) -> TextEvaluation:
    """Scores the model's reports and every configured baseline (module docstring).

    `eval_config`: a `medcap.config.EvalConfig` (bleu_flavour, bootstrap,
    ce_uncertain, baselines). `truth`: the synthetic tree's findings
    (`medcap.data.synthetic.truth_for`), or None on real data.
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
