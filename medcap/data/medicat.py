"""MediCat (Subramanian et al., 2020) as used by paper 000 (Model-80 / Model-70).

On-disk format of the download (facts from the dataset's README and
sample at github.com/allenai/medicat): the release tarball
`medicat_release.tar.gz` (about 104 GB) unpacks into `release/`, which is
`<source>`:

    <source>/s2_full_figures_oa_nonroco_combined_medical_top4_public.jsonl
    <source>/figures/{pdf_hash}_{fig_uri}

one JSON object per line with keys `pdf_hash, fig_key, fig_uri, s2_caption,
s2orc_caption, s2orc_references (may be null), radiology, scope,
predicted_type, oa_info`.

Paper 000 (section 4.1) keeps figures whose caption has at most 20 words and
uses 50,000 of them; section 4.4 splits them 80/10/10 (Model-80) and
70/15/15 (Model-70). Choices the paper leaves open, ours:

* caption = `s2_caption`; when it is null or blank, `s2orc_caption` (the
  fallbacks are counted in `info["caption_fallbacks"]`); neither is an error
  on field `s2_caption`.
* the figure label that opens MediCat captions ("Figure 4.", "Fig 3.",
  "Fig. 1.", see `medcap.text.FIGURE_LABEL`) is removed from `report_clean`
  by default (`options["strip_figure_label"]`, True): kept, it gives every
  caption a free "figure N" unigram and bigram match and an easy first word.
  `info["figure_labels"]` counts the captions that had one (before the length
  filter and the sample) and `info["figure_labels_stripped"]` says whether
  they were removed. `report` keeps the caption as released.
* "words" = the tokens the model trains on: the whitespace tokens of the
  cleaned caption (`report_clean`, label removed or not), not of the raw
  caption, whose "CT-guided"/"(arrow)" count differently. Captions of more
  than `max_words` (20) such tokens are filtered by the paper's rule and
  counted in `info["filtered_long_captions"]`; captions with no token left
  (e.g. a bare "Figure 2.") are filtered and counted in
  `info["empty_captions"]`. Neither is an error. `max_words` is the one
  length setting of paper 000: the model80 task reads it from
  `data.options.max_words` for the prefix width and the decode length.
* the 50,000 figures are a uniform sample without replacement of the kept
  figures, drawn with `numpy.random.default_rng(split_seed)`; the rest is
  counted in `info["sampled_out"]` (`options["max_figures"]` changes 50,000).
* there is no official split, so ours is seeded and **grouped by paper**:
  MediCat has no patients, so `patient_id` = `pdf_hash`, and figures of one
  paper never cross splits (`medcap.data.io.group_split`, `split_seed`).
  Variants: `model80` (80/10/10, default) and `model70` (70/15/15).
* `id` = `{pdf_hash}_{fig_uri}` (the figure's file name, unique);
  `report_clean` = `medcap.text.clean_caption(caption)` (the `caption` style).

Images are checked per `options["check_images"]` ("exists" by default,
"decode" to decode every sampled figure, "none"); only the sampled figures
are checked.

The synthetic tree (`synthesize`) has the same layout and record format
(`fig_key` "Figure4", `fig_uri` "3-Figure4-1.png", `oa_info` with a nested
`oa` block): `num` figures with captions of at most 20 cleaned words, plus
`max(1, num // 20)` figures whose caption is longer (the filter has something
to filter), and `synthetic_truth.json`. Captions open with a figure label in
the styles of the real release ("Figure 4. ", "Fig 3. ", "Fig. 1. ", and a
few "FIGURE 2: " / "Figure 2 "), numbered as the figure's `fig_uri`; one in
twenty has none. The label style is drawn from a generator of its own, so
the findings, captions and pixels are those the same seed drew before labels
were written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data import io as dio
from medcap.data import synthetic
from medcap.data.base import SPLIT_NAMES, CheckReport, DataError, ReadResult
from medcap.data.images import check_image
from medcap.registry import DATASETS
from medcap.text import clean_caption, figure_label, tokenize

JSONL_NAME = "s2_full_figures_oa_nonroco_combined_medical_top4_public.jsonl"
FIGURES_DIR = "figures"
VARIANT_FRACTIONS: dict[str, tuple[float, float, float]] = {
    "model80": (0.8, 0.1, 0.1),
    "model70": (0.7, 0.15, 0.15),
}
DEFAULT_OPTIONS: dict[str, Any] = {
    "max_figures": 50_000,
    "max_words": 20,
    "strip_figure_label": True,
    "check_images": "exists",
}
#: Label styles of the synthetic captions and their weights; the first three
#: are the styles of the MediCat release's own sample.
_LABEL_STYLES: tuple[tuple[str, float], ...] = (
    ("Figure {n}. ", 0.45),
    ("Fig. {n}. ", 0.2),
    ("Fig {n}. ", 0.1),
    ("FIGURE {n}: ", 0.1),
    ("Figure {n} ", 0.1),
    ("", 0.05),
)
#: Keeps the label generator's stream apart from the tree's.
_LABEL_SEED_OFFSET = 104_729


def _text_field(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


class MediCatSource:
    """Reader, validator and synthetic writer of MediCat (see module docstring)."""

    name = "medicat"
    variants = tuple(VARIANT_FRACTIONS)
    accepts_check_images = True  # options["check_images"]
    image_channels = 3  # figures are colour; chest radiographs decode as grey RGB

    def num_views(self, variant: str = "") -> int:
        return 1

    # -- reading --------------------------------------------------------------
    def read(
        self,
        source_dir: str | Path,
        *,
        variant: str = "",
        split_seed: int = 0,
        skip_invalid: bool = False,
        options: dict[str, Any] | None = None,
    ) -> ReadResult:
        variant = variant or self.variants[0]
        if variant not in VARIANT_FRACTIONS:
            raise DataError(f"unknown MediCat variant {variant!r}; valid: {', '.join(self.variants)}")
        opts = {**DEFAULT_OPTIONS, **(options or {})}
        unknown = sorted(set(opts) - set(DEFAULT_OPTIONS))
        if unknown:
            raise DataError(f"unknown MediCat options {unknown}; valid: {', '.join(DEFAULT_OPTIONS)}")
        max_words = opts["max_words"]
        if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1:
            raise DataError(f"MediCat option max_words={max_words!r}: expected an integer >= 1")
        strip_label = opts["strip_figure_label"]
        if not isinstance(strip_label, bool):
            raise DataError(f"MediCat option strip_figure_label={strip_label!r}: expected true or false")
        source_dir = Path(source_dir)
        jsonl = source_dir / JSONL_NAME
        if not jsonl.is_file():
            raise DataError(f"MediCat jsonl not found; expected {JSONL_NAME} in {source_dir}", file=jsonl)

        skipped: list[DataError] = []

        def fail(error: DataError) -> None:
            if not skip_invalid:
                raise error
            skipped.append(error)

        kept: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        filtered = empty = fallbacks = records = labels = 0
        for line, record in dio.iter_jsonl(jsonl):
            records += 1
            if isinstance(record, DataError):
                fail(record)
                continue
            where = {"file": jsonl, "record": f"line {line}"}
            problem = None
            for key in ("pdf_hash", "fig_uri"):
                if _text_field(record, key) is None:
                    problem = DataError(f"expected a non-empty string, got {record.get(key)!r}", field=key, **where)
                    break
            caption = _text_field(record, "s2_caption")
            if problem is None and caption is None:
                caption = _text_field(record, "s2orc_caption")
                if caption is None:
                    problem = DataError("no caption: s2_caption and s2orc_caption are both empty", field="s2_caption", **where)
                else:
                    fallbacks += 1
            if problem is not None:
                fail(problem)
                continue
            figure_id = f"{record['pdf_hash'].strip()}_{record['fig_uri'].strip()}"
            if figure_id in seen:
                fail(DataError(f"duplicate figure {figure_id} (first on line {seen[figure_id]})", field="fig_uri", **where))
                continue
            seen[figure_id] = line
            labels += figure_label(caption) is not None
            cleaned = clean_caption(caption, strip_label=strip_label)
            words = len(tokenize(cleaned))
            if words == 0:
                empty += 1
                continue
            if words > max_words:
                filtered += 1
                continue
            kept.append(
                {
                    "line": line,
                    "id": figure_id,
                    "pdf_hash": record["pdf_hash"].strip(),
                    "caption": caption,
                    "cleaned": cleaned,
                }
            )

        sampled_out = 0
        if len(kept) > opts["max_figures"]:
            chosen = np.sort(np.random.default_rng(split_seed).choice(len(kept), opts["max_figures"], replace=False))
            sampled_out = len(kept) - len(chosen)
            kept = [kept[i] for i in chosen]

        examples = []
        for item in kept:
            image = source_dir / FIGURES_DIR / item["id"]
            try:
                check_image(image, opts["check_images"], file=jsonl, record=f"line {item['line']}", field="fig_uri")
            except DataError as err:
                fail(err)
                continue
            examples.append(
                {
                    "id": item["id"],
                    "patient_id": item["pdf_hash"],
                    "image": str(image),
                    "report": item["caption"],
                    "report_clean": item["cleaned"],
                }
            )

        fractions = dict(zip(SPLIT_NAMES, VARIANT_FRACTIONS[variant]))
        assignment = dio.group_split([e["patient_id"] for e in examples], fractions, split_seed)
        splits: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLIT_NAMES}
        for example, split in zip(examples, assignment):
            splits[split].append(example)

        info: dict[str, Any] = {
            "dataset": self.name,
            "variant": variant,
            "split_seed": split_seed,
            "fractions": fractions,
            "split_grouping": "pdf_hash",
            "records": records,
            "filtered_long_captions": filtered,
            "empty_captions": empty,
            "max_words": max_words,
            "figure_labels": labels,
            "figure_labels_stripped": strip_label,
            "max_figures": opts["max_figures"],
            "sampled_out": sampled_out,
            "caption_fallbacks": fallbacks,
            "check_images": opts["check_images"],
        }
        truth = source_dir / synthetic.TRUTH_FILE
        if truth.is_file():
            info["truth_file"] = str(truth)
        return ReadResult(splits=splits, skipped=skipped, info=info)

    def check(self, source_dir: str | Path, *, variant: str = "", options: dict[str, Any] | None = None) -> CheckReport:
        return dio.check_by_reading(self, source_dir, variant=variant, options=options)

    # -- synthetic ------------------------------------------------------------
    def synthesize(self, out_dir: str | Path, *, num: int, seed: int, image_size: int = 256) -> Path:
        if num < 1:
            raise ValueError(f"num={num}: need at least one figure")
        out_dir = Path(out_dir)
        (out_dir / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        num_long = max(1, num // 20)
        long_positions = set(rng.choice(num + num_long, num_long, replace=False).tolist())
        truth: dict[str, dict[str, bool]] = {}
        lines = []
        pdf_hash = ""
        figure_in_paper = papers = 0
        label_rng = np.random.default_rng([seed, _LABEL_SEED_OFFSET])
        label_styles = [style for style, _ in _LABEL_STYLES]
        label_weights = np.array([weight for _, weight in _LABEL_STYLES])
        for index in range(num + num_long):
            # Papers hold 1-4 figures, so the grouped split has groups to keep.
            if figure_in_paper == 0:
                pdf_hash = rng.bytes(20).hex()
                figure_in_paper = int(rng.integers(1, 5))
                papers += 1
            figure_in_paper -= 1
            number = figure_in_paper + 1
            fig_uri = f"{index % 7 + 1}-Figure{number}-1.png"
            findings = synthetic.sample_findings(rng)
            caption = synthetic.write_report(findings, rng, "caption")
            if index in long_positions:
                caption = _long_caption(caption, findings, rng)
            style = label_styles[int(label_rng.choice(len(label_styles), p=label_weights / label_weights.sum()))]
            caption = style.format(n=number) + caption
            references = None
            if rng.random() < 0.6:
                references = [f"As shown in Figure {number}, {synthetic.write_report(findings, rng, 'impression').lower()}"]
            doi = f"10.0000/synthetic.{papers}"
            record = {
                "pdf_hash": pdf_hash,
                "fig_key": f"Figure{number}",
                "fig_uri": fig_uri,
                "s2_caption": caption,
                "s2orc_caption": caption if rng.random() < 0.8 else None,
                "s2orc_references": references,
                "radiology": True,
                "scope": False,
                "predicted_type": "Medical images",
                "oa_info": {
                    "doi": doi,
                    "doi_url": f"https://doi.org/{doi}",
                    "oa": {
                        "is_oa": True,
                        "oa_status": "gold",
                        "journal_is_oa": True,
                        "journal_is_in_doaj": True,
                        "license": "cc-by",
                        "provenance": "unpaywall",
                    },
                },
            }
            image = synthetic.draw_radiograph(findings, rng, size=image_size)
            (out_dir / FIGURES_DIR / f"{pdf_hash}_{fig_uri}").write_bytes(synthetic.encode_png(image))
            truth[f"{pdf_hash}_{fig_uri}"] = findings
            lines.append(_json_line(record))
        (out_dir / JSONL_NAME).write_text("".join(lines), encoding="utf-8")
        synthetic.write_truth(out_dir, truth, dataset=self.name, seed=seed)
        return out_dir


def _json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def _long_caption(caption: str, findings: dict[str, bool], rng: np.random.Generator) -> str:
    """A caption over the paper's 20-word limit (in cleaned words, label
    excluded), still describing `findings`."""
    text = f"{caption} {synthetic.write_report(findings, rng, 'findings')}"
    while len(tokenize(clean_caption(text))) <= synthetic.CAPTION_MAX_WORDS:
        text += " Image courtesy of the authors."
    return text


MEDICAT = MediCatSource()
DATASETS.register("medicat", MEDICAT)
