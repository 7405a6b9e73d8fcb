"""Report writers: structured descriptions in, reports out, one interface.

A writer takes a batch of `StudyDescription`s and returns one
`WrittenReport` each (the report, and whatever the writer kept beside it:
its reasoning, the prompt it sent, where the text came from). Writers are
chosen by name (`WRITERS`, `model.options.writer`):

* `template`: deterministic, `TemplateWriter` below: the sentence bank's
  sentence for each finding in its state, in the order reports are read
  (heart and mediastinum, lungs, pleura, other findings, bones, devices),
  a section whose findings are all absent stated by its normal sentence
  when the bank has one. It writes only what the description says, so its
  faithfulness is 1.0 by construction (tested); it is the embedded default
  and the baseline every LLM writer must beat.

An impression section is not written: IU X-ray's R2Gen references are the
findings section alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from medcap.registry import Registry
from medcap.reporting.description import StudyDescription
from medcap.reporting.sentence_bank import SECTIONS, SentenceBank, section_of

WRITERS = Registry("report writer")


@dataclass
class WrittenReport:
    study_id: str
    report: str
    #: Writer-specific extras (reasoning, prompt file, cache hit, sentence sources).
    extras: dict[str, Any] = field(default_factory=dict)


class ReportWriter:
    """Base class: `write` turns descriptions into reports, in order."""

    name = ""
    #: True when the reports are already in the references' cleaned form;
    #: otherwise the run cleans them with the dataset's cleaner before scoring.
    writes_clean_text = False

    def write(self, descriptions: Sequence[StudyDescription]) -> list[WrittenReport]:
        raise NotImplementedError(f"{type(self).__name__}.write")

    def info(self) -> dict[str, Any]:
        """What the run's report says about this writer."""
        return {"writer": self.name}


class TemplateWriter(ReportWriter):
    """Sentences from a `SentenceBank` (module docstring)."""

    name = "template"
    writes_clean_text = True

    def __init__(self, bank: SentenceBank, *, section_normals: bool = True):
        self.bank = bank
        self.section_normals = bool(section_normals)

    def write_one(self, description: StudyDescription) -> WrittenReport:
        by_section: dict[str, list[tuple[str, str]]] = {name: [] for name, _, _ in SECTIONS}
        for record in description.findings:
            by_section[section_of(record.name)].append((record.name, record.state))
        sentences: list[str] = []
        sources: list[str] = []
        for section, _, _ in SECTIONS:
            items = by_section[section]
            normal = self.bank.normals.get(section) if self.section_normals else None
            if normal and all(state == "absent" for _, state in items) and items:
                sentences.append(normal)
                sources.append(f"{section}: normal")
                continue
            # Decided findings first, as reports state what is there before what is not.
            for name, state in sorted(items, key=lambda item: (item[1] == "absent", item[1] == "uncertain")):
                sentence = self.bank.sentence(name, state)
                if sentence not in sentences:  # two findings of one observation (Mass, Nodule) share a sentence
                    sentences.append(sentence)
                    sources.append(f"{name}: {state}")
        return WrittenReport(description.study_id, " ".join(sentences), {"sentences": sources})

    def write(self, descriptions: Sequence[StudyDescription]) -> list[WrittenReport]:
        return [self.write_one(d) for d in descriptions]

    def info(self) -> dict[str, Any]:
        return {
            "writer": self.name,
            "section_normals": self.section_normals,
            "fallbacks": self.bank.fallbacks,
            "train_reports": self.bank.train_reports,
        }


WRITERS.register("template", TemplateWriter)
