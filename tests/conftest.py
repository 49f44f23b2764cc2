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


def compiled_relu_or_skip():
    """relulab's compiled zero-gradient ReLU; skip without it, except in CI (CI=true): fail."""
    from relulab import native

    try:
        return native.build()
    except native.NativeUnavailableError as reason:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"CI needs the compiled zero-gradient ReLU (a C++ compiler): {reason}")
        pytest.skip(f"compiled zero-gradient ReLU unavailable: {reason}")


@pytest.fixture
def python_relu(monkeypatch):
    """Make ZeroGradReLU take its Python implementation, as where nothing can be compiled."""
    from relulab import native

    monkeypatch.setattr(native, "zero_grad_relu", lambda: None)


@pytest.fixture(params=["compiled", "python"])
def relu_path(request, monkeypatch):
    """Run a test once with each CPU implementation of ZeroGradReLU."""
    if request.param == "compiled":
        compiled_relu_or_skip()
    else:
        request.getfixturevalue("python_relu")
    return request.param
