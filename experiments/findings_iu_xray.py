"""Paper 004 on IU X-ray: the findings classifier on labels our labeler reads from the reports.

IU X-ray ships no finding labels; `data.options.findings = medcap_labeler`
labels each report with medcap's rule-based CheXpert-14 labeler (ours, not
the CheXpert labeler: numbers are comparable between medcap runs only),
uncertain mentions ignored (U-Ignore). R2Gen's split, the first (frontal)
view, the five findings the synthetic and the real reports both name
often. Otherwise `experiments/findings_chexnet.py`'s classifier. Without an
IU X-ray download it trains on the synthetic IU X-ray-format tree.

Table: none to reproduce (the proposal reports no numbers); report.md gives
per-label AUROC with intervals, the threshold metrics, calibration,
localisation and the randomisation check, beside the baselines.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling

LABELS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper004")
    config = shared.paper_config(name="findings_iu_xray", dataset="iu_xray", variant="r2gen", table="findings classifier on IU X-ray (no reference numbers: the proposal reports none)")
    config.data.options = {"findings": "medcap_labeler", "labels": list(LABELS), "uncertain": "ignore", "blank": "zeros"}
    config.synthetic_overrides = tuple(o for o in config.synthetic_overrides if not o.startswith("data.options"))
    if smoke:
        config = shared.smoke_config(config)
        config.data.options = {"findings": "medcap_labeler", "labels": list(LABELS)}
    return config
