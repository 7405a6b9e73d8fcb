"""Paper 000's Model-80 captioner on IU X-ray, for the comparison (`make compare-iu-xray`).

The Model-80 architecture and training of `experiments/model80.py` (VGG16 fc2
features + BiLSTM/attention next-word decoder, beam 3) on IU X-ray's R2Gen
split instead of MediCat captions: the features of each study's frontal view,
the vocabulary from the IU X-ray train reports, reports of up to 60 cleaned
words (R2Gen's max_seq_length; longer train reports are cut, references stay
whole). No paper numbers: paper 000 reports none on IU X-ray.

Table: the comparison leaderboard (`results/compare_iu_xray/leaderboard.md`); no paper
table to reproduce. Shared settings and choices: `experiments/_compare.py`.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper000")
    common = load_sibling(__file__, "_compare")
    config = shared.paper_config(name="model80", variant="model80", batch_size=64, preset="model80", paper_results={})
    config.data.options = {}
    config.model.options = {**config.model.options, "max_words": 60}
    config = common.on_iu_xray(
        config,
        name="model80_iu_xray",
        table="comparison on IU X-ray (no reference numbers: paper 000 reports none on IU X-ray)",
        choices=(
            "Model-80 on IU X-ray (ours): reports of at most 60 cleaned words decoded (R2Gen's max_seq_length); "
            "longer train reports are cut to their first 60 words with no end token; references stay whole.",
        ),
    )
    return common.smoke(shared.smoke_config(config)) if smoke else config
