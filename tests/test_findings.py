"""The findings report: its sentences follow the numbers, and it survives missing tables."""

import dataclasses
import functools
import hashlib
import math
import re

import pandas as pd
import pytest

from relulab.report import findings
from relulab.tables import convergence, dynamics
from relulab.tables import summary as analysis

EPOCHS = 3
SEEDS = 3


def point_id(activation, lr, depth):
    zero_grad = "_zg0" if activation == "relu" else ""
    return f"{activation}{zero_grad}_lr{lr:g}_float32_d{depth}_nobn"


def synthetic_study(**changes):
    """A fresh ``findings.Inputs`` of ``study(**changes)`` (tests may set its optional tables)."""
    return dataclasses.replace(study(**changes))


@functools.cache
def study(
    dead=0.5,
    born=0.0,
    relu_ratio=0.5,
    sigmoid_ratio=0.01,
    accuracy=0.0,
    revive=0.5,
    sigmoid_dead=0.0,
):
    """A small study: ReLU and sigmoid at two learning rates (2 hidden layers), and both at
    4 hidden layers in a depth study. ``dead`` is ReLU's final dead fraction at lr 0.1;
    ``revive`` the share of it that comes back in the last epoch, in deeper layers only."""
    layer_rows, epoch_rows = [], []
    points = [
        ("relu", 0.01, 2, dead / 4),
        ("relu", 0.1, 2, dead),
        ("sigmoid", 0.01, 2, 0.0),
        ("sigmoid", 0.1, 2, sigmoid_dead),
        ("relu", 0.01, 4, dead / 4),
        ("sigmoid", 0.01, 4, 0.0),
    ]
    for activation, lr, depth, final_dead in points:
        point = point_id(activation, lr, depth)
        ratio = relu_ratio if activation == "relu" else sigmoid_ratio
        curve = [0.1, 0.6, 0.7, 0.75] if activation == "relu" else [0.1, 0.3, 0.5, 0.62]
        params = {
            "point": point,
            "activation": activation,
            "zero_grad": 0.0 if activation == "relu" else math.nan,
            "lr": lr,
            "precision": "float32",
            "depth": depth,
            "batch_norm": False,
            "optimizer": "sgd",
            "init": "default",
            "variant": analysis.variant_label(activation, 0.0 if activation == "relu" else None),
            "final_status": "finished",
        }
        for seed in range(SEEDS):
            jitter = 0.01 * seed
            for epoch in range(EPOCHS + 1):
                born_now = born if activation == "relu" else 0.0
                now = born_now if epoch == 0 else final_dead + jitter * (final_dead > 0)
                layer_dead = []
                for layer in range(1, depth + 1):
                    first = layer == 1
                    revived = 0.0 if first or epoch < EPOCHS else now * revive
                    layer_dead.append(now)
                    layer_rows.append(
                        {
                            **params,
                            "seed": seed,
                            "epoch": epoch,
                            "layer": layer,
                            "dead_fraction": now,
                            "inactive_fraction": now,
                            "ever_dead_fraction": now + revived,
                            "revived_fraction": revived,
                            "permanently_dead_fraction": now,
                            "sparsity": 0.5 + now / 2 if activation == "relu" else 0.0,
                            "grad_norm": math.nan
                            if epoch == 0
                            else ratio ** ((depth - layer) / (depth - 1)) * (1 + jitter),
                        }
                    )
                epoch_rows.append(
                    {
                        **params,
                        "seed": seed,
                        "epoch": epoch,
                        "step": 10 * epoch,
                        "train_loss": 1.0,
                        "val_loss": 1.0,
                        "val_accuracy": curve[epoch] + accuracy + jitter,
                        "dead_fraction": sum(layer_dead) / depth,
                        "inactive_fraction": sum(layer_dead) / depth,
                        "exact_zeros": 0,
                        "live_exact_zeros": 0,
                        "status": "ok",
                    }
                )
    layers, epochs = pd.DataFrame(layer_rows), pd.DataFrame(epoch_rows)
    main = {point_id(a, lr, 2) for a in ("relu", "sigmoid") for lr in (0.01, 0.1)}
    deep = {point_id(a, 0.01, d) for a in ("relu", "sigmoid") for d in (2, 4)}
    runs = convergence.run_table(epochs, 0.6)
    return findings.Inputs(
        summary=analysis.summary(epochs, layers),
        death=dynamics.death_table(layers),
        revival=dynamics.revival_table(layers),
        gradient=dynamics.gradient_table(layers),
        convergence=convergence.point_table(runs),
        epochs=epochs,
        main_ids=main,
        depth_ids=deep,
        config={
            "study": "synthetic",
            "dataset": "mnist1d",
            "model": {"width": 8},
            "training": {"optimizer": "sgd", "epochs": EPOCHS, "batch_size": 16},
        },
    )


