"""Shared config of paper 000's Model-80 and Model-70 (experiments/model80.py, model70.py).

Kanavos, Vonitsanos, Mylonas, "Integrating Convolutional and Recurrent Neural
Networks for Enhanced Medical Image Captioning". Not an experiment itself (the
leading underscore keeps it out of `medcap experiments`).
"""

from __future__ import annotations

from medcap.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, TrainConfig

PAPER = (
    "000 Kanavos, Vonitsanos, Mylonas: Integrating Convolutional and Recurrent Neural Networks "
    "for Enhanced Medical Image Captioning"
)

#: Section 4.1: "a maximum description size of 20 words". The one length setting:
#: the reader's filter (cleaned tokens), the token input width and the decode length.
MAX_WORDS = 20

#: Choices shared by Model-80 and Model-70 (experiments/model70.py imports them).
CHOICES = (
    'Backbone (unstated): VGG16 fc2 is our inference. The paper never names its CNN; it says only "an input '
    'layer for 4096-dimensional vectors" (section 3.1) and "multiple convolutional layers ... Maximum pooling '
    'layers ... a fully connected (dense) layer transforms the extracted features into a fixed-size vector" '
    "(section 3.2), which VGG16's 4096-d fc2 fits.",
    "Widths (unstated): embedding 256, image Dense 256, BiLSTM 128 units per direction (256 concatenated, "
    "so Add with the image vector is defined), decoder Dense 256; dropout 0.5 everywhere.",
    "L2 (section 4.2, strength unstated): 1e-4 on every Dense kernel and both LSTM kernels.",
    "Attention (query/key unstated): self-attention over the BiLSTM states (query = key = value), "
    "scaled dot-product with a learned scalar, then GlobalAveragePooling1D over the context vectors.",
    "Batch size: Table 2's value (64 for Model-80, 128 for Model-70); section 4.2's text says 32. A batch is "
    "that many (image, caption prefix) -> next word pairs, not that many images (the paper does not say which).",
    "Optimiser: Adam, learning rate 1e-3 (Keras default; the paper says only 'adaptive learning rate').",
    "Epochs: at most 100 (section 4.2); early stopping on val_loss with patience 10, best weights restored.",
    "Loss: sparse categorical cross-entropy on integer next-word targets (= categorical CE on one-hot).",
    "Figure labels (unstated): the leading 'Figure 4.' / 'Fig. 1.' / 'FIG. 2:' of MediCat captions is removed "
    "before training and scoring (data.options.strip_figure_label=true); kept, it is a free 'figure N' "
    "unigram and bigram match and an easy first word. The read's info counts the captions that had one.",
    "Text: captions lower-cased with punctuation stripped (medcap.text 'caption' style); the 20-word rule "
    "counts these cleaned tokens (the tokens the model trains on), not the raw whitespace words, so no "
    "caption is truncated; captions left empty are dropped and counted. Vocabulary = train words seen "
    ">= 2 times, others <unk>.",
    "Features: VGG16 fc2 at 224x224, Keras caffe preprocessing, computed once, cached as float16; "
    "no augmentation (section 4.1 mentions it, but cached features are of un-augmented images).",
    "Data: 50,000 MediCat figures with captions of <= 20 cleaned words, seeded split grouped by paper (pdf_hash).",
    "Table 2 metrics: next-word accuracy and Keras Precision/Recall (threshold 0.5) on one-hot targets, "
    "F1 = 2PR/(P+R), over every (prefix, next word) pair of the test split, <end> targets and <unk> targets "
    "included (the model learns to predict <unk> for out-of-vocabulary words and is credited when it does; "
    "report.md gives their count).",
    "Decoding for Table 3: beam search, beam size 3 (section 4.4 tunes a beam size; its value is unstated), "
    "at most 20 words (the caption length rule), <pad>/<start>/<unk> never generated; BLEU-1/2 on cleaned "
    "text in the nltk corpus_bleu flavour (cumulative weights, the Keras captioning recipe the paper most "
    "likely followed), pycocoevalcap's also reported.",
    "No hyperparameter search: section 4.4 tunes learning rate, beam size and number of layers 'using grid "
    "search and other optimization techniques' but gives neither the grid nor the chosen values; we run the "
    "fixed values above once.",
    "Precision: train.precision 'auto' trains in mixed_float16 on a GPU (float32 on CPU); the softmax output "
    "stays float32. The paper does not state its precision.",
    "Backbone weights 'auto': the cached ImageNet file, else a random VGG16 recorded as pretrained: false.",
)

#: `--set` overrides of the scaled-down synthetic run (no MediCat configured).
SYNTHETIC_OVERRIDES = (
    "data.synthetic_num=600",
    "train.epochs=16",
    "train.learning_rate=0.002",
    "train.early_stopping_patience=4",
    "model.options.min_count=1",
)


def paper_config(*, name: str, variant: str, batch_size: int, preset: str, paper_results: dict[str, float]):
    return ExperimentConfig(
        name=name,
        paper=f"{PAPER} ({'Model-80' if variant == 'model80' else 'Model-70'})",
        table="Table 2, Table 3",
        paper_results=paper_results,
        choices=CHOICES,
        synthetic_overrides=SYNTHETIC_OVERRIDES,
        data=DataConfig(
            name="medicat",
            variant=variant,
            image_size=(224, 224),
            normalization="imagenet_caffe",
            augment=False,
            options={"max_words": MAX_WORDS, "strip_figure_label": True},
        ),
        model=ModelConfig(
            name="model80",
            preset=preset,
            encoder_weights="auto",
            options={"min_count": 2},
        ),
        train=TrainConfig(
            epochs=100,
            batch_size=batch_size,
            learning_rate=1e-3,
            optimizer="adam",
            monitor="val_loss",
            early_stopping_patience=10,
            restore_best_weights=True,
        ),
        eval=EvalConfig(
            split="test",
            decoding="beam",
            beam_size=3,
            bleu_flavour="nltk",
            baselines=("constant", "random_train"),
            num_samples=20,
        ),
    )


def smoke_config(config: ExperimentConfig) -> ExperimentConfig:
    """Synthetic data, tiny preset, a random backbone at 32x32, a few steps."""
    config.smoke = True
    config.data.source_dir = ""
    config.data.synthetic_num = 120
    config.data.image_size = (32, 32)
    config.model.preset = "tiny"
    config.model.encoder_weights = "none"
    config.model.options = {**config.model.options, "min_count": 1, "attention_plots": 2}
    config.train.epochs = 2
    config.train.batch_size = 32
    config.train.steps_per_epoch = 5
    config.train.early_stopping_patience = 0
    config.train.tensorboard = False
    config.eval.beam_size = 2
    config.eval.num_samples = 5
    return config
