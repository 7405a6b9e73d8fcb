"""Paper 000, Model-70: Model-80 (experiments/model80.py, where the paper,
the model and the data are described) on MediCat split 70/15/15 (section 4.4)
with batch 128 (Table 2, printed ".28"; the text of section 4.2 says 32).
The paper reports:

    Table 2  Model-70  accuracy 0.3936  precision 0.6336  recall 0.1849  F1 0.2862
    Table 3  Model-70  BLEU-1 0.310  BLEU-2 0.207

`make reproduce-model70` runs this file; choices are in
`experiments/_paper000.py` (`CHOICES`) and in every run's report.md.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper000")
    config = shared.paper_config(
        name="model70",
        variant="model70",
        batch_size=128,
        preset="model70",
        paper_results={
            "accuracy": 0.3936,
            "precision": 0.6336,
            "recall": 0.1849,
            "f1": 0.2862,
            "Bleu_1": 0.310,
            "Bleu_2": 0.207,
        },
    )
    return shared.smoke_config(config) if smoke else config
