"""Paper 001, MTL-TP without the ICD title: Aksoy, Sharoff, Ravikumar,
"Enhancing Image-to-Text Generation in Radiology Reports through Cross-modal
Multi-Task Learning".

Not a run of the paper: MTL-TP (experiments/mtl_tp.py, Tables 1, 3 and 4)
with `model.options.use_icd_title = false`. The primary ED diagnosis title
is one of the paper's 10 features (section 4.1), but it is coded during the
ED stay and can name the finding the model is asked to predict or report
("Pleural effusion, not elsewhere classified", "Acute pulmonary edema").
Training the same model without it shows how much of MTL-TP's result rests
on that input. Everything else, the loss weights included, is MTL-TP's; the
`paper_results` beside it are the paper's MTL-TP numbers (with the ICD
title), for comparison. Run it with `medcap train mtl_tp_no_icd --workdir
results/mtl/tp_no_icd`. Without a MIMIC download it trains the scaled-down
`synthetic_overrides` on synthetic MIMIC-format data (numbers not comparable
with the paper's). Our choices are in `experiments/_paper001.py` (`CHOICES`).
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper001")
    config = shared.paper_config(
        name="mtl_tp_no_icd",
        tasks=("report", "acuity", "findings"),
        loss_weights=shared.TP_WEIGHTS,
        regime="MTL-TP (no ICD title)",
        label="MTL-TP without the ICD title input, ours; paper numbers are MTL-TP's",
        paper_results=shared._paper("MTL-TP"),
    )
    config.model.options = {**config.model.options, "use_icd_title": False}
    return shared.smoke_config(config) if smoke else config
