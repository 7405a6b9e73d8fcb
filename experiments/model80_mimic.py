"""Paper 000's Model-80 captioner on MIMIC's official split, for the comparison (`make compare-mimic`).

As `experiments/model80_iu_xray.py`: VGG16 fc2 features of each study's
frontal image, the vocabulary from the train reports, at most 60 cleaned words.

Table: the comparison leaderboard (`results/compare_mimic/leaderboard.md`); no paper
table to reproduce. Shared settings and choices: `experiments/_compare.py`.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    config = load_sibling(__file__, "model80_iu_xray").get_config(smoke)
    config.choices = tuple(c for c in config.choices if not c.startswith("Comparison (ours)"))
    return load_sibling(__file__, "_compare").on_mimic(config, name="model80_mimic", table="comparison on MIMIC (no reference numbers: paper 000 reports none on MIMIC)")
