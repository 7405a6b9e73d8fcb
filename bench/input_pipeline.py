"""Input pipeline throughput next to a tiny model's train-step throughput.

The pipeline must not be the bottleneck: this prints examples/s for
(a) decoding + resizing + normalising PNG radiographs through
`medcap.data.pipeline.image_dataset` and (b) a small CNN's train step fed
from memory, side by side, and their ratio (> 1: the pipeline keeps up).

    .venv/bin/python bench/input_pipeline.py [--num 512] [--size 224] [--batch 32]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from medcap.data.pipeline import ImageSpec, image_dataset  # noqa: E402


def write_images(directory: Path, num: int, source_size: int) -> list[dict]:
    rng = np.random.default_rng(0)
    examples = []
    for i in range(num):
        pixels = rng.integers(0, 256, (source_size, source_size), dtype=np.uint8)
        path = directory / f"{i:05d}.png"
        Image.fromarray(pixels).save(path)
        examples.append({"id": str(i), "image": str(path), "label": i % 2})
    return examples


def pipeline_rate(examples, spec: ImageSpec, batch: int, epochs: int) -> float:
    ds = image_dataset(
        examples, keys=("image", "label"), spec=spec, batch_size=batch, training=True, seed=0, epochs=epochs,
        transform=lambda f: (f["image"], f["label"]),
    )
    iterator = iter(ds)
    next(iterator)  # warm-up: graph tracing and thread pools
    start, count = time.perf_counter(), 0
    for images, _ in iterator:
        count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def model_rate(size: int, batch: int, steps: int) -> float:
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    data = tf.data.Dataset.from_tensors(
        (tf.random.uniform((batch, size, size, 3)), tf.zeros((batch,), tf.int32))
    ).repeat(steps + 2)
    model.fit(data.take(2), verbose=0)  # warm-up: tracing
    start = time.perf_counter()
    model.fit(data.take(steps), verbose=0)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=512)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--source-size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        examples = write_images(Path(tmp), args.num, args.source_size)
        spec = ImageSpec((args.size, args.size), "imagenet_caffe", augment=True)
        pipe = pipeline_rate(examples, spec, args.batch, epochs=2)
    train = model_rate(args.size, args.batch, steps=max(4, args.num // args.batch // 2))
    print(f"devices: {[d.name for d in tf.config.list_logical_devices()]}")
    print(f"input pipeline ({args.source_size}px PNG -> {args.size}px, augment, caffe norm): {pipe:9.1f} examples/s")
    print(f"tiny CNN train step ({args.size}px, batch {args.batch}):                 {train:9.1f} examples/s")
    print(f"ratio pipeline / train step: {pipe / train:.2f} (> 1: the pipeline keeps up)")


if __name__ == "__main__":
    main()
