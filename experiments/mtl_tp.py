"""Paper 001, MTL-TP: Aksoy, Sharoff, Ravikumar, "Enhancing Image-to-Text
Generation in Radiology Reports through Cross-modal Multi-Task Learning".

One model trained on all three tasks with text generation prioritised,
alpha (ITG) > beta (OC) > gamma (ML) (section 3.1). The paper gives only the
order; our values are (alpha, beta, gamma) = (1.0, 0.5, 0.25) and
`experiments/mtl_tp_sweep.py` lists a small sweep. The paper reports for MTL-TP:

    Table 1  BLEU-1 0.3424  BLEU-2 0.2295  BLEU-3 0.1616  BLEU-4 0.1035
             BERTScore F1 0.2065  Bio-ClinicalBERTScore F1 0.7898  ROUGE-L 0.3366
    Table 2  p-values STL vs MTL-TP: BLEU-1 0.00117  BLEU-2 0.00006  BLEU-3 0.00035
             BLEU-4 0.02569  BERTScore 0.83824  Bio-ClinicalBERTScore 0.00611  ROUGE-L 0.00000
    Table 3  precision 0.6603  recall 0.6775  F1 0.6694  Hamming 0.1598  exact match 0.8402
    Table 4  accuracy 0.8640  MAE 0.1360  ACC+Corr 0.8005

Without a MIMIC download it trains the scaled-down `synthetic_overrides` on
synthetic MIMIC-format data (numbers not comparable with the paper's). Our
choices are in `experiments/_paper001.py` (`CHOICES`).
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper001")
    paper = shared._paper("MTL-TP")
    paper.update({f"p_stl_vs_tp/{key}": value for key, value in shared.PAPER_P_VALUES.items()})
    config = shared.paper_config(
        name="mtl_tp",
        tasks=("report", "acuity", "findings"),
        loss_weights=shared.TP_WEIGHTS,
        regime="MTL-TP",
        label="MTL-TP",
        paper_results=paper,
    )
    return shared.smoke_config(config) if smoke else config
