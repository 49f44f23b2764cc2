"""The package's public API and the import paths users already rely on."""

import subprocess
import sys

import torch

import relulab


def test_public_api_names_resolve():
    for name in relulab.__all__:
        assert callable(getattr(relulab, name)), name


def test_earlier_import_paths_still_work_as_aliases():
    from relulab import activations, job, models, probes
    from relulab.nn import activations as nn_activations
    from relulab.nn import models as nn_models
    from relulab.nn import probes as nn_probes
    from relulab.train import job as train_job

    assert activations is nn_activations and activations.build is nn_activations.build
    assert models.mlp is nn_models.mlp
    assert probes.dead_units is nn_probes.dead_units
    assert probes.inactive_units is nn_probes.inactive_units
    assert job.run_point is train_job.run_point
    net = models.mlp(in_features=4, width=3, depth=1, classes=2, activation="relu")
    assert len(probes.dead_units(net, torch.randn(5, 4))) == 1


def test_the_configuration_check_imports_no_torch():
    """Snakemake checks the config before anything slow is imported (a mistake fails fast)."""
    code = "import relulab, relulab.study.config, sys; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
