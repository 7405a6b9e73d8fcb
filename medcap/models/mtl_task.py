"""The trainer's Task for paper 001's multi-task transformer (`model.name = "mtl_transformer"`).

Aksoy, Sharoff, Ravikumar (paper 001), section 3.1: one model learns image-to-
text generation (ITG), ordinal acuity classification (OC) and multi-label
findings classification (ML) with

    L = alpha * L_ITG + beta * L_OC + gamma * L_ML

(Keras multi-output `loss_weights`; each per-task loss is also logged
unweighted as `report_loss`, `acuity_loss`, `findings_loss` in history.csv).
L_ITG is the mean cross-entropy over the batch's non-padding tokens. Under a
multi-replica strategy Keras averages the replicas' own token means, which
equals the global token mean only when the replicas hold as many tokens
each; L_OC and L_ML are per-example means and unaffected.
The three training regimes of section 5 are task options:

    MTL-EQ   tasks = report, acuity, findings; loss_weights = [1, 1, 1]
    MTL-TP   the same tasks; alpha > beta > gamma (ours: [1.0, 0.5, 0.25])
    STL      three separate runs with tasks = report | acuity | findings
             (a one-task model has only that head; the shared encoder is the same)

Pipeline:

1. `prepare`: vocabularies from the train split only, the report's
   (`report_vocabulary.json`) and one per text feature (chief complaint,
   ICD title), plus the train medians of the scaled vitals
   (`mtl_task.json`, used by `caption`).
2. Data: images decoded by `medcap.data.pipeline` (pixels [0, 255]; the CNN
   normalises them itself), every epoch's order a pure function of
   (seed, epoch) and cut at `train.steps_per_epoch` inside the epoch, so an
   epoch is always the same stream. Targets: report ids shifted by one
   (teacher forcing), cumulative acuity (`encode_ordinal`), multi-hot findings.
3. `evaluate`: `medcap.models.mtl_report.evaluate_run` (Tables 1, 3, 4 of the
   run's tasks, trivial baselines, per-report scores for Table 2).
4. `caption`: image files only, so the non-imaging inputs are set to
   "unknown" (train-median vitals, gender and race `unknown`, empty chief
   complaint and ICD title, which the attention masks out); the output says so.

Task options (`model.options`, ours where the paper is silent; every other
key is a model constructor override, see `medcap.models.mtl_transformer.PRESETS`):

    tasks             ["report", "acuity", "findings"]   heads to build and train
    loss_weights      [1.0, 1.0, 1.0]   alpha (ITG), beta (OC), gamma (ML), paper order
    regime            ""    label in reports ("STL", "MTL-EQ", "MTL-TP"); derived when empty
    max_report_words  60    longer reports are truncated (decoder input = 61 tokens)
    min_count         3     report words seen fewer times in train become <unk>
    text_min_count    1     the same for chief complaint / ICD title words
    max_text_words    12    words kept per chief complaint / ICD title
    keep_punctuation  False report text = report_clean without its " ." tokens
                            (paper 001's Figure 2 shows reports without punctuation)
    eval_batch_size   64    batch of evaluation and decoding

`use_icd_title` (a model constructor option, default true = the paper)
set to false leaves the primary ED diagnosis title out of the model input:
it can name the target finding ("Pleural effusion"), a leak the paper does
not discuss; experiments/mtl_tp_no_icd.py is MTL-TP without it. Its
vocabulary is still built and saved, so both runs share one artefact layout.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from medcap.config import ConfigError, ExperimentConfig
from medcap.data.base import DataError, Example
from medcap.models.mtl_report import report_text
from medcap.registry import TASKS
from medcap.task import Task

log = logging.getLogger("medcap.models.mtl")

TASK_OPTIONS: dict[str, Any] = {
    "tasks": ["report", "acuity", "findings"],
    "loss_weights": [1.0, 1.0, 1.0],
    "regime": "",
    "max_report_words": 60,
    "min_count": 3,
    "text_min_count": 1,
    "max_text_words": 12,
    "keep_punctuation": False,
    "eval_batch_size": 64,
}
#: Order of `loss_weights`: the paper's alpha, beta, gamma.
LOSS_ORDER = ("report", "acuity", "findings")
REPORT_VOCABULARY = "report_vocabulary.json"
TEXT_VOCABULARIES = {"chief_complaint": "complaint_vocabulary.json", "icd_title": "icd_vocabulary.json"}
STATE_FILE = "mtl_task.json"
NUM_ACUITY_LEVELS = 5


def parse_tasks(value: Any) -> tuple[str, ...]:
    """`["report", "acuity"]`, `"report,acuity"` or `"report"` -> tasks in canonical order."""
    from medcap.models.mtl_transformer import TASK_NAMES

    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v) for v in value]
    items = [v for v in items if v]
    unknown = [v for v in items if v not in TASK_NAMES]
    if not items or unknown or len(set(items)) != len(items):
        raise ConfigError(
            f"model.options.tasks={value!r}: expected a non-empty subset of {', '.join(TASK_NAMES)} without repeats"
        )
    return tuple(t for t in TASK_NAMES if t in items)


def parse_loss_weights(value: Any) -> tuple[float, float, float]:
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        weights = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        weights = ()
    if len(weights) != 3 or any(w < 0 or not np.isfinite(w) for w in weights):
        raise ConfigError(f"model.options.loss_weights={value!r}: expected [alpha, beta, gamma], three numbers >= 0")
    return weights  # type: ignore[return-value]


def regime_label(tasks: tuple[str, ...], weights: tuple[float, float, float]) -> str:
    """STL for one task; MTL-EQ for equal weights; MTL-TP for alpha > beta > gamma."""
    if len(tasks) == 1:
        return f"STL ({tasks[0]})"
    active = [w for t, w in zip(LOSS_ORDER, weights) if t in tasks]
    if len(set(active)) == 1:
        return "MTL-EQ"
    if len(tasks) == 3 and weights[0] > weights[1] > weights[2]:
        return "MTL-TP"
    return "MTL (" + ", ".join(f"{w:g}" for w in active) + ")"


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(task options with defaults, model constructor overrides)."""
    task = {**TASK_OPTIONS, **{k: v for k, v in options.items() if k in TASK_OPTIONS}}
    model = {k: v for k, v in options.items() if k not in TASK_OPTIONS}
    return task, model


