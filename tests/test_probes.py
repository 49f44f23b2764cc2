"""Dead and inactive units on hand-built networks, exactly as docs/definitions.rst defines them."""

import pytest
import torch
from torch import nn

from relulab.nn import activations, probes
from relulab.nn.models import mlp


def two_unit_layer(activation, zero_grad=None):
    """Unit 0: z = x (sign varies). Unit 1: z = 0 exactly (weights and bias 0).
    Unit 2: z = -|x| - 1 (always negative). Unit 3: z = 200 (saturates sigmoid/tanh)."""
    linear = nn.Linear(1, 4)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0], [0.0], [0.0], [0.0]]))
        linear.bias.copy_(torch.tensor([0.0, 0.0, -1.0, 200.0]))
    return nn.Sequential(linear, activations.build(activation, zero_grad), nn.Linear(4, 2))


X = torch.tensor([[-1.0], [0.5], [2.0]])


def test_relu_zero_grad_decides_whether_a_unit_at_zero_is_dead():
    dead0 = probes.dead_units(two_unit_layer("relu", 0.0), X)[0]
    dead1 = probes.dead_units(two_unit_layer("relu", 1.0), X)[0]
    assert dead0.tolist() == [False, True, True, False]
    assert dead1.tolist() == [False, False, True, False]
    # Inactive does not depend on zero_grad: z <= 0 everywhere.
    for model in (two_unit_layer("relu", 0.0), two_unit_layer("relu", 1.0)):
        assert probes.inactive_units(model, X)[0].tolist() == [False, True, True, False]


@pytest.mark.parametrize("name", ["leaky_relu", "prelu", "rrelu", "elu"])
def test_leaky_family_never_dead_but_can_be_inactive(name):
    zero_grad = 1.0 if activations.is_kinked(name) else None
    model = two_unit_layer(name, zero_grad)
    assert not probes.dead_units(model, X)[0].any()
    assert probes.inactive_units(model, X)[0].tolist() == [False, True, True, False]


@pytest.mark.parametrize("name", ["leaky_relu", "prelu", "rrelu"])
def test_leaky_unit_stuck_at_zero_is_dead_only_when_zero_grad_is_zero(name):
    """f'(0) := 0 makes a unit whose input is exactly 0 everywhere dead, even for Leaky ReLU."""
    assert probes.dead_units(two_unit_layer(name, 0.0), X)[0].tolist() == [
        False,
        True,
        False,
        False,
    ]
    assert not probes.dead_units(two_unit_layer(name, None), X)[0].any()


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_saturated_sigmoid_and_tanh_units_are_dead(name):
    dead = probes.dead_units(two_unit_layer(name), X)[0]
    assert dead.tolist() == [False, False, False, True]


def test_masks_per_hidden_layer_in_forward_order():
    model = mlp(3, 5, 4, 2, "relu", zero_grad=0.0)
    x = torch.randn(50, 3)
    with torch.no_grad():
        model[2].weight.zero_()
        model[2].bias.fill_(-1.0)  # second hidden layer entirely dead
    dead = probes.dead_units(model, x)
    assert len(dead) == 4 and all(mask.shape == (5,) for mask in dead)
    assert dead[1].all()
    # The third layer sees constant input, so each unit is either dead or alive everywhere.
    assert not dead[0].all()


def test_probes_freeze_weights_and_restore_training_mode():
    model = mlp(3, 5, 2, 2, "relu", zero_grad=0.0, batch_norm=True)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probes.dead_units(model, torch.randn(20, 3))
    probes.inactive_units(model, torch.randn(20, 3))
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_probe_runs_in_model_dtype():
    model = mlp(3, 5, 1, 2, "relu", zero_grad=0.0).to(torch.float16)
    ((act, z),) = probes.pre_activations(model, torch.randn(4, 3, dtype=torch.float16))
    assert z.dtype == torch.float16


def test_death_history_revived_and_permanent():
    history = probes.DeathHistory()
    masks = [[1, 0, 0], [1, 1, 0], [0, 1, 1], [1, 1, 1]]
    rows = [history.update(torch.tensor(m, dtype=torch.bool)) for m in masks]
    assert rows[2]["revived"].tolist() == [True, False, False]
    assert rows[3]["revived"].tolist() == [False, False, False]
    assert rows[3]["permanently_dead"].tolist() == [False, True, True]
    assert rows[3]["ever_dead"].tolist() == [True, True, True]


def test_death_history_splits_born_dead_from_died_in_training():
    # Unit 0 born dead and revived; unit 1 born dead and stays; unit 2 dies in training and
    # revives; unit 3 dies in training and stays; unit 4 never dies.
    history = probes.DeathHistory()
    masks = [[1, 1, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 0, 1, 0]]
    rows = [history.update(torch.tensor(m, dtype=torch.bool)) for m in masks]
    last = {k: v.tolist() for k, v in rows[-1].items()}
    assert last["born_dead"] == [True, True, False, False, False]
    assert last["born_dead_revived"] == [True, False, False, False, False]
    assert last["born_dead_permanent"] == [False, True, False, False, False]
    assert last["died_in_training"] == [False, False, True, True, False]
    assert last["died_in_training_revived"] == [False, False, True, False, False]
    assert last["died_in_training_permanent"] == [False, False, False, True, False]
    assert set(probes.CAUSE_COLUMNS) <= set(last)