def cost_table(zero_grad_relative=1.2, sigmoid_relative=1.4, prelu_relative=9.0):
    rows = []
    for variant, activation, zero_grad, implementation, relative in [
        ("torch.relu", "relu", None, "pytorch", 1.0),
        ("relu (f'(0)=0)", "relu", 0.0, "relulab", 1.0),
        ("relu (f'(0)=0.5)", "relu", 0.5, "relulab", zero_grad_relative),
        ("relu (f'(0)=1)", "relu", 1.0, "relulab", 1.1),
        ("prelu (f'(0)=0)", "prelu", 0.0, "relulab", prelu_relative),
        ("sigmoid", "sigmoid", None, "pytorch", sigmoid_relative),
    ]:
        rows.append(
            {
                "device": "cpu",
                "precision": "float32",
                "elements": 1_000_000,
                "activation": activation,
                "zero_grad": zero_grad,
                "implementation": implementation,
                "variant": variant,
                "repeats": 30,
                "median_s": 1e-3 * relative,
                "ns_per_element": relative,
                "relative": relative,
            }
        )
    return pd.DataFrame(rows)


def texts(inputs, title_start):
    section = next(s for s in findings.build(inputs) if s.title.startswith(title_start))
    return [f.text for f in section.findings]


def find(sentences, pattern):
    found = [s for s in sentences if re.search(pattern, s)]
    assert found, f"no sentence matches {pattern!r} in {sentences}"
    return found[0]


@pytest.mark.parametrize(("dead", "verdict"), [(0.5, "above"), (0.1, "below")])
def test_largest_dead_fraction_names_its_activation_lr_and_the_40_percent_claim(dead, verdict):
    sentence = find(texts(synthetic_study(dead=dead), "Q2"), "largest dead fraction")
    mean = 100 * (dead + 0.01)  # seeds add 0, 0.01, 0.02
    assert f"{mean:.1f} %" in sentence
    assert "relu (f'(0)=0), lr 0.1, 2 hidden layers" in sentence
    assert f"{verdict} the" in sentence


def test_no_sentence_stays_the_same_when_every_number_changes():
    one = synthetic_study(dead=0.5, born=0.05, relu_ratio=0.5, sigmoid_ratio=0.01)
    other = synthetic_study(
        dead=0.2,
        born=0.1,
        relu_ratio=0.8,
        sigmoid_ratio=0.02,
        accuracy=0.11,
        revive=0.25,
        sigmoid_dead=0.05,
    )
    one.cost, other.cost = cost_table(1.2, 1.4, 9.0), cost_table(1.3, 1.6, 12.0)
    for title in ("The study", "Q2", "Q3"):
        a, b = set(texts(one, title)), set(texts(other, title))
        same = a & b
        if title == "The study":  # the study itself did not change, only its results
            same = {s for s in same if "None of the" not in s and "Study `" not in s}
        assert not same, f"sentences independent of the data: {same}"


def test_revival_is_reported_by_layer_group():
    sentence = find(texts(synthetic_study(dead=0.4), "Q2"), "alive again")
    assert "died in the first hidden layer, 0.0 % were alive again" in sentence
    deeper = re.search(r"deeper hidden layers, ([\d.]+) %", sentence)
    assert deeper and 30 < float(deeper.group(1)) < 40  # revived 0.2 of 0.6 ever dead
    assert "some revival at 3 of the 3 grid points with deaths there" in sentence


def test_no_death_means_no_revival_sentence():
    sentences = texts(synthetic_study(dead=0.0), "Q2")
    find(sentences, "No unit was dead at any measurement")
    find(sentences, "No unit died, so none could come back")


