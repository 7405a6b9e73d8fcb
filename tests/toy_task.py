"""A toy dataset and task for trainer tests: is there a bright square top-left?

Real PNG files go through the real reader contract, pipeline and trainer, so
the foundation is tested without any paper's model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medcap.data.base import CheckReport, ReadResult
from medcap.registry import DATASETS, TASKS
from medcap.task import Task

IMAGE_SIZE = 16


class ToySource:
    name = "toy"
    variants = ("default",)

    def synthesize(self, out_dir, *, num, seed, image_size=2 * IMAGE_SIZE):
        from PIL import Image

        out = Path(out_dir)
        (out / "images").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        labels = {}
        for i in range(num):
            label = int(rng.integers(0, 2))
            pixels = rng.integers(0, 60, size=(image_size, image_size), dtype=np.uint8)
            if label:  # a bright square in the top-left eighth to two-fifths, whatever the size
                pixels[image_size // 8 : image_size * 2 // 5, image_size // 8 : image_size * 2 // 5] = 230
            Image.fromarray(pixels, mode="L").save(out / "images" / f"{i:04d}.png")
            labels[f"{i:04d}"] = label
        (out / "labels.json").write_text(json.dumps(labels))
        return out

    def read(self, source_dir, *, variant="", split_seed=0, skip_invalid=False, options=None):
        source = Path(source_dir)
        labels = json.loads((source / "labels.json").read_text())
        examples = [
            {
                "id": key,
                "patient_id": key,
                "image": str(source / "images" / f"{key}.png"),
                "report": "square" if label else "empty",
                "report_clean": "square" if label else "empty",
                "findings": [label],
            }
            for key, label in sorted(labels.items())
        ]
        n = len(examples)
        a, b = int(n * 0.6), int(n * 0.8)
        return ReadResult({"train": examples[:a], "val": examples[a:b], "test": examples[b:]})

    def check(self, source_dir):
        return CheckReport(self.name, str(source_dir))


class ToyTask(Task):
    input_keys = ("image", "findings")

    def _spec(self):
        from medcap.data.pipeline import ImageSpec

        return ImageSpec(size=tuple(self.config.data.image_size), normalization="unit", augment=self.config.data.augment)

    @staticmethod
    def _transform(features):
        return features["image"], features["findings"][0]

    def build_model(self):
        import keras

        size = tuple(self.config.data.image_size)
        inputs = keras.Input((*size, 3))
        x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
        x = keras.layers.Dropout(self.config.model.options.get("dropout", 0.3))(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(2, activation="softmax", dtype="float32")(x)
        self.weights_info = {"backbone": "toy", "pretrained": False, "source": "random init"}
        return keras.Model(inputs, outputs)

    def compile_model(self, model, optimizer):
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def train_dataset(self, examples, *, batch_size, seed, first_epoch, epochs):
        from medcap.data.pipeline import image_dataset, steps_per_epoch

        ds = image_dataset(
            examples, keys=("image", "findings"), spec=self._spec(), batch_size=batch_size, transform=self._transform,
            training=True, seed=seed, first_epoch=first_epoch, epochs=epochs, cache=self.config.data.cache,
        )
        return ds, steps_per_epoch(len(examples), batch_size)

    def eval_dataset(self, examples, *, batch_size):
        from medcap.data.pipeline import image_dataset

        return image_dataset(
            examples, keys=("image", "findings"), spec=self._spec(), batch_size=batch_size, transform=self._transform
        )

    def evaluate(self, model, splits, split, workdir):
        values = model.evaluate(self.eval_dataset(splits[split], batch_size=8), return_dict=True, verbose=0)
        return {k: float(v) for k, v in values.items()}

    def caption(self, model, image_paths):
        import tensorflow as tf

        from medcap.data.pipeline import normalize, read_image

        images = tf.stack([normalize(read_image(p, self.config.data.image_size), "unit") for p in image_paths])
        probs = model.predict(images, verbose=0)
        return [{"text": "square" if p[1] > p[0] else "empty", "score": float(max(p))} for p in probs]


def register() -> None:
    DATASETS.register("toy", ToySource(), override=True)
    TASKS.register("toy", ToyTask, override=True)


def toy_config(tmp_path, **train):
    from medcap.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig

    register()
    return ExperimentConfig(
        name="toy",
        data=DataConfig(name="toy", data_dir=str(tmp_path / "data"), synthetic_num=48, synthetic_image_size=2 * IMAGE_SIZE, image_size=(IMAGE_SIZE, IMAGE_SIZE), normalization="unit"),
        model=ModelConfig(name="toy", preset="tiny", encoder_weights="none"),
        train=TrainConfig(**{"epochs": 3, "batch_size": 8, "learning_rate": 0.01, "tensorboard": False, "verbose": 0, **train}),
    ).validate()
