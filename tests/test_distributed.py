"""The trainer's own loop (`medcap.distributed`): the rows each replica gets,
the cluster's roles, and every kind of task trained through it as `fit` trains it.

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

from medcap import distributed


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
        x, y = distributed.replica_rows(batch, replica, replicas)
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

    out = [(rows.numpy().tolist(), float(total)) for rows, total in distributed.distribute(Recorder(), dataset)]
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
