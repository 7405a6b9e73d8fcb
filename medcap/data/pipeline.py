"""From example dicts to batched tf.data, shared by every model.

The pipeline is built from small pieces so a task can assemble what it needs:

    columns = to_columns(examples, keys)          # lightweight in-memory table
    ds = tf.data.Dataset.from_tensor_slices(columns)
    ds = ds.map(ImageDecoder(...))                # parallel PNG/JPEG/DICOM decode
    ds = maybe_cache(ds, cache)                   # memory or on-disk cache
    ds = epochs_in_order(ds, n, seed, first, last)  # per-epoch seeded shuffle
    ds = finalize(ds, batch_size)                 # batch + prefetch + options

or call `image_dataset(...)`, which does exactly that.

Resume is exact because the order of epoch `e` is a pure function of
`(seed, e)`: the trainer builds the train stream for epochs
`[first_epoch, epochs)` and the epochs it skips after a restart are the epochs
already trained, never a replay of epoch 0's order.

Under `tf.distribute`, datasets are batched with the **global** batch size.
Keras' fit splits each batch across replicas; the trainer's own loop and
feature extraction use `distribute_batches`, which gives every replica its
rows of each global batch (`replica_rows`, split as MirroredStrategy splits
a batch), on one machine or many, so a run's batches do not depend on how
many replicas it has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from medcap.data.augment import RadiographAugment, augment_radiograph
from medcap.data.base import Example
from medcap.data.images import decode_pixels

AUTOTUNE = tf.data.AUTOTUNE
# Large odd multiplier so that (seed, epoch) pairs never collide for realistic seeds.
_EPOCH_SEED_STRIDE = 1_000_003


def to_columns(examples: Sequence[Example], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Turns example dicts into column arrays for `from_tensor_slices`.

    Strings become object arrays, numbers numeric arrays, lists fixed-width
    arrays (every example must have the same length for a key; the error
    names the record). `image` may be a path or a tuple of paths (views).
    """
    if not examples:
        raise ValueError("no examples: the split is empty")
    columns: dict[str, np.ndarray] = {}
    for key in keys:
        values = []
        for example in examples:
            if key not in example:
                raise KeyError(f"example {example.get('id', '?')!r} has no key {key!r}")
            value = example[key]
            values.append(tuple(value) if isinstance(value, list) else value)
        first = values[0]
        if isinstance(first, tuple):
            width = len(first)
            for example, value in zip(examples, values):
                if not isinstance(value, tuple) or len(value) != width:
                    raise ValueError(
                        f"example {example.get('id', '?')!r}: {key!r} has {len(value) if isinstance(value, tuple) else 1} "
                        f"values, expected {width} like the first example"
                    )
        array = np.array(values, dtype=object if _is_text(first) else None)
        columns[key] = array
    return columns


def _is_text(value: Any) -> bool:
    if isinstance(value, tuple):
        return bool(value) and isinstance(value[0], str)
    return isinstance(value, str)


@dataclass(frozen=True)
class ImageSpec:
    """How an image file becomes a model input."""

    size: tuple[int, int] = (224, 224)
    #: none (0..255), unit ([0, 1]), symmetric ([-1, 1]), imagenet_caffe (VGG:
    #: BGR minus mean), imagenet_torch (DenseNet: [0, 1], mean/std).
    normalization: str = "imagenet_caffe"
    augment: bool = False
    #: With `augment`: the radiograph transform (rotation, shift, zoom) of
    #: `medcap.data.augment` instead of the mild jitter of `augment_image`.
    radiograph: RadiographAugment | None = None


