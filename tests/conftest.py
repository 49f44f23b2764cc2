import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


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


@pytest.fixture
def python_implementation(monkeypatch):
    """Make the zero-gradient activations take their Python implementation, as where nothing
    can be compiled."""
    from relulab.nn import native

    monkeypatch.setattr(native, "operators", lambda: None)


@pytest.fixture(params=["compiled", "python"])
def implementation(request, monkeypatch):
    """Run a test once with each CPU implementation of the zero-gradient ReLU and Leaky ReLU."""
    if request.param == "compiled":
        compiled_operators_or_skip()
    else:
        request.getfixturevalue("python_implementation")
    return request.param
