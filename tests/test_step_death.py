"""Dead over an epoch's training steps (the step-level definition), against float64 references:
a tiny network whose live units are known step by step, and a replay of training that takes
every step's local derivatives from the definition."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from helpers.training import train

from relulab.nn import activations, probes
from relulab.nn.models import seeded_mlp
from relulab.train import conv as conv_training
from relulab.train import rows
from relulab.train.core import SeedTraining, Settings
from relulab.train.stacked import build_stack
from relulab.train.step_death import NonzeroDerivatives, recording_nonzero_derivatives

NAN = float("nan")


def definition(activation, z: torch.Tensor, keep: tuple[int, ...]) -> torch.Tensor:
    """Some element with f'(z) != 0, from the activation's own backward pass."""
    return ~probes.dead_mask(probes.local_derivative(activation, z), keep)


@pytest.mark.parametrize(
    "activation",
    [
        torch.nn.ReLU(),
        activations.ZeroGradReLU(0.0),
        activations.ZeroGradReLU(0.5),
        activations.ZeroGradReLU(1.0),
        activations.build("sigmoid"),
        activations.build("tanh"),
        activations.build("leaky_relu", 0.0),
        activations.build("elu"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_live_units_of_one_call_are_the_definitions(activation, dtype):
    # Units (dim 2) at each case: positive somewhere, -0.0 and 0.0 only, negative only,
    # saturating (sigmoid and tanh round to 1 or 0 there), NaN among negatives, and mixed.
    columns = [
        [-1.0, 2.0, -3.0],
        [0.0, -0.0, 0.0],
        [-1.0, -2.0, -5.0],
        [1e4, 2e4, -1e4],
        [-1.0, NAN, -2.0],
        [-1e4, 0.0, 1e-30],
    ]
    z = torch.tensor(columns, dtype=dtype).T.reshape(1, 3, len(columns)).repeat(2, 1, 1)
    z[1] = -z[1]
    with torch.enable_grad():
        z = z.requires_grad_(True)
        output = activation(z)
        live = probes.nonzero_derivative_units(activation, z, output, (0, 2))
    assert live.tolist() == definition(activation, z, (0, 2)).tolist()


def test_relu_units_by_hand():
    z = torch.tensor([[[-1.0, 0.0, 0.5, NAN], [-2.0, -0.0, -1.0, -1.0]]], dtype=torch.float64)
    output = torch.relu(z)
    at_zero_dead = probes.nonzero_derivative_units(torch.nn.ReLU(), z, output, (0, 2))
    at_zero_live = probes.nonzero_derivative_units(activations.ZeroGradReLU(0.5), z, output, (0, 2))
    assert at_zero_dead.tolist() == [[False, False, True, True]]
    assert at_zero_live.tolist() == [[False, True, True, True]]


def tiny_stack(zero_grad: float = 0.0):
    """Two seeds of a 1-input, 3-unit ReLU layer whose units are known by hand. Seed 0:
    unit 0 z = x, unit 1 z = -1 (dead everywhere), unit 2 z = x - 5; seed 1 the negatives."""
    stack = build_stack([0, 1], 1, 2, 3, 1, "relu", zero_grad, False, "default", torch.float64)
    weights = torch.tensor([[1.0], [0.0], [1.0]], dtype=torch.float64)
    biases = torch.tensor([0.0, -1.0, -5.0], dtype=torch.float64)
    with torch.no_grad():
        stack.weights[0].copy_(torch.stack([weights, -weights]))
        stack.biases[0].copy_(torch.stack([biases, -biases]))
    return stack


def steps_through(stack, x, batches) -> list[list[list[bool]]]:
    """The units dead over the steps so far, after each step (no weight update)."""
    y = torch.zeros(len(x), dtype=torch.int64)
    alive = torch.ones(2, dtype=torch.bool)
    record = NonzeroDerivatives(2, 1)
    dead = []
    with recording_nonzero_derivatives(stack, record):
        for batch in batches:
            index = torch.tensor(batch).expand(2, -1)
            stack.backward(x, y, index, alive)
            stack.zero_grad()
            dead.append(record.dead()[0].tolist())
    return dead


def test_a_unit_is_dead_over_the_steps_until_one_step_gives_it_a_nonzero_derivative():
    x = torch.arange(1.0, 9.0, dtype=torch.float64)[:, None]  # x = 1, ..., 8
    small, large = [0, 1], [6, 7]  # x in {1, 2}, then x in {7, 8}
    first, both = steps_through(tiny_stack(), x, [small, large])
    # Seed 0: unit 2 (z = x - 5) is live in the second step only; seed 1: z = -x, 1, 5 - x.
    assert first == [[False, True, True], [True, False, False]]
    assert both == [[False, True, False], [True, False, False]]


def test_a_unit_exactly_at_zero_is_live_only_where_f_prime_of_zero_is_not_zero():
    x = torch.tensor([[5.0], [-3.0]], dtype=torch.float64)  # seed 0's unit 2 at exactly 0
    (dead_at_zero,) = steps_through(tiny_stack(0.0), x, [[0]])
    (live_at_zero,) = steps_through(tiny_stack(1.0), x, [[0]])
    assert dead_at_zero[0] == [False, True, True]
    assert live_at_zero[0] == [False, True, False]


def replay_reference(stack, depth: int, width: int, activation: str, zero_grad):
    """Wrap ``stack.backward`` so that, before each step, each seed's own MLP (float64, weights
    of that step) gives the definition's live units on its minibatch; returns their OR."""
    live: list[torch.Tensor] = []
    step = stack.backward

    def backward(x, y, index, alive, loss_scale=None):
        for s in range(stack.seeds):
            model = seeded_mlp(
                0, in_features=x.shape[1], width=width, depth=depth, classes=10,
                activation=activation, zero_grad=zero_grad, batch_norm=False,
            )  # fmt: skip
            stack.load_into(s, model.double())
            for layer, (act, z) in enumerate(probes.pre_activations(model, x[index[s]])):
                found = definition(act, z, (1,))
                if len(live) <= layer:
                    live.append(torch.zeros(stack.seeds, width, dtype=torch.bool))
                live[layer][s] |= found
        step(x, y, index, alive, loss_scale)

    stack.backward = backward
    return live


