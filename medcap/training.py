"""The shared trainer: one `fit(config, workdir)` for every paper.

A run's workdir is self-contained:

    config.json        the exact ExperimentConfig (a rerun must match it)
    environment.json   versions, devices, precision, strategy, seeds, and
                       whether pretrained weights were really loaded
    history.csv        one row per epoch (CSVLogger; appended on resume)
    model.keras        the trained model (best weights on the monitored metric)
    metrics.json       the task's evaluation on `config.eval.split`
    backup/            BackupAndRestore state while a run is unfinished
    checkpoints/       best weights on `config.train.monitor`
    tensorboard/       TensorBoard logs
    ...                task artefacts (vocabulary, cached features, report.md)

Resume: rerunning the same command after a kill restores weights, optimizer
state and the epoch counter from `backup/` (Keras BackupAndRestore); the
train stream starts at that epoch and, because each epoch's order and
augmentation are a pure function of (seed, epoch), continues exactly as an
uninterrupted run would. Dropout randomness lives in Keras seed-generator
state variables, which are saved and restored with the weights.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from medcap import distributed
from medcap.config import ConfigError, ExperimentConfig, TrainConfig
from medcap.data import images
from medcap.data.loading import load_splits
from medcap.strategies import select_strategy, strategy_name
from medcap.workdir import resolve_workdir

log = logging.getLogger("medcap.training")

BACKUP_DIR = "backup"
#: Final weights of each finished phase of a multi-phase run (`medcap.task.Phase`).
PHASES_DIR = "phases"
BEST_WEIGHTS = "checkpoints/best.weights.h5"
_UNSET = object()


# ---------------------------------------------------------------------------
# Devices, strategy, precision, seeds


def resolve_precision(train: TrainConfig, strategy) -> str:
    """`auto`: float32 on CPU, mixed_float16 on GPU, mixed_bfloat16 on TPU."""
    import tensorflow as tf

    if train.precision != "auto":
        return train.precision
    if "TPU" in strategy_name(strategy):
        return "mixed_bfloat16"
    if tf.config.list_logical_devices("GPU"):
        return "mixed_float16"
    return "float32"


def set_precision(policy: str) -> None:
    import keras

    keras.mixed_precision.set_dtype_policy(policy)


def seed_everything(seed: int, deterministic: bool) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    # Process-wide in TensorFlow: set both ways, so a run does not inherit an earlier one's.
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        # Not exported under tf.config; the module Keras itself reads the setting from.
        from tensorflow.python.framework import config as tf_framework_config

        tf_framework_config.disable_op_determinism()


# ---------------------------------------------------------------------------
# Data


# ---------------------------------------------------------------------------
# Optimizer and callbacks


def make_optimizer(train: TrainConfig, total_steps: int):
    import keras

    learning_rate: Any = train.learning_rate
    if train.warmup_fraction > 0:
        warmup = max(1, int(round(train.warmup_fraction * total_steps)))
        # alpha=1 turns the cosine part off: linear warm-up, then constant.
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0,
            decay_steps=max(1, total_steps - warmup),
            alpha=1.0,
            warmup_target=train.learning_rate,
            warmup_steps=warmup,
        )
    kwargs: dict[str, Any] = {"learning_rate": learning_rate}
    if train.clipnorm:
        kwargs["global_clipnorm"] = train.clipnorm
    if train.optimizer == "adam":
        return keras.optimizers.Adam(**kwargs)
    if train.optimizer == "adamw":
        return keras.optimizers.AdamW(**kwargs)
    return keras.optimizers.SGD(**kwargs)


def resumed_epoch(workdir: Path, *, nested: bool = False) -> int:
    """The epoch BackupAndRestore will resume at (0 for a fresh run): from
    `workdir/backup/`, or with `nested` from the phase backup dir given."""
    metadata = (workdir if nested else workdir / BACKUP_DIR) / "training_metadata.json"
    if not metadata.exists():
        return 0
    return int(json.loads(metadata.read_text())["epoch"])


def run_in_progress(workdir: Path) -> int:
    """The latest epoch an unfinished run reached: its backup's epoch, a
    phase backup's, or the end of its finished phases (0 for a fresh run)."""
    reached = resumed_epoch(workdir)
    for metadata in (workdir / BACKUP_DIR).glob("*/training_metadata.json"):
        reached = max(reached, int(json.loads(metadata.read_text())["epoch"]))
    if (workdir / PHASES_DIR).is_dir() and any((workdir / PHASES_DIR).glob("*.weights.h5")):
        reached = max(reached, 1)
    return reached


