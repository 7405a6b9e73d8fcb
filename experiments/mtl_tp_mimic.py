"""Paper 001's MTL-TP transformer on MIMIC's official split, for the comparison (`make compare-mimic`).

The cross-modal multi-task model of `experiments/mtl_tp.py` (report, acuity
and findings from the image and the ED triage data), trained as the paper's
MTL-TP, on the split and scoring every system of `make compare-mimic` shares;
its reports keep their sentence-final periods so that it is scored against
the same `report_clean` text as the others.

Table: the comparison leaderboard (`results/compare_mimic/leaderboard.md`); the paper's
Table 1 is on its own balanced 10k split. Shared settings and choices: `experiments/_compare.py`.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    config = load_sibling(__file__, "mtl_tp").get_config(smoke)
    config.model.options = {**config.model.options, "keep_punctuation": True}
    return load_sibling(__file__, "_compare").on_mimic(config, name="mtl_tp_mimic", table="comparison on MIMIC (official split)")
