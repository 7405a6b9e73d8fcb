"""Trainer: workdir contents, determinism, exact resume, strategies, precision."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from medcap import training
from medcap.config import ConfigError

sys.path.insert(0, str(Path(__file__).parent))
from toy_task import toy_config  # noqa: E402

TESTS_DIR = Path(__file__).parent


def _weights(workdir: Path) -> list[np.ndarray]:
    model = keras.saving.load_model(workdir / "model.keras")
    return [np.array(w) for w in model.weights]


class _Interrupt(Exception):
    pass


class _KillAfterEpoch(keras.callbacks.Callback):
    """Simulates a killed run: dies right after BackupAndRestore saved `epoch`."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Interrupt(f"killed after epoch {epoch + 1}")


def test_fit_writes_self_contained_workdir(tmp_path):
    config = toy_config(tmp_path, epochs=2)
    result = training.fit(config, tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.json", "environment.json", "history.csv", "metrics.json", "model.keras", "data.json"):
        assert (run / name).is_file(), name
    env = json.loads((run / "environment.json").read_text())
    assert env["precision"] == "float32"
    assert env["replicas"] == 1
    assert env["pretrained_weights"] == {"backbone": "toy", "pretrained": False, "source": "random init"}
    assert env["tensorflow"] and env["keras"].startswith("3.")
    assert json.loads((run / "metrics.json").read_text()) == pytest.approx(result["metrics"])
    rows = (run / "history.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch") and len(rows) == 3
    # The backup is deleted once a run finishes, so a rerun starts afresh.
    assert not (run / "backup").exists()
    # evaluate/caption need only the workdir.
    metrics = training.evaluate_workdir(run, split="test")
    assert metrics == pytest.approx(result["metrics"])
    image = sorted((Path(config.data.data_dir) / "synthetic").glob("*/images/*.png"))[0]
    (caption,) = training.caption_images(run, [str(image)])
    assert caption["text"] in ("square", "empty")


def test_same_seed_twice_gives_identical_metrics_and_weights(tmp_path):
    config = toy_config(tmp_path, epochs=2)
    first = training.fit(config, tmp_path / "a")
    second = training.fit(config, tmp_path / "b")
    assert first["metrics"] == second["metrics"]
    assert first["history"] == second["history"]
    for a, b in zip(_weights(tmp_path / "a"), _weights(tmp_path / "b")):
        np.testing.assert_array_equal(a, b)


def test_different_seed_changes_training(tmp_path):
    a = training.fit(toy_config(tmp_path, epochs=1, seed=1), tmp_path / "a")
    b = training.fit(toy_config(tmp_path, epochs=1, seed=2), tmp_path / "b")
    assert a["history"]["loss"] != b["history"]["loss"]


@pytest.mark.parametrize("augment", [False, True])
def test_interrupted_run_resumes_at_epoch_2_and_matches_uninterrupted(tmp_path, augment):
    config = toy_config(tmp_path, epochs=3)
    config.data.augment = augment
    reference = training.fit(config, tmp_path / "reference")

    run = tmp_path / "resumed"
    with pytest.raises(_Interrupt):
        training.fit(config, run, callbacks=[_KillAfterEpoch(0)])
    assert training.resumed_epoch(run) == 1  # zero-based: the run resumes at epoch 2

    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    resumed = training.fit(config, run, callbacks=[Record()])
    assert seen == [1, 2]
    assert resumed["metrics"] == reference["metrics"]
    for a, b in zip(_weights(tmp_path / "reference"), _weights(run)):
        np.testing.assert_array_equal(a, b)
    # history.csv is appended, not restarted: one row per epoch overall.
    rows = (run / "history.csv").read_text().strip().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["0", "1", "2"]


def test_resume_with_a_different_config_is_refused(tmp_path):
    config = toy_config(tmp_path, epochs=3)
    run = tmp_path / "run"
    with pytest.raises(_Interrupt):
        training.fit(config, run, callbacks=[_KillAfterEpoch(0)])
    changed = toy_config(tmp_path, epochs=3, learning_rate=0.5)
    with pytest.raises(ConfigError, match="train.learning_rate"):
        training.fit(changed, run)


def test_mixed_precision_keeps_float32_outputs_and_is_recorded(tmp_path):
    config = toy_config(tmp_path, epochs=1, precision="mixed_bfloat16")
    result = training.fit(config, tmp_path / "run")
    assert result["environment"]["precision"] == "mixed_bfloat16"
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert model.layers[1].compute_dtype == "bfloat16"  # the conv runs in bfloat16
    assert model.output.dtype == "float32"  # the softmax stays float32
    # The process-wide policy is restored for whatever runs next.
    assert keras.config.dtype_policy().name == "float32"


def test_warmup_schedule_is_linear_then_constant():
    config = toy_config(Path("/tmp"), learning_rate=3e-5, warmup_fraction=0.1)
    optimizer = training.make_optimizer(config.train, total_steps=100)
    schedule = optimizer.learning_rate if callable(optimizer.learning_rate) else optimizer._learning_rate
    values = [float(schedule(step)) for step in (0, 5, 10, 50, 99)]
    np.testing.assert_allclose(values, [0.0, 1.5e-5, 3e-5, 3e-5, 3e-5], rtol=1e-5, atol=1e-12)


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from toy_task import toy_config
    from medcap import training
    tmp = Path({tmp!r})
    out = {{}}
    for strategy in ("default", "mirrored"):
        config = toy_config(tmp, epochs=2, strategy=strategy, batch_size=8)
        # Each replica draws its own dropout mask, so compare without dropout.
        config.model.options["dropout"] = 0.0
        result = training.fit(config, tmp / strategy)
        env = json.loads((tmp / strategy / "environment.json").read_text())
        out[strategy] = {{"loss": result["history"]["loss"], "replicas": env["replicas"], "strategy": env["strategy"]}}
    print("RESULT" + json.dumps(out))
    """
)


def _run_script(script: str, timeout: int = 240, env: dict | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_mirrored_strategy_on_two_logical_cpus_matches_single_device_loss(tmp_path):
    out = _run_script(_MIRRORED_SCRIPT.format(tests=str(TESTS_DIR), tmp=str(tmp_path)))
    result = json.loads(out.split("RESULT", 1)[1])
    assert result["mirrored"]["replicas"] == 2 and result["mirrored"]["strategy"] == "MirroredStrategy"
    assert result["default"]["replicas"] == 1
    # Same global batch, same data order: only the reduction order differs.
    np.testing.assert_allclose(result["mirrored"]["loss"], result["default"]["loss"], rtol=1e-5)


_WORKER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from toy_task import toy_config
    from medcap import training
    tmp = Path({tmp!r})
    config = toy_config(tmp, epochs=2, batch_size=8)
    config.model.options["dropout"] = 0.0
    result = training.fit(config, tmp / "run")
    print("RESULT" + json.dumps({{"loss": result["history"]["loss"], "metrics": result["metrics"]}}))
    """
)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(script: str, n: int, scratch: Path) -> list[subprocess.Popen]:
    """`n` processes of `script` with a TF_CONFIG each on 127.0.0.1 (free
    ports) and TMPDIR=`scratch`, where non-chief workers keep their copies."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(n)]}
    scratch.mkdir(parents=True, exist_ok=True)
    procs = []
    for index in range(n):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        env = {**os.environ, "TF_CONFIG": tf_config, "TMPDIR": str(scratch)}
        procs.append(subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


@pytest.mark.slow
def test_two_workers_train_as_one_mirrored_process_and_only_the_chief_writes(tmp_path):
    """Two workers on 127.0.0.1 (TF_CONFIG; `train.loop=auto` picks the
    custom loop, since Keras 3's fit fails under MultiWorkerMirroredStrategy)
    against one process under MirroredStrategy over two logical CPUs, run
    by Keras' own fit: same global batch (8, split 4 + 4), seed and data,
    no dropout (each replica would draw its own mask). The per-epoch losses
    agree to 1e-5 (measured: bitwise equal, 0.6982818 and 0.6909035; only
    the all-reduce's summation order may differ)."""
    # Write the shared synthetic data once, so the workers do not race to.
    training.load_splits(toy_config(tmp_path).data)
    procs = _start_workers(_WORKER_SCRIPT.format(tests=str(TESTS_DIR), tmp=str(tmp_path)), 2, tmp_path / "scratch")
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        outputs.append(json.loads(stdout.split("RESULT", 1)[1]))
    mirrored = json.loads(_run_script(_MIRRORED_SCRIPT.format(tests=str(TESTS_DIR), tmp=str(tmp_path / "single"))).split("RESULT", 1)[1])
    reference = mirrored["mirrored"]["loss"]
    assert len(reference) == 2
    for out in outputs:
        np.testing.assert_allclose(out["loss"], reference, rtol=1e-5)
    assert outputs[0]["loss"] == outputs[1]["loss"]  # one synchronised model
    run = tmp_path / "run"
    env = json.loads((run / "environment.json").read_text())
    assert env["strategy"] == "MultiWorkerMirroredStrategy" and env["replicas"] == 2 and env["loop"] == "custom"
    assert env["cluster"] == {"resolver": "TFConfigClusterResolver", "task": {"type": "worker", "index": 0}, "tasks": {"worker": 2}, "chief": True}
    # The chief alone evaluated and wrote: one history row per epoch, its
    # environment; the other worker's scratch copy is gone.
    assert outputs[0]["metrics"] and outputs[1]["metrics"] == {}
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 2
    assert json.loads((run / "metrics.json").read_text()) == outputs[0]["metrics"]
    assert not (run / "backup").exists()
    assert list((tmp_path / "scratch").iterdir()) == []


_RESUMABLE_WORKER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    import keras
    from toy_task import toy_config
    from medcap import training
    tmp, run = Path({tmp!r}), Path({run!r})
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    marker = run.parent / f"{{run.name}}-paused-{{index}}"

    class PauseInEpochTwo(keras.callbacks.Callback):
        # After the second step of epoch 2, the first time only: the test kills us here.
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if {pause} and self.epoch == 1 and batch == 1 and not marker.exists():
                marker.write_text("in epoch 2")
                time.sleep(600)

    config = toy_config(tmp, epochs=4, batch_size=8)
    result = training.fit(config, run, callbacks=[PauseInEpochTwo()])
    print("RESULT" + json.dumps({{"loss": result["history"]["loss"]}}))
    """
)


def _finish(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]


@pytest.mark.slow
def test_a_two_worker_run_killed_in_epoch_two_resumes_to_the_same_weights(tmp_path):
    """Both workers pause after two steps of epoch 2 (their weights already
    past the epoch-1 backup); worker 1 gets SIGKILL, then the chief, as a
    cluster restarts a job whose worker died; the same command on both
    resumes from the chief's backup. The final weights equal an
    uninterrupted two-worker run's to 1e-6 (measured: bitwise equal; the
    tolerance allows for the all-reduce's summation order, which TensorFlow
    does not promise to keep between two launches). Dropout is on: its
    seed states are part of what resumes."""
    import keras

    training.load_splits(toy_config(tmp_path).data)
    scratch = tmp_path / "scratch"
    whole = _start_workers(_RESUMABLE_WORKER_SCRIPT.format(tests=str(TESTS_DIR), tmp=str(tmp_path), run=str(tmp_path / "whole"), pause=False), 2, scratch)
    _finish(whole)
    killed = tmp_path / "killed"
    script = _RESUMABLE_WORKER_SCRIPT.format(tests=str(TESTS_DIR), tmp=str(tmp_path), run=str(killed), pause=True)
    procs = _start_workers(script, 2, scratch)
    deadline = time.time() + 240
    while not all((tmp_path / f"killed-paused-{i}").exists() for i in range(2)):
        assert time.time() < deadline and all(p.poll() is None for p in procs), "the workers never reached epoch 2"
        time.sleep(0.2)
    assert json.loads((killed / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    for proc in (procs[1], procs[0]):
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _finish(_start_workers(script, 2, scratch))
    rows = (killed / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2", "3"]  # epoch 1's row from before the kill
    expected = keras.saving.load_model(tmp_path / "whole" / "model.keras").get_weights()
    resumed = keras.saving.load_model(killed / "model.keras").get_weights()
    for a, b in zip(expected, resumed):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)


def test_data_json_counts_the_dicom_display_transforms_a_run_used(tmp_path):
    """DICOM files (found by their marker, whatever their name) with windows present in
    name only train like any image, and data.json says how many fell back, and why."""
    import dataclasses

    import numpy as np
    from PIL import Image
    from toy_task import ToySource

    from medcap.testing import write_dicom

    tree = ToySource().synthesize(tmp_path / "tree", num=48, seed=0)
    pngs = sorted((tree / "images").glob("*.png"))
    for path, window in zip(pngs[:3], ({"WindowCenter": None, "WindowWidth": None}, {"WindowCenter": 100, "WindowWidth": 0}, {})):
        pixels = np.asarray(Image.open(path)).astype(np.uint16) * 16
        write_dicom(path, pixels, bits_stored=12, **window)  # a DICOM under the .png name the reader lists
    config = toy_config(tmp_path, epochs=1)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, source_dir=str(tree)))
    training.fit(config, tmp_path / "run")
    voi = json.loads((tmp_path / "run" / "data.json").read_text())["dicom_voi"]
    assert voi == {
        "images": 3,
        "transform": {"min-max": 3},
        "fallbacks": {"window element present but empty": 1, "window width below 1": 1},
    }
