"""Paper 004 on NIH ChestX-ray14: a transfer-learning findings classifier (CheXNet's recipe).

Tahami and Puranik, "ImageMedix: Using CNN Insights to Improve Medical
Imaging", propose a CNN with transfer learning on ChestX-ray8 (the first
release of these images), evaluated with accuracy, precision, recall and
other metrics, with visual explanations. The proposal reports no numbers;
the report's paper column holds CheXNet's per-label test AUROC (Rajpurkar
et al. 2017, Table 1; mean 0.841), the reference a ChestX-ray14 classifier
is measured against.

`make reproduce-findings` runs this file. Without a ChestX-ray14 download
(`data.source_dir` empty) it trains the scaled-down `SYNTHETIC_OVERRIDES`
of `experiments/_paper004.py` on a synthetic ChestX-ray14-format tree (the
tiny CNN, seven findings), whose numbers are not comparable with CheXNet's.
The paper preset needs the ImageNet DenseNet121 file (no top) in the Keras
cache; without it the run stops and says where to put the file. Choices
are in `CHOICES` and in every run's report.md.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper004")
    config = shared.paper_config(
        name="findings_chexnet",
        dataset="chestxray14",
        variant="official",
        paper_results=shared.CHEXNET_AUROC,
        table="CheXNet Table 1 (reference; the proposal reports no numbers)",
    )
    return shared.smoke_config(config) if smoke else config
