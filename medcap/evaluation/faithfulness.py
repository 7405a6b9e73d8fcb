"""Faithfulness: does a written report say what the classifier found?

None of paper 003's anchors (ChatCAD, RaDialog) measures it. Ours: medcap's
labeler (`medcap.evaluation.clinical`) reads each written report, and its
labels are compared with the structured description the writer was given,
per study and observation:

* described: the observations of the description's findings in state
  present or uncertain (a finding maps to an observation through
  `medcap.reporting.sentence_bank.OBSERVATION_OF`; two findings of one
  observation count once);
* stated: the observations the labeler reads as positive (1) or uncertain
  (-1) in the report, over all 13 observations, so a finding the
  classifier does not even score counts when the writer states it;
* matched = described and stated; hallucinated = stated, not described;
  omitted = described, not stated.

    faithfulness/precision = matched / stated         (1 when nothing is stated)
    faithfulness/recall    = matched / described      (1 when nothing is described)
    faithfulness/f1        = their harmonic mean, from the pooled counts
    faithfulness/state_agreement = share of described (present or uncertain)
        observations stated in the same state (1 vs -1)
    faithfulness/hallucinated, /omitted, /matched, /studies      counts
    faithfulness/unchecked = decided findings with no observation (e.g. Emphysema)

Precision, recall and F1 are micro-averaged over every (study,
observation) pair; `per_study_f1` gives each study's F1 for paired tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medcap.evaluation.clinical import label_report

_VALUE = {"present": 1, "uncertain": -1}


def _described(findings: Sequence[Mapping[str, Any]], observation_of) -> tuple[dict[str, int], int]:
    described: dict[str, int] = {}
    unchecked = 0
    for record in findings:
        if record["state"] not in _VALUE:
            continue
        observation = observation_of(record["name"])
        if observation is None:
            unchecked += 1
            continue
        # Present wins over uncertain when two findings share an observation.
        described[observation] = max(described.get(observation, -1), _VALUE[record["state"]])
    return described, unchecked


def faithfulness(descriptions: Sequence[Any], reports: Sequence[str]) -> dict[str, Any]:
    """Scores reports against the descriptions they were written from (module docstring).

    `descriptions`: `StudyDescription`s or their dicts, in the order of `reports`."""
    from medcap.reporting.sentence_bank import observation_of

    if len(descriptions) != len(reports):
        raise ValueError(f"{len(descriptions)} descriptions but {len(reports)} reports")
    matched = hallucinated = omitted = same_state = unchecked = 0
    per_study = []
    for description, report in zip(descriptions, reports):
        record = description if isinstance(description, Mapping) else description.to_dict()
        described, skipped = _described(record["findings"], observation_of)
        unchecked += skipped
        stated = {k: v for k, v in label_report(report).items() if k != "No Finding" and v in (1, -1)}
        hit = set(described) & set(stated)
        matched += len(hit)
        same_state += sum(described[k] == stated[k] for k in hit)
        hallucinated += len(set(stated) - set(described))
        omitted += len(set(described) - set(stated))
        per_study.append(_f1(len(hit), len(stated), len(described)))
    stated_total, described_total = matched + hallucinated, matched + omitted
    precision = matched / stated_total if stated_total else 1.0
    recall = matched / described_total if described_total else 1.0
    return {
        "faithfulness/precision": precision,
        "faithfulness/recall": recall,
        "faithfulness/f1": _f1(matched, stated_total, described_total),
        "faithfulness/state_agreement": same_state / matched if matched else 1.0,
        "faithfulness/matched": matched,
        "faithfulness/hallucinated": hallucinated,
        "faithfulness/omitted": omitted,
        "faithfulness/unchecked": unchecked,
        "faithfulness/studies": len(reports),
        "per_study_f1": np.asarray(per_study, dtype=np.float64),
    }


def _f1(matched: int, stated: int, described: int) -> float:
    if stated == 0 and described == 0:
        return 1.0
    return 2.0 * matched / (stated + described)
