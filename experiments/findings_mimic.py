"""Paper 004 on MIMIC-CXR-JPG: the findings classifier on CheXpert labels.

The classifier of `experiments/findings_chexnet.py` (DenseNet121 from
ImageNet, head then fine-tuning) on every frontal (PA/AP) MIMIC-CXR-JPG
image with its study's CheXpert labels (`mimic_cxr_labels`: the metadata,
CheXpert and split CSVs of MIMIC-CXR-JPG 2.0.0; the official split),
CheXpert's five competition findings, uncertain labels ignored (U-Ignore,
masked in the loss and the metrics). No reference numbers are printed: the
proposal reports none, and CheXNet's table is ChestX-ray14's. Without a
MIMIC-CXR download it trains on the synthetic MIMIC-format tree.

Table: none to reproduce (the proposal reports no numbers); report.md gives
per-label AUROC with intervals, the threshold metrics, calibration,
localisation and the randomisation check, beside the baselines.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling

LABELS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper004")
    config = shared.paper_config(
        name="findings_mimic", dataset="mimic_cxr_labels", variant="official", labels=LABELS, table="findings classifier on MIMIC-CXR-JPG (no reference numbers: the proposal reports none)"
    )
    config.data.options = {**config.data.options, "uncertain": "ignore", "blank": "zeros"}
    config.synthetic_overrides = tuple(o for o in config.synthetic_overrides if not o.startswith("data.options"))
    if smoke:
        config = shared.smoke_config(config)
        config.data.options = {"labels": list(LABELS)}
    return config
