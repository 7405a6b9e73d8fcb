"""Paper 003's findings -> template report on MIMIC's official split, for the comparison.

`experiments/findings_report_template_mimic.py` on the tree and scoring every
system of `make compare-mimic` shares.

Table: the comparison leaderboard (`results/compare_mimic/leaderboard.md`); no paper
table to reproduce (the proposal reports none). Shared settings and choices: `experiments/_compare.py`.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    config = load_sibling(__file__, "findings_report_template_mimic").get_config(smoke)
    return load_sibling(__file__, "_compare").on_mimic(config, name="findings_report_mimic", table="comparison on MIMIC (no reference numbers: paper 003 reports none)")
