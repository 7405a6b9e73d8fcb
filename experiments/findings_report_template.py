"""Paper 003 with the template writer: findings -> structured description -> report, on IU X-ray.

He, "Multi-modal Radiology Report Generation Using Image Classification and
LLMs": a classifier's findings become structured descriptions and a writer
turns them into the report. This experiment writes with the deterministic
template writer (sentences learned from the train reports with our
labeler), the baseline any LLM writer must beat and the embedded default;
its faithfulness is 1.0 by construction. Table: none to reproduce (the
proposal reports no numbers); report.md gives BLEU-1..4, METEOR, ROUGE-L,
CIDEr, clinical efficacy and faithfulness beside the trivial baselines.

`make reproduce-findings-report` runs it on a synthetic IU X-ray-format
tree (`experiments/_paper003.py`'s `SYNTHETIC_OVERRIDES`) unless
`IU_XRAY_DIR` names a download. Choices are in `CHOICES`.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper003")
    config = shared.paper_config(name="findings_report_template", table="findings -> report with the template writer (no reference numbers: the proposal reports none)")
    return shared.smoke_config(config) if smoke else config
