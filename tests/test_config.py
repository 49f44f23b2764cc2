"""Every malformed config fails with one message naming the key and what is allowed."""

import pytest
import yaml

from relulab.study import config as cfg

BAD = [
    ({"activation": ["relu", "swish"]}, "activation[1]", "one of relu"),
    ({"activation": []}, "activation", "must not be empty"),
    ({"zero_grad": [float("nan")]}, "zero_grad[0]", "finite"),
    ({"zero_grad": [float("inf")]}, "zero_grad[0]", "finite"),
    ({"lr": [-0.1]}, "lr[0]", "> 0"),
    ({"lr": [0]}, "lr[0]", "> 0"),
    ({"lr": ["1e-3"]}, "lr[0]", "drop the quotes"),
    ({"lr": [float("nan")]}, "lr[0]", "finite"),
    ({"training": {"epochs": 0}}, "training.epochs", ">= 1"),
    ({"training": {"seeds": 0}}, "training.seeds", ">= 1"),
    ({"training": {"precision": "float8"}}, "training.precision", "float64"),
    ({"training": {"optimizer": "lbfgs"}}, "training.optimizer", "one of sgd, momentum, adam"),
    ({"dataset": "imagenet"}, "dataset", "one of mnist1d"),
    ({"model": {"width": 0}}, "model.width", ">= 1"),
    ({"model": {"width": 2.5}}, "model.width", "an integer"),
    ({"model": {"depth": [2, -1]}}, "model.depth", "integer"),
    ({"learning_rate": [0.1]}, "learning_rate", "allowed keys"),
    ({"model": {"widht": 10}}, "widht", "allowed keys: arch, batch_norm, depth, init, width"),
]


@pytest.mark.parametrize("overrides, key, allowed", BAD)
def test_bad_config_names_key_and_allowed(overrides, key, allowed):
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.validate(overrides)
    message = str(caught.value)
    assert key in message
    assert allowed in message
    assert "\n" not in message


def test_defaults_fill_in(repo_root):
    config = cfg.validate({})
    assert config["dataset"] == "mnist1d"
    assert config["training"]["optimizer"] == "sgd"
    assert config["model"]["width"] == 100


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_shipped_configs_are_valid(repo_root, name):
    cfg.validate(yaml.safe_load((repo_root / "config" / name).read_text()))


def test_the_schema_is_the_one_list_of_allowed_values_and_the_code_agrees():
    from relulab.nn import activations, models
    from relulab.train import core

    schema = cfg.load_schema()
    assert cfg.allowed_values("activation", schema) == list(activations.ACTIVATIONS)
    assert cfg.allowed_values("kinked_activation", schema) == list(activations.KINKED)
    assert set(cfg.allowed_values("precision", schema)) == set(models.DTYPES)
    assert cfg.allowed_values("optimizer", schema) == list(core.OPTIMIZERS)
    for init in cfg.allowed_values("init", schema):
        models.mlp(in_features=3, width=4, depth=1, classes=2, activation="relu", init=init)
    # Keys that take these values refer to the one list instead of repeating it.
    text = cfg.SCHEMA_PATH.read_text()
    for kind in ("activation", "precision", "optimizer", "init", "device"):
        values = ", ".join(cfg.allowed_values(kind, schema))
        assert text.count(f"enum: [{values}]") == 1, kind
