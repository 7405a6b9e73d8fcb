"""The contract between a paper's model and the shared trainer and evaluator.

A `Task` binds one model family to the common feature dict. The trainer
(`medcap.training`) never knows which paper it runs: it asks the task for

* `prepare(splits, workdir)`: fit what is learned from the train split only
  (vocabulary, scalers, cached backbone features) and save it in the workdir;
* `build_model()`: the (uncompiled) keras.Model, built under the strategy scope;
* `compile_model(model, optimizer)`: the paper's losses and metrics;
* `train_dataset(...)` / `eval_dataset(...)`: batched tf.data streams;
* `evaluate(model, splits, split, workdir)`: metrics, and the readable report;
* `caption(model, image_paths)`: outputs for `medcap caption`;
* `phases()`: the training phases (one by default; transfer learning has a
  frozen-backbone phase, then fine-tuning), each its own compile and fit.

Tasks register under the model name in `medcap.registry.TASKS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medcap.config import ConfigError, ExperimentConfig
from medcap.data.base import Example


@dataclass(frozen=True)
class Phase:
    """One stretch of training with its own trainable layers and optimizer.

    The trainer runs `epochs` epochs after the previous phases' (epoch
    numbers are global), calls `configure(model)` before compiling, and
    compiles with a fresh optimizer at `learning_rate`.
    """

    name: str
    epochs: int
    learning_rate: float
    configure: Callable[[Any], None] | None = None


class Task:
    """Base class; subclasses implement every method that raises here."""

    #: Keys of the common feature dict this task reads.
    input_keys: tuple[str, ...] = ()

    def __init__(self, config: ExperimentConfig):
        self.config = config
        #: Facts recorded in environment.json and the report, e.g.
        #: {"encoder": "vgg16", "pretrained": False, "source": "random init: ..."}
        self.weights_info: dict[str, Any] = {}

    # -- artefacts fitted on the train split --------------------------------
    def prepare(self, splits: dict[str, list[Example]], workdir: Path) -> None:
        """Fits train-split artefacts and saves them under `workdir`."""

    def restore(self, workdir: Path) -> None:
        """Reloads what `prepare` saved (for evaluate/caption from a workdir)."""

    # -- model ----------------------------------------------------------------
    def build_model(self):
        raise NotImplementedError(f"{type(self).__name__}.build_model")

    def compile_model(self, model, optimizer) -> None:
        raise NotImplementedError(f"{type(self).__name__}.compile_model")

    # -- data -----------------------------------------------------------------
    def train_dataset(
        self, examples: list[Example], *, batch_size: int, seed: int, first_epoch: int, epochs: int
    ) -> tuple[Any, int]:
        """Returns (dataset of epochs [first_epoch, epochs), steps per epoch)."""
        raise NotImplementedError(f"{type(self).__name__}.train_dataset")

    def eval_dataset(self, examples: list[Example], *, batch_size: int):
        """One ordered pass with the same (inputs, targets) as training."""
        raise NotImplementedError(f"{type(self).__name__}.eval_dataset")

    # -- results --------------------------------------------------------------
    def evaluate(self, model, splits: dict[str, list[Example]], split: str, workdir: Path) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.evaluate")

    def caption(self, model, image_paths: list[str]) -> list[dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__}.caption")

    # -- schedule -------------------------------------------------------------
    def phases(self) -> list[Phase]:
        """One phase of `train.epochs` at `train.learning_rate`; a task with a
        backbone to freeze overrides this (`train.frozen_epochs`)."""
        train = self.config.train
        if train.frozen_epochs or train.fine_tune_from:
            raise ConfigError(
                f"model {self.config.model.name} has no frozen-backbone phase: "
                "train.frozen_epochs and train.fine_tune_from apply to the findings classifier"
            )
        return [Phase("train", train.epochs, train.learning_rate)]
