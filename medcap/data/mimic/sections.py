"""MIMIC-CXR report sections: which headers open which section, and the report text we keep.

The rules are in `medcap.data.mimic`'s docstring (**Report.**), after the
facts of MIT-LCP's published mimic-cxr section parser.
"""

from __future__ import annotations

import re

_SPACES = re.compile(r"\s+")

#: MIMIC-CXR section headers (lower-case, spaces collapsed) -> section name:
#: the frequent headers and the typo map of MIT-LCP's published mimic-cxr
#: section parser (txt/section_parser.py), whose counts over the whole
#: release set the list. Ours: `ndication` maps to indication (MIT-LCP:
#: impression), and `conclusions` is added beside MIT-LCP's `conclusion`.
SECTION_NAMES: dict[str, str] = {
    "impression": "impression",
    "comparison": "comparison",
    "indication": "indication",
    "findings": "findings",
    "examination": "examination",
    "technique": "technique",
    "history": "history",
    "comparisons": "comparison",
    "clinical history": "history",
    "reason for examination": "indication",
    "notification": "notification",
    "reason for exam": "indication",
    "clinical information": "history",
    "exam": "examination",
    "clinical indication": "indication",
    "conclusion": "impression",
    "conclusions": "impression",
    "chest, two views": "findings",
    "recommendation(s)": "recommendations",
    "type of examination": "examination",
    "reference exam": "comparison",
    "patient history": "history",
    "addendum": "addendum",
    "comparison exam": "comparison",
    "date": "date",
    "comment": "comment",
    "findings and impression": "impression",
    "wet read": "wet read",
    "comparison film": "comparison",
    "recommendations": "recommendations",
    "findings/impression": "impression",
    "pfi": "history",
    "recommendation": "recommendations",
    "wetread": "wet read",
    # Misspellings found in the release.
    "ndication": "indication",
    "impresson": "impression",
    "imprression": "impression",
    "imoression": "impression",
    "impressoin": "impression",
    "imprssion": "impression",
    "impresion": "impression",
    "imperssion": "impression",
    "mpression": "impression",
    "impession": "impression",
    "findings/ impression": "impression",
    "finding": "findings",
    "findins": "findings",
    "findindgs": "findings",
    "findgings": "findings",
    "findngs": "findings",
    "findnings": "findings",
    "finidngs": "findings",
    "idication": "indication",
    "reference findings": "findings",
    "comparision": "comparison",
    "comparsion": "comparison",
    "comparrison": "comparison",
    "comparisions": "comparison",
}
#: A header containing one of these words is that section ("PRELIMINARY
#: FINDINGS", "IMPRESSION AND RECOMMENDATIONS"), checked in this order.
MAIN_SECTIONS: tuple[str, ...] = ("impression", "findings", "history", "comparison", "addendum")
#: Headers that describe the study itself ("CHEST, PA AND LATERAL:",
#: "PORTABLE AP CHEST:") introduce the findings.
STUDY_DESCRIPTIONS: tuple[str, ...] = (
    "chest",
    "portable",
    "pa and lateral",
    "lateral and pa",
    "ap and lateral",
    "lateral and ap",
    "frontal and",
    "two views",
    "frontal view",
    "pa view",
    "ap view",
    "one view",
    "lateral view",
    "bone window",
    "frontal upright",
    "frontal semi-upright",
    "ribs",
    "pa and lat",
)
_STUDY_DESCRIPTION = re.compile("|".join(re.escape(words) for words in STUDY_DESCRIPTIONS))
#: An upper-case label at the start of a line, then a colon and whitespace.
_HEADER_CANDIDATE = re.compile(r"^[ \t]*([A-Z][A-Z ()/,&-]*?)[ \t]*:(?=\s|$)", re.MULTILINE)
#: The sections that make up `report`.
REPORT_SECTIONS: tuple[str, ...] = ("findings", "impression")


def section_name(header: str) -> tuple[str, bool] | None:
    """A header's normalised section name and whether only its wording as a
    study description made it one; None when the label is not a section
    header (e.g. LUNGS:, HEART:, a subsection label of the findings)."""
    text = _SPACES.sub(" ", header).strip().lower()
    if text in SECTION_NAMES:
        return SECTION_NAMES[text], False
    for name in MAIN_SECTIONS:
        if name in text:
            return name, False
    if _STUDY_DESCRIPTION.search(text):
        return "findings", True
    return None


def report_sections(text: str) -> dict[str, str]:
    """A MIMIC-CXR report -> {section name: stripped body} (`medcap.data.mimic` docstring).

    Only known headers (`section_name`) open a section; any other upper-case
    `LABEL:` stays in the body of the section it is in. Text before the first
    header is `preamble`. A study-description header met inside the findings
    or the impression is a label there, not a new section. When a section occurs more
    than once its last non-empty body wins (MIT-LCP's rule)."""
    starts: list[tuple[int, int, str]] = []
    current = "preamble"
    for match in _HEADER_CANDIDATE.finditer(text):
        named = section_name(match.group(1))
        if named is None:
            continue
        name, description_only = named
        if description_only and current in REPORT_SECTIONS:
            continue
        starts.append((match.start(), match.end(), name))
        current = name
    sections: dict[str, str] = {}
    preamble = text[: starts[0][0] if starts else len(text)].strip()
    if preamble:
        sections["preamble"] = preamble
    for index, (_, body_start, name) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        body = text[body_start:end].strip()
        if body or name not in sections:
            sections[name] = body
    return sections


def extract_report(text: str) -> str | None:
    """FINDINGS and IMPRESSION bodies joined by a blank line; None when the
    report has neither (`medcap.data.mimic` docstring)."""
    sections = report_sections(text)
    parts = [sections[name] for name in REPORT_SECTIONS if sections.get(name)]
    return "\n\n".join(parts) if parts else None
