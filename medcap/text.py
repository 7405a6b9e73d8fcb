"""Report cleaning and the word-level vocabulary shared by every model.

Cleaning styles:

* `iu_xray`: R2Gen's `clean_report_iu_xray`, character for character,
  including its quirks: the punctuation class `[.,?;*!%^&_+():-\\[\\]{}]`
  contains the range `:-\\[`, so `< = > ? @` are removed too, and empty
  sentences are kept (R2Gen's filter compares a string with `[]`, which is
  never equal), which yields `" .  . "`-style runs for empty sentences.
* `mimic_cxr`: R2Gen's `clean_report_mimic_cxr`, likewise.
* `caption`: for MediCat captions (paper 000): remove the leading figure
  label (`strip_figure_label`), lower-case, strip punctuation, collapse
  whitespace.

MediCat's captions are copied from the papers with their label: "Figure 4.
Nuclear magnetic resonance scan ...", "Fig 3. Control computed tomography
...", "Fig. 1. Brain CT ..." (the dataset's own sample). Paper 000 does not
say whether it kept them. We remove them by default: "figure 4" would
otherwise open nearly every reference and every generated caption, a free
unigram and bigram match for BLEU and an easy first word for the next-word
metrics, which says nothing about the image. `FIGURE_LABEL` is the pattern:
`Figure`, `Figures`, `Fig`, `Figs` (any case, optional period, optional
"Supplementary"), then a figure number with an optional `S` prefix and
sub-figure letter ("S1", "1A"), or a list of them ("2 and 3", "2-5"), then an
optional separator `. : | - – —`. "Figure 1A.", "FIG. 2:", "Fig 3",
"Figures 2 and 3." match; "Figure showing ..." (no number) does not. A
caption whose first word is a number-letter term ("Figure 3D reconstruction
...") loses that term with the label; we accept that rare case.

The `Vocabulary` is built from the train split only, keeps words seen at
least `min_count` times, and reserves the ids that `keras.layers.StringLookup`
uses for its mask and OOV tokens, so encoding runs inside tf.data:

    0 <pad>   1 <unk>   2 <start>   3 <end>   4.. words (sorted)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

PAD, UNK, START, END = "<pad>", "<unk>", "<start>", "<end>"
PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3
RESERVED = (PAD, UNK, START, END)

# R2Gen's numbered-list and sentence rewrites, applied in this order.
_R2GEN_NUMBERING = (
    ("1. ", ""),
    (". 2. ", ". "),
    (". 3. ", ". "),
    (". 4. ", ". "),
    (". 5. ", ". "),
    (" 2. ", ". "),
    (" 3. ", ". "),
    (" 4. ", ". "),
    (" 5. ", ". "),
)
# The same character class as R2Gen's sentence cleaner (see module docstring).
_R2GEN_PUNCT = re.compile(r"[.,?;*!%^&_+():-\[\]{}]")
_CAPTION_PUNCT = re.compile(r"[^\w\s]")
FIGURE_LABEL = re.compile(
    r"^\s*(?:supplementary\s+)?(?:figures?|figs?)\b\.?\s*"
    r"s?\d+[a-z]?(?:\s*(?:,|&|and|-|\u2013)\s*s?\d+[a-z]?)*(?!\w)"
    r"\s*[.:|\-\u2013\u2014]?\s*",
    re.IGNORECASE,
)
_WHITESPACE = re.compile(r"\s+")


def _replace_times(text: str, old: str, new: str, times: int) -> str:
    for _ in range(times):
        text = text.replace(old, new)
    return text


def _r2gen_sentence(sentence: str) -> str:
    for ch in ('"', "/", "\\", "'"):
        sentence = sentence.replace(ch, "")
    return _R2GEN_PUNCT.sub("", sentence.strip().lower())


def _r2gen_finish(text: str) -> str:
    for old, new in _R2GEN_NUMBERING:
        text = text.replace(old, new)
    sentences = text.strip().lower().split(". ")
    return " . ".join(_r2gen_sentence(s) for s in sentences) + " ."


def clean_iu_xray(text: str) -> str:
    return _r2gen_finish(_replace_times(text, "..", ".", 3))


def clean_mimic_cxr(text: str) -> str:
    text = text.replace("\n", " ")
    text = _replace_times(text, "__", "_", 7)
    text = _replace_times(text, "  ", " ", 6)
    text = _replace_times(text, "..", ".", 8)
    return _r2gen_finish(text)


def figure_label(text: str) -> str | None:
    """The leading figure label of a caption ("Figure 4. "), or None."""
    match = FIGURE_LABEL.match(text)
    return match.group(0) if match else None


def strip_figure_label(text: str) -> str:
    """`text` without its leading figure label (see module docstring)."""
    return FIGURE_LABEL.sub("", text, count=1)


def clean_caption(text: str, *, strip_label: bool = True) -> str:
    """The `caption` style; `strip_label=False` keeps "figure 4" in the text."""
    if strip_label:
        text = strip_figure_label(text)
    text = _CAPTION_PUNCT.sub(" ", text.lower()).replace("_", " ")
    return _WHITESPACE.sub(" ", text).strip()


CLEANING_STYLES = {"iu_xray": clean_iu_xray, "mimic_cxr": clean_mimic_cxr, "caption": clean_caption}


def clean_report(text: str, style: str) -> str:
    """Cleans one report with a named style (`iu_xray`, `mimic_cxr`, `caption`)."""
    try:
        cleaner = CLEANING_STYLES[style]
    except KeyError:
        raise ValueError(f"unknown cleaning style {style!r}; valid styles: {', '.join(CLEANING_STYLES)}") from None
    return cleaner(text)


def tokenize(text: str) -> list[str]:
    """Cleaned text is whitespace-tokenised (as R2Gen does)."""
    return text.split()


class Vocabulary:
    """Word vocabulary with reserved ids, JSON persistence and tf.data encoding."""

    def __init__(self, words: Sequence[str], *, min_count: int = 1, counts: dict[str, int] | None = None):
        words = list(words)
        clash = sorted(set(words) & set(RESERVED))
        if clash:
            raise ValueError(f"vocabulary words clash with reserved tokens: {clash}")
        if len(set(words)) != len(words):
            raise ValueError("vocabulary words must be unique")
        self.words: list[str] = words
        self.min_count = min_count
        self.counts = dict(counts or {})
        self._index = {w: i for i, w in enumerate(self.tokens)}
        self._lookup = None
        self._inverse = None

    # -- construction ---------------------------------------------------------
    @classmethod
    def build(cls, cleaned_texts: Iterable[str], *, min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        """Builds from cleaned **train-split** texts: words seen >= min_count
        times, sorted (R2Gen's order); `max_size` keeps at most that many
        words, the most frequent (ties by word), reserved tokens not counted."""
        counter = Counter(tok for text in cleaned_texts for tok in tokenize(text))
        for token in RESERVED:
            counter.pop(token, None)
        kept = [w for w, c in counter.items() if c >= min_count]
        if max_size is not None and len(kept) > max_size:
            kept = sorted(kept, key=lambda w: (-counter[w], w))[:max_size]
        kept.sort()
        return cls(kept, min_count=min_count, counts={w: counter[w] for w in kept})

    @property
    def tokens(self) -> list[str]:
        """All tokens by id: the reserved ones first."""
        return list(RESERVED) + self.words

    def __len__(self) -> int:
        return len(RESERVED) + len(self.words)

    @property
    def size(self) -> int:
        return len(self)

    def __contains__(self, word: str) -> bool:
        return word in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def token_to_id(self, token: str) -> int:
        return self._index.get(token, UNK_ID)

    def id_to_token(self, index: int) -> str:
        return self.tokens[index]

    # -- persistence ----------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": "medcap.vocabulary/1",
            "reserved": list(RESERVED),
            "min_count": self.min_count,
            "words": self.words,
            "counts": self.counts,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not a readable vocabulary file: {err}") from None
        if data.get("reserved") != list(RESERVED):
            raise ValueError(f"{path}: reserved tokens {data.get('reserved')} differ from {list(RESERVED)}")
        return cls(data["words"], min_count=data.get("min_count", 1), counts=data.get("counts"))

    # -- Python-side encoding -------------------------------------------------
    def encode(self, cleaned_text: str, *, max_length: int | None = None, add_special: bool = True) -> list[int]:
        """One cleaned text -> ids, `<start> ... <end>` when add_special.
        `max_length` counts the special tokens and truncates the words."""
        ids = [self.token_to_id(t) for t in tokenize(cleaned_text)]
        if add_special:
            if max_length is not None:
                ids = ids[: max(0, max_length - 2)]
            return [START_ID] + ids + [END_ID]
        return ids[:max_length] if max_length is not None else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text: stops at the first `<end>`, drops `<pad>`/`<start>`."""
        words = []
        for index in ids:
            index = int(index)
            if index == END_ID:
                break
            if index in (PAD_ID, START_ID):
                continue
            words.append(self.tokens[index] if 0 <= index < len(self) else UNK)
        return " ".join(words)

    def decode_batch(self, batch: np.ndarray | Sequence[Sequence[int]]) -> list[str]:
        return [self.decode(row) for row in np.asarray(batch)]

    # -- tf.data encoding -----------------------------------------------------
    def lookup_layer(self, invert: bool = False):
        """A `keras.layers.StringLookup` with exactly our ids."""
        import keras
        import tensorflow as tf

        attr = "_inverse" if invert else "_lookup"
        if getattr(self, attr) is None:
            # Created eagerly even when first asked for inside a Dataset.map
            # trace, so the table outlives that graph and is shared by all.
            with tf.init_scope():
                layer = keras.layers.StringLookup(
                    vocabulary=[START, END] + self.words,
                    mask_token=PAD,
                    oov_token=UNK,
                    num_oov_indices=1,
                    invert=invert,
                )
            setattr(self, attr, layer)
        return getattr(self, attr)

    def tf_encode(self, cleaned_text, max_length: int):
        """Graph-mode encoding of a scalar or batch of cleaned texts into
        `<start> words <end> <pad>...` int32 ids of length `max_length`.
        Runs inside `Dataset.map`."""
        import tensorflow as tf

        text = tf.convert_to_tensor(cleaned_text)
        scalar = text.shape.rank == 0
        if scalar:
            text = text[tf.newaxis]
        words = tf.strings.split(text)[:, : max_length - 2]
        ids = tf.cast(self.lookup_layer()(words), tf.int32)
        batch = tf.shape(text)[0]
        start = tf.fill([batch, 1], START_ID)
        end = tf.fill([batch, 1], END_ID)
        ids = tf.concat([start, ids, end], axis=1)
        dense = ids.to_tensor(default_value=PAD_ID, shape=[None, max_length])
        return dense[0] if scalar else dense
