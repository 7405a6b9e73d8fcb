"""TensorFlow Datasets builders for every registered dataset (manual download).

One generic builder, `MedcapBuilder`, wraps a `DatasetSource` (see
`medcap.data.base`): its reader parses the download the user points
`manual_dir` at, and the builder writes the examples as TFRecords. Three
registered subclasses give the TFDS names:

    medcap_medicat   configs model80 (default), model70
    medcap_iu_xray   configs r2gen (default), random_721
    medcap_mimic     configs of medcap.data.mimic (balanced_10k, official)
    medcap_chestxray14   configs official (default), chexnet
    medcap_chexpert, medcap_mimic_cxr_labels   config official
    medcap_labelled_images   config default

Feature dict (the common contract, `medcap.data.base`):

    id, patient_id, report, report_clean      Text
    image                                     Image (None, None, C), PNG
    image_1 .. image_{k-1}                    the other views, for variants
                                              that feed k views (IU `r2gen`: 2)
    optional keys the dataset has              (MIMIC: vitals, gender, race,
                                              chief_complaint, icd_title,
                                              acuity, findings, findings_names,
                                              gender_onehot, race_onehot,
                                              vitals_raw; findings readers:
                                              findings, findings_names, view,
                                              age, gender, follow_up,
                                              study_id, boxes)

`C` is the source's `image_channels` (MediCat 3: figures are colour; chest
X-ray datasets 1). Multi-view studies are separate keys rather than a
sequence because their views differ in size.

Choices, ours:

* Image bytes: an 8-bit PNG is stored as is (every PNG decoder gives the
  same pixels); any other file (JPEG, 16-bit PNG, DICOM, ...), or any image
  when `max_image_size` is set (then downscaled to fit), is decoded by
  `medcap.data.images.load_pixels` (16-bit scaled, not clipped; DICOM
  windowed; JPEG with libjpeg-turbo's accurate integer IDCT) and stored as
  8-bit PNG. JPEGs are not passed through: TFDS decodes them with
  `tf.image.decode_image`, whose fast IDCT is off from the accurate one by up
  to tens of grey levels on detailed images, so `as_dataset` would give other
  pixels than training and `medcap caption` see. The price is disk: a
  radiograph stored as PNG takes several times its JPEG size (MIMIC-CXR-JPG
  about 5x). Version 1.1.0 marks the change; 1.0.0 builds stored JPEGs.
  `tf.image.decode_image` converts channels on read.
* Images are decoded once while reading (`check_images="decode"`), so a
  truncated file fails the build with the file, record and field named,
  instead of failing training later.
* Config names: the variant, plus `_seed{S}` for a non-zero split seed,
  `_skipinvalid`, `_max{N}` and `_opt{hash}` for reader options, so builds
  that differ in content never share a directory.
* The reader's `info` (filter counts, split scheme, skipped records, ...)
  is saved as the dataset's metadata (`builder.info.metadata`).

Usage:

    builder = make_builder("iu_xray", variant="r2gen", data_dir="datasets/tfds")
    prepare(builder, source_dir)           # download_and_prepare(manual_dir=...)
    ds = builder.as_dataset(split="train")
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from medcap.data.base import COMMON_KEYS, SPLIT_NAMES, DataError, ReadResult
from medcap.data.images import check_image, decode_bytes, is_dicom, png_bit_depth
from medcap.registry import DATASETS

VERSION = tfds.core.Version("1.1.0")

#: How each optional key is stored.
FEATURE_KINDS: dict[str, str] = {
    "vitals": "float_vector",
    "vitals_raw": "float_vector",
    "gender": "text",
    "race": "text",
    "chief_complaint": "text",
    "icd_title": "text",
    "acuity": "int",
    "findings": "int_vector",
    "findings_names": "text_vector",
    "gender_onehot": "int_vector",
    "race_onehot": "int_vector",
    "view": "text",
    "age": "float",
    "follow_up": "int",
    "study_id": "text",
    "boxes": "boxes",
}
#: Optional keys per dataset, when the source has no `feature_keys` attribute.
DATASET_FEATURE_KEYS: dict[str, tuple[str, ...]] = {
    "medicat": (),
    "iu_xray": (),
    "mimic": (
        "vitals",
        "vitals_raw",
        "gender",
        "gender_onehot",
        "race",
        "race_onehot",
        "chief_complaint",
        "icd_title",
        "acuity",
        "findings",
        "findings_names",
    ),
    # Findings-labelled images: `findings` holds 1 / 0 and -1 for a label the
    # uncertain/blank policy masks, in the order of `findings_names`.
    "chestxray14": ("findings", "findings_names", "view", "age", "gender", "follow_up", "boxes"),
    "chexpert": ("study_id", "findings", "findings_names", "view", "age", "gender"),
    "mimic_cxr_labels": ("study_id", "findings", "findings_names", "view"),
    "labelled_images": ("findings", "findings_names", "view"),
}

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Point manual_dir (`medcap data prepare DATASET --source DIR`) at the unpacked
download; datasets/README.md says where to get each dataset and how to lay it
out. `medcap data synth DATASET --out DIR` writes a synthetic tree in the same
layout.
"""


