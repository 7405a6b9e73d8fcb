"""Paper 002's dual encoder (proposed method) on IU X-ray's R2Gen split, for the comparison.

`experiments/clip_densenet.py` reads paper 002's own 7:2:1 split; this run
reads R2Gen's, the split every system of `make compare-iu-xray` shares, and
retrieves the nearest train report for each test study's frontal view.

Table: the comparison leaderboard (`results/compare_iu_xray/leaderboard.md`); no paper
table to reproduce. Shared settings and choices: `experiments/_compare.py`.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    proposed = load_sibling(__file__, "clip_densenet")
    common = load_sibling(__file__, "_compare")
    config = proposed.paper_config(name="clip_densenet", variant="proposed", table="", paper_results={})
    config = common.on_iu_xray(config, name="clip_iu_xray", table="comparison on IU X-ray, R2Gen's split (paper 002 reports its own 7:2:1 split)")
    return common.smoke(proposed.smoke_config(config)) if smoke else config
