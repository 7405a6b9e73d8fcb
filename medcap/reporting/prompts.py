"""The prompt an LLM writer sends: instruction, in-context examples, chain of thought.

Paper 003 (Research Plan 2) guides GPT-4 with "In-Context Instruction
Learning (ICIL) and Chain of Thought (CoT) reasoning" and defines neither.
Ours, shared by every LLM writer:

* **Instruction** (system message): act as a radiologist and write the
  findings section from the classifier's structured findings, stating what
  is present, hedging what is uncertain, adding nothing the classifier did
  not find (RaDialog's "You are to act as a radiologist and write the
  findings section", made explicit about faithfulness).
* **ICIL** (our reading: in-context learning from retrieved examples): the
  `k` train studies whose findings vectors are nearest to this study's,
  each shown as a user turn (its structured description) and an assistant
  turn (its reference report). The findings vector holds each finding's
  state as 1 (present), 0.5 (uncertain) or 0 (absent); nearest is the
  smallest L1 distance, ties broken by the distance between probability
  vectors, then by train order; a study never retrieves itself. The train descriptions come from the same
  classifier run on the train images, so an example shows the kind of input
  the model will get. Only the train split is ever retrieved from.
* **CoT**: the instruction asks the model to reason about each finding first
  and then write the report after a line that starts with `REPORT:`
  (`MARKER`); `parse_reply` keeps the text after the last marker as the
  report and the text before it as the reasoning. A reply without the
  marker is kept whole as the report and flagged (`marker_missing`), and
  the run counts such replies. With CoT on, the examples' assistant turns
  are `REPORT: <reference>` so the format is shown, not only described.

`build_messages` returns the chat messages (OpenAI's role/content dicts);
`render_prompt` flattens them for causal LMs without a chat template.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medcap.reporting.description import StudyDescription

MARKER = "REPORT:"
STATE_VALUE = {"present": 1.0, "uncertain": 0.5, "absent": 0.0}

INSTRUCTION = (
    "You are to act as a radiologist and write the findings section of a chest radiograph report. "
    "An image classifier has read the study; its structured findings list each finding with a graded "
    "certainty, its probability, the decision at the finding's threshold (present, uncertain or absent) "
    "and, for decided findings, where on the image the classifier looked (the patient's side and zone). "
    "State every finding decided present, hedge every finding decided uncertain, and do not report a "
    "finding the classifier decided absent or did not list. Write plain report prose, in the style of "
    "the example reports, without headings."
)
COT_INSTRUCTION = (
    " First reason briefly about each finding: whether to state it, how certainly, and where. Then write "
    f"the report on a new line that starts with '{MARKER}'; nothing after the report."
)


@dataclass(frozen=True)
class PromptSettings:
    """What goes into a prompt (the ablation switches ICIL and CoT off)."""

    icil: bool = True
    k: int = 3
    cot: bool = True
    instruction: str = INSTRUCTION

    def __post_init__(self) -> None:
        if self.icil and self.k < 1:
            raise ValueError(f"icil with k={self.k}: need at least one example (or icil off)")


def findings_vector(description: StudyDescription, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(state values, probabilities) in `names` order."""
    by_name = {f.name: f for f in description.findings}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"study {description.study_id}: no finding {missing} in its description")
    states = np.array([STATE_VALUE[by_name[n].state] for n in names])
    probabilities = np.array([by_name[n].probability for n in names])
    return states, probabilities


class ExampleIndex:
    """The train studies an ICIL prompt retrieves from (module docstring)."""

    def __init__(self, descriptions: Sequence[StudyDescription], reports: Sequence[str]):
        if len(descriptions) != len(reports):
            raise ValueError(f"{len(descriptions)} train descriptions but {len(reports)} reports")
        if not descriptions:
            raise ValueError("in-context examples need at least one train study")
        self.descriptions = list(descriptions)
        self.reports = list(reports)
        self.names = [f.name for f in descriptions[0].findings]
        vectors = [findings_vector(d, self.names) for d in descriptions]
        self.states = np.stack([v[0] for v in vectors])
        self.probabilities = np.stack([v[1] for v in vectors])

    def nearest(self, description: StudyDescription, k: int) -> list[int]:
        states, probabilities = findings_vector(description, self.names)
        l1 = np.abs(self.states - states).sum(axis=1)
        l2 = np.sqrt(((self.probabilities - probabilities) ** 2).sum(axis=1))
        order = np.lexsort((np.arange(len(l1)), l2, l1))
        # A train study (a fine-tuning prompt) never retrieves itself.
        return [int(i) for i in order if self.descriptions[i].study_id != description.study_id][:k]


def build_messages(description: StudyDescription, settings: PromptSettings, examples: ExampleIndex | None = None) -> list[dict[str, str]]:
    """The chat messages for one study (module docstring)."""
    system = settings.instruction + (COT_INSTRUCTION if settings.cot else "")
    messages = [{"role": "system", "content": system}]
    if settings.icil:
        if examples is None:
            raise ValueError("icil is on but no train examples were given")
        for index in examples.nearest(description, settings.k):
            reference = examples.reports[index]
            messages.append({"role": "user", "content": examples.descriptions[index].to_text()})
            messages.append({"role": "assistant", "content": f"{MARKER} {reference}" if settings.cot else reference})
    messages.append({"role": "user", "content": description.to_text()})
    return messages


def render_prompt(messages: Sequence[dict[str, str]]) -> str:
    """Messages as one text for a causal LM without a chat template; ends
    where the model's turn begins."""
    labels = {"system": "Instruction", "user": "Structured findings", "assistant": "Report"}
    parts = [f"{labels[m['role']]}:\n{m['content']}" for m in messages]
    return "\n\n".join(parts) + "\n\nReport:\n"


_MARKER_LINE = re.compile(r"^\s*\**\s*report\s*\**\s*:\s*\**", re.IGNORECASE | re.MULTILINE)


def parse_reply(text: str, *, cot: bool) -> tuple[str, str, bool]:
    """(report, reasoning, marker_missing) from a model's reply."""
    text = str(text).strip()
    if not cot:
        return _one_paragraph(text), "", False
    matches = list(_MARKER_LINE.finditer(text))
    if not matches:
        return _one_paragraph(text), "", True
    last = matches[-1]
    return _one_paragraph(text[last.end() :]), text[: last.start()].strip(), False


def _one_paragraph(text: str) -> str:
    return " ".join(text.replace("**", "").split())
