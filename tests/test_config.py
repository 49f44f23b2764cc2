"""Every malformed config fails with one message naming the key and what is allowed."""

import re

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
    from relulab.train import optim

    schema = cfg.load_schema()
    assert cfg.allowed_values("activation", schema) == list(activations.ACTIVATIONS)
    assert cfg.allowed_values("kinked_activation", schema) == list(activations.KINKED)
    assert set(cfg.allowed_values("precision", schema)) == set(models.DTYPES)
    training = cfg.allowed_values("training_precision", schema)
    assert training == list(models.TRAINING_PRECISIONS)
    assert cfg.allowed_values("optimizer", schema) == list(optim.OPTIMIZERS)
    for init in cfg.allowed_values("init", schema):
        models.mlp(in_features=3, width=4, depth=1, classes=2, activation="relu", init=init)
    # Keys that take these values refer to the one list instead of repeating it.
    text = cfg.SCHEMA_PATH.read_text()
    for kind in ("activation", "precision", "optimizer", "init", "device"):
        values = ", ".join(cfg.allowed_values(kind, schema))
        assert text.count(f"enum: [{values}]") == 1, kind


SUGGESTIONS = [
    ({"activation": ["rleu"]}, "did you mean 'relu'?"),
    ({"training": {"optimizer": "Adam"}}, "did you mean 'adam'?"),
    ({"training": {"precision": ["float23"]}}, "did you mean 'float32'?"),
    ({"model": {"widht": 10}}, "'widht' (did you mean 'width'?)"),
    ({"trainig": {}}, "'trainig' (did you mean 'training'?)"),
]


@pytest.mark.parametrize("overrides, suggestion", SUGGESTIONS)
def test_a_near_miss_gets_the_closest_allowed_value_or_key(overrides, suggestion):
    with pytest.raises(cfg.ConfigError, match=re.escape(suggestion)):
        cfg.validate(overrides)


def test_nothing_close_gets_no_suggestion():
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.validate({"activation": ["swish"]})
    assert "did you mean" not in str(caught.value)


def _bad_values(schema: dict) -> list:
    """Values that break each rule of one schema node (some may pass another oneOf option)."""
    bad: list = []
    if "enum" in schema:
        bad.append("zzz")
    for option in schema.get("oneOf", []):
        bad += _bad_values(option)
    kinds = schema.get("type", [])
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "integer" in kinds or "number" in kinds:
        bad += [2.5 if "integer" in kinds else "abc", "1e-3"]
    for rule, offset in (("minimum", -1), ("exclusiveMinimum", 0)):
        if rule in schema:
            bad.append(schema[rule] + offset)
    for rule, offset in (("maximum", 1), ("exclusiveMaximum", 0)):
        if rule in schema:
            bad.append(schema[rule] + offset)
    if "boolean" in kinds:
        bad.append("maybe")
    if "string" in kinds:
        bad.append(12)
        if "pattern" in schema:
            bad.append("has spaces!")
    if "array" in kinds:
        bad.append(True)
        if schema.get("minItems"):
            bad.append([])
        items = schema.get("items", {})
        bad += [[value] for value in _bad_values(items)]
        if schema.get("uniqueItems") and items.get("enum"):
            bad.append([items["enum"][0]] * 2)
    if "object" in kinds or "properties" in schema:
        bad.append({"zzz_unknown": 1})
    return bad


def _rules(schema: dict, path: tuple = ()):
    """(path, bad value) for every rule of every key of the schema."""
    for key, sub in schema.get("properties", {}).items():
        if "$ref" in sub:
            continue
        for value in _bad_values(sub):
            yield (*path, key), value
        yield from _rules(sub, (*path, key))


def _nested(path: tuple, value) -> dict:
    for key in reversed(path):
        value = {key: value}
    return value


# Phrases a message built from words for the schema must never contain.
UNGRAMMATICAL = [
    r"\b(a|an) (a|an|one)\b",  # "a list of a number"
    r"\ba [aeiou]",  # "a integer"
    r"\ban [^aeiou ]",  # "an number"
    r"\d+s\b",  # "a number > 0s"
    r"\bof (a|an) ",  # "a list of a string"
    r"  ",
    r"'s\b",
    r"\bs\b",
]


def test_every_schema_rule_has_a_grammatical_message():
    messages = set()
    for path, value in _rules(cfg.load_schema()):
        try:
            cfg.validate(_nested(path, value))
        except cfg.ConfigError as error:
            messages.add(str(error))
    assert len(messages) > 60
    for message in messages:
        assert message.startswith(("config key '", "unknown config key")), message
        assert "\n" not in message and not message.endswith((".", ";", ",")), message
        for pattern in UNGRAMMATICAL:
            assert not re.search(pattern, message), (pattern, message)
