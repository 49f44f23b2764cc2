"""The training core's per-epoch measurement is the probes' definitions, seed by seed.

``relulab.train.measure`` (MLPs stacked over seeds, one pass) and ``conv.measure_one`` (one network,
chunk by chunk) must give each seed what ``relulab.nn.probes`` gives its plain network: dead and
inactive units as training sees them and at inference, and the RMS of dL_i/dz (float64).
"""

import pytest
import torch

from relulab.data import prepared as data
from relulab.nn import activations, probes
from relulab.nn.models import seeded_mlp
from relulab.train import conv as conv_training
from relulab.train import measure as measurement
from relulab.train.measure import measure
from relulab.train.stacked import build_stack

ARCHITECTURE = dict(in_features=8, classes=3, width=10, depth=5, init="default")


def shifted_inputs(n=200, features=8):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, features, generator=g, dtype=torch.float64) * 3 + 1.5
    return x, torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize(
    ("activation", "zero_grad"), [("relu", 0.0), ("relu", 1.0), ("tanh", None)]
)
def test_stack_measurement_is_the_probes_per_seed(activation, zero_grad, batch_norm):
    seeds = [0, 4]
    kwargs = dict(ARCHITECTURE, activation=activation, zero_grad=zero_grad, batch_norm=batch_norm)
    stack = build_stack(seeds, dtype=torch.float64, **kwargs)
    x, y = shifted_inputs()
    split = data.Split(x, y, x[:50], y[:50])
    m = measure(stack, split)
    for s, seed in enumerate(seeds):
        model = seeded_mlp(seed, **kwargs).double()
        for key, view in (("dead", "batch"), ("dead_at_inference", "running")):
            expected = probes.dead_units(model, x, statistics=view)
            assert [d[s].tolist() for d in m[key]] == [e.tolist() for e in expected], key
        for key, view in (("inactive", "batch"), ("inactive_at_inference", "running")):
            expected = probes.inactive_units(model, x, statistics=view)
            assert [d[s].tolist() for d in m[key]] == [e.tolist() for e in expected], key
        rms = probes.pre_activation_grad_rms(model, x, y)
        torch.testing.assert_close(
            torch.stack([r[s] for r in m["pre_activation_grad_rms"]]), torch.stack(rms),
            rtol=1e-10, atol=0,
        )  # fmt: skip
    if batch_norm and activation == "relu":
        # Untrained, inputs off-centre: units die at inference (running statistics 0 and 1)
        # that training's batch statistics keep alive.
        at_inference = sum(int(d.sum()) for d in m["dead_at_inference"])
        assert at_inference > sum(int(d.sum()) for d in m["dead"])
    if not batch_norm:
        assert all(
            torch.equal(a, b) for a, b in zip(m["dead"], m["dead_at_inference"], strict=True)
        )


@pytest.mark.parametrize("batch_norm", [False, True])
def test_chunked_conv_measurement_is_the_probes(batch_norm):
    models = conv_training.build_models(
        [0], "vgg", (1, 8, 8), 10, 3, 3, "relu", 0.0, batch_norm, "default", torch.float64
    )
    g = torch.Generator().manual_seed(2)
    x = torch.randn(23, 1, 8, 8, generator=g, dtype=torch.float64) + 0.7
    y = torch.randint(0, 10, (23,), generator=g)
    split = data.Split(x, y, x, y)
    (model,) = models.models
    m = conv_training.measure_one(model, split, batch=4)
    for key, view in (("dead", "batch"), ("dead_at_inference", "running")):
        expected = probes.dead_units(model, x, statistics=view)
        assert [d.tolist() for d in m[key]] == [e.tolist() for e in expected], key
    rms = probes.pre_activation_grad_rms(model, x, y)
    torch.testing.assert_close(
        torch.stack(m["pre_activation_grad_rms"]), torch.stack(rms), rtol=1e-9, atol=0
    )


