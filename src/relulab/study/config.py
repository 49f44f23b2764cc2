"""Study configuration: defaults from the JSON Schema, and one clear message per mistake.

``validate`` fills in the schema's defaults and raises ``ConfigError`` naming the key and what
is allowed, before any job starts. It also rejects what JSON Schema lets through: NaN and
infinite numbers, and numbers written as strings.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value that is not allowed; the message names the key."""


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The schema with its local references (``$ref: "#/..."``) written out in place, so that
    messages and defaults see each key's allowed values directly."""
    with open(path) as handle:
        schema = yaml.safe_load(handle)
    return _inline_refs(schema, schema)


def _inline_refs(node: Any, root: dict) -> Any:
    if isinstance(node, dict):
        if "$ref" in node and str(node["$ref"]).startswith("#/"):
            target: Any = root
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return _inline_refs({**copy.deepcopy(target), **siblings}, root)
        return {key: _inline_refs(value, root) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline_refs(item, root) for item in node]
    return node


def allowed_values(kind: str, schema: dict | None = None) -> list:
    """The schema's one list of allowed values of ``kind`` (``activation``, ``precision``, ...)."""
    schema = load_schema() if schema is None else schema
    return list(schema["$defs"][kind]["enum"])


def _key(path) -> str:
    parts = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


# A type in words: (one value, several values).
_TYPE_WORDS = {
    "integer": ("an integer", "integers"),
    "number": ("a number", "numbers"),
    "string": ("a string", "strings"),
    "boolean": ("true or false", "true or false values"),
    "object": ("a mapping", "mappings"),
    "array": ("a list", "lists"),
    "null": ("null", "nulls"),
}


def _allowed(schema: dict, plural: bool = False) -> str:
    """What a schema allows, in words: "a number > 0", or "numbers > 0" for ``plural``."""
    if "enum" in schema:
        values = ", ".join(map(str, schema["enum"]))
        return f"values among {values}" if plural else f"one of {values}"
    if "const" in schema:
        return str(schema["const"])
    if "oneOf" in schema:
        return " or ".join(_allowed(option, plural) for option in schema["oneOf"])
    kind = schema.get("type", "value")
    if kind == "array":
        items = _allowed(schema.get("items", {}), plural=True)
        text = f"a non-empty list of {items}" if schema.get("minItems") else f"a list of {items}"
        return text if not plural else text.replace("a ", "", 1).replace("list", "lists", 1)
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(_TYPE_WORDS.get(k, (k, f"{k} values"))[int(plural)] for k in kinds)
    bounds = []
    if "exclusiveMinimum" in schema:
        bounds.append(f"> {schema['exclusiveMinimum']}")
    elif "minimum" in schema:
        bounds.append(f">= {schema['minimum']}")
    if "exclusiveMaximum" in schema:
        bounds.append(f"< {schema['exclusiveMaximum']}")
    elif "maximum" in schema:
        bounds.append(f"<= {schema['maximum']}")
    if bounds:
        text += " " + " and ".join(bounds)
    if "pattern" in schema:
        text += f" matching {schema['pattern']}"
    return text


def _closest(value: str, allowed) -> str:
    """`` (did you mean 'x'?)`` for the allowed value or key closest to ``value``, else ""."""
    names = [str(name) for name in allowed]
    lowered = {name.lower(): name for name in names}
    close = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[close[0]]}'?)" if close else ""


def _enum_values(schema: dict) -> list:
    """Every value an ``enum`` of ``schema`` (or of its ``oneOf`` options and items) lists."""
    values = list(schema.get("enum", []))
    for option in [*schema.get("oneOf", []), *([schema["items"]] if "items" in schema else [])]:
        values += [value for value in _enum_values(option) if value not in values]
    return values


