"""Paper 002's dual encoder (proposed method) on MIMIC's official split, for the comparison.

Retrieves the nearest train report for each test study's frontal image, on the
split and scoring every system of `make compare-mimic` shares.

Table: the comparison leaderboard (`results/compare_mimic/leaderboard.md`); paper 002
reports IU X-ray only. Shared settings and choices: `experiments/_compare.py`.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    config = load_sibling(__file__, "clip_densenet").get_config(smoke)
    return load_sibling(__file__, "_compare").on_mimic(config, name="clip_mimic", table="comparison on MIMIC (paper 002 reports IU X-ray only)")
