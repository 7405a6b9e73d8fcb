"""Shared config of paper 001's regimes (experiments/mtl_stl.py, mtl_eq.py, mtl_tp.py, mtl_tp_sweep.py, mtl_tp_no_icd.py).

Aksoy, Sharoff, Ravikumar, "Enhancing Image-to-Text Generation in Radiology
Reports through Cross-modal Multi-Task Learning". Not an experiment itself
(the leading underscore keeps it out of `medcap experiments`).
"""

from __future__ import annotations

from medcap.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, TrainConfig

PAPER = (
    "001 Aksoy, Sharoff, Ravikumar: Enhancing Image-to-Text Generation in Radiology Reports through "
    "Cross-modal Multi-Task Learning"
)
TABLES = "Table 1, Table 2, Table 3, Table 4"

#: Paper 001, Tables 1, 3, 4 (keys as in our metrics.json).
PAPER_RESULTS: dict[str, dict[str, float]] = {
    "STL": {
        "Bleu_1": 0.3326, "Bleu_2": 0.2159, "Bleu_3": 0.1488, "Bleu_4": 0.0950,
        "BERTScore_F1": 0.2056, "BioClinicalBERTScore_F1": 0.7857, "ROUGE_L": 0.3096,
        "ml/precision": 0.7520, "ml/recall": 0.6552, "ml/f1": 0.7005,
        "ml/hamming_loss": 0.1466, "ml/exact_match_ratio": 0.8534,
        "oc/accuracy": 0.8790, "oc/mae": 0.1210, "oc/acc_plus_corr": 0.8197,
    },
    "MTL-EQ": {
        "Bleu_1": 0.3352, "Bleu_2": 0.2229, "Bleu_3": 0.1570, "Bleu_4": 0.0983,
        "BERTScore_F1": 0.1958, "BioClinicalBERTScore_F1": 0.7883, "ROUGE_L": 0.3235,
        "ml/precision": 0.6502, "ml/recall": 0.6641, "ml/f1": 0.6562,
        "ml/hamming_loss": 0.1618, "ml/exact_match_ratio": 0.8382,
        "oc/accuracy": 0.8553, "oc/mae": 0.1447, "oc/acc_plus_corr": 0.7907,
    },
    "MTL-TP": {
        "Bleu_1": 0.3424, "Bleu_2": 0.2295, "Bleu_3": 0.1616, "Bleu_4": 0.1035,
        "BERTScore_F1": 0.2065, "BioClinicalBERTScore_F1": 0.7898, "ROUGE_L": 0.3366,
        "ml/precision": 0.6603, "ml/recall": 0.6775, "ml/f1": 0.6694,
        "ml/hamming_loss": 0.1598, "ml/exact_match_ratio": 0.8402,
        "oc/accuracy": 0.8640, "oc/mae": 0.1360, "oc/acc_plus_corr": 0.8005,
    },
}  # fmt: skip
#: Paper 001, Table 2: p-values of the paired t-test STL vs MTL-TP.
PAPER_P_VALUES: dict[str, float] = {
    "Bleu_1": 0.00117, "Bleu_2": 0.00006, "Bleu_3": 0.00035, "Bleu_4": 0.02569,
    "BERTScore_F1": 0.83824, "BioClinicalBERTScore_F1": 0.00611, "ROUGE_L": 0.00000,
}  # fmt: skip

#: MTL-TP's loss weights (alpha ITG > beta OC > gamma ML): ours, the paper gives only the order.
TP_WEIGHTS = (1.0, 0.5, 0.25)

