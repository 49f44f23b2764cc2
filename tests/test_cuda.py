"""The GPU path: the same contract on a CUDA device (skipped where there is none).

Run on a GPU machine with ``bin/test tests/test_cuda.py``. The zero-gradient operator must give
exactly what it gives on the CPU (the definition does not depend on the device), a seed trained
in a stack must match the seed trained alone, and a training job must run end to end on the GPU
for the MLP and for a convolutional network, with the outputs the CPU job writes.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.gradients import backward
from helpers.training import train

from relulab.data import prepared as data
from relulab.nn import activations
from relulab.study import config as cfg
from relulab.study import grid
from relulab.train import job

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def planted(dtype, n=100_003):
    """Random inputs with exact zeros (+0.0 and -0.0) planted, and a random upstream gradient."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    x[::11] = 0.0
    x[5::22] = -0.0
    upstream = torch.randn(n, generator=g, dtype=torch.float64) * 3
    return x.to(dtype), upstream.to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "leaky_relu", "prelu", "rrelu"])
@pytest.mark.parametrize("zero_grad", [0.0, 0.5, 1.0])
def test_operator_on_the_gpu_is_the_definition(name, dtype, zero_grad):
    x, upstream = planted(dtype)
    module = activations.build(name, zero_grad).eval()
    module_gpu = activations.build(name, zero_grad).eval().to(device="cuda", dtype=dtype)
    out, grad = backward(module_gpu, x.cuda(), upstream.cuda())
    reference = activations.build(name, None).eval().to(device="cuda", dtype=dtype)
    torch_out, torch_grad = backward(reference, x.cuda(), upstream.cuda())
    assert torch.equal(out, torch_out), "forward is PyTorch's own op"
    zero = x.cuda() == 0
    assert torch.equal(grad[~zero], torch_grad[~zero]), "away from 0, PyTorch's backward"
    assert torch.equal(grad[zero], upstream.cuda()[zero] * zero_grad), "at 0, zero_grad x upstream"
    # And the GPU gives what the CPU gives.
    cpu_out, cpu_grad = backward(module.to(dtype=dtype), x, upstream)
    assert torch.equal(out.cpu(), cpu_out)
    assert torch.equal(grad.cpu(), cpu_grad)


def train_on_gpu(split, seeds, activation="relu", zero_grad=0.5):
    return train(split, seeds, activation, zero_grad, optimizer="adam", device="cuda")


@pytest.mark.parametrize("activation", ["relu", "prelu", "tanh"])
def test_seed_in_a_stack_trains_as_alone_on_the_gpu(digits, activation):
    split = data.load(digits)
    zero_grad = 0.5 if activation in activations.KINKED else None
    stacked = train_on_gpu(split, [0, 3, 5], activation, zero_grad)
    alone = train_on_gpu(split, [3], activation, zero_grad)
    for name, tensor in alone.stack.state_dict().items():
        torch.testing.assert_close(
            stacked.stack.state_dict()[name][1], tensor[0], rtol=1e-10, atol=1e-12, msg=name
        )
    together = pd.DataFrame(stacked.history.epochs)
    single = pd.DataFrame(alone.history.epochs)
    columns = ["epoch", "train_loss", "val_loss", "val_accuracy", "dead_fraction"]
    pd.testing.assert_frame_equal(
        together[together.seed == 3][columns].reset_index(drop=True),
        single[columns].reset_index(drop=True),
        rtol=1e-10,
        atol=1e-12,
    )


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet"])
def test_training_job_runs_on_the_gpu(digits, tmp_path, arch):
    depth = {"mlp": 2, "vgg": 3, "resnet": 4}[arch]
    model = {"arch": arch, "width": 8, "depth": depth, "batch_norm": True}
    config = cfg.validate(
        {
            "dataset": "digits",
            "activation": ["relu"],
            "zero_grad": [0.5],
            "lr": [0.01],
            "model": model,
            "training": {
                "optimizer": "adam",
                "epochs": 2,
                "batch_size": 64,
                "seeds": 2,
                "device": "cuda",
            },
        }
    )
    (point,) = grid.expand(config)
    out = tmp_path / point.id
    job.run_point(point, config, digits, out, tracking_uri=None)
    epochs = pd.read_csv(out / "epochs.csv")
    assert sorted(epochs.epoch.unique()) == [0, 1, 2]
    assert (epochs.status == "ok").all()
    assert np.isfinite(epochs[["train_loss", "val_loss", "val_accuracy"]]).all().all()
    assert epochs[epochs.epoch == 2].val_accuracy.min() > 0.2, "it learns"
    saved = json.loads((out / "point.json").read_text())
    assert {info["status"] for info in saved["seeds"].values()} == {"finished"}
    assert saved["seeds"]["0"]["params_sha256"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zero_grad", [0.5, 0.3, 2.0, -0.5])
def test_fused_relu_backward_equals_the_exact_one(dtype, zero_grad):
    x, upstream = planted(dtype)
    x, upstream = x.cuda().requires_grad_(True), upstream.cuda()
    out = activations.build("relu", zero_grad)(x)
    assert out.grad_fn.name() == "_ReLUBackward"
    (grad,) = torch.autograd.grad(out, x, upstream)
    exact = activations._ReLU._exact(x.detach(), upstream, zero_grad)
    assert torch.equal(grad, exact)
    cpu = activations._ReLU._exact(x.detach().cpu(), upstream.cpu(), zero_grad)
    assert torch.equal(grad.cpu(), cpu)
    fused = activations._fused_cuda_is_exact(dtype, zero_grad)
    assert fused == (dtype in (torch.float32, torch.float64) or zero_grad != 0.3)