def test_gradient_flow_compares_relu_with_sigmoid_at_the_deepest_depth():
    sentences = texts(synthetic_study(relu_ratio=0.5, sigmoid_ratio=0.01), "Q3")
    sentence = find(sentences, "Vanishing gradients")
    assert "4 hidden layers" in sentence
    assert re.search(r"sigmoid 0\.01\d*", sentence) and re.search(
        r"relu \(f'\(0\)=0\) 0\.5", sentence
    )
    comparison = find(sentences, "ReLU's first-to-last ratio")
    ratio = float(re.search(r"was ([\d.]+)× that of sigmoid", comparison).group(1))
    assert ratio == pytest.approx(50, rel=0.05)


def test_convergence_ranks_activations_and_counts_seeds_at_target():
    sentences = texts(synthetic_study(), "Q3")
    ranking = find(sentences, "ranked by the area")
    assert ranking.index("relu") < ranking.index("sigmoid")
    reached = find(sentences, "60 % validation accuracy was reached")
    assert "relu (f'(0)=0) after 1 epochs (3/3 seeds)" in reached
    assert "sigmoid after 3 epochs (3/3 seeds)" in reached


@pytest.mark.parametrize(("relative", "word"), [(1.2, "within"), (1.8, "more than")])
def test_cost_reports_the_zero_grad_relu_against_its_limit(relative, word):
    inputs = synthetic_study()
    inputs.cost = cost_table(zero_grad_relative=relative)
    sentence = find(texts(inputs, "Q3"), "relulab's ReLU with a chosen f'\\(0\\)")
    assert f"{relative:.2f}× for f'(0)=0.5" in sentence
    assert f"{word} the 1.5×" in sentence
    assert sentence.endswith("for f'(0)=0.5.") == (word == "more than")


@pytest.mark.parametrize("compiled", [True, False])
def test_cost_says_which_relu_implementation_was_timed(compiled):
    inputs = synthetic_study()
    inputs.cost = cost_table()
    chosen = inputs.cost["variant"] == "relu (f'(0)=0.5)"
    inputs.cost["compiled_operator"] = chosen & compiled
    sentence = find(texts(inputs, "Q3"), "relulab's ReLU with a chosen f'\\(0\\)")
    assert ("relulab's compiled operator." in sentence) == compiled
    assert ("could not be built on this machine" in sentence) == (not compiled)


def test_other_kinked_activations_are_compared_with_pytorchs_own_module():
    inputs = synthetic_study()
    table = cost_table(prelu_relative=9.0)
    torch_prelu = table[table["variant"] == "torch.relu"].assign(
        variant="torch.prelu", activation="prelu", relative=6.0
    )
    inputs.cost = pd.concat([table, torch_prelu], ignore_index=True)
    sentence = find(texts(inputs, "Q3"), "The other kinked activations")
    assert "at worst 1.50× PyTorch's own module (prelu (f'(0)=0) against torch.prelu" in sentence
    inputs.cost = table  # without PyTorch's own PReLU timed there is nothing to compare with
    assert not any("The other kinked" in text for text in texts(inputs, "Q3"))


def test_missing_optional_tables_are_said_and_the_rest_still_written(tmp_path):
    inputs = synthetic_study()
    markdown, html = tmp_path / "findings.md", tmp_path / "findings.html"
    findings.write(inputs, markdown, html)
    text = markdown.read_text()
    for heading in ("## Claims tested", "## The study", "## Q1.", "## Q2.", "## Q3."):
        assert heading in text
    assert text.index("## Claims tested") < text.index("## The study")
    assert "bifurcation study was not run" in text
    assert "cost benchmark was not run" in text
    assert text.count("<h2>") == 0 and html.read_text().count("<h2>") == 5


def test_every_finding_points_at_a_table_or_figure():
    inputs = synthetic_study()
    inputs.cost = cost_table()
    known = set(findings.SOURCES.values())
    for section in findings.build(inputs):
        for finding in section.findings:
            if "not run" in finding.text:
                continue
            assert finding.sources, finding.text
            assert set(finding.sources) <= known


