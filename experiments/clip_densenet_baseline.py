"""Paper 002, Table 3's "DenseNet" row: Rahman, Lee, Kim, "Leveraging Contrastive
Learning and Domain Prompts for Efficient Radiology Report Generation".

The same dual encoder and training as `experiments/clip_densenet.py`, with
the vision tower reduced to plain DenseNet121 + global average pooling
(no multi-scale block, no channel/spatial attention, no adaptive pooling).
The paper reports (Table 3, ablation on IU X-ray):

    DenseNet         BLEU-1 0.39  BLEU-2 0.13  BLEU-3 0.10  BLEU-4 0.07  ROUGE 0.30  METEOR 0.15
    Proposed method  BLEU-1 0.48  BLEU-2 0.31  BLEU-3 0.22  BLEU-4 0.18  ROUGE 0.37  METEOR 0.22

(Section 5.1 calls the 0.39 -> 0.48 change "BLEU-4"; those are the BLEU-1
column's values. The DenseNet row from BLEU-2 on equals Table 1's Show-Tell
row.) Choices where the paper is silent: `CHOICES` in clip_densenet.py.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling

#: Table 3, "DenseNet" row, pycocoevalcap key names.
DENSENET_RESULTS = {
    "Bleu_1": 0.39,
    "Bleu_2": 0.13,
    "Bleu_3": 0.10,
    "Bleu_4": 0.07,
    "ROUGE_L": 0.30,
    "METEOR": 0.15,
}



def get_config(smoke: bool = False) -> ExperimentConfig:
    proposed = load_sibling(__file__, "clip_densenet")
    config = proposed.paper_config(
        name="clip_densenet_baseline",
        variant="baseline",
        table="Table 3",
        paper_results=dict(DENSENET_RESULTS),
    )
    return proposed.smoke_config(config) if smoke else config
