from pathlib import Path

import pytest
import torch
from helpers.ci import compiled_operators_or_skip

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


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


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> Path:
    """scikit-learn's digits, prepared once per test session as a study prepares its data."""
    from relulab.data import prepared

    return prepared.prepare("digits", tmp_path_factory.mktemp("data") / "digits.npz")


@pytest.fixture(scope="session")
def digits_split(digits):
    """The prepared digits, loaded (standardised, flattened) as a training job loads them."""
    from relulab.data import prepared

    return prepared.load(digits)
