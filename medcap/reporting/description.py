"""A study's findings as a structured description: what paper 003's report writers read.

He, "Multi-modal Radiology Report Generation Using Image Classification and
LLMs" (Research Plan 2): a CNN or ViT classifies findings, "the findings
will be converted into structured descriptions that are clear, accurate,
and clinically relevant", and those are the LLM's input. The proposal
defines no format; ours, per finding of the classifier:

* `probability`: the classifier's sigmoid output;
* `threshold`: the per-finding threshold chosen on validation
  (`thresholds.json` of the classifier run), and `decision` = p >= threshold;
* `state`: `present` (decided, and p >= `uncertain_below`), `uncertain`
  (decided but p < `uncertain_below`), or `absent`. `uncertain_below` is 0
  by default: every decided finding is stated as present. The validation
  threshold of a rare finding is often well below one half, and hedging
  such calls ("possible X") is a reading a user may want (0.5 does it), but
  clinical efficacy, as R2Gen scores it, reads a hedged finding as absent:
  on the synthetic default 0.5 cost the template writer up to 0.2 of CE
  F1 in one seed of three, where the classifier was at its best. The
  graded certainty word still tells an LLM writer how sure the classifier was;
* `certainty`: a graded word from probability bands. ChatCAD's by default
  (Wang et al. 2023): below 0.2 "no sign of", 0.2-0.5 "small possibility
  of", 0.5-0.9 "likely", 0.9 and above "definite"; the bands are config;
* `location`: where the explanation map (Grad-CAM) of a decided finding
  peaks, as side and zone, e.g. "right lower zone". A frontal chest film
  is read as if facing the patient, so the image's left half is the
  patient's right (`location_of`); zones are the image's thirds from top
  to bottom, and the middle fifth of the width is "central". These are
  image regions, not anatomical lung zones: ours.

`StudyDescription.to_dict()` is the JSON form; `to_text()` the short block
the writers (and a reader of `descriptions.jsonl`) see.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

STATES = ("present", "uncertain", "absent")
#: ChatCAD's probability bands: upper edges and the words below each.
CHATCAD_EDGES = (0.2, 0.5, 0.9)
CHATCAD_WORDS = ("no sign of", "small possibility of", "likely", "definite")


@dataclass(frozen=True)
class CertaintyBands:
    """Probability -> word: `words[i]` for edges[i-1] <= p < edges[i]."""

    edges: tuple[float, ...] = CHATCAD_EDGES
    words: tuple[str, ...] = CHATCAD_WORDS

    def __post_init__(self) -> None:
        edges = tuple(float(e) for e in self.edges)
        if len(self.words) != len(edges) + 1:
            raise ValueError(f"certainty bands: {len(edges)} edges need {len(edges) + 1} words, got {len(self.words)}")
        if any(not 0.0 < e < 1.0 for e in edges) or list(edges) != sorted(set(edges)):
            raise ValueError(f"certainty band edges {edges} must increase strictly inside (0, 1)")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "words", tuple(str(w) for w in self.words))

    def word(self, probability: float) -> str:
        for edge, word in zip(self.edges, self.words):
            if probability < edge:
                return word
        return self.words[-1]


def location_of(x: float, y: float) -> str:
    """Side and zone of a point given as fractions of the frontal image's width and height."""
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError(f"point ({x}, {y}) is not inside the image (fractions in [0, 1])")
    side = "right" if x < 0.4 else "left" if x > 0.6 else "central"
    zone = "upper" if y < 1 / 3 else "middle" if y < 2 / 3 else "lower"
    return f"{side} {zone} zone"


@dataclass(frozen=True)
class FindingRecord:
    """One finding of one study (module docstring)."""

    name: str
    probability: float
    threshold: float
    decision: bool
    state: str
    certainty: str
    location: str | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"finding {self.name!r}: state {self.state!r} is not one of {', '.join(STATES)}")
        if not 0.0 <= self.probability <= 1.0 or math.isnan(self.probability):
            raise ValueError(f"finding {self.name!r}: probability {self.probability} is not in [0, 1]")

    def line(self) -> str:
        where = f"; map peak: {self.location}" if self.location else ""
        return f"- {self.name}: {self.certainty} (p={self.probability:.2f}, threshold {self.threshold:.2f}) -> {self.state}{where}"


@dataclass(frozen=True)
class StudyDescription:
    """Every finding the classifier scores, for one study."""

    study_id: str
    findings: tuple[FindingRecord, ...]
    image: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def states(self) -> dict[str, str]:
        return {f.name: f.state for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        return {
            "study_id": self.study_id,
            "image": self.image,
            "findings": [asdict(f) for f in self.findings],
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> StudyDescription:
        try:
            findings = tuple(FindingRecord(**f) for f in record["findings"])
            return cls(str(record["study_id"]), findings, str(record.get("image", "")), dict(record.get("meta", {})))
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a structured description ({err}): {dict(record)!r:.200}") from None

    def to_text(self) -> str:
        """The block the writers read: decided findings first, by probability."""
        ordered = sorted(self.findings, key=lambda f: (STATES.index(f.state), -f.probability, f.name))
        lines = ["Findings (classifier probability; decision at the validation-chosen threshold):"]
        lines += [f.line() for f in ordered]
        return "\n".join(lines)


def describe(
    study_id: str,
    probabilities: Mapping[str, float],
    thresholds: Mapping[str, float],
    *,
    peaks: Mapping[str, tuple[float, float]] | None = None,
    bands: CertaintyBands | None = None,
    uncertain_below: float = 0.0,
    image: str = "",
) -> StudyDescription:
    """One study's description from the classifier's outputs.

    `probabilities` and `thresholds` are keyed by finding name (the same
    names); `peaks`, finding -> (x, y) of its explanation map's maximum as
    fractions of the image, is read for decided findings only."""
    bands = bands or CertaintyBands()
    missing = sorted(set(probabilities) ^ set(thresholds))
    if missing:
        raise ValueError(f"study {study_id}: probabilities and thresholds name different findings: {missing}")
    records = []
    for name, p in probabilities.items():
        p, t = float(p), float(thresholds[name])
        decided = p >= t
        state = "absent" if not decided else "present" if p >= uncertain_below else "uncertain"
        where = None
        if decided and peaks and name in peaks:
            where = location_of(*peaks[name])
        records.append(FindingRecord(name, p, t, decided, state, bands.word(p), where))
    return StudyDescription(study_id, tuple(records), image)

