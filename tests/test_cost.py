"""The cost benchmark's table: what it reports, per element and relative to torch.relu.

The numbers depend on the machine; these tests check what the benchmark reports. The
operators' exactness is in tests/test_zero_grad_operator.py.
"""

import math

import pandas as pd
import pytest
import torch

from relulab.experiments import cost
from relulab.nn import activations, native


def test_variants_cover_every_activation_and_the_zero_grad_values_next_to_torch():
    labels = [v.label for v in cost.variants((0.0, 0.5, 1.0))]
    assert labels[0] == cost.REFERENCE == "torch.relu"
    for name in activations.KINKED:
        assert f"torch.{name}" in labels
        for z in ("0", "0.5", "1"):
            assert f"{name} (f'(0)={z})" in labels
    for name in activations.SMOOTH:
        assert name in labels
    assert len(labels) == len(set(labels))


def test_benchmark_reports_medians_per_element_and_relative_to_torch_relu():
    table = cost.benchmark(sizes=[256, 1024], repeats=3, devices=["cpu"], zero_grads=(0.5,))
    variants = cost.variants((0.5,))
    assert len(table) == 2 * len(variants)
    assert set(table["elements"]) == {256, 1024}
    assert (table["repeats"] == 3).all()
    assert (table["median_s"] > 0).all()
    assert (table["q25_s"] <= table["median_s"]).all()
    assert (table["median_s"] <= table["q75_s"]).all()
    per_element = table["median_s"] / table["elements"] * 1e9
    assert table["ns_per_element"].tolist() == pytest.approx(per_element.tolist())
    reference = table[table["variant"] == cost.REFERENCE]
    assert reference["relative"].tolist() == pytest.approx([1.0, 1.0])
    ours = cost.zero_grad_relu_overhead(table)
    assert set(ours["variant"]) == {"relu (f'(0)=0.5)"}
    assert len(ours) == 2
    compiled = native.operators() is not None
    assert ours["compiled_operator"].tolist() == [compiled, compiled]
    timed_compiled = set(table.loc[table["compiled_operator"], "variant"])
    assert timed_compiled == ({"relu (f'(0)=0.5)", "leaky_relu (f'(0)=0.5)"} if compiled else set())


def test_timing_sees_every_module_once_per_repeat():
    calls = {"a": 0, "b": 0}

    class Counting(torch.nn.Module):
        def __init__(self, key):
            super().__init__()
            self.key = key

        def forward(self, x):
            calls[self.key] += 1
            return torch.relu(x)

    times, ratios = cost.time_variants(
        {"a": Counting("a"), "b": Counting("b")}, "a", elements=64, repeats=4, warmup=1
    )
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4}
    assert {k: len(v) for k, v in ratios.items()} == {"a": 4, "b": 4}
    # Each repeat (warm-up included) runs each module twice (once untimed, once timed), and
    # the reference "a" twice more before each of the two modules.
    assert calls == {"a": 5 * (2 + 2 * 2), "b": 5 * 2}


def test_torch_relu_is_timed_against_a_second_copy_of_itself_as_the_null():
    labels = [v.label for v in cost.variants((0.0,))]
    assert cost.NULL in labels
    null = next(v for v in cost.variants((0.0,)) if v.label == cost.NULL)
    assert isinstance(null.build(), torch.nn.ReLU)


def test_median_interval_takes_order_statistics_at_binomial_ranks():
    values = list(range(1, 21))  # n = 20: the 6th to the 15th smallest
    assert cost.median_interval(values) == (6.0, 15.0)
    assert all(math.isnan(v) for v in cost.median_interval([1.0]))


def cost_row(variant, relative, low, high):
    return {
        "device": "cpu",
        "elements": 100,
        "variant": variant,
        "relative": relative,
        "relative_low": low,
        "relative_high": high,
    }


def test_cheaper_and_dearer_only_outside_the_null():
    table = pd.DataFrame(
        [
            cost_row(cost.REFERENCE, 1.0, 0.97, 1.03),
            cost_row(cost.NULL, 0.9, 0.85, 0.98),
            cost_row("inside", 0.95, 0.9, 0.97),  # cheaper than 1, not than the null
            cost_row("cheap", 0.5, 0.45, 0.55),
            cost_row("dear", 2.0, 1.8, 2.2),
            cost_row("one repeat", 0.5, math.nan, math.nan),
        ]
    )
    verdicts = cost.add_verdicts(table).set_index("variant")["verdict"]
    assert verdicts.to_dict() == {
        cost.REFERENCE: "reference",
        cost.NULL: "null",
        "inside": "within noise",
        "cheap": "cheaper",
        "dear": "dearer",
        "one repeat": "within noise",
    }
