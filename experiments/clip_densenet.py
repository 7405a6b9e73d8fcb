"""Paper 002, proposed method: Rahman, Lee, Kim, "Leveraging Contrastive Learning
and Domain Prompts for Efficient Radiology Report Generation".

A CLIP-style dual encoder (modified DenseNet121 at 312x312 + frozen BioBERT
with alpha-scaled soft prompts and residual projections), trained with the
symmetric contrastive cross-entropy of eqs. 13-15 on IU X-ray split 7:2:1
(section 4.1); each test image's report is the most similar train report
(section 4.2). The paper reports (Table 1, "Proposed method", repeated in
Table 3):

    BLEU-1 0.48  BLEU-2 0.31  BLEU-3 0.22  BLEU-4 0.18  ROUGE 0.37  METEOR 0.22

`experiments/clip_densenet_baseline.py` is Table 3's "DenseNet" row.
`make reproduce-clip` runs both and writes results/clip/report.md. Without
an IU X-ray download (`data.source_dir` empty) it trains the scaled-down
`synthetic_overrides` on the synthetic IU X-ray-format dataset, whose numbers
are not comparable with the paper's. Without a BioBERT folder
(`model.options.text_encoder_preset`) the text encoder is a small random
BERT, recorded as `pretrained: false`. The paper run needs the ImageNet
DenseNet121 file in the Keras cache (`medcap.weights.cached_weights_path(
"densenet121", include_top=False)`); only the synthetic default falls back
to a random backbone. Every choice we made where the paper
is silent is in `CHOICES` below and in each run's report.md.
"""

from __future__ import annotations

from medcap.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, TrainConfig

PAPER = (
    "002 Rahman, Lee, Kim: Leveraging Contrastive Learning and Domain Prompts for Efficient "
    "Radiology Report Generation"
)

#: Table 1's other methods (IU X-ray), as printed; pycocoevalcap key names, None where the
#: paper prints "_". Shown beside ours in results/clip/report.md.
TABLE1_OTHER_METHODS: dict[str, dict[str, float | None]] = {
    "Show-Tell [20]": {"Bleu_1": 0.24, "Bleu_2": 0.13, "Bleu_3": 0.10, "Bleu_4": 0.07, "ROUGE_L": 0.30, "METEOR": 0.15},
    "Att2in [21]": {"Bleu_1": 0.24, "Bleu_2": 0.13, "Bleu_3": 0.11, "Bleu_4": 0.09, "ROUGE_L": 0.30, "METEOR": 0.16},
    "AdaAtt [22]": {"Bleu_1": 0.28, "Bleu_2": 0.20, "Bleu_3": 0.15, "Bleu_4": 0.12, "ROUGE_L": 0.31, "METEOR": 0.16},
    "M2trans [23]": {"Bleu_1": 0.40, "Bleu_2": 0.28, "Bleu_3": 0.16, "Bleu_4": 0.14, "ROUGE_L": 0.32, "METEOR": 0.17},
    "R2gen [14]": {"Bleu_1": 0.47, "Bleu_2": 0.30, "Bleu_3": 0.21, "Bleu_4": 0.16, "ROUGE_L": 0.37, "METEOR": 0.18},
    "Wang et al. [24]": {"Bleu_1": 0.45, "Bleu_2": 0.30, "Bleu_3": 0.21, "Bleu_4": 0.15, "ROUGE_L": 0.38, "METEOR": None},
}  # fmt: skip

#: Table 1 (proposed method; also Table 3's last row), pycocoevalcap key names.
PROPOSED_RESULTS = {
    "Bleu_1": 0.48,
    "Bleu_2": 0.31,
    "Bleu_3": 0.22,
    "Bleu_4": 0.18,
    "ROUGE_L": 0.37,
    "METEOR": 0.22,
}

