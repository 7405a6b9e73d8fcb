"""The trainer's own loop (`medcap.distributed`): the rows each replica gets,
the cluster's roles (`medcap.strategies`), and every kind of task trained
through it as `fit` trains it.

The two-worker run on 127.0.0.1 and the kill-a-worker resume are in
`tests/test_training.py` beside the MirroredStrategy test they compare with.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from medcap import distributed, strategies
from medcap.data import pipeline


@pytest.mark.parametrize(
    ("rows", "replicas", "expected"),
    [
        (8, 2, [[0, 1, 2, 3], [4, 5, 6, 7]]),
        (5, 2, [[0, 1, 2], [3, 4]]),
        (7, 3, [[0, 1, 2], [3, 4], [5, 6]]),
        (1, 2, [[0], []]),
    ],
)
def test_replica_rows_split_a_global_batch_as_evenly_as_possible_in_order(rows, replicas, expected):
    batch = ({"image": tf.range(rows)}, tf.range(rows) * 10)
    for replica, want in enumerate(expected):
        x, y = pipeline.replica_rows(batch, replica, replicas)
        assert x["image"].numpy().tolist() == want
        assert y.numpy().tolist() == [10 * v for v in want]


def test_distribute_gives_each_local_replica_its_rows_and_the_global_size():
    """One pipeline feeding two local replicas (MirroredStrategy over two
    logical CPUs is not needed: the pipeline function is what decides)."""
    dataset = tf.data.Dataset.range(10).batch(4)  # 4, 4, 2 rows
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2)

    class Recorder:
        num_replicas_in_sync = 2

        def distribute_datasets_from_function(self, function):
            return function(context)

    out = [(rows.numpy().tolist(), float(total)) for rows, total in pipeline.distribute_batches(Recorder(), dataset)]
    assert out == [([0, 1], 4.0), ([2, 3], 4.0), ([4, 5], 4.0), ([6, 7], 4.0), ([8], 2.0), ([9], 2.0)]


def _resolver(task_type, task_id, cluster):
    return SimpleNamespace(task_type=task_type, task_id=task_id, cluster_spec=lambda: tf.train.ClusterSpec(cluster))


@pytest.mark.parametrize(
    ("task_type", "task_id", "cluster", "chief"),
    [
        ("worker", 0, {"worker": ["a:1", "b:1"]}, True),
        ("worker", 1, {"worker": ["a:1", "b:1"]}, False),
        ("chief", 0, {"chief": ["c:1"], "worker": ["a:1"]}, True),
        ("worker", 0, {"chief": ["c:1"], "worker": ["a:1"]}, False),
    ],
)
def test_the_chief_is_the_chief_task_or_worker_zero(monkeypatch, task_type, task_id, cluster, chief):
    strategy = SimpleNamespace(cluster_resolver=_resolver(task_type, task_id, cluster))
    monkeypatch.setattr(distributed, "is_multi_worker", lambda s: True)
    assert distributed.is_chief(strategy) is chief


def test_a_slurm_step_of_several_tasks_is_a_cluster_of_workers(monkeypatch):
    """srun with 3 tasks on two CPU nodes (tasks per node "2,1"): TensorFlow's
    Slurm resolver lists the workers by host, ports counting up per node
    from `train.slurm_port_base`; this is task 1; no GPU is claimed."""
    from medcap.config import TrainConfig

    for name in ("TF_CONFIG", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi: a CPU node
    slurm = {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "3", "SLURM_STEP_NODELIST": "cn[07-08]", "SLURM_STEP_TASKS_PER_NODE": "2,1"}
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    assert strategies.slurm_tasks() == 3
    resolver = strategies.cluster_resolver(TrainConfig(slurm_port_base=9100))
    assert resolver.cluster_spec().as_dict() == {"worker": ["cn07:9100", "cn07:9101", "cn08:9100"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    assert resolver.num_accelerators() == {}
    # TF_CONFIG, when a scheduler sets it too, describes the cluster instead.
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 0}}))
    assert strategies.cluster_resolver(TrainConfig()).cluster_spec().as_dict() == {"worker": ["h:1", "h:2"]}


def test_no_scheduler_no_cluster(monkeypatch):
    from medcap.config import TrainConfig

    for name in ("TF_CONFIG", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(name, raising=False)
    assert strategies.slurm_tasks() == 0 and strategies.cluster_resolver(TrainConfig()) is None
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")  # a batch script's own step: one task
    assert strategies.cluster_resolver(TrainConfig()) is None


def test_a_single_process_is_its_own_chief():
    assert distributed.is_chief(tf.distribute.get_strategy())


def test_a_worker_copies_the_chiefs_resume_state_and_nothing_else(tmp_path, monkeypatch):
    (tmp_path / "run" / "backup").mkdir(parents=True)
    (tmp_path / "run" / "backup" / "training_metadata.json").write_text(json.dumps({"epoch": 1}))
    (tmp_path / "run" / "metrics.json").write_text("{}")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    scratch = distributed.worker_workdir(tmp_path / "run")
    assert scratch.parent == tmp_path / "scratch"
    assert json.loads((scratch / "backup" / "training_metadata.json").read_text()) == {"epoch": 1}
    assert sorted(p.name for p in scratch.iterdir()) == ["backup"]


# Two epochs of three steps each; the findings run's first epoch trains the
# head with the backbone frozen and the second fine-tunes (two phases).
_TASK_RUNS = {
    "findings_chexnet": ["train.frozen_epochs=1"],
    "mtl_eq": [],
}


@pytest.mark.parametrize("experiment", sorted(_TASK_RUNS))
def test_a_task_trains_through_the_custom_loop_as_through_fit(tmp_path, experiment):
    """The same smoke run through Keras' fit and through `train.loop=custom`
    (default strategy): every history entry agrees to 1e-5. Measured on all
    five tasks (2 epochs x 3 steps): model80, MTL-EQ, findings and
    findings->report equal to the printed 6 decimals; the dual encoder's loss
    differed by 3e-6 (1e-6 relative). The two here cover two phases with a
    frozen backbone, and several outputs with loss weights."""
    from medcap import training
    from medcap.config import load_experiment

    histories = {}
    for loop in ("fit", "custom"):
        config = load_experiment(
            experiment,
            smoke=True,
            overrides=[
                f"data.data_dir={tmp_path / 'data'}", f"train.loop={loop}", "train.epochs=2", "train.steps_per_epoch=3",
                "train.verbose=0", "train.tensorboard=false", *_TASK_RUNS[experiment],
            ],
        )  # fmt: skip
        result = training.fit(config, tmp_path / loop)
        histories[loop] = result["history"]
        assert json.loads((tmp_path / loop / "environment.json").read_text())["loop"] == loop
    assert sorted(histories["fit"]) == sorted(histories["custom"])
    for key, values in histories["fit"].items():
        np.testing.assert_allclose(histories["custom"][key], values, rtol=1e-5, atol=1e-6, err_msg=key)
    assert Path(tmp_path / "custom" / "model.keras").is_file()


def test_the_launcher_stops_every_worker_when_one_fails_and_shows_its_log(tmp_path, capsys):
    """A stand-in for Python: worker 1 prints and exits 3 at once, worker 0
    would run for a minute; the launcher returns 3 quickly, with the log."""
    import time

    from medcap import launcher

    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$TF_CONFIG" in *\'"index": 1\'*) echo "worker one says boom"; exit 3;; esac\n'
        "sleep 60\n"
    )
    fake.chmod(0o755)
    started = time.time()
    assert launcher.run_local_workers(["train", "x"], 2, python=str(fake)) == 3
    assert time.time() - started < 30
    err = capsys.readouterr().err
    assert "worker 1 failed (exit status 3)" in err and "worker one says boom" in err


def test_local_tf_configs_make_one_cluster_with_worker_zero_first():
    from medcap import launcher

    configs = [json.loads(c) for c in launcher.local_tf_configs(3)]
    clusters = {json.dumps(c["cluster"]) for c in configs}
    assert len(clusters) == 1 and [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)


@pytest.mark.slow
def test_medcap_train_model80_smoke_with_two_workers_from_the_command_line(tmp_path):
    """`medcap train model80 --smoke --workers 2`: two processes, one model,
    the chief's workdir (about a minute here)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "medcap.cli", "train", "model80", "--smoke", "--workers", "2", "--workdir", str(tmp_path / "run"),
         "--set", f"data.data_dir={tmp_path / 'data'}"],
        capture_output=True, text=True, timeout=500,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    environment = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert (environment["strategy"], environment["replicas"], environment["loop"]) == ("MultiWorkerMirroredStrategy", 2, "custom")
    assert (tmp_path / "run" / "metrics.json").is_file() and (tmp_path / "run" / "model.keras").is_file()


@pytest.mark.parametrize(("setting", "value"), [("jit_compile", True), ("precision", "mixed_float16")])
def test_the_custom_loop_matches_fit_with_xla_and_with_loss_scaling(tmp_path, setting, value):
    """`train.jit_compile=true` (XLA on a CPU, where Keras' auto leaves it
    off; environment.json records what Keras really does) and `train.precision=mixed_float16` (float16 compute, float32
    weights, a LossScaleOptimizer: the compiled optimizer's `scale_loss` and
    `apply_gradients` carry the scaling): fit and the custom loop give the
    same losses (to 1e-5; measured equal), and environment.json says so."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from toy_task import toy_config

    from medcap import training

    losses = {}
    for loop in ("fit", "custom"):
        # Op determinism would turn XLA off (Keras' rule); the toy run is deterministic without it.
        result = training.fit(toy_config(tmp_path, epochs=2, loop=loop, deterministic=False, **{setting: value}), tmp_path / loop)
        losses[loop] = result["history"]["loss"]
        assert result["environment"][setting] == value and result["environment"]["loop"] == loop
        assert result["environment"]["jit_compile"] is (setting == "jit_compile")
    np.testing.assert_allclose(losses["custom"], losses["fit"], rtol=1e-5)