def special_values(dtype, shape=(3, 40, 6)):
    """Random values with exact zeros of both signs, subnormals, infinities and NaN."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(dtype)
    pick = torch.randint(0, 10, shape, generator=g)
    tiny = torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps
    x[pick == 0] = 0.0
    x[pick == 1] = -0.0
    x[pick == 2] = tiny
    x[pick == 3] = float("-inf")
    x[:, :, 0] = -x[:, :, 0].abs() - 1  # dead for every f'(0)
    x[:, :, 1] = 0.0  # dead only when f'(0) = 0
    x[:, :, 2] = -x[:, :, 2].abs()
    x[:, 3, 2] = 0.0  # one zero in a negative unit
    return x


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("zero_grad", [None, 0.0, 0.5, 1.0])
@pytest.mark.parametrize("with_nan", [False, True])
def test_relu_dead_mask_without_backward_equals_the_definition(dtype, zero_grad, with_nan):
    act = torch.nn.ReLU() if zero_grad is None else activations.build("relu", zero_grad)
    z = special_values(dtype)
    if with_nan:
        z[1, 7, 4] = float("nan")
    for keep in [(0, 2), (2,)]:
        expected = probes.dead_mask(probes.local_derivative(act, z), keep)
        assert torch.equal(probes.dead_mask_of(act, z, keep), expected)
    assert probes.dead_mask_of(act, z, (0, 2))[:, 0].all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_grad_rms_of_low_precision_gradients_matches_a_float64_reference(dtype):
    from relulab.train.measure import grad_rms

    g = torch.Generator().manual_seed(3)
    grad = (torch.randn(3, 4000, 100, generator=g, dtype=torch.float64) * 1e-3).to(dtype)
    reference = grad.double().square().mean(dim=(1, 2)).sqrt()
    measured = grad_rms(grad, (1, 2))
    assert measured.dtype == torch.float64
    tolerance = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(measured, reference, rtol=tolerance, atol=0)


@pytest.mark.parametrize(
    ("activation", "zero_grad", "dtype", "autocast"),
    [
        ("relu", 0.0, torch.float32, None),
        ("relu", 1.0, torch.float64, None),
        ("gelu", None, torch.float32, None),
        ("relu", 0.0, torch.float32, torch.bfloat16),
    ],
)
def test_measurement_in_slices_is_bitwise_the_one_pass(
    monkeypatch, activation, zero_grad, dtype, autocast
):
    """1,300 examples in slices of ~512 (three of 433-434) give every number of one pass; a
    diverged seed (NaN weights) too."""
    kwargs = dict(ARCHITECTURE, in_features=40, width=64, depth=3)
    stack = build_stack(
        [0, 1, 2], activation=activation, zero_grad=zero_grad, batch_norm=False, dtype=dtype,
        **kwargs,
    )  # fmt: skip
    stack.autocast_dtype = autocast
    with torch.no_grad():
        for weight in stack.weights:
            weight.mul_(3)  # units that die on part of the data and not on the rest
        stack.weights[1][2, 5].fill_(float("nan"))
    x, y = shifted_inputs(n=1300, features=40)
    split = data.Split(x, y, x[:100], y[:100]).to("cpu", dtype)
    assert len(measurement.measurement_slices(1300)) == 3
    sliced = measure(stack, split)
    monkeypatch.setattr(measurement, "MEASURE_CHUNK", 10**9)
    assert measurement.measurement_slices(1300) == [(0, 1300)]
    whole = measure(stack, split)
    if activation == "relu":
        assert any(bool(mask.any()) and not bool(mask.all()) for mask in whole["dead"])
    for key, value in whole.items():
        values = value if isinstance(value, list) else [value]
        others = sliced[key] if isinstance(value, list) else [sliced[key]]
        for a, b in zip(values, others, strict=True):
            assert a.dtype == b.dtype and torch.equal(a.isnan(), b.isnan()), key
            assert torch.equal(a.nan_to_num(), b.nan_to_num()), key
