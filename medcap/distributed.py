"""Training across replicas and machines: the strategy, the trainer's own loop, the cluster's roles.

Strategy (`select_strategy`): a TPU when asked; `MultiWorkerMirroredStrategy`
when asked or when the scheduler describes a cluster (`cluster_resolver`:
`TF_CONFIG`, or a Slurm job step of several tasks); `MirroredStrategy` over
every local GPU (or, when asked and there is none, every logical CPU); the
default strategy otherwise.

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
(`replica_rows`): replica r of R gets rows `[r * n // R ... )` split as
evenly as possible, which is how `MirroredStrategy` splits a batch, so every
replica sees exactly the examples a single process would put in that step
and the run does not depend on the number of machines. The cost: every
worker decodes the whole global batch (the pipelines stay a pure function
of (seed, epoch), which exact resume needs); the model step, not decoding,
dominates at the paper presets.

Loss. Keras' compiled loss on a replica is the mean over the replica's rows
divided by R; the step multiplies it by `n_r * R / N` (n_r the replica's
rows, N the global batch's, from an all-reduce), so the gradient summed
over replicas is that of the mean over the global batch even when the last
batch of an epoch does not split evenly (`tf.nn.compute_average_loss`'s
rule). A loss that is not a mean of per-example terms (CLIP's in-batch
contrastive loss, a mean over masked tokens) is that mean per replica, as
under `fit` with `MirroredStrategy`.

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

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from medcap.config import TrainConfig

#: What a non-chief worker copies from the chief's workdir to resume as it does.
RESUME_STATE = ("backup", "phases")


def slurm_tasks() -> int:
    """The tasks of the Slurm job step this process runs in (0 outside Slurm)."""
    value = os.environ.get("SLURM_STEP_NUM_TASKS") if "SLURM_PROCID" in os.environ else None
    return int(value) if value and value.isdigit() else 0


def cluster_resolver(train: TrainConfig):
    """The cluster as the scheduler describes it: `TF_CONFIG` (Kubernetes
    operators, Vertex AI, `medcap train --workers`), else a Slurm step of
    several tasks (`srun`; one worker per task, hosts from
    SLURM_STEP_NODELIST, ports from `train.slurm_port_base`, each task's
    GPUs made visible to it alone), else None."""
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if slurm_tasks() > 1:
        if os.environ.get("CUDA_VISIBLE_DEVICES") or (shutil.which("nvidia-smi") and "CUDA_VISIBLE_DEVICES" not in os.environ):
            # GPUs split evenly between a node's tasks, each task's set made
            # visible to it (before TensorFlow first lists devices).
            return tf.distribute.cluster_resolver.SlurmClusterResolver(port_base=train.slurm_port_base)
        return _cpu_slurm_resolver(train.slurm_port_base)
    return None


def _cpu_slurm_resolver(port_base: int):
    """TensorFlow's Slurm resolver on nodes without GPUs, which it does not
    handle (it divides GPUs between tasks and reports one accelerator per task)."""
    import tensorflow as tf

    class CpuSlurmClusterResolver(tf.distribute.cluster_resolver.SlurmClusterResolver):
        def num_accelerators(self, task_type=None, task_id=None, config_proto=None):
            return {}

    # "2(x3),1": three nodes of two tasks, one of one.
    tasks_per_node = max(int(part.split("(")[0]) for part in os.environ.get("SLURM_STEP_TASKS_PER_NODE", "1").split(","))
    # One notional device per task only to give each task its own port.
    return CpuSlurmClusterResolver(port_base=port_base, gpus_per_node=tasks_per_node, gpus_per_task=1, auto_set_gpu=False)


def select_strategy(train: TrainConfig):
    """See the module docstring; `train.strategy` names one or says "auto"."""
    import tensorflow as tf

    choice = train.strategy
    if choice == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=train.tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    resolver = cluster_resolver(train) if choice in ("auto", "multi_worker") else None
    if choice == "multi_worker" or resolver is not None:
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    gpus = tf.config.list_logical_devices("GPU")
    if choice == "mirrored" or (choice == "auto" and len(gpus) > 1):
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


def strategy_name(strategy) -> str:
    """The public tf.distribute name (MultiWorkerMirroredStrategy's class is
    CollectiveAllReduceStrategy)."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "TPUStrategy"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "MirroredStrategy"
    return "default" if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy() else type(strategy).__name__


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


def _batch_rows(element: Any):
    import tensorflow as tf

    return tf.shape(tf.nest.flatten(element)[0])[0]


def replica_rows(element: Any, replica: Any, replicas: int):
    """Replica `replica`'s rows of a global batch (`replicas` replicas, the
    rows split as evenly as possible, earlier replicas taking the extra)."""
    import tensorflow as tf

    rows = tf.cast(_batch_rows(element), tf.int64)
    replica = tf.cast(replica, tf.int64)
    base, extra = rows // replicas, rows % replicas
    start = replica * base + tf.minimum(replica, extra)
    size = base + tf.cast(replica < extra, tf.int64)
    return tf.nest.map_structure(lambda t: t[start : start + size], element)


def distribute(strategy, dataset):
    """`dataset` (global batches) as a distributed dataset of
    `(rows, global batch rows)`: each replica gets its rows of each global
    batch (see `replica_rows`) and the global batch's size (known from the
    data, so the step needs no collective for it, whose order against the
    gradients' all-reduce the graph would not fix)."""
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync

    def per_pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def slices(*element):
            element = element[0] if len(element) == 1 else element
            # A pipeline feeding several local replicas yields their batches in turn.
            total = tf.cast(_batch_rows(element), tf.float32)
            return tf.data.Dataset.range(local).map(lambda r: (replica_rows(element, first + r, replicas), total))

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.flat_map(slices).with_options(options)

    return strategy.distribute_datasets_from_function(per_pipeline)


class _Steps:
    """The compiled per-replica train and test steps of one compiled model."""

    def __init__(self, model, strategy):
        import keras
        import tensorflow as tf

        self.model = model
        self.strategy = strategy
        with strategy.scope():
            self.loss = keras.metrics.Mean(name="loss")
        replicas = strategy.num_replicas_in_sync

        def forward(data, training: bool):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            y_pred = model(x, training=training)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
            rows = tf.cast(_batch_rows(x), tf.float32)
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

    train_iterator = iter(distribute(strategy, train_dataset))
    val_distributed = distribute(strategy, validation_data)
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


def task_environment() -> dict[str, Any]:
    """The cluster role this process has (for environment.json)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return {"tf_config_task": config.get("task"), "workers": len(config.get("cluster", {}).get("worker", []))}
