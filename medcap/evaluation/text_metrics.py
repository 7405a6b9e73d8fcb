"""Report-generation text metrics that equal `pycocoevalcap` on the same input.

One idea, though long: every metric here is scored from one aligned corpus
with the same tokenisation, and the per-report statistics the bootstrap and
the paired tests reuse are the ones the corpus scores are built from, so
splitting BLEU, METEOR, ROUGE-L and CIDEr apart would split that contract.

API (what the trainer and `medcap score` call):

    evaluate(references, predictions, *, metrics=None, bleu_flavour="coco",
             bootstrap=0, seed=0, ce_uncertain=0, meteor=None) -> Evaluation
    score_corpus(...same...) -> dict     # == evaluate(...).corpus

`references` maps id -> [text, ...] (or id -> text); `predictions` maps
id -> [text] (or id -> text), the pycocoevalcap / R2Gen result format. The ids
must match exactly (`IdMismatchError` lists a few missing on each side).

`Evaluation.corpus` is one flat dict:

* `Bleu_1`..`Bleu_4`, `METEOR`, `ROUGE_L`, `CIDEr`: always present (None when
  not requested or unavailable). `Bleu_n` holds the flavour chosen by
  `bleu_flavour`; both flavours are also under `coco/Bleu_n` and `nltk/Bleu_n`.
* namespaced extras: `coco/...`, `nltk/...`, `rouge_score/ROUGE_L_F1`,
  `ce/...` (see medcap.evaluation.clinical), `ci_low/<key>` / `ci_high/<key>`
  (bootstrap 95% CIs) and `meta/...` (how every number was computed).

`Evaluation.per_report` maps metric key -> np.ndarray aligned with
`Evaluation.ids` (sorted), for paired tests (medcap.evaluation.statistics);
`Evaluation.resamplers` recompute each corpus metric under bootstrap weights
(the CIs here, the paired bootstrap in medcap.evaluation.compare).

How each number is computed (flavours):

* Input normalisation (ours, recorded as `meta/normalisation`): every
  whitespace run, newlines included, becomes one space and the ends are
  stripped. Nothing else: no PTB tokenisation and no lower-casing, as R2Gen
  scores its cleaned text. BLEU and CIDEr split on whitespace, so for them this
  changes nothing; ROUGE_L splits on single spaces and METEOR's jar protocol is
  line based, so for them it removes spurious empty tokens and crashes.
* `coco` BLEU: pycocoevalcap `BleuScorer(n=4)`, `option="closest"` (exactly
  what `Bleu(4).compute_score` runs, without its print). Per-report BLEU is
  pycocoevalcap's own per-image list.
* `nltk` BLEU: `nltk.translate.bleu_score.corpus_bleu` over whitespace tokens
  with cumulative weights (1,), (1/2,)*2, (1/3,)*3, (1/4,)*4 and no smoothing.
  nltk's own loop is ~10x slower than pycocoevalcap's cooking, so we evaluate
  nltk's formula on the clipped n-gram counts pycocoevalcap already made
  (the statistics are the same; tests check equality with nltk's corpus_bleu
  and sentence_bleu). Per-report nltk BLEU is nltk's sentence_bleu.
* METEOR: pycocoevalcap's `meteor-1.5.jar`, same command line
  (`-l en -norm -Xmx2G`), same SCORE/EVAL protocol. Our driver (`MeteorJar`)
  pipes all lines in bulk through one jar per scoring call and never crashes on
  messy text: newlines are already collapsed, `|||` (the protocol's field
  separator) is removed from hypotheses *and* references exactly as
  pycocoevalcap removes it from hypotheses, text that cannot be encoded is
  replaced. pycocoevalcap's own `Meteor` raises ValueError when a text
  contains a newline and silently splits a reference containing `|||`. Without
  Java, METEOR is None and `meta/meteor` says why and how to install Java.
* ROUGE_L: pycocoevalcap `Rouge` (LCS F-measure, beta 1.2, max over references).
* `rouge_score/ROUGE_L_F1`: Google's `rouge-score` `rougeL` F1 with its default
  tokenizer (lower-cases, keeps [a-z0-9]), no stemmer, `score_multi` over the
  references (best F1), averaged over reports. Not the same number as ROUGE_L.
* CIDEr: pycocoevalcap `Cider` (CIDEr-D: sigma 6, clipped, x10) with document
  frequencies from the scored references. When no reference has any token,
  pycocoevalcap raises on an empty max(); we report 0.0 and say so in meta.
* Bootstrap (ours): `bootstrap` resamples of the report ids with replacement
  (seeded), percentile 95% interval. BLEU (both flavours) is recomputed from
  per-report n-gram statistics with one matrix product per resample set; METEOR
  by summing the jar's per-report statistics and asking the same jar for the
  aggregate; ROUGE_L, rouge_score and CIDEr are means of per-report scores
  (CIDEr keeps the document frequencies of the full test set: recomputing them
  per resample would make each resample a full CIDEr run).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medcap.evaluation.ids import (
    IdMismatchError as IdMismatchError,  # defined low, re-exported here
)
from medcap.evaluation.ids import describe_id_mismatch as describe_id_mismatch

#: Canonical pycocoevalcap result keys, in table order.
COCO_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
#: Metric groups accepted by `metrics=`; each adds the keys listed.
METRIC_GROUPS = {
    "bleu": "Bleu_1..Bleu_4 (chosen flavour), coco/Bleu_n, nltk/Bleu_n",
    "meteor": "METEOR (pycocoevalcap's meteor-1.5.jar; needs java)",
    "rouge": "ROUGE_L (pycocoevalcap), rouge_score/ROUGE_L_F1 (rouge-score)",
    "cider": "CIDEr (pycocoevalcap CIDEr-D)",
    "ce": "ce/... clinical efficacy with medcap's rule-based CheXpert-14 labeler",
}
BLEU_FLAVOURS = ("coco", "nltk")
NORMALISATION = (
    "whitespace runs (newlines included) collapsed to one space, ends stripped; no tokenisation"
)
METEOR_INSTALL_HINT = (
    "install a Java runtime (e.g. `apt-get install default-jre-headless`, `brew install openjdk` "
    "or `conda install -c conda-forge openjdk`) and put `java` on PATH"
)
#: nltk corpus_bleu weights of the nltk flavour (cumulative BLEU-1..4).
NLTK_WEIGHTS = [(1.0,), (1 / 2,) * 2, (1 / 3,) * 3, (1 / 4,) * 4]
_WHITESPACE = re.compile(r"\s+")


class MeteorUnavailable(RuntimeError):
    """The METEOR jar cannot run here (no java, or the jar failed)."""


def normalise_text(text: str) -> str:
    """Collapses every whitespace run (newlines included) to one space; strips the ends."""
    return _WHITESPACE.sub(" ", text).strip()


# ---------------------------------------------------------------------------
# Input


@dataclass
class Corpus:
    """Aligned, normalised references and predictions (ids sorted)."""

    ids: list[str]
    references: list[list[str]]
    predictions: list[str]

    @property
    def gts(self) -> dict[str, list[str]]:
        return dict(zip(self.ids, self.references))

    @property
    def res(self) -> dict[str, list[str]]:
        return {i: [p] for i, p in zip(self.ids, self.predictions)}


def _as_text_list(value: Any, *, role: str, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(
        f"{role}: id {key!r}: expected a text or a list of texts, got {type(value).__name__}"
    )


def load_text_map(path: str | os.PathLike[str], *, role: str) -> dict[str, list[str]]:
    """Reads an `id -> [text, ...]` (or `id -> text`) JSON file; DataError names file, id and problem."""
    import json
    from pathlib import Path

    from medcap.data.base import DataError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {role} file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"not valid JSON ({err})", file=path) from None
    if not isinstance(data, dict):
        raise DataError(
            f"expected a JSON object mapping id -> [text, ...], got {type(data).__name__}",
            file=path,
        )
    out = {}
    for key, value in data.items():
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DataError(
                f"expected a text or a list of texts, got {value!r:.60}", file=path, record=key
            )
        if not value:
            raise DataError("empty list: no text", file=path, record=key)
        out[str(key)] = value
    return out


def prepare_corpus(references: Mapping[str, Any], predictions: Mapping[str, Any]) -> Corpus:
    """Checks ids and shapes, normalises whitespace, sorts by id."""
    references = {str(k): v for k, v in references.items()}
    predictions = {str(k): v for k, v in predictions.items()}
    mismatch = describe_id_mismatch(references, predictions)
    if mismatch:
        raise IdMismatchError(mismatch)
    if not references:
        raise ValueError("nothing to score: references and predictions are empty")
    ids = sorted(references)
    refs, preds = [], []
    for key in ids:
        ref_list = _as_text_list(references[key], role="references", key=key)
        if not ref_list:
            raise ValueError(f"references: id {key!r}: no reference text")
        pred_list = _as_text_list(predictions[key], role="predictions", key=key)
        if len(pred_list) != 1:
            raise ValueError(
                f"predictions: id {key!r}: expected exactly one text, got {len(pred_list)}"
            )
        refs.append([normalise_text(r) for r in ref_list])
        preds.append(normalise_text(pred_list[0]))
    return Corpus(ids, refs, preds)


# ---------------------------------------------------------------------------
# BLEU, coco flavour (pycocoevalcap)


@dataclass
class CocoBleuStats:
    """Per-report BLEU sufficient statistics, as pycocoevalcap's BleuScorer cooks them."""

    testlen: np.ndarray  # (n,)
    reflen: np.ndarray  # (n,) closest reference length
    guess: np.ndarray  # (n, 4)
    correct: np.ndarray  # (n, 4)


