"""The trainer's Task for paper 002's CLIP-style dual encoder (`model.name = "clip_dual_encoder"`).

Rahman, Lee, Kim, "Leveraging Contrastive Learning and Domain Prompts for
Efficient Radiology Report Generation". The model is
`medcap.models.clip_dual_encoder.ClipDualEncoder`; this task feeds it and
turns it into a report generator by retrieval (section 4.2).

Pipeline:

1. `prepare`: decides the text encoder (`text_encoder_preset`: a Hugging Face
   BioBERT folder, a keras-hub preset, or a small random BERT whose WordPiece
   vocabulary is computed from the train reports) and saves its vocabulary
   and spec in the workdir (`text_vocab.txt`, `text_encoder.json`), so
   evaluation and captioning need only the workdir.
2. Training pairs are (image, report): each study's original `report`,
   whitespace-normalised (`encoder_text`), is tokenised once (keras-hub `BertTextClassifierPreprocessor`: `[CLS] ...
   [SEP]`, truncated to `sequence_length`), the image is decoded and
   normalised by the shared tf.data pipeline. Each epoch is shuffled by
   (seed, epoch); batches never straddle epochs and the last partial batch of
   an epoch is dropped (a contrastive batch of one teaches nothing). The
   target is a placeholder: the loss pairs image i with report i.
   The encoder reads the original text, not `report_clean`: BioBERT is
   cased, and R2Gen's cleaner lower-cases and detaches punctuation
   ("word ."), text the pretrained encoder never saw. `report_clean` stays
   the retrieved text, the reference and what is scored (R2Gen's protocol).
3. `evaluate` (`medcap.models.clip_report.evaluate_run`): embeds the test
   images and test reports (Recall@1/5/10 both ways) and every train report
   (in batches, with a progress bar); each test image's report is the top-1
   train report by cosine similarity, one normalised matrix product per block
   of queries. BLEU-1..4, METEOR, ROUGE-L, CIDEr (coco flavour) and clinical
   efficacy, with the trivial baselines; `nearest_train` takes the report of
   the train image nearest under the baseline DenseNet121 (+ GAP) features,
   initialised per the same weights policy and never trained.
4. `caption`: embeds image files and returns the most similar train report
   and its cosine similarity, from the retrieval bank (`retrieval_bank.npz`)
   that `evaluate` saves.

Multi-view variants (IU X-ray `r2gen`: `image` is a tuple of views): the
first view is encoded (paper 002 encodes one image per study).

Task options (`model.options`; every other key overrides the preset, see
`medcap.models.clip_dual_encoder.PRESETS`):

    variant              proposed   `baseline`: plain DenseNet121 + GAP (Table 3)
    text_encoder_preset  ""         HF BioBERT folder | keras-hub preset | none | ""
                                    ("" = not configured: random BERT, announced)
    text_lowercase       None       lowercase for an HF folder without
                                    tokenizer_config.json (None: inferred)
    embed_batch_size     64         batch size when embedding for retrieval
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from medcap.config import ConfigError, ExperimentConfig
from medcap.data.base import Example
from medcap.models.clip_retrieval import encoder_text, first_view, top1_retrieval
from medcap.registry import TASKS
from medcap.task import Task

log = logging.getLogger("medcap.models.clip")

TASK_OPTIONS: dict[str, Any] = {
    "variant": "proposed",
    "text_encoder_preset": "",
    "text_lowercase": None,
    "embed_batch_size": 64,
}
BANK_FILE = "retrieval_bank.npz"
BANK_TEXTS_FILE = "retrieval_bank.json"


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(task options with defaults, preset overrides)."""
    task = {**TASK_OPTIONS, **{k: v for k, v in options.items() if k in TASK_OPTIONS}}
    model = {k: v for k, v in options.items() if k not in TASK_OPTIONS}
    return task, model


