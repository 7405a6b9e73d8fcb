"""Paper 001's multi-task transformer: train-step examples/s in float32 vs mixed precision.

Builds `MTLTransformer` (all three heads, the trainer's losses and loss
weights), trains it on one in-memory batch of random inputs with
`model.fit(steps_per_epoch=...)`, and prints examples/s per precision, side
by side with the ratio, and the device. Each precision runs in its own
subprocess, so the process-global dtype policy and graph caches of one
cannot help the other. The first epoch (tracing) is excluded.

Mixed precision is `mixed_float16` on a GPU and `mixed_bfloat16` on a CPU
(float16 kernels barely exist on CPUs); on a CPU it is usually *slower*
than float32 and is printed anyway, with the device name.

    .venv/bin/python bench/mtl_step.py                     # paper preset (EfficientNetB0, 224 px) on a GPU,
                                                           # paper preset at 64 px on a CPU
    .venv/bin/python bench/mtl_step.py --preset tiny --size 32 --batch 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_CHILD_FLAG = "--child"


def device_description() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)} (x{len(gpus)})"
    import platform

    return f"CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} logical cores)"


def measure(preset: str, precision: str, size: int, batch: int, steps: int, length: int, trainable: bool) -> dict:
    import keras
    import numpy as np

    keras.mixed_precision.set_dtype_policy(precision)
    keras.utils.set_random_seed(0)
    from medcap.models.mtl_transformer import MTLTransformer

    vocab, complaint_vocab, icd_vocab = 3000, 800, 1200
    model = MTLTransformer.from_preset(
        preset,
        vocabulary_size=vocab,
        complaint_vocabulary_size=complaint_vocab,
        icd_vocabulary_size=icd_vocab,
        image_size=(size, size),
        max_report_length=length,
        backbone_trainable=trainable,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-5),
        loss={
            "report": keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
            "acuity": keras.losses.BinaryCrossentropy(),
            "findings": keras.losses.BinaryCrossentropy(),
        },
        loss_weights={"report": 1.0, "acuity": 0.5, "findings": 0.25},
    )
    rng = np.random.default_rng(0)
    tokens = rng.integers(4, vocab, size=(batch, length + 1)).astype("int32")
    tokens[:, 0] = 2
    inputs = {
        "image": rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"),
        "vitals": rng.random((batch, 6)).astype("float32"),
        "gender": np.eye(3, dtype="float32")[rng.integers(0, 3, batch)],
        "race": np.eye(6, dtype="float32")[rng.integers(0, 6, batch)],
        "chief_complaint": rng.integers(0, complaint_vocab, size=(batch, 12)).astype("int32"),
        "icd_title": rng.integers(0, icd_vocab, size=(batch, 12)).astype("int32"),
        "report_tokens": tokens[:, :-1],
    }
    targets = {
        "report": tokens[:, 1:],
        "acuity": (rng.random((batch, 4)) < 0.5).astype("float32"),
        "findings": (rng.random((batch, 5)) < 0.2).astype("float32"),
    }
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensors((inputs, targets)).repeat()
    model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)  # tracing, warm-up
    start = time.perf_counter()
    history = model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return {
        "precision": precision,
        "examples_per_s": steps * batch / seconds,
        "final_loss": float(history.history["loss"][-1]),
        "parameters": int(model.count_params()),
        "device": device_description(),
    }


def _child(argv: list[str]) -> None:
    args = json.loads(argv[0])
    print("RESULT" + json.dumps(measure(**args)))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == _CHILD_FLAG:
        _child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=("paper", "tiny"))
    parser.add_argument("--size", type=int, default=None, help="image side (default 224 on a GPU, 64 on a CPU)")
    parser.add_argument("--batch", type=int, default=32, help="the paper's batch size")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 50 on a GPU, 5 on a CPU)")
    parser.add_argument("--length", type=int, default=61, help="report tokens (decoder input)")
    parser.add_argument("--trainable-backbone", action="store_true", help="fine-tune the CNN (the synthetic default does)")
    args = parser.parse_args()

    import tensorflow as tf

    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    size = args.size or (224 if on_gpu else 64)
    steps = args.steps or (50 if on_gpu else 5)
    mixed = "mixed_float16" if on_gpu else "mixed_bfloat16"
    results = []
    for precision in ("float32", mixed):
        payload = json.dumps(
            {"preset": args.preset, "precision": precision, "size": size, "batch": args.batch, "steps": steps, "length": args.length,
             "trainable": args.trainable_backbone}
        )
        proc = subprocess.run([sys.executable, __file__, _CHILD_FLAG, payload], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{precision} run failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(proc.stdout.split("RESULT", 1)[1]))
    base, fast = results
    print(f"device: {base['device']}")
    print(
        f"MTLTransformer preset={args.preset} image={size}x{size} batch={args.batch} report_tokens={args.length} "
        f"params={base['parameters']:,} timed_steps={steps} backbone={'trained' if args.trainable_backbone else 'frozen'}"
    )
    for result in results:
        print(f"  {result['precision']:<16} {result['examples_per_s']:10.1f} examples/s   (loss {result['final_loss']:.3f})")
    print(f"  ratio {fast['precision']} / float32: {fast['examples_per_s'] / base['examples_per_s']:.2f}x")
    if not on_gpu:
        print("  (CPU: mixed precision is emulated and usually slower; the paper trained on A100 GPUs)")


if __name__ == "__main__":
    main()