#: Shared by both experiments (clip_densenet_baseline.py imports this file).
CHOICES = (
    "Data: IU X-ray, every study with a report, split 7:2:1 (section 4.1) by a seeded patient-disjoint draw "
    "(iu_xray variant random_721, split_seed 0); one image per study, the first view (R2Gen's 0.png).",
    "Data source: the paper's 3,955 reports / 7,470 images (section 4.1) are the OpenI XML release's counts; "
    "R2Gen's annotation.json keeps 2,955 studies (those with FINDINGS). With both in data.source_dir the "
    "OpenI release is read; each run's data.json and report.md name the source read and its study and "
    "image counts.",
    "Text: the encoder reads each original report, whitespace-normalised (BioBERT is cased; R2Gen's cleaner "
    "lower-cases and detaches punctuation); R2Gen-cleaned reports (report_clean) are what is retrieved, "
    "the references and what is scored.",
    "Text width: section 3.2 gives d = 468 for BioBERT; BioBERT (BERT-base) is 768 wide, and we use the "
    "loaded encoder's width. Eq. 5 is a mean pool while the prose calls it attention-weighted averaging: "
    "we follow the equation (masked mean).",
    "Images: 312x312 (section 3.3), torch-mode ImageNet normalisation (what Keras' DenseNet121 weights "
    "expect); no augmentation (none is stated).",
    "Vision: DenseNet121 fine-tuned end to end (the paper freezes only BioBERT); d = 128 so 2d = 256 "
    "matches eq. 10's W1 in R^(256x64); depthwise convs without bias/activation, pointwise convs with "
    "bias + ReLU; SE dense layers with biases; eq. 11's A_s computed from F_m and applied to F_c; "
    "adaptive pooling w = sigmoid(theta), theta initialised at 0.",
    "Text: frozen BERT in inference mode; P = 10 soft prompts prepended before position embeddings "
    "(positions 0..9, [CLS] at 10); alpha(x) = 2 sigmoid(attention of prompt queries over token "
    "embeddings -> scalar + bias), initialised to exactly 1; masked mean pooling over prompts and tokens; "
    "K = 2 residual projections (dropout 0.1, exact GELU); reports truncated to 128 word pieces.",
    "Shared embedding: 256-d, a linear projection at the end of each tower (CLIP style).",
    "Loss: symmetric cross-entropy over in-batch image-report logits (eqs. 13-15); temperature learned as "
    "CLIP's log-scale, initialised at 0.07, clipped at 1/100.",
    "Optimisation (unstated): Adam, learning rate 1e-4, batch 32 (last partial batch of each epoch "
    "dropped), at most 50 epochs, early stopping on val_loss with patience 8, best weights restored.",
    "Retrieval: top-1 train report by cosine similarity (one normalised matrix product); Recall@1/5/10 both "
    "ways over the test pairs, ranked against the de-duplicated test reports (studies sharing a verbatim "
    "report are one candidate; retrieving any copy is a hit); scores pycocoevalcap (coco) BLEU/METEOR/ROUGE-L/CIDEr, medcap's rule-based CE.",
    "Text encoder when no BioBERT folder is configured: a 2-layer, 256-wide random BERT with a 4,000-token "
    "WordPiece vocabulary computed from the train reports (pretrained: false).",
    "Backbone weights: the paper preset requires the ImageNet DenseNet121 (encoder_weights imagenet: the "
    "Keras cache file, else a clear error saying where to put it); only the synthetic default uses 'auto' "
    "(the cached file, else a random backbone recorded as pretrained: false).",
    "Baselines: constant, random_train and nearest_train (the train report of the nearest train image "
    "under untrained DenseNet121 + GAP features, same weights policy).",
    "Synthetic default (no IU X-ray configured): 600 synthetic studies, 64x64 images, batch 16, learning "
    "rate 1e-3, at most 30 epochs (patience 10); DenseNet121 cut after its first transition block "
    "(pool2_relu) with BatchNorm momentum 0.9, because its weights are random and the full depth learns "
    "weakly from 420 images; prompts, projections and widths as in the paper preset.",
)

#: `--set` overrides of the scaled-down synthetic run (no IU X-ray configured). The random
#: DenseNet121 needs BatchNorm momentum 0.9: with Keras' 0.99 the moving statistics lag the
#: training network and validation/retrieval embeddings collapse (val_loss rose from epoch 1).
#: Measured on two CPU cores (2026-11-22), test split, 600 studies: the full DenseNet121 took
#: 0.7 s/step and 11 min, image->text R@5 0.236 (chance 0.091), BLEU-2 0.388 < random_train 0.439;
#: cut at pool2_relu 0.4 s/step and 5.7 min, R@5 0.382, BLEU-2 0.491 > random_train.
SYNTHETIC_OVERRIDES = (
    "data.synthetic_num=600",
    "data.image_size=[64,64]",
    "train.batch_size=16",
    "train.epochs=30",
    "train.learning_rate=0.001",
    "train.early_stopping_patience=10",
    "model.options.backbone_bn_momentum=0.9",
    "model.options.backbone_output_layer=pool2_relu",
    "model.encoder_weights=auto",
)


def paper_config(
    *, name: str, variant: str, table: str, paper_results: dict[str, float]
) -> ExperimentConfig:
    return ExperimentConfig(
        name=name,
        paper=f"{PAPER} ({'proposed method' if variant == 'proposed' else 'DenseNet baseline'})",
        table=table,
        paper_results=paper_results,
        choices=CHOICES,
        synthetic_overrides=SYNTHETIC_OVERRIDES,
        data=DataConfig(
            name="iu_xray",
            variant="random_721",
            split_seed=0,
            image_size=(312, 312),
            normalization="imagenet_torch",
            augment=False,
        ),
        model=ModelConfig(
            name="clip_dual_encoder",
            preset="paper",
            encoder_weights="imagenet",
            options={"variant": variant, "text_encoder_preset": ""},
        ),
        train=TrainConfig(
            epochs=50,
            batch_size=32,
            learning_rate=1e-4,
            optimizer="adam",
            monitor="val_loss",
            early_stopping_patience=8,
            restore_best_weights=True,
        ),
        eval=EvalConfig(
            split="test",
            bleu_flavour="coco",
            baselines=("constant", "random_train", "nearest_train"),
            num_samples=20,
        ),
    )


def smoke_config(config: ExperimentConfig) -> ExperimentConfig:
    """Synthetic IU X-ray, the tiny preset (cut DenseNet121, one-layer random BERT) at 32x32, a few steps."""
    config.smoke = True
    config.data.source_dir = ""
    config.data.synthetic_num = 120
    config.data.image_size = (32, 32)
    config.model.preset = "tiny"
    config.model.encoder_weights = "none"
    config.model.options = {**config.model.options, "text_encoder_preset": "none"}
    config.train.epochs = 2
    config.train.batch_size = 16
    config.train.steps_per_epoch = 3
    config.train.learning_rate = 1e-3
    config.train.early_stopping_patience = 0
    config.train.tensorboard = False
    config.eval.num_samples = 5
    return config


def get_config(smoke: bool = False) -> ExperimentConfig:
    config = paper_config(
        name="clip_densenet",
        variant="proposed",
        table="Table 1, Table 3",
        paper_results=dict(PROPOSED_RESULTS),
    )
    return smoke_config(config) if smoke else config
