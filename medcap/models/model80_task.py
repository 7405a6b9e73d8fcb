"""The trainer's Task for paper 000's Model-80 / Model-70 (`model.name = "model80"`).

One task serves both paper models; `model.preset` picks `model80`, `model70`
or `tiny`, and the experiment config carries the split and batch size.

Pipeline:

1. `prepare`: the vocabulary from the train split's `report_clean`
   (`vocabulary.json`), then VGG16 `fc2` features of every split, computed
   once and cached (`medcap.features`); training reads only those. VGG16 is
   our inference: the paper never names its CNN (section 3.1: "an input
   layer for 4096-dimensional vectors"; section 3.2: "multiple convolutional
   layers ... Maximum pooling layers ... a fully connected (dense) layer
   transforms the extracted features into a fixed-size vector"), and VGG16's
   fc2 is the usual 4096-d captioning feature of that description.
2. Training examples are (image features, caption prefix) -> next word. They
   are **expanded lazily inside tf.data** from the tokenised captions: each
   epoch shuffles caption rows by (seed, epoch), `flat_map` turns one caption
   of n words into its n + 1 (prefix, target) pairs, a seeded buffer mixes
   pairs of different captions, and features are gathered per batch from
   the one in-memory table. Neither all prefixes nor any one-hot target is
   ever materialised (`bench/prefix_memory.py` measures the difference).
   A batch therefore holds `train.batch_size` (prefix, next word) pairs,
   not that many images (section 4.2's "batch size" does not say which).
3. `evaluate`: Table 2's next-word accuracy / precision / recall / F1 with
   Keras threshold-0.5 semantics (as `keras.metrics.Precision()` etc. compute
   them on one-hot targets and softmax outputs), Table 3's BLEU-1/2 in both
   flavours (pycocoevalcap and nltk) on decoded captions, the trivial
   baselines, `report.md`, `samples.md` and `plots/`. Table 2 counts every
   pair, including those whose target is `<unk>` (a train word seen fewer
   than `min_count` times, or a word unseen in train): the model is trained
   to predict `<unk>` there and is credited when it does, as a Keras
   next-word recipe on these targets would be. Their number is reported as
   `meta/unk_targets`. Decoding never emits `<unk>` (`medcap.decoding`
   forbids it), so Table 3 compares words only.
4. `caption`: features of any image file with the same backbone, then
   decoding (`medcap.decoding`).

Caption length: one setting, `data.options.max_words` (20, paper 4.1:
"maximum description size of 20 words"; `medcap.data.medicat`). The reader
drops captions of more than `max_words` cleaned tokens, so every caption the
task sees has at most `max_words` words; the token input is `max_words + 1`
wide (`<start>` + words); decoding generates at most `max_words` words (a
caption reaching that length stops there, as every training caption does,
and its `<end>` is implied). `eval.max_length` can only shorten decoding.
A caption longer than `max_words` reaching the task is an error, never
silently truncated; a `model.options.max_words` that differs from the data
option is refused with a pointer to it (the same value, as older workdirs
carry, is accepted).

Task options (`model.options`, ours where the paper is silent; every other
key is a model constructor override, see `medcap.models.model80.PRESETS`):

    min_count       2      words seen fewer times in train become <unk>
    max_vocabulary  None   keep at most this many words (most frequent)
    backbone        vgg16  feature backbone (medcap.features)
    backbone_seed   0      seed of a random backbone initialisation
    features_dir    ""     feature cache (default medcap.features.default_cache_dir)
    feature_batch_size 32  images per backbone batch
    shuffle_buffer  4096   (prefix, target) pairs mixed across captions
    attention_plots 4      samples whose attention maps are drawn
    decode_xla      True   XLA-compile the decoding loop (falls back if XLA fails)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from medcap.config import ConfigError, ExperimentConfig
from medcap.data.base import Example
from medcap.registry import TASKS
from medcap.task import Task

log = logging.getLogger("medcap.models.model80")

TASK_OPTIONS: dict[str, Any] = {
    "min_count": 2,
    "max_vocabulary": None,
    "backbone": "vgg16",
    "backbone_seed": 0,
    "features_dir": "",
    "feature_batch_size": 32,
    "shuffle_buffer": 4096,
    "attention_plots": 4,
    "decode_xla": True,
}
VOCABULARY_FILE = "vocabulary.json"
FEATURES_FILE = "features.json"
#: Keeps the pair-buffer seed apart from the caption-order seed.
_PAIR_SHUFFLE_OFFSET = 7919


#: Report length (cleaned words) on datasets other than MediCat: R2Gen's
#: max_seq_length for IU X-ray; `model.options.max_words` overrides it.
OTHER_DATASET_MAX_WORDS = 60


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(task options with defaults, model constructor overrides)."""
    task = {**TASK_OPTIONS, **{k: v for k, v in options.items() if k in TASK_OPTIONS}}
    model = {k: v for k, v in options.items() if k not in TASK_OPTIONS}
    return task, model