def _feature(kind: str):
    if kind == "text":
        return tfds.features.Text()
    if kind == "int":
        return tfds.features.Scalar(dtype=np.int32)
    if kind == "float_vector":
        return tfds.features.Tensor(shape=(None,), dtype=np.float32)
    if kind == "int_vector":
        return tfds.features.Tensor(shape=(None,), dtype=np.int32)
    if kind == "text_vector":
        return tfds.features.Sequence(tfds.features.Text())
    if kind == "float":
        return tfds.features.Scalar(dtype=np.float32)
    if kind == "boxes":
        # NIH's boxes (and a synthetic tree's drawn lesions), in the stored image's pixels.
        coordinate = tfds.features.Scalar(dtype=np.float32)
        return tfds.features.Sequence({"finding": tfds.features.Text(), "x": coordinate, "y": coordinate, "w": coordinate, "h": coordinate})
    raise ValueError(f"unknown feature kind {kind!r}")


@dataclasses.dataclass(eq=False)
class MedcapConfig(tfds.core.BuilderConfig):
    """One build of a dataset: the reader's variant, split seed and options."""

    variant: str = ""
    split_seed: int = 0
    skip_invalid: bool = False
    max_image_size: int | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


def config_name(
    variant: str,
    *,
    split_seed: int = 0,
    skip_invalid: bool = False,
    max_image_size: int | None = None,
    options: dict[str, Any] | None = None,
) -> str:
    """The config (directory) name for a build; see the module docstring."""
    name = variant
    if split_seed:
        name += f"_seed{split_seed}"
    if skip_invalid:
        name += "_skipinvalid"
    if max_image_size:
        name += f"_max{max_image_size}"
    if options:
        digest = hashlib.sha1(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:8]
        name += f"_opt{digest}"
    return name


class MedcapBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Generic builder over the `DatasetSource` named `SOURCE_NAME`."""

    SOURCE_NAME = ""
    VERSION = VERSION
    RELEASE_NOTES = {
        "1.0.0": "First release.",
        "1.1.0": "JPEG images stored as the PNG of their accurate-IDCT decode, the pixels training sees.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

    #: The reader's result, set while preparing (for counts and skipped records).
    read_result: ReadResult | None = None
    #: Image check while reading (`medcap.data.images.IMAGE_CHECKS`); it does not
    #: change the content, so it is not part of the config.
    check_images: str = "decode"
    #: Generate through Apache Beam (`prepare(..., beam_options=...)`).
    beam: bool = False

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> None:
        # TFDS looks for a checksums file beside the builder's code; locating
        # it imports `importlib_resources`, which tensorflow-datasets does not
        # declare. A manual-download builder has no checksums: no code path.
        return None

    @classmethod
    def source(cls):
        return DATASETS.get(cls.SOURCE_NAME)

    @property
    def medcap_config(self) -> MedcapConfig:
        return self.builder_config  # type: ignore[return-value]

    def _num_views(self) -> int:
        num_views = getattr(self.source(), "num_views", None)
        return int(num_views(self.medcap_config.variant)) if callable(num_views) else 1

    def _optional_keys(self) -> tuple[str, ...]:
        source = self.source()
        return tuple(getattr(source, "feature_keys", DATASET_FEATURE_KEYS.get(self.SOURCE_NAME, ())))

    def _reader_checks_images(self) -> bool:
        """Readers that take `options["check_images"]` say so with
        `accepts_check_images = True`; for the others the builder checks."""
        return bool(getattr(self.source(), "accepts_check_images", False))

    def _image_channels(self) -> int:
        return int(getattr(self.source(), "image_channels", 1))

    def _info(self) -> tfds.core.DatasetInfo:
        channels = self._image_channels()
        image = tfds.features.Image(shape=(None, None, channels), encoding_format="png")
        features: dict[str, Any] = {key: tfds.features.Text() for key in COMMON_KEYS if key != "image"}
        features["image"] = image
        for view in range(1, self._num_views()):
            features[f"image_{view}"] = tfds.features.Image(shape=(None, None, channels), encoding_format="png")
        for key in self._optional_keys():
            features[key] = _feature(FEATURE_KINDS[key])
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"medcap {self.SOURCE_NAME} ({self.medcap_config.variant}); see medcap.data.{self.SOURCE_NAME}.",
            features=tfds.features.FeaturesDict(features),
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config = self.medcap_config
        options = dict(config.options)
        if self._reader_checks_images():
            options["check_images"] = self.check_images
        result = self.source().read(
            dl_manager.manual_dir,
            variant=config.variant,
            split_seed=config.split_seed,
            skip_invalid=config.skip_invalid,
            options=options,
        )
        self.read_result = result
        self.info.metadata.update(
            {
                "read_info": json.loads(json.dumps(result.info, default=str)),
                "skipped": [error.to_dict() for error in result.skipped],
                "read_counts": result.counts(),
            }
        )
        return {split: self._generate_examples(result.splits[split]) for split in SPLIT_NAMES if split in result.splits}

    def _encoding(self) -> ExampleEncoding:
        return ExampleEncoding(
            views=self._num_views(),
            optional=self._optional_keys(),
            max_image_size=self.medcap_config.max_image_size,
            channels=self._image_channels(),
            check="none" if self._reader_checks_images() else self.check_images,
        )

    def _generate_examples(self, examples: list[dict[str, Any]]):
        encoding = self._encoding()
        if self.beam:
            return _beam_examples(examples, encoding)
        return self._examples_in_process(examples, encoding)

    def _examples_in_process(self, examples: list[dict[str, Any]], encoding: ExampleEncoding):
        for example in examples:
            try:
                yield encoding(example)
            except SkippableImage as skipped:
                if not self.medcap_config.skip_invalid:
                    raise skipped.error from None
                assert self.read_result is not None
                self.read_result.skipped.append(skipped.error)
                self.info.metadata["skipped"].append(skipped.error.to_dict())


class SkippableImage(Exception):
    """An image check failed (`error`); the build skips the record when asked to."""

    def __init__(self, error: DataError):
        super().__init__(str(error))
        self.error = error


@dataclasses.dataclass(frozen=True)
class ExampleEncoding:
    """Turns one reader example into TFDS's (key, features): plain data, so
    Beam can ship it to its workers with the examples."""

    views: int
    optional: tuple[str, ...]
    max_image_size: int | None
    channels: int
    check: str

    def __call__(self, example: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        record = example.get("id", "?")
        paths = example["image"]
        paths = (paths,) if isinstance(paths, str) else tuple(paths)
        if len(paths) != self.views:
            raise DataError(f"expected {self.views} image path(s), got {len(paths)}", record=record, field="image")
        try:
            for view, path in enumerate(paths):
                check_image(path, self.check, record=record, field="image" if self.views == 1 else f"image[{view}]")
        except DataError as err:
            raise SkippableImage(err) from None
        out: dict[str, Any] = {key: example[key] for key in COMMON_KEYS if key != "image"}
        for view, path in enumerate(paths):
            out["image" if view == 0 else f"image_{view}"] = image_for_tfds(path, self.channels, self.max_image_size)
        for key in self.optional:
            if key not in example:
                raise DataError("missing", record=record, field=key)
            out[key] = _optional_value(FEATURE_KINDS[key], example[key])
        return example["id"], out


def _encode_or_fail(example: dict[str, Any], encoding: ExampleEncoding) -> tuple[str, dict[str, Any]]:
    try:
        return encoding(example)
    except SkippableImage as skipped:
        raise skipped.error from None


def _beam_examples(examples: list[dict[str, Any]], encoding: ExampleEncoding):
    """The split as a Beam transform: the examples (paths and text, read by
    the driver) are distributed and each worker reads and encodes its images."""
    beam = tfds.core.lazy_imports.apache_beam
    return beam.Create(examples) | beam.Map(_encode_or_fail, encoding=encoding)


def _optional_value(kind: str, value: Any) -> Any:
    if kind == "float_vector":
        return np.asarray(value, dtype=np.float32).reshape(-1)
    if kind == "int_vector":
        return np.asarray(value, dtype=np.int32).reshape(-1)
    if kind == "int":
        return int(value)
    if kind == "text_vector":
        return [str(v) for v in value]
    if kind == "float":
        return float(value)
    if kind == "boxes":
        return [{"finding": str(b["finding"]), **{k: float(b[k]) for k in ("x", "y", "w", "h")}} for b in value]
    return "" if value is None else str(value)


def image_for_tfds(path: str | Path, channels: int, max_image_size: int | None = None) -> bytes | np.ndarray:
    """The file's own bytes when it is an 8-bit PNG and no resizing is asked;
    otherwise a decoded (and downscaled) (H, W, channels) uint8 array, by
    `medcap.data.images` rules, that TFDS encodes as PNG (module docstring:
    a JPEG is decoded here, not by TFDS)."""
    from PIL import Image

    data = Path(path).read_bytes()
    depth = None if is_dicom(data, path) else png_bit_depth(data)
    if max_image_size is None and depth is not None and depth <= 8:
        return data
    image = Image.fromarray(decode_bytes(data, path))
    if channels == 1:
        # Pillow's luma; exact for grayscale, whose three channels are equal.
        image = image.convert("L")
    if max_image_size is not None and max(image.size) > max_image_size:
        image.thumbnail((max_image_size, max_image_size), Image.Resampling.LANCZOS)
    array = np.asarray(image)
    return array[..., None] if array.ndim == 2 else array


class MedcapMedicat(MedcapBuilder):
    SOURCE_NAME = "medicat"


class MedcapIuXray(MedcapBuilder):
    SOURCE_NAME = "iu_xray"


class MedcapMimic(MedcapBuilder):
    SOURCE_NAME = "mimic"


class MedcapChestxray14(MedcapBuilder):
    SOURCE_NAME = "chestxray14"


class MedcapChexpert(MedcapBuilder):
    SOURCE_NAME = "chexpert"


class MedcapMimicCxrLabels(MedcapBuilder):
    SOURCE_NAME = "mimic_cxr_labels"


class MedcapLabelledImages(MedcapBuilder):
    SOURCE_NAME = "labelled_images"


BUILDERS: dict[str, type[MedcapBuilder]] = {
    "medicat": MedcapMedicat,
    "iu_xray": MedcapIuXray,
    "mimic": MedcapMimic,
    "chestxray14": MedcapChestxray14,
    "chexpert": MedcapChexpert,
    "mimic_cxr_labels": MedcapMimicCxrLabels,
    "labelled_images": MedcapLabelledImages,
}


def _default_configs(dataset: str) -> list[MedcapConfig]:
    try:
        variants = DATASETS.get(dataset).variants
    except Exception:  # a dataset module that fails to import must not hide the others
        return []
    return [MedcapConfig(name=v, variant=v, description=f"variant {v}, split seed 0") for v in variants]


for _name, _cls in BUILDERS.items():
    _cls.BUILDER_CONFIGS = _default_configs(_name)


def builder_class(dataset: str) -> type[MedcapBuilder]:
    try:
        return BUILDERS[dataset]
    except KeyError:
        raise DataError(f"no TFDS builder for dataset {dataset!r}; valid: {', '.join(BUILDERS)}") from None


def make_builder(
    dataset: str,
    *,
    variant: str = "",
    data_dir: str | Path | None = None,
    split_seed: int = 0,
    skip_invalid: bool = False,
    check_images: str = "decode",
    max_image_size: int | None = None,
    options: dict[str, Any] | None = None,
) -> MedcapBuilder:
    """A builder for one build of `dataset` (config named by `config_name`)."""
    cls = builder_class(dataset)
    source = cls.source()
    variant = variant or source.variants[0]
    if variant not in source.variants:
        raise DataError(f"unknown {dataset} config {variant!r}; valid: {', '.join(source.variants)}")
    name = config_name(variant, split_seed=split_seed, skip_invalid=skip_invalid, max_image_size=max_image_size, options=options)
    config: str | MedcapConfig = name
    if name not in {c.name for c in cls.BUILDER_CONFIGS}:
        config = MedcapConfig(
            name=name,
            variant=variant,
            split_seed=split_seed,
            skip_invalid=skip_invalid,
            max_image_size=max_image_size,
            options=dict(options or {}),
            description=f"variant {variant}, split seed {split_seed}",
        )
    builder = cls(config=config, data_dir=None if data_dir is None else str(data_dir))
    builder.check_images = check_images
    return builder


def prepare(builder: MedcapBuilder, source_dir: str | Path, *, beam_options: str | None = None) -> MedcapBuilder:
    """Builds the dataset from the download at `source_dir` (manual download).

    With `beam_options` (a command line of Beam pipeline flags, e.g.
    "--runner=DirectRunner" or "--runner=DataflowRunner --project=... --region=...
    --temp_location=gs://..."), the examples are encoded and written by an
    Apache Beam pipeline (TFDS's Beam generation); the reader still runs
    here, once, to list the examples and choose the splits."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir() or not any(source_dir.iterdir()):
        raise DataError("source directory does not exist or is empty", file=source_dir)
    download_config = tfds.download.DownloadConfig(manual_dir=str(source_dir.resolve()))
    if beam_options is not None:
        if builder.medcap_config.skip_invalid and not builder._reader_checks_images():
            raise DataError(
                f"--skip-invalid with --beam: {builder.SOURCE_NAME}'s images are checked while encoding, on the Beam "
                "workers, where a skipped record could not be counted in the dataset's metadata; build without --beam"
            )
        download_config = dataclasses.replace(download_config, beam_options=beam_pipeline_options(beam_options))
        builder.beam = True
    builder.download_and_prepare(download_config=download_config)
    return builder


def beam_pipeline_options(flags: str):
    """Beam's PipelineOptions from a command line of flags (DirectRunner when none names a runner)."""
    import shlex

    try:
        from apache_beam.options.pipeline_options import PipelineOptions
    except ImportError:
        raise DataError(
            "Beam generation needs apache-beam: pip install 'medcap[beam]' (it pins protobuf, pyarrow and pillow "
            "a major version back: use a separate environment, as `make beam-env` does)"
        ) from None
    args = shlex.split(flags)
    if not any(arg.startswith("--runner") for arg in args):
        args.append("--runner=DirectRunner")
    return PipelineOptions(flags=args)
