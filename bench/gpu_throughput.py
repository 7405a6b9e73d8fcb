"""Training throughput of every paper model: float32 against mixed precision, with and without XLA.

    python bench/gpu_throughput.py [--steps 50] [--warmup 10] [--systems mtl,clip,findings,model80]
    make bench-gpu

Each system trains at its paper preset and input size (the MTL transformer
on MIMIC at 224 px, the dual encoder at 312 px, the findings classifier,
DenseNet121, at 224 px, Model-80 from VGG16 fc2 features) on one batch of
its own input pipeline (a small synthetic tree in the dataset's format),
repeated, so the input pipeline is not what is timed. For each precision
(float32, mixed_float16, mixed_bfloat16) and XLA off/on it builds and
compiles the model as the trainer does (`train.jit_compile`), runs
`--warmup` steps, then times `--steps` steps of Keras' fit, and prints:

* examples/s, and the mixed/float32 ratio at the same XLA setting
  (the goal on a GPU: >= 1.8x on the transformer models);
* model FLOP utilisation: FLOPs per step / step time / the device's peak.
  FLOPs per step are 3x the forward pass's (backward ~ 2x forward, the usual
  count), the forward pass counted by TensorFlow's profiler on the model's
  graph at this batch; the peak is the dense tensor-core rate of the
  precision (TF32 for float32, which TensorFlow enables on Ampere and
  later), from `PEAK_TFLOPS` by the device's name; unknown devices print no
  MFU. The profiler counts the ops that register a FLOP count (matrix
  products, convolutions, element-wise); it does not look inside the
  while-loop of a recurrent layer, so Model-80's BiLSTM is undercounted and
  its MFU is a lower bound. Weights are random (`encoder_weights=none`): speed does not depend on them.

On a machine without a GPU it says so and runs each system's tiny preset
at 64 px, float32 and mixed_bfloat16, a few steps: a check that the script
works, not a measurement.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from medcap.config import load_experiment  # noqa: E402
from medcap.data.loading import load_splits  # noqa: E402
from medcap.registry import DATASETS, TASKS  # noqa: E402
from medcap.training import make_optimizer  # noqa: E402

#: Dense peak TFLOP/s per device name fragment: (TF32 / float32, float16 and bfloat16).
#: Vendor datasheets, SXM parts where there are several.
PEAK_TFLOPS = {
    "H200": (494.7, 989.4),
    "H100": (494.7, 989.4),
    "A100": (156.0, 312.0),
    "L40S": (183.0, 362.0),
    "L4": (60.0, 121.0),
    "A10G": (35.0, 70.0),
    "A10": (62.5, 125.0),
    "V100": (15.7, 125.0),
    "T4": (8.1, 65.0),
}

#: system -> (experiment, dataset, image size of its synthetic tree)
SYSTEMS = {
    "mtl": ("mtl_eq", "mimic"),
    "clip": ("clip_densenet", "iu_xray"),
    "findings": ("findings_chexnet", "chestxray14"),
    "model80": ("model80", "medicat"),
}


def device() -> tuple[str, tuple[float, float] | None]:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "", None
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    peak = next((value for key, value in PEAK_TFLOPS.items() if key in name), None)
    return name, peak


def forward_flops(model, x) -> float | None:
    """FLOPs of one forward pass on `x` (TensorFlow's profiler on the graph)."""
    spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), x)
    graph = tf.function(lambda inputs: model(inputs, training=False)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    try:
        profile = tf.compat.v1.profiler.profile(graph=graph, options=options)
    except Exception:  # noqa: BLE001  (an op without a FLOP count: report none rather than a wrong one)
        return None
    return float(profile.total_float_ops) if profile.total_float_ops else None


def one_batch(system: str, root: Path, gpu: bool, batch_size: int | None):
    """The system's config and task and one batch of its train pipeline."""
    experiment, dataset = SYSTEMS[system]
    paper = load_experiment(experiment, overrides=["data.source_dir=/placeholder"])
    size = paper.data.image_size[0] if gpu else 64
    tree = root / f"{dataset}-{size}"
    if not tree.is_dir():
        DATASETS.get(dataset).synthesize(tree, num=240, seed=0, image_size=max(size, 64))
    overrides = [f"data.source_dir={tree}", f"data.data_dir={root}", "model.encoder_weights=none", "train.verbose=0"]
    if not gpu:
        overrides += ["model.preset=tiny", "data.image_size=[64,64]", "train.batch_size=8"]
    if batch_size:
        overrides.append(f"train.batch_size={batch_size}")
    config = load_experiment(experiment, overrides=overrides)
    data = load_splits(config.data)
    task = TASKS.get(config.model.name)(config)
    workdir = root / f"work-{system}"
    workdir.mkdir(parents=True, exist_ok=True)
    task.prepare(data.splits, workdir)
    train, _ = task.train_dataset(data.splits["train"], batch_size=config.train.batch_size, seed=0, first_epoch=0, epochs=1)
    return config, task, next(iter(train))


def time_steps(config, task, batch, precision: str, jit: bool, steps: int, warmup: int) -> tuple[float, float | None]:
    """(examples/s, FLOPs per train step) of `steps` timed steps."""
    keras.config.set_dtype_policy(precision)
    try:
        model = task.build_model()
        task.compile_model(model, make_optimizer(config.train, total_steps=10_000))
        model.jit_compile = jit
        stream = tf.data.Dataset.from_tensors(batch).repeat()
        model.fit(stream, steps_per_epoch=warmup, epochs=1, verbose=0)
        started = time.perf_counter()
        model.fit(stream, steps_per_epoch=steps, epochs=1, verbose=0)
        seconds = time.perf_counter() - started
        rows = int(tf.shape(tf.nest.flatten(batch)[0])[0])
        flops = forward_flops(model, batch[0]) if precision == "float32" and not jit else None
        return steps * rows / seconds, None if flops is None else 3 * flops
    finally:
        keras.config.set_dtype_policy("float32")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--batch-size", type=int, help="override every system's paper batch")
    parser.add_argument("--root", type=Path, help="where the synthetic trees go (default: a temporary directory)")
    args = parser.parse_args(argv)
    name, peak = device()
    gpu = bool(name)
    if gpu:
        precisions, steps, warmup = ("float32", "mixed_float16", "mixed_bfloat16"), args.steps, args.warmup
        print(f"device: {name}; peak TFLOP/s (TF32, 16-bit): {peak or 'unknown (no MFU)'}")
    else:
        precisions, steps, warmup = ("float32", "mixed_bfloat16"), 3, 1
        print("no GPU found: tiny presets at 64 px, a few steps (a check that the script runs, not a measurement)")
    root = args.root or Path(tempfile.mkdtemp(prefix="medcap-bench-gpu-"))
    header = f"{'system':<9} {'precision':<15} {'xla':<4} {'examples/s':>11} {'vs float32':>10} {'GFLOP/step':>10} {'MFU':>6}"
    print(header)
    print("-" * len(header))
    for system in args.systems.split(","):
        config, task, batch = one_batch(system, root, gpu, args.batch_size)
        flops = None
        baseline: dict[bool, float] = {}
        for jit in (False, True):
            for precision in precisions:
                rate, step_flops = time_steps(config, task, batch, precision, jit, steps, warmup)
                flops = step_flops or flops
                if precision == "float32":
                    baseline[jit] = rate
                ratio = rate / baseline[jit]
                mfu = ""
                if flops and peak:
                    rows = int(tf.shape(tf.nest.flatten(batch)[0])[0])
                    achieved = flops * rate / rows
                    mfu = f"{achieved / (peak[0 if precision == 'float32' else 1] * 1e12):.1%}"
                tflop = f"{flops / 1e9:.2f}" if flops else "-"
                print(f"{system:<9} {precision:<15} {'on' if jit else 'off':<4} {rate:>11.1f} {ratio:>9.2f}x {tflop:>10} {mfu:>6}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
