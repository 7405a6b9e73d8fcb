"""Typed experiment configuration.

One `ExperimentConfig` describes a whole run: which data, which model, how to
train it and how to evaluate it. Experiments are short Python files under
`experiments/` whose `get_config(smoke=False)` returns one; `smoke=True`
shrinks the run to synthetic data, a tiny preset and a few steps.

Every config validates itself (`validate()` raises `ConfigError` naming the
field), serialises to JSON for the run's workdir, and accepts
`--set section.key=value` overrides whose errors list the valid keys.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcap.errors import ConfigError as ConfigError  # defined low, re-exported here

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
LOOPS = ("auto", "fit", "custom")
WEIGHT_POLICIES = ("auto", "imagenet", "none")
NORMALIZATIONS = ("none", "unit", "imagenet_caffe", "imagenet_torch", "symmetric")
SPLITS = ("train", "val", "test")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_weights_policy(value: str, field_name: str) -> None:
    """`auto | imagenet | none | /path/to/weights` (a path must exist at use time)."""
    _check(
        value in WEIGHT_POLICIES or "/" in value or value.endswith((".h5", ".keras")),
        f"{field_name}={value!r}: expected one of {', '.join(WEIGHT_POLICIES)} or a path to a weights file",
    )


@dataclass
class DataConfig:
    """Where the examples come from and how images become tensors."""

    #: Dataset reader name in `medcap.registry.DATASETS`.
    name: str = "medicat"
    #: Raw download directory. Empty: use the synthetic dataset in that format.
    source_dir: str = ""
    #: Data root for generated data (synthetic trees, TFDS builds, caches).
    data_dir: str = "datasets"
    #: Dataset-specific variant, e.g. the split scheme (`model80`, `r2gen`, `random_721`).
    variant: str = ""
    #: Seed of any random split the reader draws.
    split_seed: int = 0
    #: Synthetic dataset size when `source_dir` is empty.
    synthetic_num: int = 600
    #: Seed of the synthetic dataset.
    synthetic_seed: int = 0
    #: Side of the synthetic images in pixels (the trees are drawn once at
    #: this size; models resize to `image_size`).
    synthetic_image_size: int = 256
    #: How the synthetic FINDINGS prose is written: `listed` (every finding
    #: stated) or `realistic` (IU X-ray and MIMIC: normal templates, pertinent
    #: negatives); see `medcap.data.synthetic`.
    synthetic_reports: str = "listed"
    #: Cap on examples per split (None: all); for quick looks at real data.
    max_examples: int | None = None
    #: Skip malformed records instead of failing (counted in the output).
    skip_invalid: bool = False
    #: Output image size (height, width).
    image_size: tuple[int, int] = (224, 224)
    #: Pixel normalisation matching the image backbone.
    normalization: str = "imagenet_caffe"
    #: Random flips / small shifts on the train split.
    augment: bool = False
    #: "" (no cache), "memory", or a directory for an on-disk tf.data cache.
    cache: str = ""
    #: Parallel decode calls (None: tf.data.AUTOTUNE).
    num_parallel_calls: int | None = None
    #: Dataset-specific options (e.g. `uncertain_label`, `labels`).
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _check(bool(self.name), "data.name must be set")
        _check(self.synthetic_num >= 10, f"data.synthetic_num={self.synthetic_num}: need at least 10")
        _check(
            self.synthetic_image_size >= 32,
            f"data.synthetic_image_size={self.synthetic_image_size}: need at least 32",
        )
        _check(
            self.synthetic_reports in ("listed", "realistic"),
            f"data.synthetic_reports={self.synthetic_reports!r}: expected listed or realistic",
        )
        _check(
            self.max_examples is None or self.max_examples > 0,
            f"data.max_examples={self.max_examples}: must be positive or None",
        )
        _check(
            len(self.image_size) == 2 and all(int(s) >= 8 for s in self.image_size),
            f"data.image_size={self.image_size}: expected (height, width), each >= 8",
        )
        _check(
            self.normalization in NORMALIZATIONS,
            f"data.normalization={self.normalization!r}: expected one of {', '.join(NORMALIZATIONS)}",
        )
        _check(
            self.num_parallel_calls is None or self.num_parallel_calls > 0,
            f"data.num_parallel_calls={self.num_parallel_calls}: must be positive or None",
        )

    @property
    def synthetic(self) -> bool:
        return not self.source_dir


@dataclass
class ModelConfig:
    """Which model task to build, from which preset, with which overrides."""

    #: Model task name in `medcap.registry.TASKS`.
    name: str = "model80"
    #: Preset of that model (`tiny`, or the paper's configuration).
    preset: str = "tiny"
    #: Pretrained image backbone weights: auto | imagenet | none | /path.
    encoder_weights: str = "auto"
    #: Overrides of the preset's constructor arguments.
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _check(bool(self.name), "model.name must be set")
        _check(bool(self.preset), "model.preset must be set")
        check_weights_policy(self.encoder_weights, "model.encoder_weights")


@dataclass
class TrainConfig:
    """Optimisation, precision, distribution and checkpointing."""

    epochs: int = 100
    #: Global batch size (split across replicas by tf.distribute).
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    #: Linear warm-up over this fraction of all steps (0: none).
    warmup_fraction: float = 0.0
    #: Gradient clipping by global norm (None: off).
    clipnorm: float | None = None
    seed: int = 42
    #: Per-epoch step cap (None: one full pass over the train split).
    steps_per_epoch: int | None = None
    #: auto: float32 on CPU, mixed_float16 on GPU, mixed_bfloat16 on TPU.
    precision: str = "auto"
    strategy: str = "auto"
    #: The training loop: "fit" (Keras' own), "custom" (`medcap.distributed`,
    #: which also trains across machines), "auto" (custom when the strategy
    #: spans machines, where Keras 3's fit fails; fit otherwise).
    loop: str = "auto"
    #: First port of the workers a Slurm job step starts (tasks on one node count up from it).
    slurm_port_base: int = 8888
    #: TPU address for strategy=tpu ("" for the local TPU).
    tpu: str = ""
    #: Metric that ModelCheckpoint and EarlyStopping watch.
    monitor: str = "val_loss"
    #: Stop after this many epochs without improvement (0: off).
    early_stopping_patience: int = 10
    restore_best_weights: bool = True
    #: Enables TF op determinism and deterministic tf.data ordering.
    deterministic: bool = True
    tensorboard: bool = True
    #: XLA-compile the train step: true, false, or null for Keras' choice
    #: (on when there is a GPU and the model supports it, off on CPU). Keras
    #: turns XLA off under TensorFlow's op determinism: true needs
    #: `deterministic: false`.
    jit_compile: bool | None = None
    #: Keras fit verbosity (0 silent, 1 progress bar, 2 one line per epoch).
    verbose: int = 2
    #: Transfer learning (tasks that support it): the first `frozen_epochs`
    #: of `epochs` train the head with the backbone frozen, the rest fine-tune
    #: (0: one phase). See `medcap.task.Phase`.
    frozen_epochs: int = 0
    #: Fine-tuning unfreezes the backbone from the first layer whose name
    #: starts with this ("" = the whole backbone).
    fine_tune_from: str = ""
    #: Learning rate of the fine-tuning phase (None: learning_rate / 10).
    fine_tune_learning_rate: float | None = None

    def validate(self) -> None:
        _check(self.epochs >= 1, f"train.epochs={self.epochs}: must be >= 1")
        _check(self.batch_size >= 1, f"train.batch_size={self.batch_size}: must be >= 1")
        _check(self.learning_rate > 0, f"train.learning_rate={self.learning_rate}: must be > 0")
        _check(
            self.optimizer in ("adam", "adamw", "sgd"),
            f"train.optimizer={self.optimizer!r}: expected adam, adamw or sgd",
        )
        _check(
            0.0 <= self.warmup_fraction < 1.0,
            f"train.warmup_fraction={self.warmup_fraction}: expected 0 <= x < 1",
        )
        _check(
            self.precision in PRECISIONS,
            f"train.precision={self.precision!r}: expected one of {', '.join(PRECISIONS)}",
        )
        _check(
            self.strategy in STRATEGIES,
            f"train.strategy={self.strategy!r}: expected one of {', '.join(STRATEGIES)}",
        )
        _check(1024 <= self.slurm_port_base <= 65000, f"train.slurm_port_base={self.slurm_port_base}: expected 1024..65000")
        _check(
            not (self.jit_compile and self.deterministic),
            "train.jit_compile=true needs train.deterministic=false (Keras turns XLA off under TensorFlow's op determinism)",
        )
        _check(self.loop in LOOPS, f"train.loop={self.loop!r}: expected one of {', '.join(LOOPS)}")
        _check(
            not (self.loop == "fit" and self.strategy == "multi_worker"),
            "train.loop=fit cannot train under strategy=multi_worker (Keras 3's fit fails there): use loop=auto or custom",
        )
        _check(
            self.steps_per_epoch is None or self.steps_per_epoch >= 1,
            f"train.steps_per_epoch={self.steps_per_epoch}: must be >= 1 or None",
        )
        _check(
            self.early_stopping_patience >= 0,
            f"train.early_stopping_patience={self.early_stopping_patience}: must be >= 0",
        )
        _check(self.verbose in (0, 1, 2), f"train.verbose={self.verbose}: expected 0, 1 or 2")
        _check(
            0 <= self.frozen_epochs <= self.epochs,
            f"train.frozen_epochs={self.frozen_epochs}: expected 0 <= frozen_epochs <= epochs ({self.epochs})",
        )
        _check(
            self.fine_tune_learning_rate is None or self.fine_tune_learning_rate > 0,
            f"train.fine_tune_learning_rate={self.fine_tune_learning_rate}: must be > 0 or None",
        )


@dataclass
class EvalConfig:
    """How a trained model is scored."""

    split: str = "test"
    #: greedy | beam
    decoding: str = "greedy"
    beam_size: int = 3
    #: Longest generated report in tokens (special tokens excluded).
    max_length: int = 60
    #: coco (pycocoevalcap) or nltk (corpus_bleu, cumulative weights).
    bleu_flavour: str = "coco"
    #: Bootstrap resamples for 95% confidence intervals (0: none).
    bootstrap: int = 0
    #: How an uncertain clinical-efficacy label counts: 0 (R2Gen) or 1 (ViLMedic).
    ce_uncertain: int = 0
    #: Trivial baselines printed beside the model.
    baselines: tuple[str, ...] = ("constant", "random_train")
    #: Generated vs reference samples written to samples.md.
    num_samples: int = 20
    #: Findings classifiers: how each label's threshold is chosen on
    #: validation (f1 | youden), the calibration bins, and the label baselines.
    threshold_rule: str = "f1"
    calibration_bins: int = 10
    label_baselines: tuple[str, ...] = ("prevalence", "linear_probe")
    #: Findings classifiers: the saliency method whose maps are measured
    #: against boxes and randomisation (none: skip), and the gallery size.
    explain_method: str = "gradcam"
    gallery_size: int = 8

    def validate(self) -> None:
        _check(self.split in SPLITS, f"eval.split={self.split!r}: expected one of {', '.join(SPLITS)}")
        _check(self.decoding in ("greedy", "beam"), f"eval.decoding={self.decoding!r}: expected greedy or beam")
        _check(self.beam_size >= 1, f"eval.beam_size={self.beam_size}: must be >= 1")
        _check(self.max_length >= 1, f"eval.max_length={self.max_length}: must be >= 1")
        _check(self.bleu_flavour in ("coco", "nltk"), f"eval.bleu_flavour={self.bleu_flavour!r}: expected coco or nltk")
        _check(self.bootstrap >= 0, f"eval.bootstrap={self.bootstrap}: must be >= 0")
        _check(self.ce_uncertain in (0, 1), f"eval.ce_uncertain={self.ce_uncertain}: expected 0 or 1")
        _check(self.threshold_rule in ("f1", "youden"), f"eval.threshold_rule={self.threshold_rule!r}: expected f1 or youden")
        _check(self.calibration_bins >= 2, f"eval.calibration_bins={self.calibration_bins}: must be >= 2")
        _check(
            self.explain_method in ("none", "gradcam", "gradcam++", "scorecam", "smoothgrad", "integrated_gradients"),
            f"eval.explain_method={self.explain_method!r}: expected none, gradcam, gradcam++, scorecam, smoothgrad or integrated_gradients",
        )
        _check(self.gallery_size >= 0, f"eval.gallery_size={self.gallery_size}: must be >= 0")
        for name in self.label_baselines:
            _check(
                name in ("prevalence", "linear_probe"),
                f"eval.label_baselines: unknown baseline {name!r}; expected prevalence, linear_probe",
            )
        for name in self.baselines:
            _check(
                name in ("constant", "random_train", "nearest_train"),
                f"eval.baselines: unknown baseline {name!r}; expected constant, random_train, nearest_train",
            )


@dataclass
class ExperimentConfig:
    """A whole run. `paper` and `table` say what it reproduces."""

    name: str
    paper: str = ""
    table: str = ""
    #: The paper's reported numbers, shown beside ours: {metric: value}.
    paper_results: dict[str, float] = field(default_factory=dict)
    #: Every choice we made where the paper is silent, one line each.
    choices: tuple[str, ...] = ()
    smoke: bool = False
    #: `--set` overrides applied when no dataset is configured (empty
    #: data.source_dir) outside smoke mode: the scaled-down synthetic run.
    synthetic_overrides: tuple[str, ...] = ()
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> ExperimentConfig:
        _check(bool(self.name), "name must be set")
        self.data.validate()
        self.model.validate()
        self.train.validate()
        self.eval.validate()
        return self

    # -- serialisation -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExperimentConfig:
        return _from_dict(cls, values, prefix="")

    @classmethod
    def from_json(cls, text: str) -> ExperimentConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> ExperimentConfig:
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------
# Dict <-> dataclass with type coercion


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Converts `value` (from JSON or a --set string) to `annotation`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], key)
    if dataclasses.is_dataclass(annotation):
        _check(isinstance(value, dict), f"{key}: expected a mapping, got {value!r}")
        return _from_dict(annotation, value, prefix=key + ".")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{key}={value!r}: expected true or false")
    if annotation in (int, float, str):
        if isinstance(value, str) and annotation is not str:
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError(f"{key}={value!r}: expected {annotation.__name__}") from None
        if annotation is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if annotation is int and isinstance(value, float) and value.is_integer():
            return int(value)
        _check(
            isinstance(value, annotation) and not isinstance(value, bool) or annotation is str and isinstance(value, str),
            f"{key}={value!r}: expected {annotation.__name__}",
        )
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        _check(isinstance(value, (list, tuple)), f"{key}={value!r}: expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        _check(len(value) == len(args), f"{key}={value!r}: expected {len(args)} values")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if origin is dict:
        if isinstance(value, str):
            value = json.loads(value)
        _check(isinstance(value, dict), f"{key}={value!r}: expected a mapping")
        return dict(value)
    return value


def _from_dict(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = _field_types(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]}; valid keys: " + ", ".join(prefix + v for v in valid)
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in values.items()}
    return cls(**kwargs)


def _parse_literal(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def valid_keys(config: ExperimentConfig) -> list[str]:
    """Every dotted key that `--set` accepts (dict fields take `key.*`)."""

    def walk(obj: Any, prefix: str) -> list[str]:
        keys = []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                keys += walk(value, prefix + f.name + ".")
            elif isinstance(value, dict):
                keys.append(prefix + f.name + ".<key>")
            else:
                keys.append(prefix + f.name)
        return keys

    return walk(config, "")


def apply_overrides(config: ExperimentConfig, overrides: list[str] | tuple[str, ...]) -> ExperimentConfig:
    """Applies `section.key=value` strings and returns a new, validated config.

    Values are parsed as JSON when they parse (numbers, booleans, lists),
    otherwise taken as strings. Dict fields accept nested keys:
    `model.options.lstm_units=128`.
    """
    values = config.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node: Any = values
        obj: Any = config
        for i, part in enumerate(parts[:-1]):
            if dataclasses.is_dataclass(obj) and part in {f.name for f in dataclasses.fields(obj)}:
                obj = getattr(obj, part)
                node = node[part]
            elif isinstance(obj, dict):
                node = node.setdefault(part, {})
                obj = obj.get(part, {})
            else:
                raise ConfigError(
                    f"unknown config key {'.'.join(parts[: i + 1])}; valid keys: " + ", ".join(valid_keys(config))
                )
        last = parts[-1]
        if dataclasses.is_dataclass(obj):
            names = {f.name for f in dataclasses.fields(obj)}
            if last not in names or dataclasses.is_dataclass(getattr(obj, last)):
                raise ConfigError(f"unknown config key {key}; valid keys: " + ", ".join(valid_keys(config)))
            node[last] = raw  # coerced against the field type below
        else:
            node[last] = _parse_literal(raw)
    return ExperimentConfig.from_dict(values).validate()


# ---------------------------------------------------------------------------
# Experiment files


def experiments_dir() -> Path:
    """`experiments/` beside the package (a source checkout or editable install)."""
    return Path(__file__).resolve().parent.parent / "experiments"


def list_experiments(directory: Path | None = None) -> list[str]:
    directory = directory or experiments_dir()
    return sorted(p.stem for p in directory.glob("*.py") if not p.name.startswith("_"))


def _exec_file(path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"medcap_experiments.{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_sibling(experiment_file: str | Path, name: str) -> types.ModuleType:
    """The module `name`.py beside `experiment_file`: how a paper's experiment
    files share its `_paperNNN.py` (experiments/ is not a package, so that
    experiment files stay plain scripts a user can copy anywhere)."""
    path = Path(experiment_file).resolve().with_name(f"{name}.py")
    if not path.is_file():
        raise ConfigError(f"{experiment_file}: needs {path}, which does not exist")
    return _exec_file(path)


def load_experiment_module(name: str, directory: Path | None = None) -> types.ModuleType:
    directory = directory or experiments_dir()
    path = Path(name) if name.endswith(".py") else directory / f"{name}.py"
    if not path.is_file():
        valid = ", ".join(list_experiments(directory)) or "(none)"
        raise ConfigError(f"unknown experiment {name!r}; valid names: {valid}")
    module = _exec_file(path)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"experiment file {path} has no get_config(smoke=False)")
    return module


def load_experiment(
    name: str, smoke: bool = False, overrides: list[str] | tuple[str, ...] = ()
) -> ExperimentConfig:
    """Loads `experiments/<name>.py`, applies overrides and validates."""
    config = load_experiment_module(name).get_config(smoke=smoke)
    if not isinstance(config, ExperimentConfig):
        raise ConfigError(f"experiment {name!r}: get_config must return an ExperimentConfig")
    config = apply_overrides(config, overrides)
    if config.data.synthetic and not config.smoke and config.synthetic_overrides:
        # User overrides come last so they still win over the synthetic defaults.
        config = apply_overrides(config, [*config.synthetic_overrides, *overrides])
    return config