@TASKS.register("model80")
class Model80Task(Task):
    """Paper 000: VGG16 fc2 features + BiLSTM/attention next-word captioner."""

    input_keys = ("id", "image", "report_clean")

    def __init__(self, config: ExperimentConfig):
        super().__init__(config)
        from medcap.data.medicat import DEFAULT_OPTIONS as MEDICAT_OPTIONS
        from medcap.features import FeatureSpec, default_cache_dir
        from medcap.models.model80 import preset_config

        self.options, self.model_options = split_options(dict(config.model.options))
        #: Reports longer than max_words are cut to their first max_words words
        #: for training (datasets whose reader keeps every report); MediCat's
        #: reader drops longer captions instead, so there a longer one is an error.
        self.truncate = config.data.name != "medicat"
        if self.truncate:
            max_words = self.model_options.pop("max_words", OTHER_DATASET_MAX_WORDS)
            where = "model.options.max_words"
        else:
            max_words = config.data.options.get("max_words", MEDICAT_OPTIONS["max_words"])
            where = "data.options.max_words"
        if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1:
            raise ConfigError(f"{where}={max_words!r}: expected an integer >= 1")
        # Workdirs written before the length moved to the data config carry it
        # here too; the same value is accepted, another one never wins.
        stale = self.model_options.pop("max_words", max_words)
        if stale != max_words:
            raise ConfigError(
                f"model.options.max_words={stale!r}: the caption length is data.options.max_words "
                f"(now {max_words}), one setting for the reader's filter, the prefix width and the decode length"
            )
        #: Longest caption in cleaned words (section 4.1), as the reader filtered them.
        self.max_words = max_words
        try:  # fail at config time, not after feature extraction
            preset_config(config.model.preset, vocabulary_size=5, **self.model_options)
        except ValueError as err:
            raise ConfigError(f"model.preset/options: {err}") from None
        self.feature_spec = FeatureSpec(
            backbone=self.options["backbone"],
            image_size=tuple(config.data.image_size),
            normalization=config.data.normalization,
            weights=config.model.encoder_weights,
            seed=int(self.options["backbone_seed"]),
        )
        try:
            self.feature_spec.layer  # noqa: B018  (validates the backbone name)
        except ValueError as err:
            raise ConfigError(f"model.options.backbone: {err}") from None
        self.features_dir = Path(
            self.options["features_dir"] or default_cache_dir(config.data, self.options["backbone"])
        )
        self.vocabulary = None
        self.features: dict[str, Any] = {}
        self._extractor = None

    # -- artefacts ------------------------------------------------------------
    @property
    def prefix_length(self) -> int:
        """Model token input width: <start> + max_words words."""
        return self.max_words + 1

    @property
    def decode_length(self) -> int:
        """Most words decoding generates: max_words, or fewer if eval.max_length asks."""
        return min(self.max_words, int(self.config.eval.max_length))

    def extractor(self):
        from medcap.features import FeatureExtractor

        if self._extractor is None:
            self._extractor = FeatureExtractor(self.feature_spec)
        if not self.weights_info:  # restore() keeps the record of the trained run
            self.weights_info = {
                **self._extractor.weights_info,
                "layer": self.feature_spec.layer,
                "image_size": list(self.feature_spec.image_size),
            }
        return self._extractor

    def split_features(self, split: str, examples: list[Example]):
        from medcap.data.findings_labels import first_view
        from medcap.features import extract_features

        if split not in self.features or self.features[split].ids != [str(e["id"]) for e in examples]:
            # A study with several views (IU X-ray under R2Gen's split) is captioned from its first, frontal one.
            self.features[split] = extract_features(
                [{**e, "image": first_view(e["image"])} for e in examples],
                split=split,
                cache_dir=self.features_dir,
                extractor=self.extractor(),
                batch_size=int(self.options["feature_batch_size"]),
            )
        return self.features[split]

    def prepare(self, splits: dict[str, list[Example]], workdir: Path) -> None:
        from medcap.text import Vocabulary

        train = splits["train"]
        self.vocabulary = Vocabulary.build(
            (e["report_clean"] for e in train),
            min_count=int(self.options["min_count"]),
            max_size=self.options["max_vocabulary"],
        )
        workdir = Path(workdir)
        self.vocabulary.save(workdir / VOCABULARY_FILE)
        for split, examples in splits.items():
            if examples:
                self.split_features(split, examples)
        (workdir / FEATURES_FILE).write_text(
            json.dumps(
                {
                    "spec": self.feature_spec.to_dict(),
                    "weights": self.weights_info,
                    "cache_dir": str(self.features_dir),
                    "splits": {s: {"examples": len(f.ids), "file": str(f.path)} for s, f in self.features.items()},
                },
                indent=2,
            )
            + "\n"
        )
        log.info("vocabulary: %d tokens; features: %s", len(self.vocabulary), self.weights_info)

    def restore(self, workdir: Path) -> None:
        from medcap.features import FeatureSpec
        from medcap.text import Vocabulary

        workdir = Path(workdir)
        self.vocabulary = Vocabulary.load(workdir / VOCABULARY_FILE)
        meta_path = workdir / FEATURES_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{workdir}: no {FEATURES_FILE} (was `prepare` run?)")
        meta = json.loads(meta_path.read_text())
        spec = FeatureSpec.from_dict(meta["spec"])
        # Caption new images with the weights training saw: the resolved file,
        # or the same seeded random network (never a re-resolved `auto`).
        weights = meta["weights"]
        pinned = weights["source"] if weights.get("pretrained") else "none"
        self.feature_spec = FeatureSpec(**{**spec.to_dict(), "image_size": spec.image_size, "weights": pinned})
        self.features_dir = Path(meta.get("cache_dir") or self.features_dir)
        self.weights_info = weights

    # -- model ----------------------------------------------------------------
    def build_model(self):
        from medcap.models.model80 import CaptionBiLSTM

        if self.vocabulary is None:
            raise RuntimeError("Model80Task.build_model: call prepare() or restore() first")
        feature_dim = next(iter(self.features.values())).features.shape[1] if self.features else 4096
        overrides = {"feature_dim": feature_dim, **self.model_options}
        return CaptionBiLSTM.from_preset(self.config.model.preset, vocabulary_size=len(self.vocabulary), **overrides)

    def compile_model(self, model, optimizer) -> None:
        import keras

        # Section 4.2: categorical cross-entropy; integer targets give the same
        # loss without one-hot tensors.
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )

    # -- data -----------------------------------------------------------------
    def caption_tokens(self, examples: list[Example]) -> np.ndarray:
        """(n, max_words + 2) int32: `<start> words <end>` right-padded with 0.

        On MediCat, raises ValueError for a caption of more than `max_words`
        words: the reader filters those, so one here means the data was read
        with another rule, and truncating it would train on a caption that
        ends where its text does not. On other datasets (their readers keep
        every report) a longer report is cut to `<start>` + its first
        `max_words` words with no `<end>`, so the model never learns to stop
        where the text does not (R2Gen cuts IU X-ray reports at 60 tokens)."""
        from medcap.text import tokenize

        width = self.max_words + 2
        tokens = np.zeros((len(examples), width), np.int32)
        for i, example in enumerate(examples):
            words = len(tokenize(example["report_clean"]))
            if words > self.max_words and self.truncate:
                ids = self.vocabulary.encode(" ".join(tokenize(example["report_clean"])[: self.max_words]))
                tokens[i, : len(ids) - 1] = ids[:-1]  # no <end>: the report goes on
                continue
            if words > self.max_words:
                raise ValueError(
                    f"example {example['id']!r}: caption of {words} words, more than "
                    f"data.options.max_words={self.max_words} (the reader filters such captions)"
                )
            ids = self.vocabulary.encode(example["report_clean"])
            tokens[i, : len(ids)] = ids
        return tokens

    def feature_table(self, examples: list[Example]) -> np.ndarray:
        """Features of `examples` in order (no copy when they are a whole split)."""
        ids = [str(e["id"]) for e in examples]
        for feature_set in self.features.values():
            if feature_set.ids == ids:
                return feature_set.features
        for feature_set in self.features.values():
            try:
                return feature_set.features[feature_set.rows(ids)]
            except KeyError:
                continue
        known = {i for fs in self.features.values() for i in fs.ids}
        missing = next(i for i in ids if i not in known)
        raise KeyError(f"no cached features for example {missing!r}; was prepare() run on its split?")

    def _pairs(self, examples: list[Example]):
        """(rows, expand): caption rows and the tf function expanding one row
        into its (row, prefix, target) pairs."""
        import tensorflow as tf

        tokens = tf.constant(self.caption_tokens(examples))
        width = self.prefix_length

        def expand(row):
            caption = tokens[row]
            pairs = tf.math.count_nonzero(caption, dtype=tf.int32) - 1  # n words + <end> targets
            ends = tf.range(pairs)
            prefixes = tf.where(tf.range(width)[None, :] <= ends[:, None], caption[None, :width], 0)
            targets = caption[1 : pairs + 1]
            return tf.data.Dataset.from_tensor_slices((tf.fill([pairs], tf.cast(row, tf.int32)), prefixes, targets))

        return tf.data.Dataset.range(len(examples)), expand

    def _with_features(self, examples: list[Example]):
        import tensorflow as tf

        from medcap.models.model80 import IMAGE_INPUT, TOKEN_INPUT

        table = tf.constant(self.feature_table(examples))

        def attach(rows, prefixes, targets):
            features = tf.cast(tf.gather(table, rows), tf.float32)
            # Trim the batch to its longest prefix: the LSTM then runs only the
            # steps some prefix needs (masked steps would be computed anyway).
            width = tf.reduce_max(tf.math.count_nonzero(prefixes, axis=1, dtype=tf.int32))
            return {IMAGE_INPUT: features, TOKEN_INPUT: prefixes[:, :width]}, targets

        return attach

    def num_pairs(self, examples: list[Example]) -> int:
        return int(np.count_nonzero(self.caption_tokens(examples)) - len(examples))

    def train_dataset(
        self, examples: list[Example], *, batch_size: int, seed: int, first_epoch: int, epochs: int
    ) -> tuple[Any, int]:
        import tensorflow as tf

        from medcap.data.pipeline import epochs_in_order, finalize, steps_per_epoch

        rows, expand = self._pairs(examples)
        attach = self._with_features(examples)
        steps = steps_per_epoch(self.num_pairs(examples), batch_size)
        if self.config.train.steps_per_epoch:
            steps = min(steps, self.config.train.steps_per_epoch)
        buffer = int(self.options["shuffle_buffer"])
        # A Python-int seed: the buffer's draw pattern repeats each epoch, but its
        # input (the epoch's caption order) does not, so pairs still mix
        # differently per epoch, as a pure function of (seed, epoch).
        pair_seed = (seed * 1_000_003 + _PAIR_SHUFFLE_OFFSET) % (2**31 - 1)

        def per_epoch(captions, epoch):
            pairs = captions.flat_map(expand)
            if buffer > 1:
                pairs = pairs.shuffle(buffer, seed=pair_seed, reshuffle_each_iteration=False)
            batches = pairs.batch(batch_size).map(attach, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            return batches.take(steps)

        ds = epochs_in_order(rows, len(examples), seed=seed, first_epoch=first_epoch, epochs=epochs, per_epoch=per_epoch)
        return finalize(ds, None, deterministic=self.config.train.deterministic), steps

    def eval_dataset(self, examples: list[Example], *, batch_size: int):
        import tensorflow as tf

        from medcap.data.pipeline import finalize

        rows, expand = self._pairs(examples)
        attach = self._with_features(examples)
        ds = rows.flat_map(expand).batch(batch_size).map(attach, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return finalize(ds, None)

    # -- decoding -------------------------------------------------------------
    def decoder(self, model, *, method: str | None = None, beam_size: int | None = None, max_length: int | None = None):
        from medcap.decoding import Decoder
        from medcap.models.model80 import next_token_fn

        eval_cfg = self.config.eval
        return Decoder(
            next_token_fn(model),
            max_length=max_length or self.decode_length,
            method=method or eval_cfg.decoding,
            beam_size=beam_size or eval_cfg.beam_size,
            jit_compile=bool(self.options["decode_xla"]),
        )

    def generate(self, model, features: np.ndarray, *, batch_size: int = 256, decoder=None) -> np.ndarray:
        """Token ids (n, max_length) decoded from (n, feature_dim) features."""
        from medcap.models.model80 import IMAGE_INPUT

        decoder = decoder or self.decoder(model)
        batches = (
            {IMAGE_INPUT: np.asarray(features[i : i + batch_size], np.float32)}
            for i in range(0, len(features), batch_size)
        )
        return decoder.decode_batches(batches)

    # -- results --------------------------------------------------------------
    def evaluate(self, model, splits: dict[str, list[Example]], split: str, workdir: Path) -> dict[str, Any]:
        from medcap.models import model80_report

        if self.vocabulary is None:
            raise RuntimeError("Model80Task.evaluate: call prepare() or restore() first")
        return model80_report.evaluate(self, model, splits, split, Path(workdir))

    def caption(self, model, image_paths: list[str]) -> list[dict[str, Any]]:
        if self.vocabulary is None:
            raise RuntimeError("Model80Task.caption: call restore() first")
        features = self.extractor()(list(image_paths), batch_size=int(self.options["feature_batch_size"]), progress=False)
        # Through the same float16 storage as the cached features training saw.
        tokens = self.generate(model, features.astype(np.float16))
        return [
            {"text": self.vocabulary.decode(row), "tokens": [int(t) for t in row if t != 0], "weights": self.weights_info}
            for row in tokens
        ]
