"""Clinical efficacy (CE): medcap's rule-based CheXpert-14 labeler and CE metrics.

**The labeler is ours, not CheXpert's.** The CheXpert labeler (Irvin et al.
2019) and CheXbert are not available offline, so CE numbers from medcap are
*not* comparable with numbers computed with either; they are comparable
between runs of medcap. It follows the NegEx recipe: per sentence, find
mentions of each observation from mention lists, then decide
negative / uncertain / positive from cue phrases and their scope.

API:

    OBSERVATIONS                       # the 14 CheXpert observation names, CheXpert's order
    FIVE_OBSERVATIONS                  # Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion
    label_report(text) -> dict[str, int | None]      # 1, 0, -1 or None (not mentioned)
    label_reports(texts) -> np.ndarray (n, 14) float # NaN = not mentioned
    binarise(labels, uncertain=0) -> np.ndarray (n, 14) int
    ce_metrics(reference_texts, predicted_texts, uncertain=0) -> dict   # flat `ce/...` keys
    CEScorer(reference_texts, predicted_texts, uncertain=0)            # + per-report F1, bootstrap
    truth_ce_metrics(truth, predictions, uncertain=0) -> dict          # `truth/ce/...` vs synthetic truth

Label values follow CheXpert: 1 positive, 0 negative, -1 uncertain, blank
(None / NaN) not mentioned.

Rules (all ours):

* Text is lower-cased; hyphens and slashes become spaces ("air-space",
  "and/or"); sentences end at . ; : ! ? (not inside numbers such as 1.7) and
  line breaks. Works on raw reports and on R2Gen-cleaned text alike.
* A mention is classified in this order:
  1. uncertain if an "uncertain negation" ("cannot be excluded", "not ruled
     out", "cannot exclude", ...) lies within 10 tokens before or 6 after;
  2. negative if a negation cue ("no", "not", "without", "negative for",
     "free of", "absence of", "nor", ...) precedes it within 16 tokens, or a
     post-negation ("is not seen", "not well seen", "absent", "resolved", "no
     longer seen") follows within 6 tokens;
  3. uncertain if an uncertainty cue ("possible", "may", "likely", "suspicious
     for", "suggestive of", "concerning for", "question of", "versus",
     "borderline", ...) precedes it within 8 tokens; or "versus"/"vs",
     "is possible/likely/suspected", "may be present" follows within 2-3
     tokens; or it is one side of an "X or Y" alternative (adjacent "or"),
     because radiologists write "atelectasis or scarring" for a differential;
  4. positive otherwise.
  Scopes stop at "but", "however", "although", "though", "except", "aside",
  "apart", "whereas", "yet", "which" and "there".
* Cardiomegaly and Enlarged Cardiomediastinum are also read from anatomy
  plus size words, which is how reports usually state them: "heart",
  "cardiac (silhouette)" / "mediastinum", "mediastinal", "cardiomediastinal"
  take the first size word within 8 tokens after (or 5 before): "enlarged",
  "enlargement", "increased", "widened", "large" -> 1; "normal",
  "unremarkable", "within normal limits" -> 0; "upper limits of normal",
  "top normal", "borderline" -> -1; a size word negated within 2 tokens
  ("not enlarged") -> 0; an uncertainty cue between -> -1. "Stable" or
  "unchanged" alone is not a size statement.
* Report label per observation: 1 if any mention is positive, else -1 if any
  is uncertain, else 0 if any is negative, else None (CheXpert's aggregation).
* No Finding = 1 when no observation other than Support Devices is 1 or -1,
  else None (CheXpert's rule).
* Mention lists (abridged; see `_MENTIONS`): Lung Opacity = opacity /
  opacification / infiltrate / airspace disease / haziness (a "nodular
  opacity" is a Lung Lesion); Lung Lesion = nodule, nodular, mass, lesion
  (not bony/lytic), tumour, neoplasm, carcinoma, metastasis, cancer; Edema
  includes pulmonary/vascular congestion and (congestive) heart failure;
  Pleural Other = pleural thickening / plaque / scarring / calcification,
  fibrothorax, apical cap; Pneumonia includes infection, except old,
  prior or granulomatous infection; Support Devices = lines, tubes,
  catheters, pacemakers / pacers, ICD, leads, ports, drains, stents,
  devices, but not surgical clips, sutures or sternotomy wires. Calcified
  granulomas are not labelled. Costophrenic blunting alone is not labelled.

Validation: `tests/fixtures/iu_xray_ce_sentences.json` holds 78 hand-labelled
sentences of real IU X-ray reports (labelled before the labeler ran), and
the synthetic data's ground truth is checked in the tests.

CE metrics: labels of each generated report are compared with labels of its
reference report. Positive = 1; uncertain -> `uncertain` (0 follows R2Gen's
compute_ce, 1 follows ViLMedic); negative and blank -> 0. Then precision,
recall and F1, micro (pooled over labels and reports), macro (mean over the
14 labels) and example-based (mean over reports), each also over the five
observations of FIVE_OBSERVATIONS; zero divisions count as 0, as sklearn's
`zero_division=0`. Multiple references: the first reference is labelled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

OBSERVATIONS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
FIVE_OBSERVATIONS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)
LABELER_NAME = "medcap-rules-chexpert14 (ours; not the CheXpert labeler)"

# ---------------------------------------------------------------------------
# Vocabulary (regexes over lower-cased, space-joined tokens)

_MENTIONS: dict[str, tuple[str, ...]] = {
    "Atelectasis": (r"atelecta\w*", r"collapsed?"),
    "Cardiomegaly": (r"cardiomegaly",),
    "Consolidation": (r"consolidat\w*",),
    "Edema": (
        r"edema",
        r"oedema",
        r"(pulmonary|vascular|venous) (vascular )?congestion",
        r"(congestive )?heart failure",
        r"chf",
    ),
    "Enlarged Cardiomediastinum": (
        r"(widened|widening of the|enlarged) (cardio )?mediastin\w*",
        r"mediastinal (widening|enlargement)",
    ),
    "Fracture": (r"fractur\w*",),
    "Lung Lesion": (
        r"nodular (density|densities|opacity|opacities|opacification)",
        r"nodul\w*",
        r"masses",
        r"mass",
        r"lesions?",
        r"tumou?rs?",
        r"neoplasm\w*",
        r"carcinoma\w*",
        r"metasta\w*",
        r"cancer\w*",
    ),
    "Lung Opacity": (
        r"opacit\w*",
        r"opacification",
        r"infiltrat\w*",
        r"air ?space (disease|process|opacit\w*)",
        r"haziness",
        r"hazy",
    ),
    "Pleural Effusion": (r"effusions?", r"pleural fluid", r"hydro ?thorax", r"hydropneumothorax"),
    "Pleural Other": (
        r"pleural (thickening|plaques?|scar\w*|calcification\w*)",
        r"pleural parenchymal (scar\w*|thickening)",
        r"pleuroparenchymal (scar\w*|thickening)",
        r"fibrothorax",
        r"apical (pleural )?(cap|capping)",
    ),
    "Pneumonia": (r"pneumonias?", r"bronchopneumonia", r"infections?", r"infectious", r"infective"),
    "Pneumothorax": (r"pneumothora\w*", r"hydropneumothorax"),
    "Support Devices": (
        r"pacemakers?",
        r"pacers?",
        r"aicd",
        r"icd",
        r"defibrillators?",
        r"catheters?",
        r"picc",
        r"port a cath",
        r"ports?",
        r"(central|venous|arterial|picc|jugular|subclavian) (venous )?(line|lines|catheter)",
        r"(endotracheal|tracheostomy|enteric|feeding|chest|nasogastric|orogastric|ng|og|et|dobhoff) tubes?",
        r"tubes?",
        r"tubing",
        r"drains?",
        r"stents?",
        r"leads?",
        r"devices?",
        r"tracheostomy",
    ),
}
# Mentions that do not count (matched right before the mention).
_MENTION_EXCLUSIONS: dict[str, str] = {
    "Pneumonia": r"(granulomatous|histoplasm\w*|tuberculous|prior|old|remote|previous|healed) $",
    "Lung Lesion": r"(bony|bone|lytic|sclerotic|blastic|osseous|skin|cutaneous) $",
    "Lung Opacity": r"nodular $",
    "Pleural Effusion": r"(pericardial|joint|knee|shoulder) $",
    "Atelectasis": r"(vertebral|body|height|compression) $",
}
_HEART_ANATOMY = r"heart|cardiac"
_MEDIASTINUM_ANATOMY = r"cardiomediastinal|mediastinum|mediastinal|cardio mediastinal"
_SIZE_BORDERLINE = (
    r"upper limits? of normal|upper normal|top normal|top of normal|high normal|borderline|"
    r"mildly prominent|upper range of normal"
)
_SIZE_NORMAL = r"normal|unremarkable|within normal limits|wnl|not enlarged|negative"
_SIZE_ENLARGED = (
    r"enlarged|enlargement|increased|widened|widening|large|prominent|prominence|cardiomegaly"
)

_UNCERTAIN_NEGATION = (
    r"(can ?not|could not|cant|not|unable to|difficult to|hard to) (be )?(entirely |completely |definitely |"
    r"totally )?(exclude[ds]?|ruled? out)|not excluded|r o"
)
_PRE_NEGATION = (
    r"no|not|without|nor|neither|never|negative for|free of|absence of|absent|clear of|resolution of|"
    r"removal of|interval resolution of"
)
_POST_NEGATION = (
    r"not (\w+ )?(seen|identified|present|visuali[sz]ed|evident|demonstrated|appreciated|noted|detected|"
    r"visible|apparent|observed|definitely seen|well seen)|absent|resolved|removed|no longer (\w+ )?"
    r"(seen|present|visible|identified|evident)"
)
_PRE_UNCERTAIN = (
    r"possible|possibly|probable|probably|likely|may|might|could|question|questionable|questioned|"
    r"suspicious|suspected|suspect|suspicion|suggest|suggests|suggesting|suggestive|suggested|concern|"
    r"concerning|consider|considered|versus|vs|differential|equivocal|indeterminate|borderline|presumed|"
    r"presumably|rule out|uncertain|perhaps|favor|favored|favour|favoured|cannot exclude"
)
_POST_UNCERTAIN_NEAR = r"versus|vs|or"
_POST_UNCERTAIN_PHRASE = (
    r"((is|are|was|were|be) )?(possible|possibly|likely|suspected|questioned|questionable|suggested|"
    r"equivocal|not excluded)|(may|might|could) (also )?be (present|seen|noted|identified)"
)
_TERMINATORS = r"but|however|although|though|except|aside|apart|whereas|yet|which|there"

_PRE_NEGATION_SCOPE = 16
_PRE_UNCERTAIN_SCOPE = 8
_UNCERTAIN_NEGATION_BEFORE, _UNCERTAIN_NEGATION_AFTER = 10, 6
_POST_NEGATION_GAP = 6
_POST_UNCERTAIN_GAP = 3
_SIZE_AFTER, _SIZE_BEFORE = 8, 5

_SENTENCE_SPLIT = re.compile(r"[.;:!?](?!\d)|\n")
_TOKEN = re.compile(r"[a-z0-9]+")


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9])(?:{pattern})(?![a-z0-9])")


@lru_cache(maxsize=1)
def _compiled() -> dict[str, Any]:
    return {
        "mentions": {name: _compile("|".join(p)) for name, p in _MENTIONS.items()},
        "exclusions": {name: re.compile(rf"(?:{p})") for name, p in _MENTION_EXCLUSIONS.items()},
        "heart": _compile(_HEART_ANATOMY),
        "mediastinum": _compile(_MEDIASTINUM_ANATOMY),
        "size": _compile(
            f"(?P<borderline>{_SIZE_BORDERLINE})|(?P<normal>{_SIZE_NORMAL})|(?P<enlarged>{_SIZE_ENLARGED})"
        ),
        "uncertain_negation": _compile(_UNCERTAIN_NEGATION),
        "pre_negation": _compile(_PRE_NEGATION),
        "post_negation": _compile(_POST_NEGATION),
        "pre_uncertain": _compile(_PRE_UNCERTAIN),
        "post_uncertain_near": _compile(_POST_UNCERTAIN_NEAR),
        "post_uncertain_phrase": _compile(_POST_UNCERTAIN_PHRASE),
        "terminators": _compile(_TERMINATORS),
        "local_negation": _compile(r"no|not|without"),
    }


class _Sentence:
    """One sentence as space-joined tokens, with char offset -> token index."""

    def __init__(self, text: str):
        self.tokens = _TOKEN.findall(text)
        self.text = " ".join(self.tokens)
        self.token_at = np.zeros(len(self.text) + 1, dtype=np.int64)
        position = 0
        for index, token in enumerate(self.tokens):
            self.token_at[position : position + len(token) + 1] = index
            position += len(token) + 1
        self.token_at[-1] = len(self.tokens)

    def spans(self, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
        """(first token, last token) of each match."""
        return [
            (int(self.token_at[m.start()]), int(self.token_at[m.end() - 1]))
            for m in pattern.finditer(self.text)
        ]

    def matches(self, pattern: re.Pattern[str]) -> list[tuple[int, int, re.Match[str]]]:
        return [
            (int(self.token_at[m.start()]), int(self.token_at[m.end() - 1]), m)
            for m in pattern.finditer(self.text)
        ]


def _split_sentences(text: str) -> list[_Sentence]:
    text = text.lower().replace("-", " ").replace("/", " ")
    sentences = [_Sentence(part) for part in _SENTENCE_SPLIT.split(text)]
    return [s for s in sentences if s.tokens]


class _Cues:
    """Cue positions of one sentence."""

    def __init__(self, sentence: _Sentence):
        patterns = _compiled()
        self.uncertain_negation = sentence.spans(patterns["uncertain_negation"])
        self.pre_negation = sentence.spans(patterns["pre_negation"])
        self.post_negation = sentence.spans(patterns["post_negation"])
        self.pre_uncertain = sentence.spans(patterns["pre_uncertain"])
        self.post_uncertain_near = sentence.spans(patterns["post_uncertain_near"])
        self.post_uncertain_phrase = sentence.spans(patterns["post_uncertain_phrase"])
        self.terminators = [start for start, _ in sentence.spans(patterns["terminators"])]

    def _open(self, left: int, right: int) -> bool:
        """No scope terminator strictly between token positions left and right."""
        return not any(left < t < right for t in self.terminators)

    def _before(self, cues: list[tuple[int, int]], start: int, scope: int) -> bool:
        return any(
            end < start and start - end <= scope and self._open(end, start) for _, end in cues
        )

    def _after(self, cues: list[tuple[int, int]], end: int, gap: int) -> bool:
        return any(
            cue_start > end and cue_start - end - 1 <= gap and self._open(end, cue_start)
            for cue_start, _ in cues
        )

    def classify(self, start: int, end: int) -> int:
        if self._before(self.uncertain_negation, start, _UNCERTAIN_NEGATION_BEFORE) or self._after(
            self.uncertain_negation, end, _UNCERTAIN_NEGATION_AFTER
        ):
            return -1
        negation_cues = [
            c
            for c in self.pre_negation
            if not any(u[0] <= c[0] <= u[1] for u in self.uncertain_negation)
        ]
        if self._before(negation_cues, start, _PRE_NEGATION_SCOPE) or self._after(
            self.post_negation, end, _POST_NEGATION_GAP
        ):
            return 0
        if (
            self._before(self.pre_uncertain, start, _PRE_UNCERTAIN_SCOPE)
            or self._after(self.post_uncertain_near, end, 1)
            or self._after(self.post_uncertain_phrase, end, _POST_UNCERTAIN_GAP)
            or self._before([c for c in self.post_uncertain_near if c[0] == c[1]], start, 2)
        ):
            return -1
        return 1


def _size_label(sentence: _Sentence, cues: _Cues, start: int, end: int) -> int | None:
    """Label from the size word nearest after (else before) an anatomy mention."""
    sizes = sentence.matches(_compiled()["size"])
    after = [
        m for m in sizes if m[0] > end and m[0] - end - 1 < _SIZE_AFTER and cues._open(end, m[0])
    ]
    before = [m for m in sizes if m[1] < start and start - m[1] - 1 < _SIZE_BEFORE]
    if after:
        size_start, size_end, match = after[0]
        between = (end, size_start)
    elif before:
        size_start, size_end, match = before[-1]
        between = (size_end, start)
    else:
        return None
    if match.group("borderline"):
        return -1
    if match.group("normal"):
        return 0
    local = sentence.spans(_compiled()["local_negation"])
    if any(0 < size_start - neg_end <= 2 for _, neg_end in local):
        return 0
    lo, hi = min(between[0], size_start, start), max(between[1], size_end, end)
    if any(lo - 3 <= cue_end and cue_start <= hi for cue_start, cue_end in cues.pre_uncertain):
        return -1
    return 1


def _aggregate(values: list[int]) -> int | None:
    if 1 in values:
        return 1
    if -1 in values:
        return -1
    if 0 in values:
        return 0
    return None


def label_report(text: str) -> dict[str, int | None]:
    """Labels one report: {observation: 1 | 0 | -1 | None} for all 14 observations."""
    patterns = _compiled()
    found: dict[str, list[int]] = {name: [] for name in OBSERVATIONS}
    for sentence in _split_sentences(text):
        cues = _Cues(sentence)
        for name, pattern in patterns["mentions"].items():
            exclusion = patterns["exclusions"].get(name)
            for match in pattern.finditer(sentence.text):
                if exclusion is not None and exclusion.search(sentence.text[: match.start()][-40:]):
                    continue
                start, end = (
                    int(sentence.token_at[match.start()]),
                    int(sentence.token_at[match.end() - 1]),
                )
                found[name].append(cues.classify(start, end))
        for name, anatomy in (
            ("Cardiomegaly", "heart"),
            ("Enlarged Cardiomediastinum", "mediastinum"),
        ):
            for start, end in sentence.spans(patterns[anatomy]):
                label = _size_label(sentence, cues, start, end)
                if label is not None:
                    found[name].append(label)
    labels = {name: _aggregate(values) for name, values in found.items()}
    pathologies = [n for n in OBSERVATIONS if n not in ("No Finding", "Support Devices")]
    labels["No Finding"] = None if any(labels[n] in (1, -1) for n in pathologies) else 1
    return labels


def label_reports(texts: Iterable[str]) -> np.ndarray:
    """(n, 14) float labels in OBSERVATIONS order; NaN where not mentioned."""
    rows = []
    for text in texts:
        labels = label_report(text)
        rows.append([np.nan if labels[n] is None else float(labels[n]) for n in OBSERVATIONS])
    return np.array(rows, dtype=np.float64).reshape(-1, len(OBSERVATIONS))


def binarise(labels: np.ndarray, uncertain: int = 0) -> np.ndarray:
    """1 -> 1, -1 -> `uncertain` (0: R2Gen, 1: ViLMedic), 0 and blank -> 0."""
    if uncertain not in (0, 1):
        raise ValueError(f"uncertain must be 0 or 1, got {uncertain!r}")
    labels = np.asarray(labels, dtype=np.float64)
    return ((labels == 1) | ((labels == -1) & bool(uncertain))).astype(np.int64)


# ---------------------------------------------------------------------------
# Metrics


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _prf(
    tp: np.ndarray, fp: np.ndarray, fn: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    precision = _safe_divide(tp, tp + fp)
    recall = _safe_divide(tp, tp + fn)
    f1 = _safe_divide(2 * tp, 2 * tp + fp + fn)
    return precision, recall, f1


def prf_from_counts(
    tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Micro, macro and example-based P/R/F1 for each row of report weights.

    tp/fp/fn: (n, L) per-report, per-label counts (0/1); weights: (B, n).
    Returns arrays of shape (B,). With weights of ones this equals sklearn's
    precision_recall_fscore_support(average=micro|macro|samples, zero_division=0).
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    label_tp, label_fp, label_fn = weights @ tp, weights @ fp, weights @ fn  # (B, L)
    out: dict[str, np.ndarray] = {}
    p, r, f = _prf(label_tp.sum(1), label_fp.sum(1), label_fn.sum(1))
    out.update(micro_precision=p, micro_recall=r, micro_f1=f)
    p, r, f = _prf(label_tp, label_fp, label_fn)
    out.update(macro_precision=p.mean(1), macro_recall=r.mean(1), macro_f1=f.mean(1))
    p, r, f = _prf(tp.sum(1), fp.sum(1), fn.sum(1))  # per report
    total = weights.sum(1)
    out.update(
        example_precision=(weights @ p) / total,
        example_recall=(weights @ r) / total,
        example_f1=(weights @ f) / total,
    )
    return out


class CEScorer:
    """Labels reference and generated reports once; gives CE metrics, per-report F1 and bootstrap hooks."""

    def __init__(
        self, reference_texts: Sequence[str], predicted_texts: Sequence[str], *, uncertain: int = 0
    ):
        if len(reference_texts) != len(predicted_texts):
            raise ValueError(
                f"{len(reference_texts)} references but {len(predicted_texts)} predictions"
            )
        self.uncertain = uncertain
        self.reference_labels = label_reports(reference_texts)
        self.predicted_labels = label_reports(predicted_texts)
        y_true = binarise(self.reference_labels, uncertain)
        y_pred = binarise(self.predicted_labels, uncertain)
        self.tp = (y_true & y_pred).astype(np.float64)
        self.fp = ((1 - y_true) & y_pred).astype(np.float64)
        self.fn = (y_true & (1 - y_pred)).astype(np.float64)
        self.five = np.array([OBSERVATIONS.index(n) for n in FIVE_OBSERVATIONS])

    def _all(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        out = {f"ce/{k}": v for k, v in prf_from_counts(self.tp, self.fp, self.fn, weights).items()}
        five = prf_from_counts(
            self.tp[:, self.five], self.fp[:, self.five], self.fn[:, self.five], weights
        )
        out.update({f"ce/five_{k}": v for k, v in five.items()})
        return out

    def metrics(self) -> dict[str, float]:
        out = {k: float(v[0]) for k, v in self._all(np.ones((1, len(self.tp)))).items()}
        per_label = _prf(self.tp.sum(0), self.fp.sum(0), self.fn.sum(0))[2]
        out.update({f"ce/f1/{name}": float(v) for name, v in zip(OBSERVATIONS, per_label)})
        return out

    def per_report_f1(self) -> np.ndarray:
        return _prf(self.tp.sum(1), self.fp.sum(1), self.fn.sum(1))[2]

    def resamplers(self) -> dict[str, Any]:
        keys = list(self._all(np.ones((1, len(self.tp)))))
        return {key: (lambda w, key=key: self._all(w)[key]) for key in keys}

    def meta(self) -> dict[str, Any]:
        return {
            "meta/ce_labeler": LABELER_NAME,
            "meta/ce_uncertain": self.uncertain,
            "meta/ce_uncertain_convention": "R2Gen (uncertain -> 0)"
            if self.uncertain == 0
            else "ViLMedic (uncertain -> 1)",
            "meta/ce_reference": "first reference text of each id",
        }


def ce_metrics(
    reference_texts: Sequence[str], predicted_texts: Sequence[str], *, uncertain: int = 0
) -> dict[str, Any]:
    """CE metrics (flat `ce/...` keys plus `meta/ce_...`) of generated vs reference reports."""
    scorer = CEScorer(reference_texts, predicted_texts, uncertain=uncertain)
    return {**scorer.metrics(), **scorer.meta()}


def _text_of(prediction: Any) -> str:
    if isinstance(prediction, str):
        return prediction
    if isinstance(prediction, (list, tuple)) and prediction and isinstance(prediction[0], str):
        return prediction[0]
    raise ValueError(f"expected a text or a list of texts, got {prediction!r}")


def truth_ce_metrics(
    truth: Mapping[str, Mapping[str, bool]],
    predictions: Mapping[str, Any],
    *,
    uncertain: int = 0,
) -> dict[str, Any]:
    """CE of generated reports against a synthetic tree's drawn findings.

    `truth`: {id: {finding: bool}} (`medcap.data.synthetic.load_truth`);
    `predictions`: {id: text or [text]}. Each prediction is labelled with our
    labeler and compared, finding by finding, with what was drawn in the
    image, over the findings the truth names (they are CheXpert observation
    names). Unlike `ce/...`, which compares with the labels of the reference
    text, this needs no labeler on the reference side, so it measures only
    whether the generated text states the image's findings. Keys:
    `truth/ce/{micro,macro,example}_{precision,recall,f1}`,
    `truth/ce/f1/<finding>` and `meta/truth_ce`.
    """
    missing = [key for key in predictions if key not in truth]
    if missing:
        raise ValueError(f"{len(missing)} predicted ids have no ground truth, e.g. {missing[:3]}")
    if not predictions:
        raise ValueError("no predictions to score")
    ids = list(predictions)
    names = [name for name in OBSERVATIONS if name in truth[ids[0]]]
    unknown = sorted(set(truth[ids[0]]) - set(names))
    if unknown:
        raise ValueError(f"ground-truth findings {unknown} are not CheXpert observations")
    columns = np.array([OBSERVATIONS.index(name) for name in names])
    y_true = np.array([[bool(truth[key][name]) for name in names] for key in ids], dtype=np.int64)
    y_pred = binarise(label_reports(_text_of(predictions[key]) for key in ids), uncertain)[:, columns]
    tp = (y_true & y_pred).astype(np.float64)
    fp = ((1 - y_true) & y_pred).astype(np.float64)
    fn = (y_true & (1 - y_pred)).astype(np.float64)
    out = {f"truth/ce/{k}": float(v[0]) for k, v in prf_from_counts(tp, fp, fn, np.ones((1, len(ids)))).items()}
    per_label = _prf(tp.sum(0), fp.sum(0), fn.sum(0))[2]
    out.update({f"truth/ce/f1/{name}": float(v) for name, v in zip(names, per_label)})
    out["meta/truth_ce"] = (
        f"{LABELER_NAME} labels of the generated text vs the findings drawn in the synthetic image "
        f"({len(names)} findings, {len(ids)} reports, uncertain -> {uncertain})"
    )
    return out