def read_image(path: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
    """Decodes an image file (PNG, JPEG, DICOM, ...; `medcap.data.images`
    says how each becomes 8-bit RGB) and resizes it.

    Returns float32 pixels in [0, 255], shape (height, width, 3).
    """
    image = decode_pixels(path)
    image = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear", antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


def normalize(image: tf.Tensor, mode: str) -> tf.Tensor:
    """Backbone-specific normalisation of [0, 255] float pixels."""
    if mode == "none":
        return image
    if mode == "unit":
        return image / 255.0
    if mode == "symmetric":
        return image / 127.5 - 1.0
    if mode == "imagenet_caffe":
        # keras.applications' caffe mode, the one VGG16's ImageNet weights expect.
        from keras.applications import imagenet_utils

        return imagenet_utils.preprocess_input(image, mode="caffe")
    if mode == "imagenet_torch":
        from keras.applications import imagenet_utils

        return imagenet_utils.preprocess_input(image, mode="torch")
    raise ValueError(f"unknown normalization {mode!r}")


def augment_image(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Mild, seeded photometric and translation jitter on [0, 255] pixels.

    No flips: laterality matters in chest radiographs (the heart sits on the
    left), so a mirrored film is not a valid training example.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3)
    image = tf.image.stateless_random_brightness(image, 20.0, seed=seeds[0])
    image = tf.image.stateless_random_contrast(image, 0.85, 1.15, seed=seeds[1])
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    pad = tf.maximum(height // 16, 1)
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    image = tf.image.stateless_random_crop(padded, tf.stack([height, width, 3]), seed=seeds[2])
    return tf.clip_by_value(image, 0.0, 255.0)


class ImageDecoder:
    """`Dataset.map` function: replaces the `image` path(s) column by pixels.

    A tuple of paths (several views) gives a (views, height, width, 3) tensor.
    """

    def __init__(self, spec: ImageSpec, key: str = "image"):
        self.spec = spec
        self.key = key

    def decode(self, paths: tf.Tensor) -> tf.Tensor:
        if paths.shape.rank == 0:
            return read_image(paths, self.spec.size)
        return tf.map_fn(
            lambda p: read_image(p, self.spec.size),
            paths,
            fn_output_signature=tf.TensorSpec([*self.spec.size, 3], tf.float32),
        )

    def __call__(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        features = dict(features)
        features[self.key] = self.decode(features[self.key])
        return features


class ImageFinisher:
    """`Dataset.map` function after caching: augmentation then normalisation.

    Kept apart from decoding so the cache holds decoded, un-augmented pixels
    and each epoch draws fresh (seeded) augmentation.
    """

    def __init__(self, spec: ImageSpec, key: str = "image"):
        self.spec = spec
        self.key = key

    def __call__(self, features: dict[str, tf.Tensor], seed: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        features = dict(features)
        image = features[self.key]
        if self.spec.augment and seed is not None:
            if image.shape.rank == 4:
                views = tf.shape(image)[0]
                seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=views)
                image = tf.map_fn(lambda args: augment_image(args[0], args[1]), (image, seeds), fn_output_signature=tf.float32)
            elif self.spec.radiograph is not None:
                image = augment_radiograph(image, seed, self.spec.radiograph)
            else:
                image = augment_image(image, seed)
        features[self.key] = normalize(image, self.spec.normalization)
        return features


def maybe_cache(dataset: tf.data.Dataset, cache: str) -> tf.data.Dataset:
    """"" (off), "memory", or a file prefix for an on-disk cache."""
    if not cache:
        return dataset
    if cache == "memory":
        return dataset.cache()
    tf.io.gfile.makedirs(tf.io.gfile.join(cache, ".."))
    return dataset.cache(cache)


def epoch_seed(seed: int | tf.Tensor, epoch: tf.Tensor) -> tf.Tensor:
    return tf.cast(seed, tf.int64) * _EPOCH_SEED_STRIDE + tf.cast(epoch, tf.int64)


def epochs_in_order(
    dataset: tf.data.Dataset,
    num_examples: int,
    *,
    seed: int,
    first_epoch: int,
    epochs: int,
    shuffle: bool = True,
    per_epoch: Callable[[tf.data.Dataset, tf.Tensor], tf.data.Dataset] | None = None,
) -> tf.data.Dataset:
    """Concatenates epochs `first_epoch .. epochs-1`, each shuffled by (seed, epoch).

    `per_epoch(ds, epoch)` may transform one epoch's stream (e.g. batch it,
    so batches never straddle an epoch boundary, or expand caption prefixes).
    """
    if epochs <= first_epoch:
        raise ValueError(f"nothing to train: first_epoch={first_epoch} >= epochs={epochs}")

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        # A fixed graph-level seed inside this function makes the order a
        # function of (seed, epoch) alone, whatever the process-global seed;
        # it also sidesteps TF's `(global, op) == (0, 0)` check, which cannot
        # take a tensor op seed when the global seed is 0.
        tf.compat.v1.get_default_graph().seed = 1
        ds = dataset
        if shuffle:
            ds = ds.shuffle(num_examples, seed=epoch_seed(seed, epoch), reshuffle_each_iteration=False)
        if per_epoch is not None:
            ds = per_epoch(ds, epoch)
        return ds

    return tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)


def with_example_seeds(dataset: tf.data.Dataset, seed: int, epoch: tf.Tensor) -> tf.data.Dataset:
    """Pairs each element with a stateless seed derived from (seed, epoch, index)."""
    base = tf.stack([epoch_seed(seed, epoch), tf.constant(0, tf.int64)])

    def attach(index: tf.Tensor, element: Any) -> tuple[Any, tf.Tensor]:
        return element, base + tf.stack([tf.constant(0, tf.int64), index])

    return dataset.enumerate().map(attach, num_parallel_calls=AUTOTUNE, deterministic=True)


def dataset_options(deterministic: bool = True) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = deterministic
    # Built from in-memory tables, so multi-worker runs must shard by element.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def finalize(
    dataset: tf.data.Dataset,
    batch_size: int | None,
    *,
    drop_remainder: bool = False,
    deterministic: bool = True,
) -> tf.data.Dataset:
    """Batch (global batch size), prefetch, and set the shared options."""
    if batch_size:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE, deterministic=True)
    return dataset.prefetch(AUTOTUNE).with_options(dataset_options(deterministic))


