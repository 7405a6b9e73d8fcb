"""Paper 001, MTL-EQ: Aksoy, Sharoff, Ravikumar, "Enhancing Image-to-Text
Generation in Radiology Reports through Cross-modal Multi-Task Learning".

One model trained on all three tasks with equal loss weights
(alpha = beta = gamma = 1): report generation (ITG), ordinal acuity (OC),
multi-label findings (ML), on the balanced 7,000 / 2,000 / 1,000 MIMIC-CXR +
MIMIC-IV-ED subset. The paper reports for MTL-EQ:

    Table 1  BLEU-1 0.3352  BLEU-2 0.2229  BLEU-3 0.1570  BLEU-4 0.0983
             BERTScore F1 0.1958  Bio-ClinicalBERTScore F1 0.7883  ROUGE-L 0.3235
    Table 3  precision 0.6502  recall 0.6641  F1 0.6562  Hamming 0.1618  exact match 0.8382
    Table 4  accuracy 0.8553  MAE 0.1447  ACC+Corr 0.7907

`make reproduce-mtl` runs this file with STL and MTL-TP. Without a MIMIC
download (`data.source_dir` empty) it trains the scaled-down
`synthetic_overrides` on the synthetic MIMIC-format dataset, whose numbers
are not comparable with the paper's. Our choices where the paper is silent
are in `experiments/_paper001.py` (`CHOICES`) and in every run's report.md.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper001")
    config = shared.paper_config(
        name="mtl_eq",
        tasks=("report", "acuity", "findings"),
        loss_weights=(1.0, 1.0, 1.0),
        regime="MTL-EQ",
        label="MTL-EQ",
        paper_results=shared._paper("MTL-EQ"),
    )
    return shared.smoke_config(config) if smoke else config