@pytest.mark.parametrize(("activation", "zero_grad"), [("relu", 0.0), ("sigmoid", None)])
def test_an_epochs_record_is_the_definition_replayed_over_its_steps(
    digits_split, activation, zero_grad
):
    depth, width = 2, 16
    stack = build_stack(
        [0, 3], digits_split.in_features, 10, width, depth, activation, zero_grad, False,
        "default", torch.float64,
    )  # fmt: skip
    training = SeedTraining(stack, digits_split, Settings(seeds=[0, 3], lr=2.0, epochs=2,
                                                          batch_size=128))  # fmt: skip
    training.start("cpu")
    optimizer = training.optimizer()
    dead = 0
    for _ in range(3):
        reference = replay_reference(stack, depth, width, activation, zero_grad)
        counters = training.run_epoch(optimizer)
        del stack.backward  # the class's own again
        for recorded, expected in zip(counters["dead_over_steps"], reference, strict=True):
            assert recorded.tolist() == (~expected).tolist()
            dead += int(recorded.sum())
    assert dead > 0 if activation == "relu" else dead == 0


@pytest.fixture(scope="module")
def high_lr_relu(digits_split):
    """ReLU at a learning rate that kills most of the second layer within three epochs."""
    return train(digits_split, [0, 3], "relu", 0.0, lr=2.0, epochs=3)


def test_layer_rows_carry_the_step_level_dynamics(high_lr_relu):
    layers = pd.DataFrame(high_lr_relu.history.layers)
    assert set(rows.STEP_FRACTIONS) <= set(layers.columns)
    start = layers[layers.epoch == 0]
    assert start[list(rows.STEP_FRACTIONS)].isna().all().all()  # no step before epoch 0
    trained = layers[layers.epoch > 0]
    assert trained[list(rows.STEP_FRACTIONS)].notna().all().all()
    # Units die at the end of an epoch: dead at its snapshot, alive in its steps. A unit dead
    # over an epoch's steps got no gradient then, so (first layer, plain SGD, no batch norm)
    # it is dead at that epoch's snapshot too.
    assert (trained.dead_fraction > trained.step_dead_fraction).any()
    assert (trained.step_dead_fraction <= trained.dead_fraction).all()
    assert (trained.step_ever_dead_fraction >= trained.step_dead_fraction).all()


def test_a_unit_dead_over_an_epoch_then_live_is_revived_by_the_step_level_definition():
    training = SeedTraining.__new__(SeedTraining)
    training.step_death = [probes.DeathHistory()]
    over_epochs = [[True, True, False], [True, False, False], [False, False, True]]
    found = [training.update_step_death([torch.tensor([dead])])[0] for dead in over_epochs]
    last = found[-1]
    assert last["revived"].tolist() == [[True, True, False]]
    assert last["born_dead"].tolist() == [[True, True, False]]  # dead over the first epoch
    assert last["died_in_training"].tolist() == [[False, False, True]]
    assert last["born_dead_revived"].tolist() == [[True, True, False]]


def test_resumed_training_keeps_the_step_level_history(digits_split):
    whole = train(digits_split, [0], "relu", 0.0, lr=2.0, epochs=3)
    stack = build_stack([0], digits_split.in_features, 10, 16, 2, "relu", 0.0, False, "default",
                        torch.float64)  # fmt: skip
    settings = Settings(seeds=[0], lr=2.0, epochs=3, batch_size=128)
    first = SeedTraining(stack, digits_split, settings)
    first.start("cpu")
    optimizer = first.optimizer()
    first.train_epoch(optimizer, 1)
    second = SeedTraining(stack, digits_split, settings)
    second.load_state(first.state())
    second.start("cpu")
    for epoch in (2, 3):
        second.train_epoch(optimizer, epoch)
    assert pd.DataFrame(second.history.layers).equals(pd.DataFrame(whole.history.layers))


def test_convolutional_models_record_their_channels_by_forward_hooks():
    models = conv_training.build_models(
        [0, 1], "vgg", (1, 8, 8), 10, 4, 3, "relu", 0.0, False, "default", torch.float64
    )
    x = torch.randn(12, 1, 8, 8, dtype=torch.float64) - 1.0
    y = torch.arange(12) % 10
    record = NonzeroDerivatives(2, models.depth)
    index = torch.stack([torch.arange(6), torch.arange(6, 12)])
    with recording_nonzero_derivatives(models, record):
        models.backward(x, y, index, torch.ones(2, dtype=torch.bool))
    dead = record.dead()
    for s, model in enumerate(models.models):
        # Without batch norm a step's forward pass is the probes' (eval mode is the same).
        expected = probes.dead_units(model, x[index[s]])
        assert [layer[s].tolist() for layer in dead] == [m.tolist() for m in expected]
    assert any(layer.any() for layer in dead) and not all(layer.all() for layer in dead)


def test_step_columns_are_snapshot_columns_with_the_prefix():
    snapshot = {c.removeprefix(rows.STEP_PREFIX) for c in rows.STEP_FRACTIONS}
    assert snapshot <= set(rows.LAYER_COLUMNS)
    assert len(rows.STEP_FRACTIONS) == 10