def image_dataset(
    examples: Sequence[Example],
    *,
    keys: Sequence[str],
    spec: ImageSpec,
    batch_size: int,
    transform: Callable[[dict[str, tf.Tensor]], Any] | None = None,
    training: bool = False,
    seed: int = 0,
    first_epoch: int = 0,
    epochs: int = 1,
    cache: str = "",
    num_parallel_calls: int | None = None,
    deterministic: bool = True,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """The standard image pipeline: table -> decode -> cache -> epochs -> batch.

    `keys` are the example keys to carry (must include `image`); `transform`
    maps a feature dict to the model's `(inputs, targets[, weights])`.
    With `training=True` the stream holds epochs `[first_epoch, epochs)`,
    each shuffled and augmented as a function of `(seed, epoch)`; otherwise
    one pass in example order.
    """
    if "image" not in keys:
        raise ValueError("keys must include 'image'")
    calls = num_parallel_calls or AUTOTUNE
    columns = to_columns(examples, keys)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    ds = ds.map(ImageDecoder(spec), num_parallel_calls=calls, deterministic=True)
    ds = maybe_cache(ds, cache)
    finisher = ImageFinisher(spec)

    def finish(features: dict[str, tf.Tensor], element_seed: tf.Tensor | None = None) -> Any:
        features = finisher(features, element_seed)
        return transform(features) if transform is not None else features

    if not training:
        ds = ds.map(finish, num_parallel_calls=calls, deterministic=True)
        return finalize(ds, batch_size, deterministic=deterministic)

    def per_epoch(epoch_ds: tf.data.Dataset, epoch: tf.Tensor) -> tf.data.Dataset:
        seeded = with_example_seeds(epoch_ds, seed, epoch)
        mapped = seeded.map(finish, num_parallel_calls=calls, deterministic=True)
        return mapped.batch(batch_size, drop_remainder=drop_remainder)

    ds = epochs_in_order(ds, len(examples), seed=seed, first_epoch=first_epoch, epochs=epochs, per_epoch=per_epoch)
    return finalize(ds, None, deterministic=deterministic)


def steps_per_epoch(num_examples: int, batch_size: int, drop_remainder: bool = False) -> int:
    steps = num_examples // batch_size if drop_remainder else -(-num_examples // batch_size)
    if steps < 1:
        raise ValueError(f"{num_examples} examples give no batch of {batch_size}")
    return steps


# ---------------------------------------------------------------------------
# Global batches across replicas


def batch_rows(element: Any) -> tf.Tensor:
    """The rows of a batch (its first tensor's leading dimension)."""
    return tf.shape(tf.nest.flatten(element)[0])[0]


def replica_rows(element: Any, replica: Any, replicas: int):
    """Replica `replica`'s rows of a global batch (`replicas` replicas, the
    rows split as evenly as possible, earlier replicas taking the extra)."""
    rows = tf.cast(batch_rows(element), tf.int64)
    replica = tf.cast(replica, tf.int64)
    base, extra = rows // replicas, rows % replicas
    start = replica * base + tf.minimum(replica, extra)
    size = base + tf.cast(replica < extra, tf.int64)
    return tf.nest.map_structure(lambda t: t[start : start + size], element)


def distribute_batches(strategy, dataset):
    """`dataset` (global batches) as a distributed dataset of
    `(rows, global batch rows)`: each replica gets its rows of each global
    batch (see `replica_rows`) and the global batch's size (known from the
    data, so the step needs no collective for it, whose order against the
    gradients' all-reduce the graph would not fix)."""
    replicas = strategy.num_replicas_in_sync

    def per_pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def slices(*element):
            element = element[0] if len(element) == 1 else element
            # A pipeline feeding several local replicas yields their batches in turn.
            total = tf.cast(batch_rows(element), tf.float32)
            return tf.data.Dataset.range(local).map(lambda r: (replica_rows(element, first + r, replicas), total))

        # No auto-sharding happens here: datasets from a function are the caller's to split.
        return dataset.flat_map(slices)

    return strategy.distribute_datasets_from_function(per_pipeline)
