"""Shared by paper 004's experiments (findings_chexnet, findings_mimic, findings_iu_xray).

Tahami and Puranik, "ImageMedix: Using CNN Insights to Improve Medical
Imaging": a transfer-learning CNN that classifies medical images and shows
what drove each decision. The proposal names its data (ChestX-ray8, TCIA)
and metrics (accuracy, precision, recall "and other relevant metrics") and
nothing else; every choice below is ours, made as CheXNet (Rajpurkar et al.
2017) and its successors do, and written into each run's report.md.
"""

from __future__ import annotations

from medcap.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, TrainConfig

PAPER = "004 Tahami, Puranik: ImageMedix: Using CNN Insights to Improve Medical Imaging"

#: CheXNet's per-label test AUROC on ChestX-ray14 (Rajpurkar et al. 2017, Table 1), keyed as
#: our metrics are; shown as the report's paper column for a ChestX-ray14 run.
CHEXNET_AUROC: dict[str, float] = {
    "auroc/Atelectasis": 0.8094,
    "auroc/Cardiomegaly": 0.9248,
    "auroc/Effusion": 0.8638,
    "auroc/Infiltration": 0.7345,
    "auroc/Mass": 0.8676,
    "auroc/Nodule": 0.7802,
    "auroc/Pneumonia": 0.7680,
    "auroc/Pneumothorax": 0.8887,
    "auroc/Consolidation": 0.7901,
    "auroc/Edema": 0.8878,
    "auroc/Emphysema": 0.9371,
    "auroc/Fibrosis": 0.8047,
    "auroc/Pleural_Thickening": 0.8062,
    "auroc/Hernia": 0.9164,
    "auroc_macro": 0.841,
}

CHOICES = (
    "Data: the proposal names ChestX-ray8, the first (8-label) release of the NIH images; we read its "
    "successor ChestX-ray14 (same images, 14 labels, Data_Entry_2017[_v2020].csv) with the official "
    "train_val/test lists, validation = 10% of train_val by patient (split_seed 0). CHESTXRAY8_LABELS as "
    "data.options.labels reads the eight. TCIA collections read through the labelled_images reader.",
    "Model: CheXNet's recipe (the proposal names no architecture): DenseNet121 pretrained on ImageNet, "
    "global average pooling, one sigmoid output per finding, 224 x 224 RGB input with DenseNet's own "
    "ImageNet normalisation inside the model; EfficientNetB0 and ResNet50 presets as alternatives.",
    "Transfer learning: 2 epochs training the head with the backbone frozen (Adam 1e-3), then fine-tuning "
    "the whole backbone at 1e-4; batch normalisation of the pretrained backbone stays frozen (inference "
    "mode) throughout; best epoch by validation AUROC; early stopping after 5 epochs without improvement.",
    "Loss: CheXNet's weighted binary cross-entropy, w+ = |N|/(|P|+|N|) and w- = |P|/(|P|+|N|) per label "
    "on the train split; masked for labels the release leaves uncertain or blank under the policy "
    "(U-Ignore, blank = negative).",
    "Augmentation: rotation up to 7 degrees, shift up to 5%, zoom up to 10%, brightness and contrast "
    "jitter; no vertical flips, and no horizontal flips either (CheXNet flipped horizontally; laterality "
    "matters, so we do not).",
    "Evaluation: per-label AUROC and AUPRC with 1,000-resample percentile bootstrap intervals; thresholds "
    "chosen per label on validation (maximum F1), then accuracy, precision, recall, F1 (the proposal's "
    "metrics) on test; macro and micro means; expected calibration error over 10 bins; baselines: the "
    "train-prevalence classifier and a logistic-regression probe on the untrained backbone's features.",
    "Explanations: Grad-CAM on the last convolutional block, measured against the boxes (NIH's, or every "
    "drawn lesion of a synthetic tree) with the pointing game (the map's maximum inside a box, no "
    "tolerance) and IoU at half the map's range; pointing-game baselines: the image centre, and a pixel "
    "drawn uniformly (its expected hit rate, the share of the image inside the boxes), which is the fair "
    "one for findings whose boxes always hold the centre (an enlarged heart, perihilar oedema), where the "
    "centre point hits every time.",
)

#: The scaled-down run when no dataset is configured: the tiny CNN on 600 synthetic ChestX-ray14-format
#: images drawn at 64 px, the seven findings the synthetic images carry, no frozen phase (its backbone
#: is random, there is nothing to transfer). 40 epochs: at 20 the trained network's mean AUROC (0.86)
#: stayed below a logistic-regression probe on its untrained features (0.89); at 40 it was 0.92.
SYNTHETIC_OVERRIDES = (
    "data.synthetic_num=600",
    "data.synthetic_image_size=64",
    "data.image_size=[64,64]",
    'data.options={"labels": ["Atelectasis", "Cardiomegaly", "Effusion", "Nodule", "Pneumothorax", "Consolidation", "Edema"]}',
    "model.preset=tiny",
    "model.encoder_weights=auto",
    "train.epochs=40",
    "train.frozen_epochs=0",
    "train.batch_size=32",
    "train.learning_rate=0.003",
    "train.early_stopping_patience=0",
    "eval.bootstrap=200",
)


def paper_config(*, name: str, dataset: str, variant: str = "", labels=None, paper_results=None, table: str = "") -> ExperimentConfig:
    options = {} if labels is None else {"labels": list(labels)}
    return ExperimentConfig(
        name=name,
        paper=PAPER,
        table=table,
        paper_results=dict(paper_results or {}),
        choices=CHOICES,
        synthetic_overrides=SYNTHETIC_OVERRIDES,
        data=DataConfig(
            name=dataset,
            variant=variant,
            split_seed=0,
            image_size=(224, 224),
            normalization="none",
            augment=True,
            options=options,
        ),
        model=ModelConfig(name="findings_classifier", preset="chexnet", encoder_weights="auto", options={"label_weighting": "chexnet"}),
        train=TrainConfig(
            epochs=20,
            frozen_epochs=2,
            fine_tune_from="",
            fine_tune_learning_rate=1e-4,
            batch_size=16,
            learning_rate=1e-3,
            optimizer="adam",
            monitor="val_auc",
            early_stopping_patience=5,
            restore_best_weights=True,
        ),
        eval=EvalConfig(split="test", bootstrap=1000, threshold_rule="f1", label_baselines=("prevalence", "linear_probe")),
    )


def smoke_config(config: ExperimentConfig) -> ExperimentConfig:
    """Synthetic data, the tiny CNN at 32 px, a head phase and a fine-tune phase of a few steps."""
    config.smoke = True
    config.data.source_dir = ""
    config.data.synthetic_num = 120
    config.data.synthetic_image_size = 64
    config.data.image_size = (32, 32)
    config.data.options = {"labels": ["Atelectasis", "Cardiomegaly", "Effusion", "Nodule", "Pneumothorax", "Consolidation", "Edema"]}
    config.model.preset = "tiny"
    config.model.encoder_weights = "none"
    config.train.epochs = 2
    config.train.frozen_epochs = 1
    config.train.fine_tune_from = "block2"
    config.train.batch_size = 16
    config.train.steps_per_epoch = 3
    config.train.learning_rate = 3e-3
    config.train.early_stopping_patience = 0
    config.train.tensorboard = False
    config.eval.bootstrap = 20
    return config
