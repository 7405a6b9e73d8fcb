"""Shared settings of the comparison experiments: every system on one IU X-ray or MIMIC split.

Not an experiment itself (the leading underscore keeps it out of
`medcap experiments`). `<system>_iu_xray` and `<system>_mimic` experiments take a paper's own
config and change only what must agree for `medcap compare` to put them on
one leaderboard: the data (IU X-ray under R2Gen's split, or MIMIC-CXR joined
with MIMIC-IV-ED under the official split; the same synthetic tree),
the scored text (`report_clean`), and the scoring (pycocoevalcap BLEU, the
R2Gen convention for uncertain CE labels, the trivial baselines). Training
settings stay each paper's own scaled-down synthetic ones.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig

#: What every comparison run reads when no IU X-ray download is configured:
#: one synthetic tree, with realistic report variety (normal templates,
#: pertinent negatives; `medcap.data.synthetic`), so text metrics can
#: separate a system that reads the image from a constant report.
SYNTHETIC_DATA = (
    "data.synthetic_num=600",
    "data.synthetic_seed=0",
    "data.synthetic_image_size=64",
    "data.synthetic_reports=realistic",
)
#: Overrides of each paper's scaled-down run that the shared data replaces.
_REPLACED = ("data.synthetic_num", "data.synthetic_seed", "data.synthetic_image_size", "data.synthetic_reports")

CHOICES = (
    "Comparison (ours): every system reads IU X-ray under R2Gen's split (variant r2gen; with no download, one "
    "synthetic tree of 600 studies with realistic report variety, data seed 0) and is scored against the same "
    "report_clean texts (R2Gen's cleaner) with pycocoevalcap (coco) BLEU, METEOR, ROUGE-L, CIDEr and medcap's "
    "rule-based CE (uncertain read as negative, R2Gen's convention); trivial baselines constant and random_train "
    "(and nearest_train where the system has image features). Single-image systems read each study's first, "
    "frontal view (R2Gen's 0.png). Training settings are each paper's own.",
)


def _onto(config: ExperimentConfig, dataset: str, variant: str, synthetic: tuple[str, ...], shared_choices: tuple[str, ...], *, name: str, table: str, choices: tuple[str, ...]) -> ExperimentConfig:
    """`config` moved onto one comparison's data, split and scoring (its training untouched)."""
    config.name = name
    config.table = table
    config.paper_results = {}
    config.data.name = dataset
    config.data.variant = variant
    config.data.split_seed = 0
    config.eval.split = "test"
    config.eval.bleu_flavour = "coco"
    config.eval.ce_uncertain = 0
    kept = tuple(o for o in config.synthetic_overrides if not o.startswith(_REPLACED))
    config.synthetic_overrides = kept + synthetic
    config.choices = tuple(config.choices) + shared_choices + tuple(choices)
    return config


def on_iu_xray(config: ExperimentConfig, *, name: str, table: str, choices: tuple[str, ...] = ()) -> ExperimentConfig:
    """`config` moved onto the shared IU X-ray split and scoring."""
    return _onto(config, "iu_xray", "r2gen", SYNTHETIC_DATA, CHOICES, name=name, table=table, choices=choices)


def smoke(config: ExperimentConfig) -> ExperimentConfig:
    """After the paper's own smoke settings: every smoke comparison run reads one small tree."""
    config.data.synthetic_num = 120
    config.data.synthetic_seed = 0
    config.data.synthetic_image_size = 64
    config.data.synthetic_reports = "realistic"
    return config


#: The MIMIC comparison's synthetic tree (MIMIC-CXR-JPG + reports + MIMIC-IV-ED format).
MIMIC_SYNTHETIC_DATA = (
    "data.synthetic_num=1000",
    "data.synthetic_seed=0",
    "data.synthetic_image_size=64",
    "data.synthetic_reports=realistic",
)

MIMIC_CHOICES = (
    "Comparison on MIMIC (ours): every system reads MIMIC-CXR joined with MIMIC-IV-ED (paper 001's reader: a "
    "study outside any ED stay is excluded, counted in data.json) under MIMIC-CXR's official split (variant "
    "official); with no download, one synthetic tree of 1,000 studies with realistic report variety; scored "
    "against report_clean like the IU X-ray comparison. Paper 001's transformer keeps its sentence-final periods "
    "here (keep_punctuation), so that it is scored against the same text as the others.",
)


def on_mimic(config: ExperimentConfig, *, name: str, table: str, choices: tuple[str, ...] = ()) -> ExperimentConfig:
    """`config` moved onto the shared MIMIC split and scoring (smoke: one 150-study tree)."""
    config = _onto(config, "mimic", "official", MIMIC_SYNTHETIC_DATA, MIMIC_CHOICES, name=name, table=table, choices=choices)
    if config.smoke:
        smoke(config)
        config.data.synthetic_num = 150
    return config
