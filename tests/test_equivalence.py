"""Batched seeds are the seeds trained alone, and the fast probes are the definitions.

A seed trained inside a stack of S must match the same seed trained alone (float64, 1e-10),
weights and every recorded row (losses, accuracy, dead/inactive/revived fractions, sparsity,
gradient norms, exact zeros); one seed diverging must not disturb the others. The probes and
counters compute with arithmetic kernels (max, sums of 0/1) instead of boolean masks, so they
are checked against the literal definitions on the values where the two could part: NaN,
infinities, signed zeros and subnormals.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch
from helpers.training import train
from lightning.pytorch.callbacks import Callback

from relulab.nn import activations, probes
from relulab.nn.models import seeded_mlp
from relulab.train import environment, zeros
from relulab.train.stacked import build_stack


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """As training jobs run (rule train: threads 1); tiny models gain nothing from more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def zero_grads(activation: str) -> list[float | None]:
    return [0.0, 0.5] if activation in activations.KINKED else [None]


CASES = [
    (activation, zero_grad, batch_norm)
    for activation in activations.ACTIVATIONS
    for zero_grad in zero_grads(activation)
    for batch_norm in (False, True)
]


class Poison(Callback):
    """Makes one seed's weights NaN before a given epoch: a seed diverging mid-training."""

    def __init__(self, seed_index: int, epoch: int):
        self.seed_index, self.epoch = seed_index, epoch

    def on_train_epoch_start(self, trainer, module) -> None:
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                module.stack.weights[0][self.seed_index].fill_(float("nan"))