def _message(error: jsonschema.ValidationError) -> str:
    key = _key(error.absolute_path)
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {})
        allowed = ", ".join(sorted(known))
        unknown = sorted(set(error.instance) - set(known))
        where = f" under '{key}'" if error.absolute_path else ""
        named = ", ".join(f"'{name}'{_closest(str(name), known)}" for name in unknown)
        keys = "key" if len(unknown) == 1 else "keys"
        return f"unknown config {keys} {named}{where}; allowed keys: {allowed}"
    if error.validator == "required":
        missing = sorted(set(error.validator_value) - set(error.instance))
        return f"config key '{key}' needs {', '.join(missing)}"
    if error.validator == "minItems":
        return f"config key '{key}' must not be empty; allowed: {_allowed(error.schema)}"
    if error.validator == "uniqueItems":
        return f"config key '{key}' lists a value twice: {error.instance}"
    shown = repr(error.instance)
    hint = ""
    if isinstance(error.instance, str) and _looks_numeric(error.instance):
        hint = " (a number written as a string: drop the quotes; write 1e-3 as 0.001 or 1.0e-3)"
    elif isinstance(error.instance, str):
        hint = _closest(error.instance, _enum_values(error.schema))
    return f"config key '{key}' is {shown}{hint}; allowed: {_allowed(error.schema)}"


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _non_finite(value: Any, path: tuple = ()) -> tuple | None:
    """The path of the first NaN or infinite number in a nested config, if any."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, dict):
        for key, item in value.items():
            found = _non_finite(item, (*path, key))
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _non_finite(item, (*path, index))
            if found is not None:
                return found
    return None


def _fill_defaults(config: dict, schema: dict) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if isinstance(config.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(config[key], sub)
        # Objects listed in an array (optimizer_study entries) get their defaults too.
        if isinstance(config.get(key), list) and sub.get("items", {}).get("type") == "object":
            for item in config[key]:
                if isinstance(item, dict):
                    _fill_defaults(item, sub["items"])


def validate(config: dict, schema: dict | None = None) -> dict:
    """A validated copy of ``config`` with defaults filled in; ``ConfigError`` otherwise."""
    schema = load_schema() if schema is None else schema
    config = copy.deepcopy(dict(config))
    bad = _non_finite(config)
    if bad is not None:
        raise ConfigError(f"config key '{_key(bad)}' is not a finite number; use a real number")
    _fill_defaults(config, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        error = errors[0]
        # For oneOf failures, report the branch that matches the value's shape.
        if error.validator == "oneOf" and error.context:
            error = min(error.context, key=lambda e: -len(e.absolute_path))
            error.schema = _parent_schema(schema, error.absolute_path) or error.schema
        raise ConfigError(_message(error))
    _check_model(config)
    check_size(config)
    return config


# Examples (train, test) and the shape of one input, per dataset: what a job loads.
DATASET_SHAPES = {
    "mnist1d": (4000, 1000, (40,)),
    "digits": (1437, 360, (1, 8, 8)),
    "mnist": (60000, 10000, (1, 28, 28)),
    "fashion_mnist": (60000, 10000, (1, 28, 28)),
    "cifar10": (50000, 10000, (3, 32, 32)),
}
# Bytes per number; mixed precision keeps float32 weights and data.
BYTES = {
    "float64": 8,
    "float32": 4,
    "bfloat16": 2,
    "float16": 2,
    "mixed_float16": 4,
    "mixed_bfloat16": 4,
}
CLASSES = 10
CONV_MEASURE_BATCH = 1024  # relulab.train.conv.MEASURE_BATCH: images measured at once


def machine_memory_gb() -> float:
    """This machine's physical memory in GB (10^9 bytes)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9


def estimate(config: dict) -> dict[str, float]:
    """What the largest training job of a validated config needs, from the config alone.

    Bytes of ``data`` (the prepared set in float64 plus its copy in the run's precision),
    ``weights`` (parameters, gradients and Adam's two moments, every seed) and
    ``activations`` (an MLP measures the whole training set for every seed at once, keeping
    each hidden layer's input and output; a CNN measures 1024 images of one seed at a time but
    trains every seed's minibatch together), plus ``parameters`` per seed and ``flops`` of the
    whole grid (6 per parameter per example per epoch; per position for a CNN). An
    estimate, within a small factor: it exists to refuse what cannot fit, before anything is
    built.
    """
    model, training = config["model"], config["training"]
    n_train, n_test, shape = DATASET_SHAPES[config["dataset"]]
    seeds = len(seeds_of(config))
    depths = as_list(model["depth"])
    deeper = config.get("depth_study") or {}
    if deeper.get("enabled", True):
        depths += deeper.get("depth", [])
    width, depth = model["width"], max(depths)
    size = max(BYTES[p] for p in as_list(training["precision"]))
    features = math.prod(shape)
    if model["arch"] == "mlp":
        parameters = features * width + (depth - 1) * width * width + width * CLASSES
        per_example = 2 * depth * width + CLASSES  # each layer's input and output, the logits
        activations = seeds * (n_train + n_test) * per_example * size
        positions = 1
    else:
        # Stages double the channels to 8 x width while the image shrinks 4x a stage; the
        # first stage's maps are the largest, the last stage's weights.
        parameters = 9 * depth * (8 * width) ** 2 // 2
        positions = math.prod(shape[1:])
        per_example = 2 * depth * width * positions
        activations = max(seeds * training["batch_size"], CONV_MEASURE_BATCH) * per_example * size
    grid_points = (
        len(config["activation"])
        * len(config["zero_grad"])
        * len(config["lr"])
        * len(as_list(training["optimizer"]))
        * len(as_list(training["precision"]))
        * len(as_list(model["depth"]))
        * len(as_list(model["batch_norm"]))
    )
    return {
        "parameters": float(parameters),
        "data": float((n_train + n_test) * features * (8 + size)),
        "weights": float(4 * seeds * parameters * size),
        "activations": float(activations),
        "flops": float(6 * parameters * positions * n_train * training["epochs"] * seeds)
        * grid_points,
    }