def _bifurcation_cells():
    from relulab.experiments import bifurcation
    from relulab.tables.stats import garwood_interval, wilson_interval

    rows = []
    for width, depth, precision, differ, zeros in [
        (64, 3, "float32", 8, 8),
        (256, 3, "float64", 0, 0),
        (256, 3, "float32", 18, 19),
        (256, 3, "float16", 96, 5000),
    ]:
        exposure = 60_000 * width * depth
        low, high = wilson_interval(differ, 96)
        rate_low, rate_high = garwood_interval(zeros, exposure * 96)
        rate = zeros / (exposure * 96)
        rows.append(
            {
                "dataset": "mnist1d_60k",
                "inputs": "standardised",
                "compare": "all",
                "device": "cpu (x86_64, 1 thread)",
                "precision": precision,
                "width": width,
                "depth": depth,
                "batch_size": 256,
                "inits": 96,
                "differ": differ,
                "fraction_differ": differ / 96,
                "ci_low": low,
                "ci_high": high,
                "pre_activations_per_init": exposure,
                "exact_zeros": zeros,
                "exact_zero_rate": rate,
                "exact_zero_rate_ci_low": rate_low,
                "exact_zero_rate_ci_high": rate_high,
                "predicted_fraction_differ": bifurcation.predicted_fraction(rate, exposure),
            }
        )
    return pd.DataFrame(rows)


def _twins_table(control_max=0.02):
    return pd.DataFrame(
        {
            "activation": ["relu", "relu"],
            "precision": ["float32", "float32"],
            "lr": [0.01, 0.1],
            "variant": ["relu (f'(0)=1)", "relu (f'(0)=1)"],
            "seeds": [4, 4],
            "departed": [0, 1],
            "departed_accuracy_differences": ["", "seed 2: +1.50"],
            "departed_accuracy_difference_max_abs": [float("nan"), 0.015],
            "control_seeds": [4, 4],
            "control_fraction_departed": [1.0, 1.0],
            "control_accuracy_difference_mean": [0.001, -0.002],
            "control_accuracy_difference_max_abs": [0.004, control_max],
        }
    )


def test_q1_states_dataset_exposure_and_device_and_compares_at_the_papers_exposure():
    inputs = synthetic_study()
    inputs.bifurcation = _bifurcation_cells()
    sentences = texts(inputs, "Q1")
    float32 = find(sentences, "^float32, 3 hidden layers of 256 on mnist1d_60k")
    assert "60,000 examples: 46.1 M pre-activations per initialisation" in float32
    assert "cpu (x86_64, 1 thread)" in float32 and "18 of 96 initialisations" in float32
    assert "19 pre-activations were exactly 0" in float32 and "Garwood 95 %" in float32
    float64 = find(sentences, "^float64, ")
    assert "no pre-activation was exactly 0 in 4.42 G computed (rate < 8.3e-10" in float64
    paper = find(sentences, r"At the paper.s exposure \(MNIST, GPU, 3x256: 46.1 M.* our float32")
    assert "our float32 rate predicts 18 % [11 %, 27 %]" in paper and "report 46 %" in paper
    find(sentences, r"by exposure .*8 % at 3x64 \(11.5 M\).*ranged from")
    answers = [s for s in sentences if s.startswith("Answer for")]
    assert [a.split(":")[0] for a in answers] == [
        "Answer for float64",
        "Answer for float32",
        "Answer for float16",
    ]
    assert "changed no gradient" in answers[0] and "19 %" in answers[1]


@pytest.mark.parametrize(("control_max", "verdict"), [(0.02, "no more than"), (0.005, "more than")])
def test_q1_sets_each_departed_twin_against_the_one_ulp_control(control_max, verdict):
    inputs = synthetic_study()
    inputs.zero_grad_effect = _twins_table(control_max)
    sentences = texts(inputs, "Q1")
    twins = find(sentences, r"1 of 8 runs with f'\(0\) other than 0 parted")
    assert "float32 training" in twins and "lr 0.1" in twins and "seed 2: +1.50" in twins
    control = find(sentences, "1-ulp controls of the same float32 seeds")
    assert f"up to {100 * control_max:.2f} points" in control
    answer = find(sentences, "^Answer for float32")
    assert verdict in answer and "1 runs parted" in answer


def test_html_sources_link_from_results_and_from_the_zipped_report():
    section = findings.Section(
        "Q", [findings.Finding("A finding.", ("figures/dead_heatmap.png", "tables/epochs.csv"))]
    )
    page = findings.to_html([section])
    digest = hashlib.sha256(b"results/figures/dead_heatmap.png").hexdigest()[:16]
    assert (
        f'href="figures/dead_heatmap.png" data-report-href="../{digest}/dead_heatmap.png"' in page
    )
    assert '<a class="source" href="tables/epochs.csv" target="_blank"' in page  # no report item
    assert findings.LINK_SCRIPT in page