class SeedStateBackup:
    """Backs up Keras seed-generator states (dropout and other layer RNG).

    BackupAndRestore saves weights and optimizer state but not these
    variables, so without this a resumed run would draw a different dropout
    mask from the one an uninterrupted run draws. Saved beside the backup
    after each epoch and restored at train begin.
    """

    def __new__(cls, backup_dir: Path):
        import keras

        class _Callback(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.path = Path(backup_dir) / "seed_states.npz"

            def _states(self) -> list:
                # Matched by position: variable paths carry process-unique
                # suffixes (seed_generator_2, ...) that differ after a restart.
                return [v for v in self.model.variables if v.path.endswith("seed_generator_state")]

            def on_train_begin(self, logs=None):
                if self.path.exists():
                    saved = np.load(self.path)
                    states = self._states()
                    if len(saved.files) != len(states):
                        raise RuntimeError(f"{self.path}: {len(saved.files)} seed states saved, model has {len(states)}")
                    for i, variable in enumerate(states):
                        variable.assign(saved[f"state_{i}"])

            def on_epoch_end(self, epoch, logs=None):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_name("seed_states.tmp.npz")
                np.savez(tmp, **{f"state_{i}": np.asarray(v) for i, v in enumerate(self._states())})
                tmp.replace(self.path)

        return _Callback()


class MonitorStateBackup:
    """Backs up what ModelCheckpoint and EarlyStopping remember between epochs.

    Their best value so far (and EarlyStopping's count of epochs without
    improvement) live in the callback objects, not in BackupAndRestore's
    state; a resumed run would forget them, save a worse epoch as "best" and
    restore different weights at the end. Saved beside the backup after each
    epoch (after the two callbacks ran) and restored at train begin.
    """

    def __new__(cls, backup_dir: Path, checkpoint, early_stopping=None):
        import keras

        class _Callback(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.path = Path(backup_dir) / "monitor_state.json"

            def on_train_begin(self, logs=None):
                if self.path.exists():
                    restore_monitor_state(json.loads(self.path.read_text()), checkpoint, early_stopping)

            def on_epoch_end(self, epoch, logs=None):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_name("monitor_state.tmp.json")
                tmp.write_text(json.dumps(monitor_state(checkpoint, early_stopping)))
                tmp.replace(self.path)

        return _Callback()


def monitor_state(checkpoint, early_stopping=None) -> dict[str, Any]:
    def number(value: Any) -> float | None:
        return None if value is None else float(value)

    state: dict[str, Any] = {"checkpoint_best": number(checkpoint.best)}
    if early_stopping is not None:
        state.update({"early_stopping_best": number(early_stopping.best), "early_stopping_wait": int(early_stopping.wait)})
    return state


def restore_monitor_state(state: dict[str, Any], checkpoint, early_stopping=None) -> None:
    checkpoint.best = state.get("checkpoint_best")
    if early_stopping is not None and "early_stopping_wait" in state:
        early_stopping.best = state["early_stopping_best"]
        early_stopping.wait = state["early_stopping_wait"]


def make_callbacks(
    train: TrainConfig,
    workdir: Path,
    *,
    resuming: bool,
    has_validation: bool,
    backup_dir: Path | None = None,
    checkpoint=None,
) -> list:
    """The standard callbacks. `backup_dir` (default `workdir/backup`) holds
    BackupAndRestore's state; `checkpoint`, a ModelCheckpoint from an earlier
    phase, is reused so "best" spans every phase of the run."""
    import keras

    monitor = train.monitor if has_validation else train.monitor.removeprefix("val_")
    (workdir / "checkpoints").mkdir(parents=True, exist_ok=True)
    backup_dir = backup_dir or workdir / BACKUP_DIR
    checkpoint = checkpoint or keras.callbacks.ModelCheckpoint(
        str(workdir / BEST_WEIGHTS), monitor=monitor, save_best_only=True, save_weights_only=True
    )
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        SeedStateBackup(backup_dir),
        checkpoint,
        keras.callbacks.CSVLogger(str(workdir / "history.csv"), append=resuming),
    ]
    early_stopping = None
    if train.early_stopping_patience:
        early_stopping = keras.callbacks.EarlyStopping(monitor=monitor, patience=train.early_stopping_patience)
        callbacks.append(early_stopping)
    callbacks.append(MonitorStateBackup(backup_dir, checkpoint, early_stopping))
    if train.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(workdir / "tensorboard"), write_graph=False))
    return callbacks