#: Choices shared by every regime, one line each (also printed in every report.md).
CHOICES = (
    "Visual block: one keras_hub TransformerDecoder without causal mask = self-attention over the L image vectors, "
    "then cross-attention (image queries, unified-data keys/values, padding masked), then FFN; the paper's wording "
    "for this block mirrors its decoder's ('two consecutive multi-head self-attention' blocks). "
    "model.options.self_attention_layers=1 adds a separate TransformerEncoder in front (a second reading of that wording).",
    "Width (unstated): hidden_dim 256 = the paper's feed-forward width; 3 heads of 85 dims (keras_hub key_dim = 256 // 3).",
    "EfficientNet variant B0 at 224x224 with its built-in rescaling (pixels in [0, 255]); frozen (section 3.2: "
    "'a pre-trained model extracted visual features'); linear projection 1280 -> 256 plus a learned position "
    "embedding over the 7x7 = 49 image vectors.",
    "Unified data block: vitals vector -> Dense -> 1 token; gender one-hot -> own Dense -> 1 token; race one-hot -> "
    "own Dense -> 1 token; chief complaint and ICD title -> own Embedding -> own Dense -> 1 token per word (at most 12 "
    "words each, no word positions); Dense activation ReLU.",
    "Gender (a departure): the paper calls it a binary variable converted to a number; we one-hot it over F, M and "
    "unknown with its own Dense, so an image-only caption and a subject without a recorded gender claim neither F "
    "nor M.",
    "ICD title: the stay's primary ED diagnosis (seq_num 1) is fed as the paper does (model.options.use_icd_title = "
    "true); it can name a target finding ('Pleural effusion'), so experiments/mtl_tp_no_icd.py is MTL-TP with "
    "use_icd_title = false, reported beside it.",
    "Demographics: gender and race from MIMIC-IV-ED edstays (2.0 and later); for MIMIC-IV-ED 1.0, whose edstays "
    "has neither, data.options.mimic_iv_dir reads MIMIC-IV patients (gender) and admissions (race, or ethnicity "
    "in MIMIC-IV 1.0): the stay's own admission (hadm_id), else the one nearest the ED intime.",
    "Report sections: MIT-LCP's mimic-cxr section parser's header list, typo map and study-description headers "
    "(CHEST, TWO VIEWS: -> findings); unknown labels (LUNGS:, HEART:, ...) stay inside the section they are in.",
    "Heads: OC = LayerNorm -> Dense(4, sigmoid) per image position -> mean (probabilities averaged, BCE on the "
    "cumulative acuity code); ML = the same with 5 outputs; text decoder = 1 keras_hub TransformerDecoder (causal + "
    "padding masks) -> linear Dense(vocab) logits in float32; dropout 0.1 in every transformer block.",
    "Losses: ITG sparse categorical cross-entropy from logits, padding ignored; OC and ML binary cross-entropy. "
    "MTL-EQ alpha = beta = gamma = 1; MTL-TP (alpha, beta, gamma) = (1.0, 0.5, 0.25), ours (the paper gives only "
    "alpha > beta > gamma); experiments/mtl_tp_sweep.py lists other orderings.",
    "STL: three separate single-task models (model.options.tasks = report | acuity | findings) with the same "
    "encoder and training recipe; each has only its head.",
    "Report text: MIMIC-CXR FINDINGS + IMPRESSION, R2Gen's mimic_cxr cleaner, then the ' .' tokens removed "
    "(Figure 2 shows reports without punctuation); at most 60 words; vocabulary = train words seen >= 3 times.",
    "Five findings: Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion (CheXpert; uncertain = 0). "
    "Acuity = triage ESI level 1-5.",
    "Training (section 4.3): Adam, linear warm-up over the first 10% of all steps to 3e-5 then constant, batch 32, "
    "at most 100 epochs, early stopping on the (weighted) validation loss with patience 10, best weights restored.",
    "Decoding: greedy (the paper does not say), at most 61 tokens, through keras_hub's GreedySampler with the "
    "decoder's attention caches.",
    "Metrics: pycocoevalcap BLEU-1..4 and ROUGE-L; BERTScore F1 by bert-score's definition (greedy cosine "
    "matching, no idf) from local keras-hub presets when given: roberta-large at its bert-score default layer 17, "
    "Bio-ClinicalBERT at layer 9 (bert-score has no default for it), raw unless a rescale baseline file is given "
    "(the paper's BS_F1 0.2056 implies rescaling; its Bio-CBS_F1 0.7857 reads as raw); "
    "ML P/R/F1 micro-averaged; OC ACC+Corr = (accuracy + Spearman) / 2; Table 2 paired over test reports.",
    "Backbone weights 'auto': the cached ImageNet file, else a random EfficientNetB0 recorded as pretrained: false.",
    "EfficientNetB0 is always built with Keras's ImageNet stem (the final Rescaling(1/sqrt(var)) after its "
    "Normalization layer) whatever the weights source (a weights file, the Keras cache, or none), so a pretrained "
    "backbone sees the input scale it was trained on; medcap.weights.build_backbone inserts the stem.",
    "Synthetic default (no MIMIC download): 2000 synthetic studies, 64x64 films, a randomly initialised EfficientNetB0 "
    "that is fine-tuned (a frozen random CNN gives near-constant features), learning rate 5e-4, at most 30 epochs, "
    "patience 6, vocabulary min count 1, reports of at most 50 words; numbers not comparable with the paper.",
)

