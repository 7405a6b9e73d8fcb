"""The trainer's Task for paper 004's findings classifier (`model.name = "findings_classifier"`).

The model is `medcap.models.findings_classifier.FindingsClassifier`; the
data, any reader whose examples carry `findings` and `findings_names`
(`medcap.data.findings_labels`: ChestX-ray14, CheXpert, MIMIC-CXR labels,
a labelled image folder, IU X-ray with our labeler).

Pipeline:

1. `prepare`: reads the label names off the examples and computes the loss
   weights of each label on the train split (`label_weighting`, default
   CheXNet's), saved in `findings_labels.json` with the train counts.
2. Training: (image, findings) pairs; the image is the first view, decoded
   to [0, 255] RGB at `data.image_size` (the model normalises its own input,
   so `data.normalization` must be `none`); with `data.augment` each epoch
   draws the radiograph transform of `medcap.data.augment` (rotation,
   shift, zoom, exposure; horizontal flips only with the `horizontal_flip`
   option). The loss is `MaskedBinaryCrossentropy` (masked labels add
   nothing); the metric, `MaskedAUC` (`val_auc`).
3. Transfer learning (`phases`): with `train.frozen_epochs` > 0, a head
   phase with the backbone frozen at `train.learning_rate`, then a
   fine-tuning phase from `train.fine_tune_from` at
   `train.fine_tune_learning_rate` (default a tenth), each its own compile
   and fit, resumable at either (`medcap.training`). Without it one phase
   trains the backbone from `fine_tune_from` (everything by default).
4. `evaluate` / `caption`: `medcap.models.findings_report`.

Weights: `model.encoder_weights` "auto" means the preset's requirement on
real data (the ImageNet presets need the ImageNet file and fail with where
to put it) and the loud random fallback on the synthetic default; "none"
trains from scratch on purpose (the ablation); a path loads that file.

Task options (`model.options`; every other key overrides the preset, see
`medcap.models.findings_classifier.PRESETS`):

    label_weighting    chexnet   none | chexnet | positive (`medcap.layers.masked_losses`)
    freeze_batchnorm   None      None: frozen when the backbone is pretrained
    horizontal_flip    False     radiographs are not mirror-symmetric
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from medcap.config import ConfigError, ExperimentConfig
from medcap.data.base import Example
from medcap.data.findings_labels import findings_matrix, first_view
from medcap.layers.masked_losses import (
    WEIGHTINGS,
    MaskedAUC,
    MaskedBinaryCrossentropy,
    label_weights,
)
from medcap.models.findings_classifier import PRESETS, TINY, build_findings_classifier, set_phase
from medcap.registry import TASKS
from medcap.task import Phase, Task

log = logging.getLogger("medcap.findings")

LABELS_FILE = "findings_labels.json"
TASK_OPTIONS = {"label_weighting": "chexnet", "freeze_batchnorm": None, "horizontal_flip": False}


class FindingsTask(Task):
    """Feeds `FindingsClassifier` (module docstring)."""

    input_keys = ("image", "findings")
    #: `model.options` this task reads itself; every other key overrides the preset.
    task_options: dict[str, Any] = TASK_OPTIONS

    def __init__(self, config: ExperimentConfig):
        super().__init__(config)
        options = dict(config.model.options)
        self.options = {key: options.pop(key, default) for key, default in self.task_options.items()}
        self.overrides = options
        if config.model.preset not in PRESETS:
            raise ConfigError(f"model.preset={config.model.preset!r}: expected one of {', '.join(PRESETS)}")
        if self.options["label_weighting"] not in WEIGHTINGS:
            raise ConfigError(f"model.options.label_weighting={self.options['label_weighting']!r}: expected one of {', '.join(WEIGHTINGS)}")
        if config.data.normalization != "none":
            raise ConfigError(
                f"data.normalization={config.data.normalization!r}: the findings classifier normalises inside "
                "the model (the backbone's own ImageNet normalisation); set data.normalization=none"
            )
        height, width = config.data.image_size
        if height != width:
            raise ConfigError(f"data.image_size={config.data.image_size}: the findings classifier takes square images")
        if "image_size" in self.overrides:
            raise ConfigError("set the input size with data.image_size, not model.options.image_size")
        self.label_names: tuple[str, ...] = ()
        self.workdir: Path | None = None
        self.positive_weights: list[float] = []
        self.negative_weights: list[float] = []

    # -- artefacts -------------------------------------------------------------
    def prepare(self, splits: dict[str, list[Example]], workdir: Path) -> None:
        train = splits["train"]
        if not train:
            raise ConfigError("the train split is empty")
        self.workdir = Path(workdir)
        self.label_names = tuple(train[0].get("findings_names", ()))
        targets = findings_matrix(train, self.label_names)
        self.positive_weights, self.negative_weights = label_weights(targets, self.options["label_weighting"])
        record = {
            "label_names": list(self.label_names),
            "label_weighting": self.options["label_weighting"],
            "positive_weights": self.positive_weights,
            "negative_weights": self.negative_weights,
            "train_positives": (targets == 1).sum(axis=0).tolist(),
            "train_negatives": (targets == 0).sum(axis=0).tolist(),
            "train_masked": (targets < 0).sum(axis=0).tolist(),
        }
        (Path(workdir) / LABELS_FILE).write_text(json.dumps(record, indent=1) + "\n")

    def restore(self, workdir: Path) -> None:
        path = Path(workdir) / LABELS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{workdir}: no {LABELS_FILE} (was training started?)")
        record = json.loads(path.read_text())
        self.workdir = Path(workdir)
        self.label_names = tuple(record["label_names"])
        self.positive_weights = record["positive_weights"]
        self.negative_weights = record["negative_weights"]

    # -- model -----------------------------------------------------------------
    def weights_policy(self) -> str:
        policy = self.config.model.encoder_weights
        if policy != "auto":
            return policy
        required = PRESETS[self.config.model.preset]["encoder_weights"]
        return "auto" if self.config.data.synthetic else required

    @property
    def pretrained(self) -> bool:
        return bool(self.weights_info.get("pretrained"))

    def build_model(self):
        model, record = build_findings_classifier(
            self.config.model.preset,
            self.label_names,
            encoder_weights=self.weights_policy(),
            image_size=self.config.data.image_size[0],
            **self.overrides,
        )
        if record is None:
            self.weights_info = {"backbone": TINY, "policy": "none", "pretrained": False, "source": "random init (tiny CNN)"}
        else:
            self.weights_info = record.to_dict()
        return model

    def freeze_batchnorm(self) -> bool:
        choice = self.options["freeze_batchnorm"]
        return self.pretrained if choice is None else bool(choice)

    def compile_model(self, model, optimizer) -> None:
        model.compile(
            optimizer=optimizer,
            loss=MaskedBinaryCrossentropy(self.positive_weights, self.negative_weights),
            metrics=[MaskedAUC(len(self.label_names))],
        )

    def phases(self) -> list[Phase]:
        train = self.config.train
        fine_tune_lr = train.fine_tune_learning_rate or train.learning_rate / 10.0
        freeze_bn = self.freeze_batchnorm

        def head(model) -> None:
            set_phase(model, "head", freeze_batchnorm=freeze_bn())

        def fine_tune(model) -> None:
            set_phase(model, "fine_tune", fine_tune_from=train.fine_tune_from, freeze_batchnorm=freeze_bn())

        if not train.frozen_epochs:
            return [Phase("train", train.epochs, train.learning_rate, fine_tune)]
        phases = [Phase("head", train.frozen_epochs, train.learning_rate, head)]
        if train.epochs > train.frozen_epochs:
            phases.append(Phase("fine_tune", train.epochs - train.frozen_epochs, fine_tune_lr, fine_tune))
        return phases

    # -- data ------------------------------------------------------------------
    def image_spec(self, training: bool):
        from medcap.data.augment import RadiographAugment
        from medcap.data.pipeline import ImageSpec

        radiograph = RadiographAugment(horizontal_flip=bool(self.options["horizontal_flip"]))
        return ImageSpec(size=tuple(self.config.data.image_size), normalization="none", augment=training and self.config.data.augment, radiograph=radiograph)

    def _dataset(self, examples: list[Example], *, batch_size: int, training: bool, seed: int = 0, first_epoch: int = 0, epochs: int = 1):
        import tensorflow as tf

        from medcap.data.pipeline import image_dataset

        targets = findings_matrix(examples, self.label_names)
        rows = [{"image": first_view(e["image"]), "findings": t.astype(np.float32)} for e, t in zip(examples, targets)]
        return image_dataset(
            rows,
            keys=("image", "findings"),
            spec=self.image_spec(training),
            batch_size=batch_size,
            transform=lambda f: (f["image"], tf.cast(f["findings"], tf.float32)),
            training=training,
            seed=seed,
            first_epoch=first_epoch,
            epochs=epochs,
            cache=self.config.data.cache,
            num_parallel_calls=self.config.data.num_parallel_calls,
            deterministic=self.config.train.deterministic,
        )

    def train_dataset(self, examples, *, batch_size, seed, first_epoch, epochs):
        from medcap.data.pipeline import steps_per_epoch

        dataset = self._dataset(examples, batch_size=batch_size, training=True, seed=seed, first_epoch=first_epoch, epochs=epochs)
        return dataset, steps_per_epoch(len(examples), batch_size)

    def eval_dataset(self, examples, *, batch_size):
        return self._dataset(examples, batch_size=batch_size, training=False)

    def predict(self, model, examples: list[Example], batch_size: int | None = None) -> np.ndarray:
        """(n, labels) probabilities in example order."""
        dataset = self.eval_dataset(examples, batch_size=batch_size or self.config.train.batch_size)
        return np.asarray(model.predict(dataset.map(lambda image, target: image), verbose=0), dtype=np.float64)

    # -- results ---------------------------------------------------------------
    def evaluate(self, model, splits, split, workdir):
        from medcap.models.findings_report import evaluate_run

        return evaluate_run(self, model, splits, split, Path(workdir))

    def caption(self, model, image_paths: list[str]) -> list[dict[str, Any]]:
        from medcap.models.findings_report import describe_images

        return describe_images(self, model, image_paths)


TASKS.register("findings_classifier", FindingsTask)