def test_death_history_resumes_with_its_born_dead_units():
    history = probes.DeathHistory()
    history.update(torch.tensor([True, False]))
    resumed = probes.DeathHistory()
    resumed.load_state_dict(history.state_dict())
    row = resumed.update(torch.tensor([False, True]))
    assert row["born_dead_revived"].tolist() == [True, False]
    assert row["died_in_training"].tolist() == [False, True]


# -- batch norm: what training sees against what inference sees --------------------------------


def deep_batch_norm_mlp(depth=6, width=12):
    """An untrained deep MLP with batch norm: its running statistics (0 and 1) normalise nothing."""
    torch.manual_seed(3)
    return mlp(8, width, depth, 3, "relu", zero_grad=0.0, batch_norm=True).double()


def training_view_pre_activations(model, x):
    """The literal definition: each layer normalised by F.batch_norm with the batch's own
    statistics (training=True), on copies of the running buffers that are then thrown away."""
    zs = []
    h = x
    for module in model:
        if isinstance(module, nn.BatchNorm1d):
            h = nn.functional.batch_norm(
                h,
                module.running_mean.clone(),
                module.running_var.clone(),
                module.weight,
                module.bias,
                training=True,
                eps=module.eps,
            )
        else:
            if activations.is_activation(module):
                zs.append(h)
            h = module(h)
    return zs


def test_batch_norm_probes_use_whole_set_statistics_and_differ_from_inference():
    model = deep_batch_norm_mlp()
    x = torch.randn(500, 8, dtype=torch.float64) * 3 + 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        expected = training_view_pre_activations(model, x)
    captured = probes.pre_activations(model, x)
    for (_, z), reference in zip(captured, expected, strict=True):
        torch.testing.assert_close(z, reference, rtol=1e-10, atol=1e-12)
    batch = probes.dead_units(model, x)
    running = probes.dead_units(model, x, statistics="running")
    assert [m.tolist() for m in batch] == [(r <= 0).all(dim=0).tolist() for r in expected]
    # Batch statistics centre every unit: none is dead. The running statistics (0 and 1)
    # leave the shifted inputs unnormalised, and deep layers die at inference only.
    assert not any(m.any() for m in batch)
    assert sum(int(m.sum()) for m in running) > 0
    inactive_running = probes.inactive_units(model, x, statistics="running")
    assert sum(int(m.sum()) for m in inactive_running) >= sum(int(m.sum()) for m in running)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # running buffers untouched


def test_whole_set_statistics_gathered_in_chunks_equal_one_pass():
    model = deep_batch_norm_mlp(depth=4).eval()
    x = torch.randn(37, 8, dtype=torch.float64) * 2 - 1
    with torch.no_grad(), probes.normalising_by_whole_set(model):
        whole = model(x)

    def run(start, stop):
        model(x[start:stop])

    with torch.no_grad(), probes.normalising_by_whole_set(model, run, len(x), chunk=5):
        chunked = model(x)
    torch.testing.assert_close(chunked, whole, rtol=1e-10, atol=1e-12)
    assert torch.equal(model[1].running_var, torch.ones(12, dtype=torch.float64))


def fixed_statistics(model, x):
    """Each batch-norm layer's mean and biased variance over the whole x, layer by layer."""
    statistics, h = [], x
    with torch.no_grad():
        for module in model:
            if isinstance(module, nn.BatchNorm1d):
                statistics.append((h.mean(dim=0), h.var(dim=0, unbiased=False)))
            h = through(module, h, statistics[-1:])
    return statistics


def through(module, h, statistics):
    """``module(h)``, a batch-norm layer normalising with the given fixed statistics."""
    if not isinstance(module, nn.BatchNorm1d):
        return module(h)
    mean, var = statistics[0]
    return (h - mean) / torch.sqrt(var + module.eps) * module.weight + module.bias


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("name", ["relu", "tanh"])
def test_pre_activation_grad_rms_is_each_examples_own_gradient(name, batch_norm):
    """Against a direct reference: per example, autograd of its own loss alone (float64)."""
    torch.manual_seed(5)
    zero_grad = 0.0 if name == "relu" else None
    model = mlp(6, 7, 3, 4, name, zero_grad=zero_grad, batch_norm=batch_norm).double()
    x = torch.randn(30, 6, dtype=torch.float64)
    y = torch.randint(0, 4, (30,))
    rms = probes.pre_activation_grad_rms(model, x, y)
    statistics = fixed_statistics(model, x)
    squares = torch.zeros(3, dtype=torch.float64)
    for i in range(len(x)):
        h, zs, norms = x[i : i + 1], [], iter(statistics)
        for module in model:
            if activations.is_activation(module):
                zs.append(h)
            fixed = [next(norms)] if isinstance(module, nn.BatchNorm1d) else []
            h = through(module, h, fixed)
        loss = nn.functional.cross_entropy(h, y[i : i + 1], reduction="sum")
        grads = torch.autograd.grad(loss, zs)
        squares += torch.stack([g.square().sum() for g in grads])
    expected = (squares / (len(x) * 7)).sqrt()
    torch.testing.assert_close(torch.stack(rms), expected, rtol=1e-10, atol=0)
    assert (expected > 0).all()
