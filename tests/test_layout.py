"""The package's public API: the names in ``relulab/__init__.py``."""

import importlib
import subprocess
import sys

import pytest
import torch

import relulab


def test_public_api_names_resolve():
    for name in relulab.__all__:
        assert callable(getattr(relulab, name)), name


def test_the_public_api_is_the_top_level_one_and_works():
    """``relulab.<name>`` is the public API; the modules behind it live in their stage's
    subpackage, and no alias module repeats them at the top level."""
    from relulab.nn import activations, models, probes
    from relulab.study import config, grid
    from relulab.train import job

    assert relulab.build_activation is activations.build and relulab.mlp is models.mlp
    assert relulab.dead_units is probes.dead_units
    assert relulab.inactive_units is probes.inactive_units
    assert relulab.run_point is job.run_point and relulab.expand_grid is grid.expand
    assert relulab.validate_config is config.validate
    net = relulab.mlp(in_features=4, width=3, depth=1, classes=2, activation="relu")
    assert len(relulab.dead_units(net, torch.randn(5, 4))) == 1
    points = relulab.expand_grid(relulab.validate_config({"activation": ["relu"], "lr": [0.1]}))
    assert [point.activation for point in points] == ["relu"]


@pytest.mark.parametrize("alias", ["activations", "models", "probes", "job"])
def test_no_alias_modules_at_the_top_level(alias):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"relulab.{alias}")


def test_the_configuration_check_imports_no_torch():
    """Snakemake checks the config before anything slow is imported (a mistake fails fast)."""
    code = "import relulab, relulab.study.config, sys; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
