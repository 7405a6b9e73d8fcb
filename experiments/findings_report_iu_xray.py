"""Paper 003's findings -> template report on IU X-ray, for the comparison.

`experiments/findings_report_template.py` on the tree and scoring every system
of `make compare-iu-xray` shares (the paper-004 classifier, the structured
description, the template writer). Set `model.options.writer=openai` (with
`LLM_BASE_URL`/`LLM_MODEL`) or `keras_hub` to put an LLM writer on the board.

Table: the comparison leaderboard (`results/compare_iu_xray/leaderboard.md`); no paper
table to reproduce. Shared settings and choices: `experiments/_compare.py`.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper003")
    common = load_sibling(__file__, "_compare")
    config = shared.paper_config(name="findings_report_template", table="")
    config = common.on_iu_xray(config, name="findings_report_iu_xray", table="comparison on IU X-ray (no reference numbers: paper 003 reports none)")
    return common.smoke(shared.smoke_config(config)) if smoke else config
