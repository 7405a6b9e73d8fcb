"""The template writer's sentences, learned from the train reports with our labeler.

For each finding and state (present, uncertain, absent) the bank holds the
most frequent train sentence that medcap's labeler
(`medcap.evaluation.clinical`, ours, not CheXpert's) labels with exactly
that finding in that state and no other observation (ties: the shorter,
then the alphabetically first), among sentences seen at least `min_count`
times (default 2): a sentence seen once is as likely a labeler slip
("... without change of mild atelectasis" read as negative) as a phrasing. The sentences keep the text form of the
train reports they come from (R2Gen's cleaned lower case for IU X-ray), so
a written report is scored against references in the same form.

The bank also holds, per report section, the most frequent train sentence
that names the section's anatomy, says it is normal ("normal", "clear",
"unremarkable", "intact", "no acute ...") and states no observation at
all ("the lungs are clear ."): the template writer uses it when every finding of the
section is absent, as radiologists write one normal sentence rather than a
negation per finding (ours).

Findings are matched to the labeler's observations by name
(`OBSERVATION_OF`: CheXpert names map to themselves; ChestX-ray14's
Effusion, Infiltration, Mass, Nodule and Pleural_Thickening to Pleural
Effusion, Lung Opacity, Lung Lesion, Lung Lesion and Pleural Other).
Emphysema, Fibrosis and Hernia have no observation: their sentences are
the fixed fallbacks and faithfulness cannot check them (counted as such).
A finding and state no train sentence carries gets a fallback sentence
("there is X .", "possible X .", "no X ."), checked with the labeler when
the finding has an observation, and counted in `fallbacks`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcap.evaluation.clinical import OBSERVATIONS, label_report

FORMAT = "medcap.sentence_bank/1"
#: The labeler's value for each state.
STATE_LABELS = {"present": 1, "uncertain": -1, "absent": 0}
#: Report sections in reading order, the observations each holds, and the
#: words that make a no-observation sentence that section's normal sentence.
SECTIONS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("heart", ("Enlarged Cardiomediastinum", "Cardiomegaly"), r"\b(heart|cardiac|cardiomediastinal|mediastin\w*)\b"),
    ("lungs", ("Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis"), r"\blungs?\b"),
    ("pleura", ("Pneumothorax", "Pleural Effusion", "Pleural Other"), r"\b(pleura\w*|costophrenic)\b"),
    ("other", (), r"$^"),
    ("bones", ("Fracture",), r"\b(osseous|bony|bones?|skeletal|spine)\b"),
    ("devices", ("Support Devices",), r"$^"),
)
_CHESTXRAY14 = {
    "Effusion": "Pleural Effusion",
    "Infiltration": "Lung Opacity",
    "Infiltrate": "Lung Opacity",
    "Mass": "Lung Lesion",
    "Nodule": "Lung Lesion",
    "Pleural_Thickening": "Pleural Other",
    "Pleural Thickening": "Pleural Other",
}
#: Finding name -> the labeler observation it is checked against (module docstring).
OBSERVATION_OF: dict[str, str] = {**{name: name for name in OBSERVATIONS if name != "No Finding"}, **_CHESTXRAY14}
_FALLBACK = {"present": "there is {noun} .", "uncertain": "possible {noun} .", "absent": "no {noun} ."}
_NOUNS = {"Enlarged Cardiomediastinum": "widened mediastinum", "Lung Lesion": "pulmonary nodule", "Lung Opacity": "airspace opacity", "Pleural Other": "pleural thickening", "Support Devices": "support device"}


def observation_of(finding: str) -> str | None:
    return OBSERVATION_OF.get(finding)


def section_of(finding: str) -> str:
    observation = observation_of(finding)
    for name, observations, _ in SECTIONS:
        if observation in observations:
            return name
    return "other"


def split_sentences(text: str) -> list[str]:
    """Sentences in the report's own text form (whitespace normalised)."""
    parts = re.split(r"(?<=[.!?])\s+", " ".join(str(text).split()))
    return [p for p in parts if p.strip(" .")]


def _stated(sentence: str) -> dict[str, int]:
    return {k: v for k, v in label_report(sentence).items() if v is not None and k != "No Finding"}


_NORMAL_WORDS = re.compile(r"\b(normal|clear|unremarkable|intact|no acute|without acute)\b")