#: `--set` overrides of the scaled-down synthetic run (no MIMIC download configured).
SYNTHETIC_OVERRIDES = (
    "data.synthetic_num=2000",
    # drawn at the size the model reads, not 256 px (seconds instead of minutes, same pixels after resize)
    "data.synthetic_image_size=64",
    "data.image_size=[64,64]",
    "train.epochs=30",
    "train.learning_rate=5e-4",
    "train.early_stopping_patience=6",
    "model.options.min_count=1",
    "model.options.max_report_words=50",
    "model.encoder_weights=none",
    "model.options.backbone_trainable=true",
    "eval.max_length=51",
)


def paper_config(
    *,
    name: str,
    tasks: tuple[str, ...],
    loss_weights: tuple[float, float, float],
    regime: str,
    label: str,
    paper_results: dict,
) -> ExperimentConfig:
    """`regime`: the report label option ("" = derived from tasks and weights); `label`: for `paper`."""
    return ExperimentConfig(
        name=name,
        paper=f"{PAPER} ({label})",
        table=TABLES,
        paper_results=paper_results,
        choices=CHOICES,
        synthetic_overrides=SYNTHETIC_OVERRIDES,
        data=DataConfig(
            name="mimic",
            variant="balanced_10k",
            image_size=(224, 224),
            normalization="none",
            augment=False,
        ),
        model=ModelConfig(
            name="mtl_transformer",
            preset="paper",
            encoder_weights="auto",
            options={
                "tasks": list(tasks),
                "loss_weights": list(loss_weights),
                "regime": regime,
                "max_report_words": 60,
                "min_count": 3,
            },
        ),
        train=TrainConfig(
            epochs=100,
            batch_size=32,
            learning_rate=3e-5,
            optimizer="adam",
            warmup_fraction=0.1,
            monitor="val_loss",
            early_stopping_patience=10,
            restore_best_weights=True,
        ),
        eval=EvalConfig(
            split="test",
            decoding="greedy",
            max_length=61,
            bleu_flavour="coco",
            baselines=("constant", "random_train"),
            num_samples=20,
        ),
    )


def smoke_config(config: ExperimentConfig) -> ExperimentConfig:
    """Synthetic MIMIC data, the tiny preset at 32x32, a few steps."""
    config.smoke = True
    config.data.source_dir = ""
    config.data.synthetic_num = 150
    config.data.image_size = (32, 32)
    config.model.preset = "tiny"
    config.model.encoder_weights = "none"
    config.model.options = {**config.model.options, "min_count": 1, "max_report_words": 20}
    config.train.epochs = 2
    config.train.batch_size = 16
    config.train.learning_rate = 1e-3
    config.train.steps_per_epoch = 3
    config.train.early_stopping_patience = 0
    config.train.tensorboard = False
    config.eval.max_length = 21
    config.eval.num_samples = 5
    return config


def _paper(regime: str) -> dict[str, float]:
    """Paper numbers of one regime (Tables 1, 3, 4), keyed like our metrics.json."""
    return dict(PAPER_RESULTS[regime])
