"""Image features from a frozen backbone, computed once per split and cached.

Paper 000 (section 3.1) feeds its caption model 4096-d vectors, VGG16's
`fc2` activations (the input layer "for 4096-dimensional vectors"). They are
computed here once per split, with tf.data decoding and batched inference
(on the GPU when there is one), a progress bar, and a cache of one file per
split:

    <cache_dir>/<split>.npy    float16 (num_examples, dim), rows in example order
    <cache_dir>/<split>.json   {"format", "key", "ids", "weights", "shape"}

`key` holds everything the numbers depend on: backbone, layer, image size,
normalisation, the weights actually loaded (file, size, mtime; or the seed of
a random initialisation), the split name and a digest of the (id, image
path) list. A cache whose key differs from the request is recomputed, so a
changed image size, weights policy or split never serves stale features.
Training reads only these files (`medcap features extract` fills them
ahead of time; the model80 task fills them on first use).

Ours, where the paper is silent:

* float16 storage (fc2 activations are ReLU outputs of modest range; half
  precision halves disk and memory; the model casts them back to float32).
* The backbone's ImageNet weights follow `medcap.weights` (auto | imagenet |
  none | path). A random backbone is seeded (`seed`, default 0) without
  touching global RNG state, so every split, and `medcap caption` later, sees
  the same network, and a cache hit or miss does not change the caption
  model's own initialisation.
* Fast path for tests: with random or user weights VGG16 accepts inputs from
  32x32 up (`include_top=True` still gives the 4096-d `fc1`/`fc2`; only
  `fc1`'s fan-in shrinks). ImageNet weights require 224x224, the paper's size,
  and anything else is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Part of every cache key; /2: images decoded by `medcap.data.images` (accurate JPEG IDCT,
#: 16-bit PNG scaled, DICOM), so caches of the earlier decoder are recomputed.
FORMAT = "medcap.features/2"
#: The layer read from each backbone (paper 000: VGG16 fc2).
FEATURE_LAYERS = {"vgg16": "fc2", "densenet121": "avg_pool", "efficientnetb0": "avg_pool"}
#: Input size that ImageNet weights with the classification top require.
NATIVE_SIZE = (224, 224)


@dataclass(frozen=True)
class FeatureSpec:
    """What features to compute."""

    backbone: str = "vgg16"
    image_size: tuple[int, int] = NATIVE_SIZE
    normalization: str = "imagenet_caffe"
    #: auto | imagenet | none | /path/to/weights (see medcap.weights).
    weights: str = "auto"
    #: Seed of a random initialisation (used when no pretrained weights load).
    seed: int = 0

    @property
    def layer(self) -> str:
        try:
            return FEATURE_LAYERS[self.backbone]
        except KeyError:
            raise ValueError(
                f"unknown backbone {self.backbone!r}; valid backbones: {', '.join(sorted(FEATURE_LAYERS))}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["image_size"] = list(self.image_size)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        data = dict(data)
        data["image_size"] = tuple(int(s) for s in data["image_size"])
        return cls(**data)


@dataclass
class FeatureSet:
    """Features of one split: row i belongs to `ids[i]`."""

    ids: list[str]
    features: np.ndarray
    weights: dict[str, Any]
    path: Path | None = None
    from_cache: bool = False
    seconds: float = 0.0
    _rows: dict[str, int] = field(default_factory=dict, repr=False)

    def rows(self, ids: list[str]) -> np.ndarray:
        """Row indices of `ids` (KeyError naming the first unknown id)."""
        if not self._rows:
            self._rows = {example_id: i for i, example_id in enumerate(self.ids)}
        try:
            return np.array([self._rows[i] for i in ids], dtype=np.int64)
        except KeyError as err:
            raise KeyError(f"no cached features for example {err.args[0]!r}") from None


@contextlib.contextmanager
def _python_random_seeded(seed: int):
    """Keras draws unseeded initialiser seeds from Python's `random`; seeding it
    here and restoring it after keeps the global sequence untouched."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


