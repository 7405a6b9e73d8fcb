"""Shared by paper 003's experiments (findings_report_template; the LLM writers build on it).

He, "Multi-modal Radiology Report Generation Using Image Classification and
LLMs" (a PhD research proposal): a CNN or ViT classifies findings such as
atelectasis, cardiomegaly and pneumothorax; the findings become structured
descriptions; GPT-4, guided by in-context instruction learning and chain of
thought, writes the report; BLEU, METEOR and clinical efficacy (precision,
recall, F1) measure it, with radiologists' review planned. It reports no
numbers and fixes no details: every choice below is ours.
"""

from __future__ import annotations

from medcap.config import (
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
    load_sibling,
)

PAPER = "003 He: Multi-modal Radiology Report Generation Using Image Classification and LLMs"

#: The seven findings the classifier scores: the proposal names atelectasis, cardiomegaly and
#: pneumothorax "such as"; these are the labeler's observations IU X-ray and the synthetic reports state.
LABELS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion", "Lung Lesion", "Pneumothorax")

CHOICES = (
    "Data: IU X-ray, R2Gen's split (the proposal names MIMIC-CXR and CheXpert; IU X-ray is the dataset "
    "every medcap system is compared on, and the only one with a public report release). Finding labels "
    "come from medcap's rule-based CheXpert-14 labeler run on each report (ours, not CheXpert's labeler), "
    "uncertain mentions ignored in training (U-Ignore); the first (frontal) view is classified.",
    "Stage 1, classifier: paper 004's (CheXNet's recipe: DenseNet121 pretrained on ImageNet, head 2 epochs "
    "frozen, then fine-tuned at 1e-4, CheXNet-weighted masked BCE), seven findings; thresholds chosen per "
    "finding on validation (maximum F1).",
    "Stage 2, structured description: per finding, probability, decision at its threshold, state (present "
    "when decided, else absent; model.options.uncertain_below = 0.5 would state decisions below one half as "
    "uncertain, which CE, reading hedges as negative, penalises), ChatCAD's graded words (below 0.2 'no sign of', "
    "0.2-0.5 'small possibility of', 0.5-0.9 'likely', 0.9 and above 'definite'), and the Grad-CAM peak of "
    "each decided finding as image side (the image's left is the patient's right) and third.",
    "Stage 3, template writer: per finding and state, the most frequent train sentence (seen at least twice) "
    "our labeler labels with exactly that finding in that state, else a fixed sentence; heart, lungs, pleura, "
    "bones order; a section whose findings are all absent gets its most frequent normal sentence ('the lungs "
    "are clear'). No impression: R2Gen's IU X-ray references are the findings section.",
    "Evaluation: BLEU-1..4 (pycocoevalcap), METEOR, ROUGE-L, CIDEr and clinical efficacy (our labeler, five "
    "observations, micro and macro, uncertain = negative) against report_clean, with the constant and "
    "random_train baselines; faithfulness (our labeler on the written report against the description it "
    "was written from). The classifier's AUROC table is in classifier/report.md.",
)

#: The scaled-down run on a synthetic IU X-ray-format tree: paper 004's synthetic default (the tiny CNN
#: at 64 px, 40 epochs, no frozen phase) on 600 studies.
SYNTHETIC_OVERRIDES = tuple(o for o in load_sibling(__file__, "_paper004").SYNTHETIC_OVERRIDES if not o.startswith("data.options"))


def paper_config(*, name: str, table: str, writer_options: dict | None = None) -> ExperimentConfig:
    findings = load_sibling(__file__, "_paper004")
    base = findings.paper_config(name=name, dataset="iu_xray", variant="r2gen")
    return ExperimentConfig(
        name=name,
        paper=PAPER,
        table=table,
        choices=CHOICES,
        synthetic_overrides=SYNTHETIC_OVERRIDES,
        data=DataConfig(
            name="iu_xray",
            variant="r2gen",
            split_seed=0,
            image_size=(224, 224),
            normalization="none",
            augment=True,
            options={"findings": "medcap_labeler", "labels": list(LABELS), "uncertain": "ignore", "blank": "zeros"},
        ),
        model=ModelConfig(
            name="findings_to_report",
            preset="chexnet",
            encoder_weights="auto",
            options={"label_weighting": "chexnet", "writer": "template", **(writer_options or {})},
        ),
        train=TrainConfig(**{**base.train.__dict__}),
        eval=EvalConfig(
            split="test",
            bootstrap=1000,
            threshold_rule="f1",
            baselines=("constant", "random_train"),
            label_baselines=("prevalence", "linear_probe"),
        ),
    )


def smoke_config(config: ExperimentConfig) -> ExperimentConfig:
    """Synthetic IU X-ray, the tiny CNN at 32 px, a head and a fine-tune phase of a few steps."""
    findings = load_sibling(__file__, "_paper004")
    config = findings.smoke_config(config)
    config.data.options = {"findings": "medcap_labeler", "labels": list(LABELS)}
    return config