def coco_bleu(corpus: Corpus) -> tuple[list[float], np.ndarray, CocoBleuStats]:
    """pycocoevalcap BLEU-1..4: corpus scores, per-report scores (4, n), statistics."""
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer

    scorer = BleuScorer(n=4)
    for hyp, refs in zip(corpus.predictions, corpus.references):
        scorer += (hyp, refs)
    with contextlib.redirect_stdout(io.StringIO()):
        score, per_report = scorer.compute_score(option="closest", verbose=0)
    comps = scorer.ctest
    testlen = np.array([c["testlen"] for c in comps], dtype=np.float64)
    reflen = np.array(
        [min((abs(length - c["testlen"]), length) for length in c["reflen"])[1] for c in comps],
        dtype=np.float64,
    )
    stats = CocoBleuStats(
        testlen=testlen,
        reflen=reflen,
        guess=np.array([c["guess"] for c in comps], dtype=np.float64).reshape(-1, 4),
        correct=np.array([c["correct"] for c in comps], dtype=np.float64).reshape(-1, 4),
    )
    return [float(s) for s in score], np.asarray(per_report, dtype=np.float64), stats


def coco_bleu_from_stats(stats: CocoBleuStats, weights: np.ndarray) -> np.ndarray:
    """Corpus BLEU-1..4 (B, 4) for each row of report weights (B, n).

    pycocoevalcap's corpus formula (tiny/small guards, closest-length brevity
    penalty) applied to weighted sums of per-report statistics; a row of ones
    gives pycocoevalcap's corpus score, a row of bootstrap counts a resample.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    return _coco_bleu_formula(
        weights @ stats.correct,
        weights @ stats.guess,
        weights @ stats.testlen,
        weights @ stats.reflen,
    )


def coco_bleu_per_report(stats: CocoBleuStats) -> np.ndarray:
    """Per-report BLEU-1..4 (n, 4): the corpus formula applied to each report alone."""
    return _coco_bleu_formula(stats.correct, stats.guess, stats.testlen, stats.reflen)


def _coco_bleu_formula(
    correct: np.ndarray, guess: np.ndarray, testlen: np.ndarray, reflen: np.ndarray
) -> np.ndarray:
    tiny, small = 1e-15, 1e-9
    precisions = (correct + tiny) / (guess + small)
    orders = np.arange(1, 5, dtype=np.float64)
    bleus = np.cumprod(precisions, axis=1) ** (1.0 / orders)
    ratio = (testlen + tiny) / (reflen + small)
    penalty = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return bleus * penalty[:, None]


# ---------------------------------------------------------------------------
# BLEU, nltk flavour


@dataclass
class NltkBleuStats:
    """Per-report modified-precision numerators/denominators and lengths (nltk's)."""

    numerators: np.ndarray  # (n, 4)
    denominators: np.ndarray  # (n, 4)
    hyp_len: np.ndarray  # (n,)
    ref_len: np.ndarray  # (n,) closest reference length


def nltk_bleu_stats(coco_stats: CocoBleuStats) -> NltkBleuStats:
    """nltk's per-report BLEU statistics, read off pycocoevalcap's cooked counts.

    Both clip hypothesis n-gram counts by their maximum count in any one
    reference; nltk's denominator is max(1, number of hypothesis n-grams) and
    its closest reference length breaks ties towards the shorter one, as
    pycocoevalcap's does. Tests check the result against nltk itself.
    """
    return NltkBleuStats(
        numerators=coco_stats.correct,
        denominators=np.maximum(1.0, coco_stats.guess),
        hyp_len=coco_stats.testlen,
        ref_len=coco_stats.reflen,
    )


def nltk_bleu_from_stats(stats: NltkBleuStats, weights: np.ndarray) -> np.ndarray:
    """nltk corpus BLEU-1..4 (B, 4) for each row of report weights (B, n).

    `nltk.translate.bleu_score.corpus_bleu` with cumulative weights and no
    smoothing, evaluated on summed statistics: zero matches of an order count as
    sys.float_info.min (method0), no unigram match gives 0, brevity penalty
    exp(1 - r/c) when c <= r, and 0 for an empty hypothesis side.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    return _nltk_bleu_formula(
        weights @ stats.numerators,
        weights @ stats.denominators,
        weights @ stats.hyp_len,
        weights @ stats.ref_len,
    )


def nltk_bleu_per_report(stats: NltkBleuStats) -> np.ndarray:
    """Per-report nltk BLEU-1..4 (n, 4), i.e. nltk's sentence_bleu of each report."""
    return _nltk_bleu_formula(stats.numerators, stats.denominators, stats.hyp_len, stats.ref_len)


def _nltk_bleu_formula(
    num: np.ndarray, den: np.ndarray, hyp: np.ndarray, ref: np.ndarray
) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(num > 0, num / np.where(den > 0, den, 1.0), sys.float_info.min)
        orders = np.arange(1, 5, dtype=np.float64)
        cumulative = np.cumsum(np.log(precision), axis=1) / orders
        penalty = np.where(
            hyp > ref, 1.0, np.where(hyp == 0, 0.0, np.exp(1 - ref / np.where(hyp > 0, hyp, 1.0)))
        )
    scores = penalty[:, None] * np.exp(cumulative)
    return np.where(num[:, :1] == 0, 0.0, scores)


# ---------------------------------------------------------------------------
# METEOR (pycocoevalcap's jar)


def find_java() -> str | None:
    """Path of the `java` executable, or None. Tests monkeypatch this."""
    return shutil.which("java")


def meteor_jar_dir() -> str:
    import pycocoevalcap.meteor.meteor as pycoco_meteor

    return os.path.dirname(os.path.abspath(pycoco_meteor.__file__))


def jar_text(text: str) -> str:
    """Text made safe for the jar's line protocol, as pycocoevalcap cleans hypotheses."""
    return normalise_text(text).replace("|||", "").replace("  ", " ")


class MeteorJar:
    """One running `meteor-1.5.jar` (pycocoevalcap's file and command line).

    Start it once per scoring call (it takes seconds to load its paraphrase
    tables) and reuse it: `score` for a corpus, `aggregate` for the corpus
    score of given per-report statistics (bootstrap). Use as a context manager.
    """

    def __init__(self) -> None:
        java = find_java()
        if java is None:
            raise MeteorUnavailable(f"java not found on PATH; {METEOR_INSTALL_HINT}")
        self._command = [
            java,
            "-jar",
            "-Xmx2G",
            "meteor-1.5.jar",
            "-",
            "-",
            "-stdio",
            "-l",
            "en",
            "-norm",
        ]
        self._lock = threading.Lock()
        self._process = None
        self._start()

    def _start(self) -> None:
        self._stderr = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(
                self._command,
                cwd=meteor_jar_dir(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
        except OSError as err:
            self._stderr.close()
            raise MeteorUnavailable(f"cannot start java ({err}); {METEOR_INSTALL_HINT}") from err

    def restart(self) -> None:
        """Replaces the jar process (e.g. after something else wrote to its pipes)."""
        self.close()
        self._start()

    def __enter__(self) -> MeteorJar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        process = getattr(self, "_process", None)
        if process is None:
            return
        self._process = None
        with contextlib.suppress(OSError):
            process.stdin.close()
        process.kill()
        process.wait()
        process.stdout.close()
        self._stderr.close()

    def __del__(self) -> None:
        self.close()

    def _stderr_tail(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            return " | ".join(lines[-3:])
        return ""

    def _exchange(self, lines: Sequence[str], replies: int) -> list[str]:
        """Writes `lines` (from a thread, so full pipes cannot deadlock) and reads `replies` lines."""
        if self._process is None:
            raise MeteorUnavailable("the METEOR jar was closed")
        payload = "".join(line + "\n" for line in lines).encode("utf-8", "replace")
        write_error: list[BaseException] = []

        def write() -> None:
            try:
                self._process.stdin.write(payload)
                self._process.stdin.flush()
            except (OSError, ValueError) as err:
                write_error.append(err)

        with self._lock:
            writer = threading.Thread(target=write, daemon=True)
            writer.start()
            out = []
            for _ in range(replies):
                raw = self._process.stdout.readline()
                if not raw:
                    writer.join(timeout=1)
                    raise MeteorUnavailable(
                        f"the METEOR jar stopped: {self._stderr_tail() or write_error}"
                    )
                out.append(raw.decode("utf-8", "replace").strip())
            writer.join()
        return out

    def statistics(
        self, predictions: Sequence[str], references: Sequence[Sequence[str]]
    ) -> list[str]:
        """The jar's per-report statistics lines (SCORE requests)."""
        lines = [
            " ||| ".join(("SCORE", " ||| ".join(jar_text(r) for r in refs), jar_text(hyp)))
            for hyp, refs in zip(predictions, references)
        ]
        return self._exchange(lines, len(lines))

    def _floats(self, lines: list[str]) -> list[float]:
        try:
            return [float(line) for line in lines]
        except ValueError as err:
            raise MeteorUnavailable(
                f"unexpected METEOR jar output ({err}); {self._stderr_tail()}"
            ) from None

    def score(
        self, predictions: Sequence[str], references: Sequence[Sequence[str]]
    ) -> tuple[float, list[float], list[str]]:
        """Corpus METEOR, per-report METEOR and the per-report statistics lines."""
        stats = self.statistics(predictions, references)
        values = self._floats(self._exchange(["EVAL ||| " + " ||| ".join(stats)], len(stats) + 1))
        return values[-1], values[:-1], stats

    def aggregate(self, summed_statistics: np.ndarray) -> np.ndarray:
        """Corpus METEOR of each row of summed per-report statistics (one EVAL each)."""
        rows = np.atleast_2d(summed_statistics)
        lines = ["EVAL ||| " + " ".join(repr(float(x)) for x in row) for row in rows]
        values = self._floats(self._exchange(lines, 2 * len(lines)))
        return np.array(values[1::2])


def meteor_additive_statistics(stats_lines: Sequence[str]) -> np.ndarray:
    """(n, 23) per-report jar statistics whose column sums the jar scores as the corpus.

    The jar's EVAL sums the statistics of its segments, except that a
    perfectly matched segment (all words of both sides matched in one chunk)
    adds no chunk (column 20). Zeroing those chunks first makes "sum rows,
    send one EVAL line" give exactly the jar's corpus METEOR of any multiset
    of reports (tested against EVAL on resampled lists).
    """
    stats = np.array(
        [[float(x) for x in line.split()] for line in stats_lines], dtype=np.float64
    ).reshape(-1, 23)
    perfect = (stats[:, 21] == stats[:, 0]) & (stats[:, 22] == stats[:, 1]) & (stats[:, 20] == 1)
    stats[perfect, 20] = 0.0
    return stats


# ---------------------------------------------------------------------------
# Other metrics


def coco_rouge(corpus: Corpus) -> tuple[float, np.ndarray]:
    from pycocoevalcap.rouge.rouge import Rouge

    score, per_report = Rouge().compute_score(corpus.gts, corpus.res)
    return float(score), np.asarray(per_report, dtype=np.float64)


def coco_cider(corpus: Corpus) -> tuple[float, np.ndarray, str]:
    """pycocoevalcap CIDEr-D; returns (score, per-report, note)."""
    from pycocoevalcap.cider.cider import Cider

    if not any(r.split() for refs in corpus.references for r in refs):
        return (
            0.0,
            np.zeros(len(corpus.ids)),
            "no reference has any token: CIDEr is 0 (pycocoevalcap would raise)",
        )
    score, per_report = Cider().compute_score(corpus.gts, corpus.res)
    return float(score), np.asarray(per_report, dtype=np.float64), ""


def rouge_score_l(corpus: Corpus) -> np.ndarray:
    """Per-report `rouge-score` ROUGE-L F1 (best over references)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return np.array(
        [
            scorer.score_multi(refs, hyp)["rougeL"].fmeasure
            for hyp, refs in zip(corpus.predictions, corpus.references)
        ],
        dtype=np.float64,
    )


# ---------------------------------------------------------------------------
# Driver


@dataclass
class Evaluation:
    """Result of `evaluate`: flat corpus dict plus per-report arrays aligned with `ids`."""

    ids: list[str]
    corpus: dict[str, Any]
    per_report: dict[str, np.ndarray] = field(default_factory=dict)
    #: metric key -> f(weights (B, n)) -> (B,) corpus values under report
    #: resampling; the paired bootstrap applies the same weights to two systems.
    #: METEOR's needs the jar it was scored with to be running.
    resamplers: dict[str, Any] = field(default_factory=dict)


def _check_metrics(metrics: Iterable[str] | None) -> list[str]:
    if metrics is None:
        return list(METRIC_GROUPS)
    chosen = list(dict.fromkeys(metrics))
    unknown = [m for m in chosen if m not in METRIC_GROUPS]
    if unknown:
        raise ValueError(f"unknown metric group(s) {unknown}; valid: {', '.join(METRIC_GROUPS)}")
    return chosen


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("pycocoevalcap", "nltk", "rouge-score"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[f"meta/version/{name}"] = metadata.version(name)
    return out


def evaluate(
    references: Mapping[str, Any],
    predictions: Mapping[str, Any],
    *,
    metrics: Iterable[str] | None = None,
    bleu_flavour: str = "coco",
    bootstrap: int = 0,
    seed: int = 0,
    ce_uncertain: int = 0,
    meteor: MeteorJar | None = None,
) -> Evaluation:
    """Scores predictions against references; see the module docstring for every key.

    `meteor`: a running MeteorJar to reuse (else one is started and closed here).
    """
    from medcap.evaluation import clinical, statistics

    groups = _check_metrics(metrics)
    if bleu_flavour not in BLEU_FLAVOURS:
        raise ValueError(f"bleu_flavour must be one of {BLEU_FLAVOURS}, got {bleu_flavour!r}")
    if ce_uncertain not in (0, 1):
        raise ValueError(f"ce_uncertain must be 0 or 1, got {ce_uncertain!r}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
    corpus = prepare_corpus(references, predictions)
    n = len(corpus.ids)
    result: dict[str, Any] = dict.fromkeys(COCO_KEYS)
    per_report: dict[str, np.ndarray] = {}
    # Functions of a (B, n) report-weight matrix -> (B,) corpus values, for the bootstrap.
    resamplers: dict[str, Any] = {}

    def mean_resampler(values: np.ndarray):
        return lambda w: (w @ values) / n

    result["meta/normalisation"] = NORMALISATION
    result["meta/metrics"] = ",".join(groups)
    result["meta/num_reports"] = n
    result["meta/num_references_per_report"] = max(len(r) for r in corpus.references)
    result.update(_versions())

    if "bleu" in groups:
        coco_scores, coco_per, coco_stats = coco_bleu(corpus)
        nltk_stats = nltk_bleu_stats(coco_stats)
        nltk_scores = nltk_bleu_from_stats(nltk_stats, np.ones((1, n)))[0]
        nltk_per = nltk_bleu_per_report(nltk_stats)
        for k in range(4):
            result[f"coco/Bleu_{k + 1}"] = coco_scores[k]
            result[f"nltk/Bleu_{k + 1}"] = float(nltk_scores[k])
            per_report[f"coco/Bleu_{k + 1}"] = coco_per[k]
            per_report[f"nltk/Bleu_{k + 1}"] = nltk_per[:, k]
            resamplers[f"coco/Bleu_{k + 1}"] = lambda w, k=k: coco_bleu_from_stats(coco_stats, w)[
                :, k
            ]
            resamplers[f"nltk/Bleu_{k + 1}"] = lambda w, k=k: nltk_bleu_from_stats(nltk_stats, w)[
                :, k
            ]
        for k in range(1, 5):
            result[f"Bleu_{k}"] = result[f"{bleu_flavour}/Bleu_{k}"]
            per_report[f"Bleu_{k}"] = per_report[f"{bleu_flavour}/Bleu_{k}"]
            resamplers[f"Bleu_{k}"] = resamplers[f"{bleu_flavour}/Bleu_{k}"]
        result["meta/bleu_flavour"] = bleu_flavour
        result["meta/bleu_coco"] = (
            "pycocoevalcap BleuScorer(n=4), option='closest', whitespace tokens"
        )
        result["meta/bleu_nltk"] = (
            "nltk corpus_bleu formula, cumulative weights, no smoothing, whitespace tokens "
            "(evaluated on pycocoevalcap's n-gram counts; equal to nltk.corpus_bleu)"
        )

    own_jar = None
    try:
        if "meteor" in groups:
            try:
                jar = meteor
                if jar is None:
                    jar = own_jar = MeteorJar()
                meteor_score, meteor_per, meteor_stats = jar.score(
                    corpus.predictions, corpus.references
                )
                result["METEOR"] = meteor_score
                per_report["METEOR"] = np.array(meteor_per)
                stats_matrix = meteor_additive_statistics(meteor_stats)
                resamplers["METEOR"] = lambda w, jar=jar, s=stats_matrix: jar.aggregate(w @ s)
                result["meta/meteor"] = (
                    "pycocoevalcap meteor-1.5.jar -l en -norm; '|||' removed from all texts"
                )
            except MeteorUnavailable as err:
                result["meta/meteor"] = f"unavailable: {err}"

        if "rouge" in groups:
            rouge, rouge_per = coco_rouge(corpus)
            result["ROUGE_L"] = rouge
            per_report["ROUGE_L"] = rouge_per
            resamplers["ROUGE_L"] = mean_resampler(rouge_per)
            rs_per = rouge_score_l(corpus)
            result["rouge_score/ROUGE_L_F1"] = float(rs_per.mean())
            per_report["rouge_score/ROUGE_L_F1"] = rs_per
            resamplers["rouge_score/ROUGE_L_F1"] = mean_resampler(rs_per)
            result["meta/rouge_l"] = "pycocoevalcap Rouge (LCS, beta=1.2, split on single spaces)"
            result["meta/rouge_score"] = (
                "rouge-score rougeL F1, default tokenizer, no stemmer, best over references"
            )

        if "cider" in groups:
            cider, cider_per, note = coco_cider(corpus)
            result["CIDEr"] = cider
            per_report["CIDEr"] = cider_per
            resamplers["CIDEr"] = mean_resampler(cider_per)
            result["meta/cider"] = (
                note or "pycocoevalcap Cider (CIDEr-D, sigma=6, x10), df from these references"
            )

        if "ce" in groups:
            ce = clinical.CEScorer(
                [refs[0] for refs in corpus.references], corpus.predictions, uncertain=ce_uncertain
            )
            result.update(ce.metrics())
            per_report["ce/example_f1"] = ce.per_report_f1()
            resamplers.update(ce.resamplers())
            result.update(ce.meta())

        if bootstrap:
            weights = statistics.bootstrap_weights(n, bootstrap, seed)
            for key, resample in resamplers.items():
                values = np.asarray(resample(weights), dtype=np.float64)
                low, high = statistics.percentile_interval(values)
                result[f"ci_low/{key}"], result[f"ci_high/{key}"] = low, high
            result["meta/bootstrap_resamples"] = bootstrap
            result["meta/bootstrap_seed"] = seed
            result["meta/bootstrap_method"] = (
                "report ids resampled with replacement, percentile 95% interval; "
                "CIDEr keeps the full test set's document frequencies"
            )
    finally:
        if own_jar is not None:
            own_jar.close()
    return Evaluation(ids=corpus.ids, corpus=result, per_report=per_report, resamplers=resamplers)


def score_corpus(
    references: Mapping[str, Any], predictions: Mapping[str, Any], **kwargs: Any
) -> dict[str, Any]:
    """`evaluate(...).corpus`: the flat metrics dict (see module docstring)."""
    return evaluate(references, predictions, **kwargs).corpus