# ---------------------------------------------------------------------------
# Environment record


def environment_record(*, strategy, precision: str, config: ExperimentConfig, weights: dict) -> dict[str, Any]:
    import keras
    import numpy
    import tensorflow as tf

    import medcap

    def version(module: str) -> str | None:
        try:
            return __import__(module).__version__
        except Exception:  # noqa: BLE001  (optional package)
            return None

    return {
        "medcap": medcap.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_hub": version("keras_hub"),
        "numpy": numpy.__version__,
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "cpu_count": os.cpu_count(),
        "strategy": strategy_name(strategy),
        "replicas": strategy.num_replicas_in_sync,
        "precision": precision,
        "seed": config.train.seed,
        "deterministic": config.train.deterministic,
        "synthetic_data": config.data.synthetic,
        "pretrained_weights": weights,
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    head = Path(__file__).resolve().parent.parent / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (head.parent / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return None


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    tmp.replace(path)


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ---------------------------------------------------------------------------
# Entry points


def _check_workdir_config(config: ExperimentConfig, workdir: Path, resuming: bool) -> None:
    path = workdir / "config.json"
    if resuming and path.exists():
        previous = json.loads(path.read_text())
        current = json.loads(config.to_json())
        changed = sorted(
            f"{section}.{key}"
            for section in current
            if isinstance(current[section], dict)
            for key in set(current[section]) | set(previous.get(section, {}))
            if current[section].get(key) != previous.get(section, {}).get(key)
        )
        changed += sorted(k for k in current if not isinstance(current[k], dict) and current[k] != previous.get(k))
        if changed:
            raise ConfigError(
                f"{workdir} holds an unfinished run with a different config ({', '.join(changed[:5])}); "
                "rerun with the same settings to resume, or use a new --workdir"
            )


def fit(config: ExperimentConfig, workdir: str | Path, *, callbacks: list | None = None) -> dict[str, Any]:
    """Trains `config` into `workdir`, evaluates it, and returns
    `{"metrics": ..., "history": ..., "environment": ...}`.

    `callbacks` are extra Keras callbacks, run after the standard ones."""
    import keras

    config.validate()
    previous_policy = keras.config.dtype_policy()
    # First: a strategy across machines must exist before other TensorFlow work.
    strategy = select_strategy(config.train)
    try:
        if distributed.is_chief(strategy):
            return _fit(config, Path(workdir), callbacks, strategy)
        # Other workers train in step with the chief but write a scratch copy.
        scratch = distributed.worker_workdir(Path(workdir))
        try:
            return _fit(config, scratch, callbacks, strategy, evaluate=False)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        # The dtype policy is process-global; later models in the same
        # process (a notebook, the test suite) must not inherit ours.
        keras.config.set_dtype_policy(previous_policy)


def use_custom_loop(train: TrainConfig, strategy) -> bool:
    """`train.loop`, with "auto" choosing the custom loop across machines."""
    return train.loop == "custom" or (train.loop == "auto" and distributed.is_multi_worker(strategy))


def _fit(config: ExperimentConfig, workdir: Path, callbacks: list | None, strategy, *, evaluate: bool = True) -> dict[str, Any]:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    first_epoch = resumed_epoch(workdir)
    resuming = run_in_progress(workdir) > 0
    _check_workdir_config(config, workdir, resuming)
    (workdir / "config.json").write_text(config.to_json() + "\n")

    from medcap.registry import TASKS

    seed_everything(config.train.seed, config.train.deterministic)
    precision = resolve_precision(config.train, strategy)
    set_precision(precision)

    images.reset_dicom_voi_summary()
    data = load_splits(config.data)
    for split in ("train", "val", config.eval.split):
        if not data.splits.get(split):
            raise ConfigError(f"dataset {config.data.name}: split {split!r} is empty ({data.summary()})")
    log.info("data: %s", data.summary())
    write_json(workdir / "data.json", {"counts": data.counts(), "skipped": [e.to_dict() for e in data.skipped], "info": data.info})

    task = TASKS.get(config.model.name)(config)
    task.prepare(data.splits, workdir)

    train_cfg = config.train
    phases = task.phases()
    if sum(phase.epochs for phase in phases) != train_cfg.epochs:
        raise ConfigError(f"the task's phases add up to {sum(p.epochs for p in phases)} epochs, train.epochs={train_cfg.epochs}")
    val_ds = task.eval_dataset(data.splits["val"], batch_size=train_cfg.batch_size)

    with strategy.scope():
        model = task.build_model()

    environment = environment_record(strategy=strategy, precision=precision, config=config, weights=task.weights_info)
    custom_loop = use_custom_loop(train_cfg, strategy)
    environment["loop"] = "custom" if custom_loop else "fit"
    if distributed.is_multi_worker(strategy):
        environment["cluster"] = distributed.cluster_record(strategy)
    if len(phases) > 1:
        environment["phases"] = [{"name": p.name, "epochs": p.epochs, "learning_rate": p.learning_rate} for p in phases]
    write_json(workdir / "environment.json", environment)

    if first_epoch >= train_cfg.epochs:
        raise ConfigError(f"{workdir}: backup says epoch {first_epoch} but train.epochs={train_cfg.epochs}")
    started = time.time()
    history: dict[str, list] = {}
    checkpoint = None
    finished_best: Any = _UNSET
    offset = 0
    for index, phase in enumerate(phases):
        end = offset + phase.epochs
        backup = workdir / BACKUP_DIR if len(phases) == 1 else workdir / BACKUP_DIR / phase.name
        finished = workdir / PHASES_DIR / f"{phase.name}.weights.h5"
        if len(phases) > 1 and finished.exists():
            # A phase that ended in an earlier process: its final weights and
            # the best value so far, then the next phase.
            model.load_weights(str(finished))
            finished_best = json.loads(finished.with_suffix("").with_suffix(".json").read_text())["checkpoint_best"]
            offset = end
            continue
        phase_first = max(offset, resumed_epoch(backup, nested=True))
        # A phase killed after its last epoch but before it was marked finished
        # has nothing left to train: fit then only restores its backup.
        train_ds, steps = task.train_dataset(
            data.splits["train"],
            batch_size=train_cfg.batch_size,
            seed=train_cfg.seed,
            first_epoch=min(phase_first, end - 1),
            epochs=end,
        )
        if train_cfg.steps_per_epoch:
            steps = min(steps, train_cfg.steps_per_epoch)
        with strategy.scope():
            if phase.configure is not None:
                phase.configure(model)
            phase_train = dataclasses.replace(train_cfg, learning_rate=phase.learning_rate)
            optimizer = make_optimizer(phase_train, total_steps=steps * phase.epochs)
            task.compile_model(model, optimizer)
            if train_cfg.jit_compile is not None:
                model.jit_compile = train_cfg.jit_compile
            environment["jit_compile"] = bool(model.jit_compile)  # what Keras will do, not only what was asked
        phase_callbacks = make_callbacks(
            train_cfg,
            workdir,
            resuming=resuming or index > 0,
            has_validation=True,
            backup_dir=backup,
            checkpoint=checkpoint,
        )
        checkpoint = next(c for c in phase_callbacks if type(c).__name__ == "ModelCheckpoint")
        if index > 0 and finished_best is not _UNSET:
            checkpoint.best = finished_best  # a later phase's backup state, if any, overrides it at train begin
            finished_best = _UNSET
        run_phase = partial(distributed.fit_loop, model, strategy) if custom_loop else model.fit
        phase_history = run_phase(
            train_ds,
            validation_data=val_ds,
            initial_epoch=offset,
            epochs=end,
            steps_per_epoch=steps,
            callbacks=phase_callbacks + list(callbacks or []),
            verbose=train_cfg.verbose,
        )
        for key, values in phase_history.history.items():
            history.setdefault(key, []).extend(values)
        if len(phases) > 1:
            finished.parent.mkdir(parents=True, exist_ok=True)
            model.save_weights(str(finished))
            finished.with_suffix("").with_suffix(".json").write_text(json.dumps(monitor_state(checkpoint)))
        offset = end
    environment["train_seconds"] = round(time.time() - started, 2)
    best = workdir / BEST_WEIGHTS
    if train_cfg.restore_best_weights and best.exists():
        model.load_weights(str(best))
    model.save(workdir / "model.keras")
    write_json(workdir / "environment.json", environment)
    # Like the backup, a finished run's phase weights go, so a rerun starts afresh.
    shutil.rmtree(workdir / PHASES_DIR, ignore_errors=True)
    if not evaluate:
        return {"metrics": {}, "history": history, "environment": environment}
    if distributed.is_multi_worker(strategy):
        # The chief evaluates alone: a copy of the model outside the strategy,
        # whose predictions would otherwise wait on the other workers.
        import keras

        model = keras.saving.load_model(workdir / "model.keras")

    metrics = task.evaluate(model, data.splits, config.eval.split, workdir)
    write_json(workdir / "metrics.json", metrics)
    voi = images.dicom_voi_summary()
    if voi["images"]:  # which display transform each DICOM got, fallbacks counted
        record = json.loads((workdir / "data.json").read_text())
        record["dicom_voi"] = voi
        write_json(workdir / "data.json", record)
    return {"metrics": metrics, "history": history, "environment": environment}


def _load_workdir(workdir: Path):
    import keras

    from medcap.registry import TASKS

    workdir = resolve_workdir(workdir)
    path = workdir / "config.json"
    config = ExperimentConfig.from_json(path.read_text())
    task = TASKS.get(config.model.name)(config)
    task.restore(workdir)
    model_path = workdir / "model.keras"
    if not model_path.exists():
        raise FileNotFoundError(f"{workdir}: no model.keras (was training finished?)")
    model = keras.saving.load_model(model_path)
    return config, task, model


def evaluate_workdir(workdir: str | Path, split: str = "test") -> dict[str, Any]:
    """Re-scores a finished run on `split`; rewrites metrics.json for the test split."""
    workdir = resolve_workdir(workdir)
    config, task, model = _load_workdir(workdir)
    data = load_splits(config.data)
    metrics = task.evaluate(model, data.splits, split, workdir)
    name = "metrics.json" if split == config.eval.split else f"metrics_{split}.json"
    write_json(workdir / name, metrics)
    return metrics


def caption_images(workdir: str | Path, image_paths: list[str]) -> list[dict[str, Any]]:
    """Runs a finished run's model on image files."""
    _, task, model = _load_workdir(Path(workdir))
    return task.caption(model, image_paths)


def explain_images(
    workdir: str | Path,
    image_paths: list[str],
    *,
    method: str = "gradcam",
    label: str = "",
    top: int = 0,
    out_dir: str | Path,
) -> dict[str, Any]:
    """Saliency maps of a finished run's classifier on image files (`medcap explain`)."""
    from medcap.explanations.run import explain_files
    from medcap.models.findings_report import load_thresholds

    _, task, model = _load_workdir(Path(workdir))
    if not hasattr(task, "label_names"):
        raise ValueError(f"medcap explain needs an image classifier; {workdir} holds a {task.config.model.name} run")
    return explain_files(
        task, model, image_paths, method=method, label=label, top=top, out_dir=out_dir, thresholds=load_thresholds(task)
    )
