"""Paper 003 with the template writer on MIMIC-CXR, the dataset the proposal names first.

He, "Multi-modal Radiology Report Generation Using Image Classification and
LLMs" (Research Plan 1: MIMIC-CXR and CheXpert). `findings_report_template`
on MIMIC-CXR-JPG: the classifier learns the five CheXpert competition
findings from MIMIC-CXR's CheXpert labels (uncertain read as negative, the
reader's `uncertain_label` 0), the sentence bank is learned from the train
reports' `report_clean` (FINDINGS and IMPRESSION, R2Gen's MIMIC cleaner),
and the written reports are scored against the same `report_clean` paper
001's transformer is scored against, on the official split. Table: none to
reproduce (the proposal reports no numbers).

The studies are those medcap's MIMIC reader yields, the paper-001 join:
MIMIC-CXR-JPG studies linked to an emergency-department stay of
MIMIC-IV-ED, so `data.source_dir` must hold both releases (see
`medcap.data.mimic`); the join's exclusions are counted in data.json.
Without a download it runs on the synthetic MIMIC-format tree.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling

LABELS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper003")
    config = shared.paper_config(name="findings_report_template_mimic", table="findings -> report with the template writer on MIMIC-CXR (no reference numbers: the proposal reports none)")
    config.data.name = "mimic"
    config.data.variant = "official"
    config.data.options = {"labels": list(LABELS), "uncertain_label": 0}
    if smoke:
        config = shared.smoke_config(config)
        config.data.options = {"labels": list(LABELS), "uncertain_label": 0}
    return config
