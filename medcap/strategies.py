"""Which `tf.distribute` strategy a process runs under.

`select_strategy`: a TPU when asked; `MultiWorkerMirroredStrategy` when
asked or when the scheduler describes a cluster (`cluster_resolver`:
`TF_CONFIG`, or a Slurm job step of several tasks); `MirroredStrategy` over
every local GPU (or, when asked and there is none, every logical CPU); the
default strategy otherwise. Used by the trainer and by feature extraction.
"""

from __future__ import annotations

import os
import shutil

from medcap.config import TrainConfig


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


def local_strategy(choice: str = "auto"):
    """A strategy over this machine's devices only, for inference (feature
    extraction): "mirrored" over every GPU (or every logical CPU when there
    is none), "auto" the same when there are several GPUs, else None (the
    default strategy); "default" is None."""
    import tensorflow as tf

    if choice not in ("auto", "default", "mirrored"):
        raise ValueError(f"strategy {choice!r}: expected auto, default or mirrored")
    gpus = tf.config.list_logical_devices("GPU")
    if choice == "mirrored" or (choice == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy(devices=[d.name for d in (gpus or tf.config.list_logical_devices("CPU"))])
    return None