class FeatureExtractor:
    """A frozen backbone cut at its feature layer, with the input pipeline."""

    def __init__(self, spec: FeatureSpec, strategy=None):
        from medcap.weights import check_pixel_normalization, resolve_weights

        self.spec = spec
        #: A single-machine tf.distribute strategy (None: the default): with
        #: several replicas, each batch is split between them (all local GPUs
        #: under MirroredStrategy) and the rows put back in order.
        self.strategy = strategy
        spec.layer  # noqa: B018  (validates the backbone name)
        self.record = resolve_weights(spec.backbone, spec.weights, include_top=True)
        check_pixel_normalization(spec.backbone, spec.normalization, self.record)
        if self.record.pretrained and self.record.policy != "path" and tuple(spec.image_size) != NATIVE_SIZE:
            raise ValueError(
                f"{spec.backbone} with ImageNet weights needs image_size={NATIVE_SIZE} (its fc layers are "
                f"fixed to that input); got {tuple(spec.image_size)}"
            )
        self._model = None
        self._predict = None

    @property
    def weights_info(self) -> dict[str, Any]:
        return self.record.to_dict()

    def key(self) -> dict[str, Any]:
        """What the numbers depend on, apart from the split and its images."""
        return {
            "format": FORMAT,
            "backbone": self.spec.backbone,
            "layer": self.spec.layer,
            "image_size": list(self.spec.image_size),
            "normalization": self.spec.normalization,
            "weights": self.record.fingerprint,
            "seed": None if self.record.pretrained else self.spec.seed,
        }

    def model(self):
        if self._model is None:
            import keras
            import tensorflow as tf

            from medcap.weights import build_backbone

            with self._scope(), _python_random_seeded(self.spec.seed):
                backbone, _ = build_backbone(
                    self.spec.backbone,
                    self.record,
                    include_top=True,
                    input_shape=(*self.spec.image_size, 3),
                )
                backbone.trainable = False
                self._model = keras.Model(backbone.input, backbone.get_layer(self.spec.layer).output)
            model = self._model
            if self.replicas() > 1:
                strategy = self.strategy

                @tf.function(reduce_retracing=True)
                def predict(rows, total):
                    del total  # the global batch's size, which inference does not need
                    return strategy.experimental_local_results(strategy.run(lambda x: model(x, training=False), args=(rows,)))

                self._predict = predict
            else:
                self._predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return self._model

    def replicas(self) -> int:
        return 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)

    def _scope(self):
        import contextlib

        return contextlib.nullcontext() if self.strategy is None else self.strategy.scope()

    @property
    def dim(self) -> int:
        return int(self.model().output.shape[-1])

    def dataset(self, image_paths: list[str], batch_size: int):
        import tensorflow as tf

        from medcap.data.pipeline import ImageDecoder, ImageFinisher, ImageSpec, finalize

        spec = ImageSpec(size=tuple(self.spec.image_size), normalization=self.spec.normalization)
        decode, finish = ImageDecoder(spec), ImageFinisher(spec)
        ds = tf.data.Dataset.from_tensor_slices({"image": np.asarray(image_paths, dtype=object)})
        ds = ds.map(lambda f: finish(decode(f))["image"], num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return finalize(ds, batch_size)

    def __call__(
        self,
        image_paths: list[str],
        *,
        batch_size: int = 32,
        progress: bool = True,
        ids: list[str] | None = None,
        description: str = "features",
    ) -> np.ndarray:
        """Features of the images, float32 (num_images, dim), in input order."""
        import tensorflow as tf
        from tqdm.auto import tqdm

        for i, path in enumerate(image_paths):
            if not isinstance(path, str):
                record = ids[i] if ids else i
                from medcap.data.base import DataError

                raise DataError(f"expected one image path, got {path!r}", record=record, field="image")
        self.model()
        outputs = []
        total = -(-len(image_paths) // batch_size)
        bar = tqdm(total=len(image_paths), desc=description, unit="img", disable=not progress, leave=False)
        dataset = self.dataset(image_paths, batch_size)
        split = self.replicas() > 1
        if split:
            from medcap.data.pipeline import distribute_batches

            dataset = distribute_batches(self.strategy, dataset)
        iterator = iter(dataset)
        for step in range(total):
            try:
                batch = next(iterator)
            except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as err:
                start = step * batch_size
                _raise_bad_image(image_paths[start : start + batch_size], (ids or [])[start : start + batch_size], err)
            if split:  # the replicas' rows, in replica order: the batch's order
                outputs.append(np.concatenate([np.asarray(t, dtype=np.float32) for t in self._predict(*batch)]))
            else:
                outputs.append(np.asarray(self._predict(batch), dtype=np.float32))
            bar.update(int(outputs[-1].shape[0]))
        bar.close()
        if not outputs:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(outputs, axis=0)


def _raise_bad_image(paths: list[str], ids: list[str], err: Exception) -> None:
    """Finds which image of a failed batch is unreadable and names it."""
    import tensorflow as tf

    from medcap.data.base import DataError
    from medcap.data.images import decode_pixels, load_pixels

    for i, path in enumerate(paths):
        where = {"file": path, "record": ids[i] if ids else None, "field": "image"}
        try:
            load_pixels(path)
            decode_pixels(tf.constant(path))  # the pipeline's own decoder, in case only it fails
        except DataError as inner:
            raise DataError(f"cannot read image: {inner.message}", **where) from None
        except tf.errors.OpError as inner:
            raise DataError(f"cannot read image: {inner.message.splitlines()[0]}", **where) from None
    raise DataError(f"image batch failed: {err}")


def examples_digest(ids: list[str], image_paths: list[str]) -> str:
    digest = hashlib.sha256()
    for example_id, path in zip(ids, image_paths):
        digest.update(f"{example_id}\0{path}\n".encode())
    return digest.hexdigest()


def _read_cache(cache_dir: Path, split: str, key: dict[str, Any]) -> FeatureSet | None:
    meta_path, array_path = cache_dir / f"{split}.json", cache_dir / f"{split}.npy"
    if not (meta_path.is_file() and array_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            return None
        features = np.load(array_path)
    except (OSError, ValueError):
        return None
    if features.shape != tuple(meta.get("shape", ())) or len(meta.get("ids", [])) != features.shape[0]:
        return None
    return FeatureSet(meta["ids"], features, meta["weights"], array_path, from_cache=True)


def _write_cache(cache_dir: Path, split: str, key: dict[str, Any], result: FeatureSet) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    array_path, meta_path = cache_dir / f"{split}.npy", cache_dir / f"{split}.json"
    tmp = cache_dir / f".{split}.{os.getpid()}.npy"
    np.save(tmp, result.features)
    tmp.replace(array_path)
    meta = {
        "format": FORMAT,
        "key": key,
        "shape": list(result.features.shape),
        "dtype": str(result.features.dtype),
        "weights": result.weights,
        "seconds": round(result.seconds, 2),
        "ids": result.ids,
    }
    tmp_meta = cache_dir / f".{split}.{os.getpid()}.json"
    tmp_meta.write_text(json.dumps(meta) + "\n")
    tmp_meta.replace(meta_path)
    result.path = array_path


def extract_features(
    examples: list[dict[str, Any]],
    *,
    split: str,
    cache_dir: str | Path | None,
    spec: FeatureSpec | None = None,
    extractor: FeatureExtractor | None = None,
    batch_size: int = 32,
    progress: bool = True,
    dtype: str = "float16",
) -> FeatureSet:
    """Features of `examples` (their `image` paths), read from or written to
    `cache_dir/<split>.npy` (no caching when `cache_dir` is None).

    Pass an `extractor` to share one backbone across splits; otherwise one is
    built from `spec` (only when the cache misses).
    """
    if extractor is None and spec is None:
        raise ValueError("extract_features needs a spec or an extractor")
    extractor = extractor or FeatureExtractor(spec)  # resolves weights; builds nothing yet
    ids = [str(e["id"]) for e in examples]
    paths = [e["image"] for e in examples]
    key = {**extractor.key(), "split": split, "examples": examples_digest(ids, [str(p) for p in paths])}
    if cache_dir is not None:
        cached = _read_cache(Path(cache_dir), split, key)
        if cached is not None:
            return cached
    started = time.time()
    features = extractor(paths, batch_size=batch_size, progress=progress, ids=ids, description=f"{split} features")
    result = FeatureSet(ids, features.astype(dtype), extractor.weights_info, seconds=time.time() - started)
    if cache_dir is not None:
        _write_cache(Path(cache_dir), split, key, result)
    return result


def default_cache_dir(data_config, backbone: str = "vgg16") -> Path:
    """`<data_dir>/features/<dataset>-<variant>-<source>/<backbone>`, shared by
    `medcap features extract` and training, so extraction happens once."""
    if data_config.synthetic:
        source = f"synthetic-n{data_config.synthetic_num}-s{data_config.synthetic_seed}"
        if data_config.synthetic_image_size != 256:  # the synthetic tree's own key (medcap.data.synthetic.synthetic_dir)
            source += f"-px{data_config.synthetic_image_size}"
    else:
        source = hashlib.sha1(str(Path(data_config.source_dir).resolve()).encode()).hexdigest()[:10]
    variant = data_config.variant or "default"
    return Path(data_config.data_dir) / "features" / f"{data_config.name}-{variant}-{source}" / backbone


# ---------------------------------------------------------------------------
# CLI: medcap features extract


def _cmd_extract(args: argparse.Namespace) -> int:
    from medcap.config import DataConfig, check_weights_policy
    from medcap.data.loading import load_splits
    from medcap.errors import CommandError

    check_weights_policy(args.weights, "--weights")
    if args.backbone not in FEATURE_LAYERS:
        raise CommandError(f"unknown backbone {args.backbone!r}; valid backbones: {', '.join(sorted(FEATURE_LAYERS))}")
    data = DataConfig(
        name=args.dataset,
        source_dir=args.data_dir or "",
        data_dir=args.root,
        synthetic_num=args.synthetic_num,
        variant=args.variant or "",
        image_size=tuple(args.image_size),
        normalization=args.normalization,
    )
    data.validate()
    result = load_splits(data)
    out = Path(args.out) if args.out else default_cache_dir(data, args.backbone)
    spec = FeatureSpec(
        backbone=args.backbone,
        image_size=tuple(args.image_size),
        normalization=args.normalization,
        weights=args.weights,
        seed=args.seed,
    )
    from medcap.strategies import local_strategy

    try:
        extractor = FeatureExtractor(spec, strategy=local_strategy(args.strategy))
    except ValueError as err:
        raise CommandError(str(err)) from None
    splits = args.split or list(result.splits)
    summary = {"out": str(out), "weights": extractor.weights_info, "replicas": extractor.replicas(), "splits": {}}
    for split in splits:
        if split not in result.splits:
            raise CommandError(f"dataset {args.dataset!r} has no split {split!r}; splits: {', '.join(result.splits)}")
        features = extract_features(
            result.splits[split], split=split, cache_dir=out, extractor=extractor, batch_size=args.batch_size
        )
        summary["splits"][split] = {
            "examples": len(features.ids),
            "shape": list(features.features.shape),
            "cached": features.from_cache,
            "seconds": round(features.seconds, 2),
            "file": str(features.path),
        }
        state = "cached" if features.from_cache else f"computed in {features.seconds:.1f}s"
        print(f"{split}: {features.features.shape[0]} x {features.features.shape[1]} ({state}) -> {features.path}")
    (out / "extract.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not extractor.record.pretrained:
        print(f"WARNING: {args.backbone} is randomly initialised ({extractor.record.source}); pretrained: false")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("features", help="backbone image features: extract once, cache per split")
    commands = parser.add_subparsers(dest="features_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)
    p = commands.add_parser("extract", help="compute and cache backbone features for every split")
    p.add_argument("--backbone", default="vgg16", help=f"one of {', '.join(sorted(FEATURE_LAYERS))} (default vgg16)")
    p.add_argument("--dataset", required=True, help="dataset reader name, e.g. medicat")
    p.add_argument("--data-dir", default="", help="raw dataset download (default: the synthetic dataset in that format)")
    p.add_argument("--root", default="datasets", help="data root for synthetic data and the default cache (default: datasets)")
    p.add_argument("--synthetic-num", type=int, default=600, help="synthetic dataset size without --data-dir (default 600)")
    p.add_argument("--out", default="", help="cache directory (default: <root>/features/<dataset>-<variant>-<source>/<backbone>)")
    p.add_argument("--variant", default="", help="dataset variant, e.g. model80 or model70")
    p.add_argument("--split", action="append", choices=("train", "val", "test"), help="only this split (repeatable)")
    p.add_argument("--weights", default="auto", help="auto | imagenet | none | /path/to/weights.h5 (default auto)")
    p.add_argument("--image-size", type=int, nargs=2, default=list(NATIVE_SIZE), metavar=("H", "W"))
    p.add_argument("--normalization", default="imagenet_caffe", help="pixel normalisation (default imagenet_caffe, VGG16's)")
    p.add_argument("--batch-size", type=int, default=32, help="global batch, split between the replicas (default 32)")
    p.add_argument(
        "--strategy", default="auto", choices=("auto", "default", "mirrored"),
        help="auto: every local GPU through MirroredStrategy when there are several; mirrored: also over logical CPUs",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of a random initialisation (default 0)")
    p.set_defaults(handler=_cmd_extract)
