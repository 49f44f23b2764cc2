"""What a test needs from its environment: CI (where missing prerequisites fail, not skip) and
relulab's compiled operators."""

import os

import pytest


def in_ci() -> bool:
    """CI sets CI=true: there a missing prerequisite fails its tests instead of skipping them."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def compiled_operators_or_skip():
    """relulab's compiled operators; skip without them, except in CI (CI=true): fail."""
    from relulab.nn import native

    loaded = native.operators()  # built or loaded once per process
    if loaded is not None:
        return loaded
    try:
        return native.build()  # only to say why not
    except native.NativeUnavailableError as reason:
        if in_ci():
            pytest.fail(f"CI needs relulab's compiled operators (a C++ compiler): {reason}")
        pytest.skip(f"compiled operators unavailable: {reason}")
