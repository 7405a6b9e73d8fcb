"""Typed configs, --set overrides, JSON round-trips, every experiment file."""

from __future__ import annotations

import pytest

from medcap.config import (
    ConfigError,
    DataConfig,
    ExperimentConfig,
    apply_overrides,
    list_experiments,
    load_experiment,
)
from medcap.registry import Registry, UnknownNameError


def test_every_experiment_loads_validates_and_round_trips():
    names = list_experiments()
    assert names, "no experiment files found"
    for name in names:
        for smoke in (False, True):
            config = load_experiment(name, smoke=smoke)
            assert config.paper and config.table, f"{name}: paper and table must be named"
            assert config.smoke == smoke
            assert ExperimentConfig.from_json(config.to_json()) == config
        smoke = load_experiment(name, smoke=True)
        assert smoke.data.synthetic, f"{name}: smoke runs must use synthetic data"
        assert smoke.train.epochs <= 3


def test_experiment_docstrings_name_paper_and_table():
    from medcap.config import load_experiment_module

    for name in list_experiments():
        doc = load_experiment_module(name).__doc__ or ""
        assert "Table" in doc and "paper" in doc.lower(), name


def _config(**changes):
    return ExperimentConfig(name="t", **changes).validate()


def test_overrides_are_typed():
    config = apply_overrides(_config(), ["train.epochs=3", "train.learning_rate=1e-4", "data.augment=true",
                                         "data.image_size=[64,64]", "model.options.lstm_units=128",
                                         "train.steps_per_epoch=none", "eval.baselines=constant,random_train"])
    assert config.train.epochs == 3 and isinstance(config.train.epochs, int)
    assert config.train.learning_rate == 1e-4
    assert config.data.augment is True
    assert config.data.image_size == (64, 64)
    assert config.model.options == {"lstm_units": 128}
    assert config.train.steps_per_epoch is None
    assert config.eval.baselines == ("constant", "random_train")


def test_unknown_override_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        apply_overrides(_config(), ["train.epoch=3"])
    message = str(err.value)
    assert "unknown config key train.epoch" in message
    assert "train.epochs" in message and "data.image_size" in message
    with pytest.raises(ConfigError, match="unknown config key trian"):
        apply_overrides(_config(), ["trian.epochs=3"])
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides(_config(), ["train.epochs"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=0", "train.epochs=0: must be >= 1"),
        ("train.epochs=abc", "train.epochs='abc': expected int"),
        ("train.precision=fp8", "train.precision='fp8'"),
        ("data.normalization=weird", "data.normalization='weird'"),
        ("model.encoder_weights=imagenett", "model.encoder_weights='imagenett'"),
        ("eval.decoding=sample", "eval.decoding='sample'"),
        ("eval.baselines=[\"oracle\"]", "unknown baseline 'oracle'"),
        ("data.augment=maybe", "expected true or false"),
    ],
)
def test_invalid_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        apply_overrides(_config(), [override])


def test_weights_policy_accepts_paths():
    assert apply_overrides(_config(), ["model.encoder_weights=/tmp/vgg16.h5"]).model.encoder_weights == "/tmp/vgg16.h5"


def test_synthetic_overrides_apply_only_without_data_and_user_overrides_win(tmp_path, monkeypatch):
    import medcap.config as config_module

    exp = tmp_path / "demo.py"
    exp.write_text(
        '"""Demo experiment: paper 000, Table 2."""\n'
        "from medcap.config import ExperimentConfig, TrainConfig\n"
        "def get_config(smoke=False):\n"
        "    return ExperimentConfig(name='demo', paper='000', table='Table 2', smoke=smoke,\n"
        "        synthetic_overrides=('train.epochs=4', 'train.batch_size=8'), train=TrainConfig(epochs=100))\n"
    )
    monkeypatch.setattr(config_module, "experiments_dir", lambda: tmp_path)
    assert load_experiment("demo").train.epochs == 4
    assert load_experiment("demo", overrides=["train.epochs=2"]).train.epochs == 2
    assert load_experiment("demo", overrides=["data.source_dir=/data/medicat"]).train.epochs == 100
    assert load_experiment("demo", smoke=True).train.epochs == 100
    with pytest.raises(ConfigError, match="unknown experiment 'nope'; valid names: demo"):
        load_experiment("nope")


def test_registry_lists_valid_names():
    registry = Registry("model")
    registry.register("b", 2)
    registry.register("a", 1)
    assert registry.get("a") == 1 and registry.names() == ["a", "b"]
    with pytest.raises(UnknownNameError, match="unknown model 'c'; valid names: a, b"):
        registry.get("c")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", 3)


def test_data_config_synthetic_flag():
    assert DataConfig().synthetic
    assert not DataConfig(source_dir="/x").synthetic


def test_load_sibling_shares_a_papers_module_and_names_a_missing_one(tmp_path):
    from medcap.config import ConfigError, load_sibling

    (tmp_path / "_paper999.py").write_text("CHOICES = ('ours',)\n")
    experiment = tmp_path / "exp.py"
    assert load_sibling(experiment, "_paper999").CHOICES == ("ours",)
    with pytest.raises(ConfigError, match=r"exp.py: needs .*_paper998.py, which does not exist"):
        load_sibling(experiment, "_paper998")


def test_xla_needs_the_op_determinism_off():
    from medcap.config import ConfigError, TrainConfig

    with pytest.raises(ConfigError, match="jit_compile=true needs train.deterministic=false"):
        TrainConfig(jit_compile=True).validate()
    TrainConfig(jit_compile=True, deterministic=False).validate()