@TASKS.register("mtl_transformer")
class MTLTask(Task):
    """Paper 001: cross-modal multi-task transformer (STL / MTL-EQ / MTL-TP)."""

    input_keys = (
        "id", "image", "report_clean", "vitals", "gender_onehot", "race_onehot",
        "chief_complaint", "icd_title", "acuity", "findings",
    )  # fmt: skip

    def __init__(self, config: ExperimentConfig):
        super().__init__(config)
        from medcap.models.mtl_transformer import preset_config

        self.options, self.model_options = split_options(dict(config.model.options))
        self.tasks = parse_tasks(self.options["tasks"])
        self.loss_weights = parse_loss_weights(self.options["loss_weights"])
        self.regime = str(self.options["regime"] or regime_label(self.tasks, self.loss_weights))
        for key in ("max_report_words", "min_count", "text_min_count", "max_text_words", "eval_batch_size"):
            if int(self.options[key]) < 1:
                raise ConfigError(f"model.options.{key}={self.options[key]}: must be >= 1")
        if config.data.normalization != "none":
            raise ConfigError(
                f"data.normalization={config.data.normalization!r}: paper 001's model normalises pixels itself "
                "(EfficientNet's built-in rescaling; conv_tiny rescales to [0, 1]); use data.normalization=none"
            )
        try:  # fail at config time, not after the vocabulary is built
            preset_config(config.model.preset, vocabulary_size=5, **self.model_options)
        except ValueError as err:
            raise ConfigError(f"model.preset/options: {err}") from None
        self.max_report_words = int(self.options["max_report_words"])
        self.max_text_words = int(self.options["max_text_words"])
        self.keep_punctuation = bool(self.options["keep_punctuation"])
        self.use_icd_title = self.model_options.get("use_icd_title", True)
        if not isinstance(self.use_icd_title, bool):
            raise ConfigError(f"model.options.use_icd_title={self.use_icd_title!r}: expected true or false")
        self.report_vocabulary = None
        self.text_vocabularies: dict[str, Any] = {}
        self.state: dict[str, Any] = {}

    # -- artefacts ------------------------------------------------------------
    @property
    def report_length(self) -> int:
        """Decoder input width: `<start>` + max_report_words words (targets: words + `<end>`)."""
        return self.max_report_words + 1

    def prepare(self, splits: dict[str, list[Example]], workdir: Path) -> None:
        from medcap.text import Vocabulary

        train = splits["train"]
        self.report_vocabulary = Vocabulary.build(
            (report_text(e, self.keep_punctuation) for e in train), min_count=int(self.options["min_count"])
        )
        self.text_vocabularies = {
            key: Vocabulary.build((e[key] for e in train), min_count=int(self.options["text_min_count"]))
            for key in TEXT_VOCABULARIES
        }
        vitals = np.array([e["vitals"] for e in train], dtype=np.float64)
        acuity = [int(e["acuity"]) for e in train]
        findings = np.array([e["findings"] for e in train], dtype=np.float64)
        self.state = {
            "vitals_median": np.median(vitals, axis=0).tolist(),
            "findings_names": list(train[0].get("findings_names", [])),
            "findings_prevalence": findings.mean(axis=0).tolist(),
            "acuity_counts": {str(level): acuity.count(level) for level in range(1, NUM_ACUITY_LEVELS + 1)},
            "tasks": list(self.tasks),
            "loss_weights": list(self.loss_weights),
            "regime": self.regime,
        }
        self._save(Path(workdir))
        log.info(
            "%s: report vocabulary %d tokens, complaint %d, ICD %d",
            self.regime,
            len(self.report_vocabulary),
            len(self.text_vocabularies["chief_complaint"]),
            len(self.text_vocabularies["icd_title"]),
        )

    def _save(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.report_vocabulary.save(workdir / REPORT_VOCABULARY)
        for key, name in TEXT_VOCABULARIES.items():
            self.text_vocabularies[key].save(workdir / name)
        (workdir / STATE_FILE).write_text(json.dumps(self.state, indent=2) + "\n")

    def restore(self, workdir: Path) -> None:
        from medcap.text import Vocabulary

        workdir = Path(workdir)
        self.report_vocabulary = Vocabulary.load(workdir / REPORT_VOCABULARY)
        self.text_vocabularies = {key: Vocabulary.load(workdir / name) for key, name in TEXT_VOCABULARIES.items()}
        state_path = workdir / STATE_FILE
        if not state_path.is_file():
            raise FileNotFoundError(f"{workdir}: no {STATE_FILE} (was `prepare` run?)")
        self.state = json.loads(state_path.read_text())
        environment = workdir / "environment.json"
        if environment.is_file():
            self.weights_info = json.loads(environment.read_text()).get("pretrained_weights", {})

    def _require_prepared(self, what: str) -> None:
        if self.report_vocabulary is None:
            raise RuntimeError(f"MTLTask.{what}: call prepare() or restore() first")

    # -- model ----------------------------------------------------------------
    def build_model(self):
        from medcap.models.mtl_transformer import MTLTransformer

        self._require_prepared("build_model")
        overrides = {
            "image_size": tuple(self.config.data.image_size),
            "max_report_length": self.report_length,
            **self.model_options,
        }
        model = MTLTransformer.from_preset(
            self.config.model.preset,
            vocabulary_size=len(self.report_vocabulary),
            complaint_vocabulary_size=len(self.text_vocabularies["chief_complaint"]),
            icd_vocabulary_size=len(self.text_vocabularies["icd_title"]),
            tasks=self.tasks,
            **overrides,
        )
        self.weights_info = model.load_backbone_weights(self.config.model.encoder_weights)
        return model

    def losses(self) -> dict[str, Any]:
        import keras

        every = {
            # Section 3.1: cross-entropy for ITG (padding ignored), BCE for OC and ML.
            "report": keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
            "acuity": keras.losses.BinaryCrossentropy(),
            "findings": keras.losses.BinaryCrossentropy(),
        }
        return {task: every[task] for task in self.tasks}

    def loss_weight_dict(self) -> dict[str, float]:
        return {task: weight for task, weight in zip(LOSS_ORDER, self.loss_weights) if task in self.tasks}

    def compile_model(self, model, optimizer) -> None:
        model.compile(optimizer=optimizer, loss=self.losses(), loss_weights=self.loss_weight_dict())

    # -- data -----------------------------------------------------------------
    def _encode_text(self, vocabulary, text: str, width: int) -> np.ndarray:
        ids = vocabulary.encode(text, add_special=False)[:width]
        row = np.zeros(width, np.int32)
        row[: len(ids)] = ids
        return row

    def columns(self, examples: list[Example]) -> dict[str, np.ndarray]:
        """In-memory table of everything the model reads, one row per example."""
        from medcap.data.pipeline import to_columns
        from medcap.evaluation.classification import encode_ordinal

        self._require_prepared("columns")
        columns = to_columns(examples, ("image", "vitals", "gender_onehot", "race_onehot"))
        for key in ("vitals", "gender_onehot", "race_onehot"):
            columns[key] = columns[key].astype(np.float32)
        for key in TEXT_VOCABULARIES:
            vocabulary = self.text_vocabularies[key]
            columns[key] = np.stack([self._encode_text(vocabulary, str(e[key]), self.max_text_words) for e in examples])
        if "report" in self.tasks:
            width = self.report_length + 1
            tokens = np.zeros((len(examples), width), np.int32)
            for i, example in enumerate(examples):
                ids = self.report_vocabulary.encode(report_text(example, self.keep_punctuation), max_length=width)
                tokens[i, : len(ids)] = ids
            columns["report_ids"] = tokens
        if "acuity" in self.tasks:
            levels = []
            for example in examples:
                level = example.get("acuity")
                if not isinstance(level, (int, np.integer)) or not 1 <= int(level) <= NUM_ACUITY_LEVELS:
                    raise DataError(f"acuity {level!r}: expected an integer 1..{NUM_ACUITY_LEVELS}", record=example.get("id"), field="acuity")
                levels.append(int(level))
            columns["acuity_target"] = encode_ordinal(levels, NUM_ACUITY_LEVELS)
        if "findings" in self.tasks:
            columns["findings"] = to_columns(examples, ("findings",))["findings"].astype(np.float32)
            if not np.isin(columns["findings"], (0.0, 1.0)).all():
                bad = next(e for e in examples if not set(e["findings"]) <= {0, 1})
                raise DataError("findings must be 0/1", record=bad.get("id"), field="findings")
        return columns

    def _transform(self, features: dict) -> tuple[dict, dict]:
        from medcap.models.mtl_transformer import (
            COMPLAINT_INPUT,
            GENDER_INPUT,
            ICD_INPUT,
            IMAGE_INPUT,
            RACE_INPUT,
            TOKEN_INPUT,
            VITALS_INPUT,
        )

        inputs = {
            IMAGE_INPUT: features["image"],
            VITALS_INPUT: features["vitals"],
            GENDER_INPUT: features["gender_onehot"],
            RACE_INPUT: features["race_onehot"],
            COMPLAINT_INPUT: features["chief_complaint"],
        }
        if self.use_icd_title:
            inputs[ICD_INPUT] = features["icd_title"]
        targets = {}
        if "report" in self.tasks:
            inputs[TOKEN_INPUT] = features["report_ids"][:-1]
            targets["report"] = features["report_ids"][1:]
        if "acuity" in self.tasks:
            targets["acuity"] = features["acuity_target"]
        if "findings" in self.tasks:
            targets["findings"] = features["findings"]
        return inputs, targets

    def _image_spec(self):
        from medcap.data.pipeline import ImageSpec

        data = self.config.data
        return ImageSpec(size=tuple(data.image_size), normalization=data.normalization, augment=data.augment)

    def _decoded(self, examples: list[Example]):
        import tensorflow as tf

        from medcap.data.pipeline import ImageDecoder, maybe_cache

        calls = self.config.data.num_parallel_calls or tf.data.AUTOTUNE
        ds = tf.data.Dataset.from_tensor_slices(self.columns(examples))
        ds = ds.map(ImageDecoder(self._image_spec()), num_parallel_calls=calls, deterministic=True)
        return maybe_cache(ds, self.config.data.cache), calls

    def train_dataset(
        self, examples: list[Example], *, batch_size: int, seed: int, first_epoch: int, epochs: int
    ) -> tuple[Any, int]:
        from medcap.data.pipeline import (
            ImageFinisher,
            epochs_in_order,
            finalize,
            steps_per_epoch,
            with_example_seeds,
        )

        ds, calls = self._decoded(examples)
        finisher = ImageFinisher(self._image_spec())
        steps = steps_per_epoch(len(examples), batch_size)
        if self.config.train.steps_per_epoch:
            steps = min(steps, self.config.train.steps_per_epoch)

        def finish(features, element_seed):
            return self._transform(finisher(features, element_seed))

        def per_epoch(epoch_ds, epoch):
            seeded = with_example_seeds(epoch_ds, seed, epoch)
            return seeded.map(finish, num_parallel_calls=calls, deterministic=True).batch(batch_size).take(steps)

        ds = epochs_in_order(ds, len(examples), seed=seed, first_epoch=first_epoch, epochs=epochs, per_epoch=per_epoch)
        return finalize(ds, None, deterministic=self.config.train.deterministic), steps

    def eval_dataset(self, examples: list[Example], *, batch_size: int):
        from medcap.data.pipeline import ImageFinisher, finalize

        ds, calls = self._decoded(examples)
        finisher = ImageFinisher(self._image_spec())
        ds = ds.map(lambda features: self._transform(finisher(features)), num_parallel_calls=calls, deterministic=True)
        return finalize(ds, batch_size)

    # -- decoding -------------------------------------------------------------
    def max_decode_length(self) -> int:
        """Generated tokens at most (`<end>` included): eval.max_length, capped
        by the decoder's position embedding."""
        return min(int(self.config.eval.max_length), self.report_length)

    def decoder(self, model, *, method: str | None = None, beam_size: int | None = None, max_length: int | None = None):
        """A `medcap.decoding.Decoder` over the model's attention caches; call it
        with `model.empty_cache(encoder_output, max_length)`."""
        from keras import ops

        from medcap.decoding import Decoder
        from medcap.models.mtl_transformer import ENCODER_OUTPUT

        def next_fn(prompt, cache, index):
            batch = ops.shape(prompt)[0]
            token = ops.slice(prompt, [0, index - 1], [batch, 1])
            logits, self_cache, _ = model.call_with_cache(
                token, cache[ENCODER_OUTPUT], cache["self_cache"], cache["cross_cache"], index - 1
            )
            return logits[:, 0, :], {**cache, "self_cache": self_cache}

        eval_cfg = self.config.eval
        return Decoder(
            next_fn,
            max_length=max_length or self.max_decode_length(),
            method=method or eval_cfg.decoding,
            beam_size=beam_size or eval_cfg.beam_size,
            scores_are="logits",
        )

    def predict(self, model, dataset, *, decoder=None) -> dict[str, np.ndarray]:
        """One pass over a batched (inputs, targets) dataset: report token ids
        (n, max_length), acuity probabilities (n, 4), findings probabilities (n, 5)."""
        from medcap.models.mtl_transformer import ENCODER_OUTPUT, TOKEN_INPUT

        encoder = model.encoder_model()
        if "report" in self.tasks and decoder is None:
            decoder = self.decoder(model)
        collected: dict[str, list[np.ndarray]] = {}
        for inputs, _ in dataset:
            inputs = {k: v for k, v in inputs.items() if k != TOKEN_INPUT}
            outputs = encoder(inputs, training=False)
            for task in ("acuity", "findings"):
                if task in outputs:
                    collected.setdefault(task, []).append(np.asarray(outputs[task]))
            if decoder is not None:
                cache = model.empty_cache(outputs[ENCODER_OUTPUT], decoder.max_length)
                collected.setdefault("report", []).append(decoder(cache))
        return {k: np.concatenate(v, axis=0) for k, v in collected.items()}

    # -- results --------------------------------------------------------------
    def evaluate(self, model, splits: dict[str, list[Example]], split: str, workdir: Path) -> dict[str, Any]:
        from medcap.models import mtl_report

        self._require_prepared("evaluate")
        return mtl_report.evaluate_run(self, model, splits, split, Path(workdir))

    def caption(self, model, image_paths: list[str]) -> list[dict[str, Any]]:
        """Reports (and acuity / findings) from image files alone: the
        non-imaging inputs are "unknown" (see the module docstring)."""
        from medcap.evaluation.classification import decode_ordinal
        from medcap.text import START_ID

        self._require_prepared("caption")
        n = len(image_paths)
        examples = [
            {
                "id": f"image{i}",
                "image": str(path),
                "report_clean": "",
                "vitals": list(self.state["vitals_median"]),
                "gender_onehot": [0, 0, 1],  # GENDERS = (F, M, unknown)
                "race_onehot": [0, 0, 0, 0, 0, 1],  # RACE_GROUPS end with unknown
                "chief_complaint": "",
                "icd_title": "",
                "acuity": 1,
                "findings": [0] * len(self.state.get("findings_prevalence", [0] * 5)),
            }
            for i, path in enumerate(image_paths)
        ]
        predictions = self.predict(model, self.eval_dataset(examples, batch_size=int(self.options["eval_batch_size"])))
        names = self.state.get("findings_names") or [f"finding_{j}" for j in range(5)]
        results = []
        for i in range(n):
            item: dict[str, Any] = {
                "conditioning": "image only: vitals at train medians, gender/race unknown, no complaint or ICD title",
                "weights": self.weights_info,
            }
            if "report" in predictions:
                row = predictions["report"][i]
                item["text"] = self.report_vocabulary.decode(row)
                item["tokens"] = [int(t) for t in row if t not in (0, START_ID)]
            if "acuity" in predictions:
                item["acuity"] = int(decode_ordinal(predictions["acuity"][i : i + 1])[0])
            if "findings" in predictions:
                item["findings"] = {name: float(p) for name, p in zip(names, predictions["findings"][i])}
            results.append(item)
        return results