@TASKS.register("clip_dual_encoder")
class ClipTask(Task):
    """Paper 002: contrastive image-report dual encoder, reports by retrieval."""

    input_keys = ("id", "image", "report", "report_clean")

    def __init__(self, config: ExperimentConfig):
        super().__init__(config)
        from medcap.models.clip_dual_encoder import VARIANTS, preset_config

        self.options, self.model_options = split_options(dict(config.model.options))
        if self.options["variant"] not in VARIANTS:
            raise ConfigError(
                f"model.options.variant={self.options['variant']!r}: expected one of {', '.join(VARIANTS)}"
            )
        try:
            self.preset = preset_config(config.model.preset, **self.model_options)
        except ValueError as err:
            raise ConfigError(f"model.preset/options: {err}") from None
        if int(self.options["embed_batch_size"]) < 1:
            raise ConfigError(
                f"model.options.embed_batch_size={self.options['embed_batch_size']}: must be >= 1"
            )
        self.sequence_length = int(self.preset["sequence_length"])
        self.text_spec = None
        self.tokenizer = None
        self.workdir: Path | None = None

    # -- artefacts ------------------------------------------------------------
    def prepare(self, splits: dict[str, list[Example]], workdir: Path) -> None:
        from medcap.models.clip_text_source import (
            TEXT_SPEC_FILE,
            make_tokenizer,
            resolve_text_encoder,
        )

        workdir = Path(workdir)
        self.workdir = workdir
        spec = resolve_text_encoder(
            self.options["text_encoder_preset"],
            train_reports=[encoder_text(e) for e in splits["train"]],
            fallback_bert=self.preset["fallback_bert"],
            out_dir=workdir,
            lowercase=self.options["text_lowercase"],
        )
        needed = self.sequence_length + int(self.preset["num_prompts"])
        if needed > spec.max_sequence_length:
            raise ConfigError(
                f"model.options.sequence_length={self.sequence_length} + num_prompts={self.preset['num_prompts']} = "
                f"{needed} exceeds the BERT's max_sequence_length {spec.max_sequence_length}"
            )
        (workdir / TEXT_SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2) + "\n")
        self._set_text(spec, make_tokenizer(spec))

    def restore(self, workdir: Path) -> None:
        from medcap.models.clip_text_source import TEXT_SPEC_FILE, TextEncoderSpec, make_tokenizer

        workdir = Path(workdir)
        self.workdir = workdir
        path = workdir / TEXT_SPEC_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{workdir}: no {TEXT_SPEC_FILE} (was `prepare` run?)")
        spec = TextEncoderSpec.from_dict(json.loads(path.read_text()))
        # The vocabulary lives beside the spec; the workdir may have moved.
        spec.vocabulary_file = str(workdir / Path(spec.vocabulary_file).name)
        self._set_text(spec, make_tokenizer(spec))
        environment = workdir / "environment.json"
        if environment.is_file():
            self.weights_info = json.loads(environment.read_text()).get(
                "pretrained_weights", self.weights_info
            )

    def _set_text(self, spec, tokenizer) -> None:
        self.text_spec = spec
        self.tokenizer = tokenizer
        self.weights_info = {**self.weights_info, "text": spec.info}

    # -- model ----------------------------------------------------------------
    def build_model(self):
        from medcap.models.clip_dual_encoder import build_dual_encoder
        from medcap.models.clip_text_source import build_text_backbone
        from medcap.weights import check_pixel_normalization

        if self.text_spec is None:
            raise RuntimeError("ClipTask.build_model: call prepare() or restore() first")
        model, vision_info = build_dual_encoder(
            self.config.model.preset,
            text_backbone=build_text_backbone(self.text_spec),
            image_size=tuple(self.config.data.image_size),
            variant=self.options["variant"],
            encoder_weights=self.config.model.encoder_weights,
            **self.model_options,
        )
        check_pixel_normalization(vision_info["backbone"], self.config.data.normalization, vision_info)
        self.weights_info = {**self.weights_info, "vision": vision_info}
        return model

    def compile_model(self, model, optimizer) -> None:
        from medcap.models.clip_dual_encoder import ContrastiveLoss, contrastive_accuracy

        model.compile(optimizer=optimizer, loss=ContrastiveLoss(), metrics=[contrastive_accuracy])

    # -- data -----------------------------------------------------------------
    def image_spec(self, *, training: bool = False):
        from medcap.data.pipeline import ImageSpec

        data = self.config.data
        return ImageSpec(
            size=tuple(data.image_size),
            normalization=data.normalization,
            augment=data.augment and training,
        )

    def tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        from medcap.models.clip_text_source import tokenize_reports

        if self.tokenizer is None:
            raise RuntimeError("ClipTask: call prepare() or restore() first")
        return tokenize_reports(self.tokenizer, texts, self.sequence_length)

    def _pair_table(self, examples: list[Example]):
        """Decoded-image dataset of (image, token_ids, padding_mask) rows, one per study."""
        import tensorflow as tf

        from medcap.data.pipeline import ImageDecoder, maybe_cache

        if not examples:
            raise ValueError("no examples: the split is empty")
        tokens = self.tokenize([encoder_text(e) for e in examples])
        columns = {
            "image": np.array([first_view(e["image"]) for e in examples], dtype=object),
            "token_ids": tokens["token_ids"],
            "padding_mask": tokens["padding_mask"],
        }
        calls = self.config.data.num_parallel_calls or tf.data.AUTOTUNE
        ds = tf.data.Dataset.from_tensor_slices(columns)
        ds = ds.map(ImageDecoder(self.image_spec()), num_parallel_calls=calls, deterministic=True)
        return maybe_cache(ds, self.config.data.cache)

    @staticmethod
    def _model_inputs(features: dict[str, Any]):
        import tensorflow as tf

        inputs = {
            "images": features["image"],
            "token_ids": tf.cast(features["token_ids"], tf.int32),
            "padding_mask": tf.cast(features["padding_mask"], tf.int32),
        }
        return inputs, tf.zeros((), tf.float32)  # placeholder target: pair i matches i

    def train_dataset(
        self, examples: list[Example], *, batch_size: int, seed: int, first_epoch: int, epochs: int
    ) -> tuple[Any, int]:
        import tensorflow as tf

        from medcap.data.pipeline import (
            ImageFinisher,
            epochs_in_order,
            finalize,
            steps_per_epoch,
            with_example_seeds,
        )

        if len(examples) < batch_size:
            raise ConfigError(
                f"train split has {len(examples)} studies, fewer than train.batch_size={batch_size}; "
                "a contrastive batch needs them all"
            )
        steps = steps_per_epoch(len(examples), batch_size, drop_remainder=True)
        if self.config.train.steps_per_epoch:
            steps = min(steps, self.config.train.steps_per_epoch)
        finisher = ImageFinisher(self.image_spec(training=True))
        calls = self.config.data.num_parallel_calls or tf.data.AUTOTUNE

        def finish(features, element_seed):
            return self._model_inputs(finisher(features, element_seed))

        def per_epoch(epoch_ds, epoch):
            seeded = with_example_seeds(epoch_ds, seed, epoch)
            batches = seeded.map(finish, num_parallel_calls=calls, deterministic=True).batch(
                batch_size, drop_remainder=True
            )
            return batches.take(steps)

        ds = epochs_in_order(
            self._pair_table(examples),
            len(examples),
            seed=seed,
            first_epoch=first_epoch,
            epochs=epochs,
            per_epoch=per_epoch,
        )
        return finalize(ds, None, deterministic=self.config.train.deterministic), steps

    def eval_dataset(self, examples: list[Example], *, batch_size: int):
        import tensorflow as tf

        from medcap.data.pipeline import ImageFinisher, finalize

        finisher = ImageFinisher(self.image_spec())
        ds = self._pair_table(examples).map(
            lambda f: self._model_inputs(finisher(f)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return finalize(ds, batch_size)

    def image_dataset(self, image_paths: list[str], *, batch_size: int):
        """Normalised images of the given files, in order, batched."""
        import tensorflow as tf

        from medcap.data.pipeline import ImageDecoder, ImageFinisher, finalize

        spec = self.image_spec()
        decoder, finisher = ImageDecoder(spec), ImageFinisher(spec)
        ds = tf.data.Dataset.from_tensor_slices({"image": np.array(image_paths, dtype=object)})
        ds = ds.map(
            lambda f: finisher(decoder(f))["image"],
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return finalize(ds, batch_size)

    # -- embeddings -----------------------------------------------------------
    @property
    def _verbose(self) -> int:
        return 1 if self.config.train.verbose else 0

    def embed_images(self, model, image_paths: list[str], *, progress: bool | None = None) -> np.ndarray:
        """(n, embedding_dim) image embeddings, in batches with a progress bar
        (`progress`: default `train.verbose`)."""
        if not image_paths:
            return np.zeros((0, int(self.preset["embedding_dim"])), np.float32)
        batch = int(self.options["embed_batch_size"])
        ds = self.image_dataset([first_view(p) for p in image_paths], batch_size=batch)
        verbose = self._verbose if progress is None else int(progress)
        return np.asarray(model.vision_encoder.predict(ds, verbose=verbose), np.float32)

    def embed_reports(self, model, texts: list[str]) -> np.ndarray:
        """(n, embedding_dim) embeddings of encoder texts (`encoder_text`), in
        batches with a progress bar."""
        if not texts:
            return np.zeros((0, int(self.preset["embedding_dim"])), np.float32)
        tokens = self.tokenize(list(texts))
        batch = int(self.options["embed_batch_size"])
        return np.asarray(
            model.text_encoder.predict(tokens, batch_size=batch, verbose=self._verbose), np.float32
        )

    def save_bank(self, workdir: Path, train: list[Example], embeddings: np.ndarray) -> None:
        """The retrieval bank: every train report and its embedding."""
        workdir = Path(workdir)
        np.savez(workdir / BANK_FILE, embeddings=embeddings.astype(np.float32))
        texts = {
            "ids": [str(e["id"]) for e in train],
            "reports": [e["report_clean"] for e in train],
        }
        (workdir / BANK_TEXTS_FILE).write_text(json.dumps(texts) + "\n", encoding="utf-8")

    def load_bank(self, model) -> tuple[list[str], list[str], np.ndarray]:
        """(train ids, train reports, embeddings) saved by evaluate, or computed now."""
        if self.workdir is None:
            raise RuntimeError("ClipTask: call restore(workdir) first")
        bank, texts = self.workdir / BANK_FILE, self.workdir / BANK_TEXTS_FILE
        if not (bank.is_file() and texts.is_file()):
            from medcap.data.loading import load_splits

            log.info("no retrieval bank in %s: embedding the train reports", self.workdir)
            train = load_splits(self.config.data).splits["train"]
            self.save_bank(
                self.workdir, train, self.embed_reports(model, [encoder_text(e) for e in train])
            )
        values = json.loads(texts.read_text(encoding="utf-8"))
        embeddings = np.load(bank)["embeddings"]
        if len(embeddings) != len(values["reports"]):
            raise ValueError(
                f"{bank}: {len(embeddings)} embeddings for {len(values['reports'])} reports"
            )
        return values["ids"], values["reports"], embeddings

    # -- results --------------------------------------------------------------
    def evaluate(
        self, model, splits: dict[str, list[Example]], split: str, workdir: Path
    ) -> dict[str, Any]:
        from medcap.models import clip_report

        if self.tokenizer is None:
            raise RuntimeError("ClipTask.evaluate: call prepare() or restore() first")
        self.workdir = Path(workdir)
        return clip_report.evaluate_run(self, model, splits, split, Path(workdir))

    def caption(self, model, image_paths: list[str]) -> list[dict[str, Any]]:
        ids, reports, bank = self.load_bank(model)
        # no progress bar: Keras prints it on stdout, where `medcap caption --json` writes its JSON
        indices, similarities = top1_retrieval(self.embed_images(model, list(image_paths), progress=False), bank)
        return [
            {"text": reports[int(i)], "similarity": float(s), "train_id": ids[int(i)]}
            for i, s in zip(indices, similarities)
        ]