def _best(counts: Counter, min_count: int) -> str | None:
    common = [s for s, n in counts.items() if n >= min_count]
    if not common:
        return None
    return min(common, key=lambda s: (-counts[s], len(s), s))


@dataclass
class SentenceBank:
    """finding -> state -> sentence, plus section normal sentences (module docstring)."""

    findings: tuple[str, ...]
    sentences: dict[str, dict[str, str]]
    normals: dict[str, str] = field(default_factory=dict)
    #: finding -> states whose sentence is the fixed fallback.
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    #: finding -> state -> how many train sentences carried exactly that.
    support: dict[str, dict[str, int]] = field(default_factory=dict)
    train_reports: int = 0
    min_count: int = 2

    @classmethod
    def learn(cls, train_texts: Iterable[str], findings: Sequence[str], *, min_count: int = 2) -> SentenceBank:
        findings = tuple(findings)
        if not findings:
            raise ValueError("a sentence bank needs at least one finding")
        by_label: dict[tuple[str, int], Counter] = {}
        normal_counts: dict[str, Counter] = {name: Counter() for name, _, _ in SECTIONS}
        patterns = {name: re.compile(pattern) for name, _, pattern in SECTIONS}
        reports = 0
        for text in train_texts:
            reports += 1
            for sentence in split_sentences(text):
                stated = _stated(sentence)
                if len(stated) == 1:
                    ((observation, value),) = stated.items()
                    by_label.setdefault((observation, value), Counter())[sentence] += 1
                elif not stated and _NORMAL_WORDS.search(sentence.lower()):
                    lowered = sentence.lower()
                    for name, pattern in patterns.items():
                        if pattern.search(lowered):
                            normal_counts[name][sentence] += 1
                            break
        sentences: dict[str, dict[str, str]] = {}
        fallbacks: dict[str, list[str]] = {}
        support: dict[str, dict[str, int]] = {}
        for finding in findings:
            observation = observation_of(finding)
            sentences[finding], support[finding] = {}, {}
            for state, value in STATE_LABELS.items():
                counts = by_label.get((observation, value), Counter()) if observation else Counter()
                support[finding][state] = sum(counts.values())
                best = _best(counts, min_count)
                if best is None:
                    best = fallback_sentence(finding, state)
                    fallbacks.setdefault(finding, []).append(state)
                sentences[finding][state] = best
        normals = {name: s for name, counts in normal_counts.items() if (s := _best(counts, min_count)) is not None}
        return cls(findings, sentences, normals, fallbacks, support, reports, min_count)

    def sentence(self, finding: str, state: str) -> str:
        try:
            return self.sentences[finding][state]
        except KeyError:
            raise KeyError(f"the sentence bank has no {state!r} sentence for {finding!r}; it knows {', '.join(self.findings)}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "findings": list(self.findings),
            "sentences": self.sentences,
            "normals": self.normals,
            "fallbacks": self.fallbacks,
            "support": self.support,
            "train_reports": self.train_reports,
            "min_count": self.min_count,
            "labeler": "medcap.evaluation.clinical (medcap's rule-based CheXpert-14 labeler)",
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SentenceBank:
        path = Path(path)
        record = json.loads(path.read_text())
        if record.get("format") != FORMAT:
            raise ValueError(f"{path}: not a sentence bank (format {record.get('format')!r}, expected {FORMAT!r})")
        return cls(
            tuple(record["findings"]),
            record["sentences"],
            record.get("normals", {}),
            record.get("fallbacks", {}),
            record.get("support", {}),
            int(record.get("train_reports", 0)),
            int(record.get("min_count", 2)),
        )


def fallback_sentence(finding: str, state: str) -> str:
    """The fixed sentence for a finding and state no train sentence carries;
    checked against the labeler where the finding has an observation."""
    observation = observation_of(finding)
    noun = _NOUNS.get(observation or "", (observation or finding).replace("_", " ")).lower()
    sentence = _FALLBACK[state].format(noun=noun)
    if observation is not None and _stated(sentence) != {observation: STATE_LABELS[state]}:
        raise ValueError(f"fallback sentence {sentence!r} for {finding} {state} is labelled {_stated(sentence)} by the labeler")
    return sentence
