"""The monitor against brute-force per-unit computation and against the study's own probes."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import monitored
from torch import nn

from relulab.monitor import EmptyProbeError, Monitor, NoActivationsError, ProbeSet
from relulab.nn import models, probes

N = 40


def _data(n: int = N, features: int = monitored.FEATURES, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, features, generator=g), torch.randint(
        0, monitored.CLASSES, (n,), generator=g
    )


def _derivative(z: float, zero_grad: float) -> float:
    return 1.0 if z > 0 else (zero_grad if z == 0 else 0.0)


def _brute_force_layer(z: torch.Tensor, h: torch.Tensor, g: torch.Tensor, zero_grad: float):
    """Per-unit dead, inactive, exact zeros, zero outputs and RMS of dL/dz by Python loops."""
    units = z.shape[1]
    zs = z.transpose(0, 1).reshape(units, -1).tolist()
    hs = h.transpose(0, 1).reshape(units, -1).tolist()
    gs = g.transpose(0, 1).reshape(units, -1).double().tolist()
    return {
        "dead": [all(_derivative(v, zero_grad) == 0 for v in row) for row in zs],
        "inactive": [all(v <= 0 for v in row) for row in zs],
        "exact_zeros": [sum(v == 0 for v in row) for row in zs],
        "zero_outputs": [sum(v == 0 for v in row) for row in hs],
        "grad_rms": [math.sqrt(math.fsum(v * v for v in row) / len(row)) for row in gs],
    }


def _grad_at(suffix, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z = z.detach().requires_grad_(True)
    loss = nn.functional.cross_entropy(suffix(z), y, reduction="sum")
    return torch.autograd.grad(loss, z)[0]


def _assert_layer(found, expected) -> None:
    assert found.dead.tolist() == expected["dead"]
    assert found.inactive.tolist() == expected["inactive"]
    assert found.exact_zeros.tolist() == expected["exact_zeros"]
    assert found.zero_outputs.tolist() == expected["zero_outputs"]
    assert found.grad_rms.tolist() == pytest.approx(expected["grad_rms"], rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("zero_grad", [0.0, 1.0])
def test_mlp_matches_brute_force(zero_grad):
    torch.manual_seed(1)
    model = models.mlp(monitored.FEATURES, 6, 2, monitored.CLASSES, "relu", zero_grad=zero_grad)
    with torch.no_grad():
        model[0].weight[0] = 0.0  # unit 0 sits exactly at the kink on every example
        model[0].bias[0] = 0.0
        model[0].bias[1] = -100.0  # unit 1 never activates
    x, y = _data()
    check = Monitor(model, ProbeSet(x, y)).check()
    assert [c.name for c in check.layers] == ["1", "3"]
    for act_index, found in zip((1, 3), check.layers, strict=True):
        z = model[:act_index](x)
        h = model[act_index](z)
        g = _grad_at(model[act_index:], z, y)
        _assert_layer(found, _brute_force_layer(z.detach(), h.detach(), g, zero_grad))
    first = check.layers[0]
    assert first.exact_zeros[0] == N and first.inactive[0] and first.inactive[1]
    assert bool(first.dead[0]) is (zero_grad == 0.0)  # a unit at exactly 0 is dead only if f'(0)=0
    metrics = check.metrics()
    assert metrics["layer1/exact_zeros"] == N
    assert metrics["layer1/inactive_fraction"] == pytest.approx(2 / 6)


def _manual_bn(x: torch.Tensor, bn: nn.BatchNorm2d, mean=None, var=None) -> torch.Tensor:
    if mean is None:
        var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
    shape = (1, -1, 1, 1)
    scale = bn.weight.view(shape) / torch.sqrt(var.view(shape) + bn.eps)
    return (x - mean.view(shape)) * scale + bn.bias.view(shape)


def _conv_model(dtype=torch.float64) -> monitored.ConvBN:
    torch.manual_seed(2)
    model = monitored.ConvBN(inplace=True, dtype=dtype)
    with torch.no_grad():
        model.bn1.bias[0] = -50.0  # channel 0 of the first layer never activates
        model.bn1.running_mean.uniform_(-1, 1)
        model.bn1.running_var.uniform_(0.5, 2)
        model.bn2.running_mean.fill_(5.0)  # at inference most of the second layer is dead
    return model


def test_conv_with_batch_norm_and_in_place_relu_matches_brute_force():
    model = _conv_model()
    x = torch.randn(24, 2, 6, 6, dtype=torch.float64)
    y = torch.randint(0, monitored.CLASSES, (24,))
    check = Monitor(model, ProbeSet(x, y)).check()
    with torch.no_grad():
        z1 = _manual_bn(model.conv1(x), model.bn1)
        h1 = torch.relu(z1)
        z2 = _manual_bn(model.conv2(h1), model.bn2)
        h2 = torch.relu(z2)
        z1_inference = _manual_bn(
            model.conv1(x), model.bn1, model.bn1.running_mean, model.bn1.running_var
        )
        z2_inference = _manual_bn(
            model.conv2(torch.relu(z1_inference)),
            model.bn2,
            model.bn2.running_mean,
            model.bn2.running_var,
        )
    var2, mean2 = torch.var_mean(model.conv2(h1), dim=(0, 2, 3), correction=0)

    def after_first(z):
        return model.head(
            torch.relu(_manual_bn(model.conv2(torch.relu(z)), model.bn2, mean2, var2)).mean(
                dim=(2, 3)
            )
        )

    g1 = _grad_at(after_first, z1, y)
    g2 = _grad_at(lambda z: model.head(torch.relu(z).mean(dim=(2, 3))), z2, y)
    _assert_layer(check.layers[0], _brute_force_layer(z1, h1, g1, 0.0))
    _assert_layer(check.layers[1], _brute_force_layer(z2, h2, g2, 0.0))
    assert check.layers[0].inactive[0]
    assert check.layers[0].values == 24 * 36  # a channel's values: every example and position
    for found, z in zip(check.layers, (z1_inference, z2_inference), strict=True):
        expected = _brute_force_layer(z, torch.relu(z), torch.zeros_like(z), 0.0)
        assert found.dead_at_inference.tolist() == expected["dead"]
        assert found.inactive_at_inference.tolist() == expected["inactive"]
    assert check.layers[1].dead_at_inference.sum() > check.layers[1].dead.sum()


def test_chunked_probe_gives_the_one_pass_result():
    model = _conv_model()
    x = torch.randn(30, 2, 6, 6, dtype=torch.float64)
    y = torch.randint(0, monitored.CLASSES, (30,))
    whole = Monitor(model, ProbeSet(x, y), chunk=64).check()
    chunked = Monitor(model, ProbeSet(x, y), chunk=7).check()
    for a, b in zip(whole.layers, chunked.layers, strict=True):
        for key in ("dead", "inactive", "dead_at_inference", "exact_zeros", "zero_outputs"):
            assert torch.equal(getattr(a, key), getattr(b, key)), key
        assert b.grad_rms.tolist() == pytest.approx(a.grad_rms.tolist(), rel=1e-9)


def test_in_place_relu_measures_what_out_of_place_relu_does():
    x = torch.randn(16, 2, 6, 6)
    y = torch.randint(0, monitored.CLASSES, (16,))
    torch.manual_seed(3)
    in_place = monitored.ConvBN(inplace=True)
    torch.manual_seed(3)
    out_of_place = monitored.ConvBN(inplace=False)
    a = Monitor(in_place, ProbeSet(x, y)).check()
    b = Monitor(out_of_place, ProbeSet(x, y)).check()
    for left, right in zip(a.layers, b.layers, strict=True):
        for key in (
            "dead",
            "inactive",
            "exact_zeros",
            "zero_outputs",
            "grad_rms",
            "dead_at_inference",
        ):
            assert torch.equal(getattr(left, key), getattr(right, key)), key
    assert a.layers[0].zero_outputs.sum() > 0  # the rectified outputs, not the inputs, counted
    assert in_place.act1.inplace and in_place.act2.inplace


def test_a_reused_module_is_one_layer_per_call():
    torch.manual_seed(4)
    model = monitored.Reused()
    x, y = _data()
    check = Monitor(model, ProbeSet(x, y)).check()
    assert [(c.layer, c.name) for c in check.layers] == [(1, "act"), (2, "act#2")]
    z1 = model.inner(x)
    z2 = model.second(torch.relu(z1))
    g1 = _grad_at(lambda z: model.head(torch.relu(model.second(torch.relu(z)))), z1, y)
    g2 = _grad_at(lambda z: model.head(torch.relu(z)), z2, y)
    _assert_layer(
        check.layers[0], _brute_force_layer(z1.detach(), torch.relu(z1).detach(), g1, 0.0)
    )
    _assert_layer(
        check.layers[1], _brute_force_layer(z2.detach(), torch.relu(z2).detach(), g2, 0.0)
    )
    assert "layer2/dead_fraction" in check.metrics()


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gelu", "tanh"])
def test_monitor_and_study_probes_agree_bitwise(activation, batch_norm):
    model = models.seeded_mlp(
        7,
        in_features=monitored.FEATURES,
        width=32,
        depth=3,
        classes=monitored.CLASSES,
        activation=activation,
        batch_norm=batch_norm,
    )
    x, y = _data(200)
    with torch.no_grad():
        # Some dead units in the first layer (batch norm would undo a shift of the linear bias).
        (model[1].bias[:4].fill_(-10.0) if batch_norm else model[0].bias.sub_(1.5))
    check = Monitor(model, ProbeSet(x, y), chunk=256).check()
    dead = probes.dead_units(model, x)
    inactive = probes.inactive_units(model, x)
    dead_inference = probes.dead_units(model, x, statistics="running")
    rms = probes.pre_activation_grad_rms(model, x, y)
    outputs = [act(z) for act, z in probes.pre_activations(model, x)]
    for layer, found in enumerate(check.layers):
        assert torch.equal(found.dead, dead[layer])
        assert torch.equal(found.inactive, inactive[layer])
        assert torch.equal(found.dead_at_inference, dead_inference[layer])
        sparsity = found.metrics()["sparsity"]
        assert sparsity == float(probes.sparsity(outputs[layer]))
        assert found.metrics()["pre_activation_grad_rms"] == pytest.approx(
            float(rms[layer]), rel=1e-12
        )
    if activation == "relu":
        assert check.layers[0].dead.any()


def test_a_check_restores_modes_buffers_grads_and_random_state():
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Linear(monitored.FEATURES, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(8, 8),
        nn.RReLU(),
        nn.Linear(8, monitored.CLASSES),
    )
    x, y = _data()
    model.train()
    model[3].eval()  # a submodule's own mode is kept too
    nn.functional.cross_entropy(model(x), y).backward()
    grads = [p.grad for p in model.parameters()]
    grad_values = [g.clone() for g in grads]
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    Monitor(model, ProbeSet(x, y)).check()
    assert [m.training for m in model.modules()] == modes
    for (key, value), saved in zip(model.state_dict().items(), buffers.values(), strict=True):
        assert torch.equal(value, saved), key
    for p, g, v in zip(model.parameters(), grads, grad_values, strict=True):
        assert p.grad is g and torch.equal(g, v)
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_model_without_activation_modules_is_a_clear_error():
    with pytest.raises(NoActivationsError, match=r"F\.relu.*nn\.ReLU\(\)"):
        Monitor(monitored.Functional(), ProbeSet(*_data()))


def test_an_empty_probe_set_is_a_clear_error():
    with pytest.raises(EmptyProbeError, match="empty"):
        ProbeSet(torch.empty(0, monitored.FEATURES))
    with pytest.raises(EmptyProbeError, match="empty"):
        ProbeSet.drawn(torch.utils.data.TensorDataset(torch.empty(0, 3)))
    with pytest.raises(EmptyProbeError, match="no batch"):
        ProbeSet.whole([])


def test_non_finite_pre_activations_are_counted_not_raised():
    torch.manual_seed(6)
    model = models.mlp(monitored.FEATURES, 6, 2, monitored.CLASSES, "relu")
    x, y = _data()
    x[3, 0] = float("nan")
    x[5, 1] = float("inf")
    check = Monitor(model, ProbeSet(x, y)).check()
    z = model[0](x)
    expected = (~torch.isfinite(z)).sum(dim=0)
    assert torch.equal(check.layers[0].nonfinite, expected)
    assert check.metrics()["layer1/nonfinite"] == float(expected.sum()) > 0
    assert not check.layers[0].dead.any()  # NaN is not "f'(z) == 0 everywhere"
    assert math.isnan(check.metrics()["layer1/pre_activation_grad_rms"])


def test_revived_and_newly_dead_since_the_last_check():
    torch.manual_seed(8)
    model = models.mlp(monitored.FEATURES, 6, 1, monitored.CLASSES, "relu")
    monitor = Monitor(model, ProbeSet(*_data()))
    first = monitor.check(0).layers[0]
    assert not first.dead.any()
    bias = model[0].bias.detach().clone()
    with torch.no_grad():
        model[0].bias[2] = -1e6
    second = monitor.check(1).layers[0]
    assert second.history["newly_dead"].tolist() == [i == 2 for i in range(6)]
    with torch.no_grad():
        model[0].bias.copy_(bias)
    third = monitor.check(2)
    assert third.layers[0].history["revived_since_last"][2]
    assert third.layers[0].history["revived"][2] and third.layers[0].history["ever_dead"][2]
    assert not third.layers[0].history["newly_dead"].any()
    assert third.metrics()["layer1/revived_fraction"] == pytest.approx(1 / 6)


def test_the_probe_set_is_drawn_once_by_its_own_seed():
    data = monitored.dataset(100)
    state = torch.get_rng_state()
    a = ProbeSet.drawn(data, size=30, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    b = ProbeSet.drawn(torch.utils.data.DataLoader(data, batch_size=7, shuffle=True), 30, 4)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert len(a) == 30 and not torch.equal(a.inputs, ProbeSet.drawn(data, 30, 5).inputs)
    assert len(ProbeSet.drawn(data, size=1000)) == 100
    whole = ProbeSet.whole(torch.utils.data.DataLoader(data, batch_size=32))
    assert torch.equal(whole.inputs, data.tensors[0])