def check_size(config: dict) -> None:
    """Refuse a study whose training job cannot fit ``max_memory_gb`` (default: this machine).

    The message names the config keys that make the largest part of the need, so that
    ``width: 1000000000`` or ``seeds: 1000000`` stop before the config is parsed, rather
    than 26 s into a job or when the kernel's out-of-memory killer acts.
    """
    need = estimate(config)
    total_gb = (need["data"] + need["weights"] + need["activations"]) / 1e9
    limit = config.get("max_memory_gb")
    limit_gb = limit if limit is not None else machine_memory_gb()
    if total_gb <= limit_gb:
        return
    largest = max(("data", "weights", "activations"), key=need.get)
    key = _largest_cause(config, total_gb)
    value = config[key.split(".")[0]][key.split(".")[1]] if "." in key else config[key]
    where = f"max_memory_gb: {limit:g}" if limit is not None else "this machine's memory"
    hours = need["flops"] / 1e10 / 3600
    raise ConfigError(
        f"config key '{key}' is {value}: a training job would need about {total_gb:,.3g} GB "
        f"(mostly {largest}: {need[largest] / 1e9:,.3g} GB), more than {where} "
        f"({limit_gb:,.3g} GB), and the grid about {hours:,.3g} CPU-core hours; "
        f"{'choose a smaller dataset' if key == 'dataset' else 'lower ' + key}, or raise "
        "max_memory_gb where jobs run on a larger machine"
    )


# Keys that scale a job's memory, with a modest value to compare against.
_SIZE_KEYS = {
    ("training", "seeds"): 3,
    ("model", "width"): 100,
    ("model", "depth"): 3,
    ("training", "batch_size"): 64,
}


def _largest_cause(config: dict, total_gb: float) -> str:
    """The key whose modest value would shrink the estimate most (``dataset`` if none)."""
    best, best_gb = "dataset", total_gb
    for (section, key), modest in _SIZE_KEYS.items():
        changed = {**config, section: {**config[section], key: modest}}
        need = estimate(changed)
        gb = (need["data"] + need["weights"] + need["activations"]) / 1e9
        if gb < best_gb:
            best, best_gb = f"{section}.{key}", gb
    return best


def _check_model(config: dict) -> None:
    """What the schema cannot say: convolutional models need images and train in one precision
    (no mixed precision); a ResNet's depth rule."""
    model = config.get("model", {})
    arch = model.get("arch", "mlp")
    if arch != "mlp" and config.get("dataset") == "mnist1d":
        raise ConfigError(
            f"config key 'model.arch' is {arch!r} but dataset 'mnist1d' has no images; "
            "convolutional models need one of digits, mnist, fashion_mnist, cifar10"
        )
    precisions = [
        ("training.precision", p) for p in as_list(config.get("training", {}).get("precision", []))
    ]
    for i, entry in enumerate(config.get("optimizer_study") or []):
        if "precision" in entry:
            precisions.append((f"optimizer_study[{i}].precision", entry["precision"]))
    mixed = [(key, p) for key, p in precisions if p.startswith("mixed")]
    if arch != "mlp" and mixed:
        raise ConfigError(
            f"config key '{mixed[0][0]}' is {mixed[0][1]!r} but model.arch is {arch!r}; "
            "mixed precision trains MLPs only (allowed with convolutional models: float64, "
            "float32, bfloat16, float16)"
        )
    if arch == "resnet":
        for depth in as_list(model.get("depth", [])):
            if depth < 4 or depth % 2:
                raise ConfigError(
                    f"config key 'model.depth' is {depth}; allowed for resnet: an even number "
                    ">= 4 (weighted layers, 2 + 2 x residual blocks; 18 is ResNet18)"
                )


def _parent_schema(schema: dict, path) -> dict | None:
    """The schema of the value at ``path``, for messages on oneOf keys."""
    node = schema
    for part in path:
        if isinstance(part, int):
            return node
        node = node.get("properties", {}).get(part)
        if node is None:
            return None
    return node


def typed_overrides(value: Any) -> Any:
    """Command-line ``--config`` values with YAML types restored.

    Snakemake parses ``--config lr=[0.1]`` with YAML's base loader, which keeps every item a
    string; here ``"0.1"`` becomes 0.1 and ``"true"`` becomes True, as in a config file.
    """
    if isinstance(value, dict):
        return {key: typed_overrides(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed_overrides(item) for item in value]
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return parsed if isinstance(parsed, (int, float, bool)) or parsed is None else value
    return value


def as_list(value: Any) -> list:
    return list(value) if isinstance(value, list) else [value]


def seeds(config: dict) -> list[int]:
    """The study's seeds: ``training.seeds`` is a count n (0..n-1) or an explicit list."""
    value = config["training"]["seeds"]
    return list(range(value)) if isinstance(value, int) else [int(s) for s in value]


def seeds_of(config: dict) -> range | list[int]:
    """``seeds`` without making the list (a count of a million is a range, not a list)."""
    value = config["training"]["seeds"]
    return range(int(value)) if not isinstance(value, list) else value
