"""Paper 000, Model-80: Kanavos, Vonitsanos, Mylonas, "Integrating Convolutional
and Recurrent Neural Networks for Enhanced Medical Image Captioning".

VGG16 fc2 features (4096-d; VGG16 is our inference, the paper names no CNN) +
Embedding/BiLSTM/attention next-word decoder on MediCat captions of at most
20 cleaned words, figure labels removed, split 80/10/10 (section 4.4), batch 64
(Table 2; the text of section 4.2 says 32). The paper reports:

    Table 2  Model-80  accuracy 0.4941  precision 0.7095  recall 0.3031  F1 0.4244
    Table 3  Model-80  BLEU-1 0.309  BLEU-2 0.205

`make reproduce-model80` runs this file. Without a MediCat download
(`data.source_dir` empty) it trains the scaled-down `synthetic_overrides` on
the synthetic MediCat-format dataset, whose numbers are not comparable with
the paper's. The choices we made where the paper is silent are in
`experiments/_paper000.py` (`CHOICES`) and in every run's report.md.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper000")
    config = shared.paper_config(
        name="model80",
        variant="model80",
        batch_size=64,
        preset="model80",
        paper_results={
            "accuracy": 0.4941,
            "precision": 0.7095,
            "recall": 0.3031,
            "f1": 0.4244,
            "Bleu_1": 0.309,
            "Bleu_2": 0.205,
        },
    )
    return shared.smoke_config(config) if smoke else config
