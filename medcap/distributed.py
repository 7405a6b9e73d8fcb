"""Training across replicas and machines: the trainer's own loop and the cluster's roles.

The strategy itself is chosen in `medcap.strategies`.

Keras 3's `model.fit` cannot train under `MultiWorkerMirroredStrategy`: it
reduces a distributed batch before the first step and scalar step outputs
along axis 0 (keras-team/keras#20585). `fit_loop` is the loop the trainer
runs instead whenever the strategy spans machines (and, with
`train.loop=custom`, always). It keeps what `fit` gives, for every task and
without task code: the compiled losses, loss weights and metrics, mixed
precision with loss scaling (the compiled optimizer's `scale_loss` and
`apply_gradients`, as Keras' own step), the callbacks (BackupAndRestore,
ModelCheckpoint, EarlyStopping, CSVLogger, TensorBoard, History) and
validation after every epoch.

Data. Each input pipeline (one per worker) runs the task's own dataset of
global batches and keeps, of each global batch, the rows of its replicas
(`medcap.data.pipeline.distribute_batches`): split as evenly as possible,
earlier replicas taking the extra row, which is how `MirroredStrategy`
splits a batch, so every replica sees exactly the examples a single process
would put in that step and the run does not depend on the number of
machines. The cost: every worker decodes the whole global batch (the
pipelines stay a pure function of (seed, epoch), which exact resume needs).

Loss. Keras' compiled loss on a replica is the mean over the replica's rows
divided by R; the step multiplies it by `n_r * R / N` (n_r the replica's
rows, N the global batch's, which the input pipeline passes along: an
all-reduce for it would race the gradients' all-reduce, whose order the
graph does not fix), so the gradient summed over replicas is that of the
mean over the global batch even when the last batch of an epoch does not
split evenly (`tf.nn.compute_average_loss`'s rule). A loss that is not a
mean of per-example terms (CLIP's in-batch contrastive loss, a mean over
masked tokens) is that mean per replica, as under `fit` with
`MirroredStrategy`. With `model.jit_compile` (`train.jit_compile`) the
step is XLA-compiled when there is one replica, as fit compiles it.

Metrics. Keras metric variables sync on read: each replica accumulates its
rows, and reading a result outside `strategy.run` sums the accumulators of
every replica on every machine. The loss is tracked the way `fit` tracks it
(each replica's unscaled loss weighted by its rows).

Roles. `is_chief` follows TensorFlow's rule (the `chief` task, or worker 0
when the cluster has none). `worker_workdir` gives other workers a
temporary copy of what the chief's workdir holds for resuming; they write
there, and the trainer removes it when they finish.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from medcap.data.pipeline import batch_rows, distribute_batches

#: What a non-chief worker copies from the chief's workdir to resume as it does.
RESUME_STATE = ("backup", "phases")


def is_multi_worker(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy) -> bool:
    """True unless the strategy spans machines and this is not their chief."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type in ("worker", None) and not has_chief and (task_id or 0) == 0


def worker_workdir(workdir: Path) -> Path:
    """A temporary workdir for a non-chief worker, holding a copy of the
    chief's resume state (its backup and finished phases), so that it
    restores exactly what the chief restores and writes nothing shared."""
    scratch = Path(tempfile.mkdtemp(prefix="medcap-worker-"))
    for name in RESUME_STATE:
        if (workdir / name).is_dir():
            shutil.copytree(workdir / name, scratch / name)
    return scratch


class _Steps:
    """The compiled per-replica train and test steps of one compiled model."""

    def __init__(self, model, strategy):
        import keras
        import tensorflow as tf

        self.model = model
        with strategy.scope():
            self.loss = keras.metrics.Mean(name="loss")
        replicas = strategy.num_replicas_in_sync

        def forward(data, training: bool):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            y_pred = model(x, training=training)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
            rows = tf.cast(batch_rows(x), tf.float32)
            # Keras' loss is this replica's mean / R: the tracked value is the mean.
            self.loss.update_state(loss * replicas, sample_weight=rows)
            model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
            return loss, rows

        def train_step(data, total):
            with tf.GradientTape() as tape:
                loss, rows = forward(data, training=True)
                share = tf.math.divide_no_nan(rows * replicas, total)
                loss = model.optimizer.scale_loss(loss * tf.cast(share, loss.dtype))
            variables = model.trainable_variables
            model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

        def test_step(data, total):
            forward(data, training=False)

        if model.jit_compile and replicas == 1:
            # XLA as fit compiles it; with several replicas the optimizer's
            # cross-replica update stays outside XLA (fit's own choice there).
            train_step = tf.function(train_step, jit_compile=True, reduce_retracing=True)

        @tf.function
        def train(iterator):
            strategy.run(train_step, args=next(iterator))

        @tf.function
        def test(dataset):
            # Every pipeline runs the same global batches, so all replicas
            # reach the end together, whether or not its length is known.
            for data in dataset:
                strategy.run(test_step, args=data)

        self.train, self.test = train, test

    def reset(self) -> None:
        self.model.reset_metrics()
        self.loss.reset_state()

    def results(self, prefix: str = "") -> dict[str, float]:
        logs = {name: value for name, value in self.model.get_metrics_result().items() if name != "loss"}
        logs["loss"] = self.loss.result()
        return {f"{prefix}{name}": float(value) for name, value in logs.items()}


def fit_loop(
    model,
    strategy,
    train_dataset,
    *,
    validation_data,
    initial_epoch: int,
    epochs: int,
    steps_per_epoch: int,
    callbacks: list,
    verbose: int,
):
    """`model.fit(train_dataset, validation_data=..., initial_epoch=...,
    epochs=..., steps_per_epoch=..., callbacks=..., verbose=...)` for a model
    compiled under `strategy.scope()`, on any strategy; returns the History."""
    import keras
    import tensorflow as tf

    train_iterator = iter(distribute_batches(strategy, train_dataset))
    val_distributed = distribute_batches(strategy, validation_data)
    with strategy.scope():
        # The compiled loss, metrics and optimizer variables, built from the
        # batch spec as `fit` builds them, before any step traces.
        spec = tf.nest.map_structure(lambda s: keras.KerasTensor(s.shape, s.dtype.name), train_dataset.element_spec)
        model._symbolic_build(data_batch=spec)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        steps = _Steps(model, strategy)
    callback_list = keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, verbose=verbose, epochs=epochs, steps=steps_per_epoch, model=model
    )
    model.stop_training = False
    callback_list.on_train_begin()
    # BackupAndRestore sets the epoch it restored, as `fit` reads it.
    first = getattr(model, "_initial_epoch", None) or initial_epoch
    epoch_logs: dict[str, float] = {}
    for epoch in range(first, epochs):
        steps.reset()
        callback_list.on_epoch_begin(epoch)
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            steps.train(train_iterator)
            callback_list.on_train_batch_end(step, steps.results() if verbose == 1 else {})
            if model.stop_training:
                break
        epoch_logs = steps.results()
        steps.reset()
        steps.test(val_distributed)
        epoch_logs.update(steps.results("val_"))
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    model.optimizer.finalize_variable_values(model.trainable_variables)
    callback_list.on_train_end(logs=epoch_logs)
    return model.history


def cluster_record(strategy) -> dict[str, Any]:
    """This process's place in the cluster, as its resolver (TF_CONFIG or
    Slurm) describes it, for environment.json."""
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    return {
        "resolver": type(resolver).__name__,
        "task": {"type": resolver.task_type, "index": resolver.task_id},
        "tasks": {job: len(addresses) for job, addresses in spec.items()},
        "chief": is_chief(strategy),
    }
