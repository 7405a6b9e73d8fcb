"""Paper 001, MTL-TP loss-weight sweep: Aksoy, Sharoff, Ravikumar, "Enhancing
Image-to-Text Generation in Radiology Reports through Cross-modal Multi-Task
Learning", section 3.1.

The paper explored "various approaches" to the loss weights and kept
alpha (ITG) > beta (OC) > gamma (ML), without values. Our MTL-TP uses
(1.0, 0.5, 0.25); this sweep trains the orderings in `SWEEP` (run each with
`--set model.options.loss_weights=[a,b,g]` into `results/mtl/sweep/<name>`;
`python -m medcap.models.mtl_report results/mtl` adds a sweep table). The
paper's MTL-TP numbers (Tables 1, 3, 4) are the reference:

    Table 1  BLEU-1 0.3424  BLEU-2 0.2295  BLEU-3 0.1616  BLEU-4 0.1035  ROUGE-L 0.3366
    Table 3  F1 0.6694      Table 4  accuracy 0.8640

Without a MIMIC download each run uses the scaled-down synthetic overrides.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling

#: name -> (alpha, beta, gamma); every one keeps alpha > beta > gamma but the last,
#: which checks the paper's claim that prioritising ITG beats equal weights.
SWEEP: dict[str, tuple[float, float, float]] = {
    "a1_b0.5_g0.25": (1.0, 0.5, 0.25),
    "a1_b0.3_g0.1": (1.0, 0.3, 0.1),
    "a1_b0.7_g0.4": (1.0, 0.7, 0.4),
    "a1_b0.5_g0.1": (1.0, 0.5, 0.1),
    "a1_b1_g1": (1.0, 1.0, 1.0),
}



def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper001")
    config = shared.paper_config(
        name="mtl_tp_sweep",
        tasks=("report", "acuity", "findings"),
        loss_weights=shared.TP_WEIGHTS,
        regime="",  # derived from the weights of each sweep run
        label="MTL-TP loss-weight sweep",
        paper_results=shared._paper("MTL-TP"),
    )
    return shared.smoke_config(config) if smoke else config
