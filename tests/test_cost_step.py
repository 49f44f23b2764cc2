"""The training-step cost table: whole steps timed against torch.relu and a null."""

import pandas as pd
import pytest
import torch

from relulab.experiments import cost, cost_step, machine
from relulab.nn import activations


def test_step_variants_are_the_reference_the_null_and_the_study_activations():
    labels = [v.label for v in cost_step.step_variants(["relu", "prelu", "elu"], (0.0, 0.5, 1.0))]
    assert labels == [
        cost.REFERENCE,
        cost.NULL,
        "relu (f'(0)=0)",
        "relu (f'(0)=0.5)",
        "relu (f'(0)=1)",
        "prelu (f'(0)=0)",
        "elu",
    ]


def test_mlp_has_the_study_shape_and_one_activation_per_hidden_layer():
    size = cost_step.StepSize(batch_size=8, width=6, depth=3, in_features=5, classes=4)
    net = cost_step.mlp(activations.build("prelu", 0.0), size)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 6), (6, 6), (6, 6), (6, 4)]
    prelus = [m for m in net if not isinstance(m, torch.nn.Linear)]
    assert len(prelus) == 3 and len({id(m) for m in prelus}) == 3  # one slope per layer
    same = cost_step.mlp(torch.nn.ReLU(), size)
    assert torch.equal(linears[0].weight, same[0].weight)  # every variant starts alike


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_a_timed_step_is_a_whole_training_step(optimizer):
    size = cost_step.StepSize(batch_size=8, width=6, depth=2, in_features=5, classes=3)
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    trainer = cost_step._Trainer(
        cost_step.mlp(torch.nn.ReLU(), size), optimizer, cost_step.batches_of(x, y, 8)
    )
    before = [p.detach().clone() for p in trainer.model.parameters()]
    assert trainer.timed(2) > 0
    after = list(trainer.model.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_benchmark_reports_each_optimizer_and_variant_with_the_machine():
    size = cost_step.StepSize(batch_size=8, width=6, depth=2, in_features=5, classes=3)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    variants = cost_step.step_variants(["relu", "tanh"])
    table = cost_step.benchmark(x, y, size, variants, ("sgd", "adam"), repeats=3, steps=2)
    assert list(table.columns) == cost_step.COLUMNS
    assert len(table) == 2 * len(variants)
    assert (table["seconds_per_step"] > 0).all()
    assert (table["ratio_low"] <= table["ratio_to_relu"]).all()
    assert (table["ratio_to_relu"] <= table["ratio_high"]).all()
    reference = table[table["variant"] == cost.REFERENCE]
    assert reference["ratio_to_relu"].tolist() == pytest.approx([1.0, 1.0])
    assert set(reference["verdict"]) == {"reference"}
    assert set(table.loc[table["variant"] == cost.NULL, "verdict"]) == {"null model"}
    assert set(table["verdict"]) <= {"reference", "null model", "cheaper", "dearer", "same"}
    here = machine.columns()
    for column in ("cpu_model", "cpu_capability", "torch_version", "blas"):
        assert set(table[column]) == {here[column]}


def _row(variant, optimizer, ratio, low, high):
    return {
        "variant": variant,
        "optimizer": optimizer,
        "device": "cpu",
        "ratio_to_relu": ratio,
        "ratio_low": low,
        "ratio_high": high,
    }


def test_verdicts_need_an_interval_outside_the_null_band():
    table = pd.DataFrame(
        [
            _row(cost.REFERENCE, "adam", 1.0, 0.95, 1.05),
            _row(cost.NULL, "adam", 1.02, 0.9, 1.2),
            _row("tanh", "adam", 1.15, 1.1, 1.3),  # inside the null's band: same
            _row("elu", "adam", 1.4, 1.25, 1.5),  # above it: dearer
            _row("sigmoid", "adam", 0.8, 0.7, 0.85),  # below it: cheaper
            _row("gelu", "sgd", 1.15, 1.1, 1.3),  # no null for sgd: band is 1 alone
        ]
    )
    verdicts = cost_step.add_verdicts(table)["verdict"].tolist()
    assert verdicts == ["reference", "null model", "same", "dearer", "cheaper", "dearer"]