def rows_of(module, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seed's epoch and layer rows, without the seed column and the bitwise weight hash."""
    epochs = pd.DataFrame(module.history.epochs)
    layers = pd.DataFrame(module.history.layers)
    epochs = epochs[epochs.seed == seed].drop(columns=["seed", "params_sha256"], errors="ignore")
    layers = layers[layers.seed == seed].drop(columns="seed")
    return epochs.reset_index(drop=True), layers.reset_index(drop=True)


def assert_seed_matches(stacked, index: int, alone, seed: int, atol: float = 1e-12) -> None:
    for name, tensor in alone.stack.state_dict().items():
        torch.testing.assert_close(
            stacked.stack.state_dict()[name][index], tensor[0], rtol=1e-10, atol=atol, msg=name
        )
    for together, single in zip(rows_of(stacked, seed), rows_of(alone, seed), strict=True):
        assert len(together) == len(single) > 0
        pd.testing.assert_frame_equal(together, single, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("activation", "zero_grad", "batch_norm"), CASES)
def test_seed_in_a_stack_trains_as_alone(digits_split, activation, zero_grad, batch_norm):
    stacked = train(digits_split, [0, 3, 5], activation, zero_grad, batch_norm)
    alone = train(digits_split, [3], activation, zero_grad, batch_norm)
    assert_seed_matches(stacked, 1, alone, 3)
    epochs, layers = rows_of(stacked, 3)
    assert set(epochs.status) == {"ok"}
    assert {"dead_fraction", "sparsity", "revived_fraction", "grad_norm"} <= set(layers.columns)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_seed_in_a_stack_trains_as_alone_with_stateful_optimizers(digits_split, optimizer):
    stacked = train(digits_split, [1, 2], "prelu", 1.0, True, optimizer=optimizer, lr=0.01)
    alone = train(digits_split, [2], "prelu", 1.0, True, optimizer=optimizer, lr=0.01)
    # A bias that feeds batch norm has no gradient in exact arithmetic (the norm removes it), so
    # Adam divides rounding noise by its own size and moves it by ~lr: a stacked and a lone
    # matrix product that round differently (AVX-512's kernels do for these shapes) leave
    # such biases (and the running means they enter) ~1e-11 apart. A real mix-up of seeds or
    # optimizer states moves them by orders of magnitude more.
    assert_seed_matches(stacked, 1, alone, 2, atol=1e-9)


@pytest.mark.parametrize(("activation", "optimizer"), [("relu", "sgd"), ("rrelu", "adam")])
def test_seed_diverging_mid_training_leaves_the_others_as_alone(
    digits_split, activation, optimizer
):
    poisoned = train(
        digits_split, [0, 1, 2], activation, 0.0, True, optimizer, 0.01, 3, [Poison(1, epoch=1)]
    )
    assert poisoned.history.diverged_epoch == {1: 2}
    statuses = pd.DataFrame(poisoned.history.epochs).groupby("seed").status.agg(list)
    assert statuses[1] == ["ok", "ok", "diverged"]
    assert statuses[0] == statuses[2] == ["ok"] * 4
    for index, seed in [(0, 0), (2, 2)]:
        alone = train(digits_split, [seed], activation, 0.0, True, optimizer, 0.01, 3)
        assert_seed_matches(poisoned, index, alone, seed)


@pytest.mark.parametrize("activation", activations.ACTIVATIONS)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_stack_computes_each_seeds_mlp(activation, batch_norm):
    seeds = [0, 7]
    zero_grad = 0.0 if activation in activations.KINKED else None
    kwargs = dict(
        in_features=5,
        classes=3,
        width=6,
        depth=3,
        activation=activation,
        zero_grad=zero_grad,
        batch_norm=batch_norm,
        init="default",
    )
    stack = build_stack(seeds, dtype=torch.float64, **kwargs).eval()
    x = torch.randn(2, 11, 5, dtype=torch.float64)
    logits = stack(x)
    for index, seed in enumerate(seeds):
        model = seeded_mlp(seed, **kwargs).double().eval()
        torch.testing.assert_close(logits[index], model(x[index]), rtol=1e-12, atol=1e-12)


# -- the probes and counters against their definitions ------------------------------------

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def special_values(dtype: torch.dtype, shape=(3, 64, 5)) -> torch.Tensor:
    """Random values, many exact zeros of both signs, subnormals, infinities and NaN."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(dtype)
    pick = torch.randint(0, 12, shape, generator=g)
    tiny = torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps
    x[pick == 0] = 0.0
    x[pick == 1] = -0.0
    x[pick == 2] = tiny
    x[pick == 3] = -tiny
    x[(pick == 4) & (torch.rand(shape, generator=g) < 0.05)] = float("inf")
    x[(pick == 5) & (torch.rand(shape, generator=g) < 0.05)] = float("-inf")
    x[(pick == 6) & (torch.rand(shape, generator=g) < 0.05)] = float("nan")
    # Whole units that are dead, inactive, or sit at zero, for every seed.
    x[:, :, 0] = 0.0
    x[:, :, 1] = -x[:, :, 1].abs()
    x[1, :, 2] = float("nan")
    x[:, 5, 3] = 0.0
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keep", [(1,), (0, 2), (2,), (0, 1, 2)])
def test_fast_masks_equal_their_definitions(dtype, keep):
    x = special_values(dtype)
    dims = tuple(d for d in range(x.dim()) if d not in keep)

    def everywhere(mask):
        return mask.all(dim=dims) if dims else mask

    assert torch.equal(probes.dead_mask(x, keep), everywhere(x == 0))
    assert torch.equal(probes.inactive_mask(x, keep), everywhere(x <= 0))
    if keep == (0, 2):  # seeds x units, as relulab.train.measure keeps them
        assert probes.dead_mask(x, keep)[:, 0].all() and probes.inactive_mask(x, keep)[:, 0].all()
        assert not probes.inactive_mask(x, keep)[1, 2]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduce", [None, (1, 2), (0, 1), (1,)])
def test_fast_sparsity_and_counts_equal_their_definitions(dtype, reduce):
    x = special_values(dtype)
    zeros = (x == 0).to(torch.float64)
    expected = zeros.mean() if reduce is None else zeros.mean(dim=reduce)
    assert torch.equal(probes.sparsity(x, reduce), expected)
    counted = probes.count(1 - probes.nonzero(x), reduce)
    assert counted.dtype == torch.int64
    assert torch.equal(counted, (x == 0).sum() if reduce is None else (x == 0).sum(dim=reduce))


def test_counts_stay_exact_beyond_float16_and_float32_integers():
    ones = torch.ones(3000, dtype=torch.float16)
    assert int(probes.count(ones)) == 3000
    many = torch.ones(2**24 + 3, dtype=torch.float32)
    assert int(probes.count(many)) == 2**24 + 3


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_exact_zero_counters_equal_their_definitions(dtype):
    """Exact zeros are activation inputs == 0; live ones also meet a non-zero upstream gradient."""
    acts = [activations.build("relu", 0.5), activations.build("relu", 0.0)]
    z = special_values(dtype).requires_grad_(True)
    exact = torch.zeros(3, dtype=torch.int64)
    live = torch.zeros(3, dtype=torch.int64)
    upstream = torch.randn(z.shape, dtype=dtype)
    upstream[:, ::2] = 0.0
    upstream[0, 1, :] = float("nan")
    outputs: list[torch.Tensor] = []
    with zeros.counting_exact_zeros(acts, exact, live):
        for act in acts:
            outputs.append(act(z))
        torch.autograd.backward(outputs, [upstream, upstream])
    zero = (z == 0).detach()
    assert torch.equal(exact, 2 * zero.sum(dim=(1, 2)))
    assert torch.equal(live, 2 * (zero & (upstream != 0)).sum(dim=(1, 2)))
    assert int(live.sum()) > 0


def test_exact_zero_counters_stay_zero_without_zeros():
    act = activations.build("relu", 1.0)
    z = torch.randn(2, 8, 4, dtype=torch.float64).abs_().add_(1e-300).requires_grad_(True)
    z.data[1, :, 0] = torch.finfo(torch.float64).tiny / 4  # subnormal, not zero
    exact = torch.zeros(2, dtype=torch.int64)
    live = torch.zeros(2, dtype=torch.int64)
    with zeros.counting_exact_zeros([act], exact, live):
        act(z).sum().backward()
    assert exact.tolist() == [0, 0] and live.tolist() == [0, 0]
    z.data[1, 3, 2] = -0.0
    with zeros.counting_exact_zeros([act], exact, live):
        act(z).sum().backward()
    assert exact.tolist() == [0, 1] and live.tolist() == [0, 1]


def test_training_restores_the_cuda_check_setting():
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    try:
        with environment.cuda_check_without_nvml():
            assert "PYTORCH_NVML_BASED_CUDA_CHECK" not in os.environ
        assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"
    finally:
        os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
