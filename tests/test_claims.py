"""The claims table and the Q2/Q3 findings: verdicts follow the numbers, and no result crashes
the report (every run of an activation diverged, one seed, zero variance)."""

import math

import pandas as pd
import pytest

from relulab.experiments import cost
from relulab.report import findings
from relulab.tables import convergence, dynamics
from relulab.tables import summary as analysis

EPOCHS = 3


def point(activation, lr, optimizer="adam", depth=2, init="default", zero_grad=0.0):
    kinked = activation in ("relu", "leaky_relu", "prelu", "rrelu")
    return {
        "point": f"{activation}_lr{lr:g}_{optimizer}_d{depth}_{init}",
        "activation": activation,
        "zero_grad": zero_grad if kinked else math.nan,
        "lr": lr,
        "optimizer": optimizer,
        "init": init,
        "precision": "float32",
        "depth": depth,
        "batch_norm": False,
        "variant": analysis.variant_label(activation, zero_grad if kinked else None),
    }


def runs(params, seeds=3, dead=0.0, revived=0.0, ratio=0.5, status="finished", spread=0.01):
    """Epoch and layer rows of one point. ``dead`` dies in training in every layer after
    epoch 0; a share ``revived`` of it is alive again at the last epoch in deeper layers."""
    epochs, layers = [], []
    for seed in range(seeds):
        jitter = spread * seed
        for epoch in range(EPOCHS + 1):
            now = 0.0 if epoch == 0 else dead
            for layer in range(1, params["depth"] + 1):
                back = now * revived if (epoch == EPOCHS and layer > 1) else 0.0
                died = dead if epoch > 0 else 0.0
                layers.append(
                    {
                        **params,
                        "seed": seed,
                        "epoch": epoch,
                        "layer": layer,
                        "final_status": status,
                        "dead_fraction": now - back,
                        "inactive_fraction": now - back,
                        "ever_dead_fraction": died,
                        "revived_fraction": back,
                        "permanently_dead_fraction": now - back,
                        "born_dead_fraction": 0.0,
                        "born_dead_revived_fraction": 0.0,
                        "born_dead_permanent_fraction": 0.0,
                        "died_in_training_fraction": died,
                        "died_in_training_revived_fraction": back,
                        "died_in_training_permanent_fraction": died - back,
                        "sparsity": 0.5 if params["activation"] == "relu" else 0.0,
                        "grad_norm": math.nan if epoch == 0 else 1.0,
                        "pre_activation_grad_rms": (
                            ratio ** ((params["depth"] - layer) / (params["depth"] - 1))
                            * (1 + jitter)
                            if params["depth"] > 1
                            else 1.0
                        ),
                    }
                )
            epochs.append(
                {
                    **params,
                    "seed": seed,
                    "epoch": epoch,
                    "step": 10 * epoch,
                    "train_loss": 1.0,
                    "val_loss": 1.0,
                    "val_accuracy": [0.1, 0.5, 0.6, 0.7][epoch] + jitter,
                    "dead_fraction": now,
                    "inactive_fraction": now,
                    "exact_zeros": 0,
                    "live_exact_zeros": 0,
                    "status": "ok" if status == "finished" else "diverged",
                    "params_sha256": f"{params['point']}-{seed}-{epoch}",
                    "final_status": status,
                }
            )
    return epochs, layers


def inputs_of(*specs, config_optimizer="adam"):
    """``findings.Inputs`` from (params, runs keyword arguments) pairs, tables as the workflow
    computes them."""
    epochs, layers = [], []
    for params, options in specs:
        e, la = runs(params, **options)
        epochs += e
        layers += la
    epochs, layers = pd.DataFrame(epochs), pd.DataFrame(layers)
    conv_runs = convergence.run_table(epochs, 0.6)
    counted = dynamics.distinct_runs(epochs)
    ids = set(epochs["point"])
    return findings.Inputs(
        summary=analysis.summary(epochs, layers),
        death=dynamics.death_table(layers),
        revival=dynamics.revival_table(layers),
        gradient=dynamics.gradient_table(layers),
        convergence=convergence.point_table(conv_runs),
        epochs=epochs,
        main_ids={i for i in ids if "_adam_d2" in i},
        depth_ids={i for i in ids if "_adam_" in i},
        config={
            "study": "claims",
            "dataset": "mnist1d",
            "model": {"width": 8, "init": "default"},
            "training": {"optimizer": config_optimizer, "epochs": EPOCHS, "batch_size": 16},
        },
        best_lr=convergence.best_lr_table(conv_runs),
        revival_pooled=dynamics.revival_by_cause(layers, counted, by=dynamics.SETTING_COLUMNS),
    )


def claims(inputs):
    table = findings.claims_section(inputs).table
    return table.set_index("claim")


def verdict(inputs, start):
    table = claims(inputs)
    row = next(c for c in table.index if c.startswith(start))
    return table.loc[row, "verdict"], table.loc[row, "measured (95 % interval)"]


def every_text(inputs):
    sections = findings.build(inputs)
    return " ".join(f.text for s in sections for f in s.findings)


@pytest.mark.parametrize(("dead", "expected"), [(0.5, "supported"), (0.1, "refuted")])
def test_forty_percent_is_judged_on_sgd_runs(dead, expected):
    inputs = inputs_of(
        (point("relu", 0.01), {}),
        (point("relu", 3.0, optimizer="sgd"), {"dead": dead}),
    )
    found, measured = verdict(inputs, "Up to 40 %")
    assert found == expected
    assert "plain SGD (lr 3)" in measured


def test_forty_percent_is_not_testable_without_sgd():
    inputs = inputs_of((point("relu", 0.01), {"dead": 0.5}))
    assert verdict(inputs, "Up to 40 %")[0] == "not testable here"


def test_irreversibility_per_layer_group_under_plain_sgd():
    inputs = inputs_of((point("relu", 3.0, optimizer="sgd"), {"dead": 0.4, "revived": 0.5}))
    found, measured = verdict(inputs, "A dead ReLU never comes back")
    assert "supported (first hidden layer)" in found
    assert "refuted (deeper hidden layers)" in found
    assert "50.0 %" in measured


@pytest.mark.parametrize(("relu", "expected"), [(0.5, "supported"), (0.001, "refuted")])
def test_vanishing_is_judged_on_the_pre_activation_ratio(relu, expected):
    inputs = inputs_of(
        (point("relu", 0.001, depth=4), {"ratio": relu}),
        (point("sigmoid", 0.001, depth=4), {"ratio": 0.01}),
    )
    found, measured = verdict(inputs, "ReLU's gradient does not vanish")
    assert found.startswith(expected)
    assert "dL/dz" in measured


def test_remedies_are_compared_where_relu_lost_most_units():
    inputs = inputs_of(
        (point("relu", 3.0, optimizer="sgd"), {"dead": 0.5}),
        (point("leaky_relu", 3.0, optimizer="sgd"), {}),
    )
    found, measured = verdict(inputs, "Leaky ReLU")
    assert found.startswith("supported")
    assert "leaky_relu (f'(0)=0) 0.0 % dead" in measured


def cost_rows(sigmoid_low, sigmoid_high):
    rows = []
    for variant, activation, relative, low, high in [
        (cost.REFERENCE, "relu", 1.0, 0.97, 1.03),
        (cost.NULL, "relu", 0.95, 0.9, 1.0),
        ("sigmoid", "sigmoid", (sigmoid_low + sigmoid_high) / 2, sigmoid_low, sigmoid_high),
    ]:
        rows.append(
            {
                "device": "cpu",
                "precision": "float32",
                "elements": 1000,
                "activation": activation,
                "zero_grad": None,
                "implementation": "pytorch",
                "variant": variant,
                "repeats": 20,
                "ns_per_element": relative,
                "relative": relative,
                "relative_low": low,
                "relative_high": high,
            }
        )
    return cost.add_verdicts(pd.DataFrame(rows))


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(1.5, 1.7, "supported"), (0.92, 1.05, "not testable here"), (0.5, 0.6, "refuted")],
)
def test_cheaper_only_outside_the_null(low, high, expected):
    inputs = inputs_of((point("relu", 0.01), {}))
    inputs.cost = cost_rows(low, high)
    assert verdict(inputs, "ReLU is cheaper")[0].startswith(expected)
    sentence = next(f.text for f in findings.q3_section(inputs).findings if "Cost on" in f.text)
    assert "second copy of itself" in sentence


def test_born_dead_follows_the_wilson_intervals():
    inputs = inputs_of((point("relu", 0.01), {}))
    inputs.born_dead = pd.DataFrame(
        {
            "init": ["default", "default"],
            "width": [2, 2],
            "depth": [2, 32],
            "networks": [50, 50],
            "network_dead_fraction": [0.04, 1.0],
            "network_dead_ci_low": [0.01, 0.93],
            "network_dead_ci_high": [0.14, 1.0],
        }
    )
    assert verdict(inputs, "Deep narrow")[0] == "supported"
    assert "hidden layer dead on every training example" in every_text(inputs)


def test_claims_open_the_report_with_a_verdict_each():
    inputs = inputs_of((point("relu", 0.01), {}), (point("sigmoid", 0.01), {}))
    sections = findings.build(inputs)
    assert sections[0].title == "Claims tested"
    table = sections[0].table
    assert len(table) >= 7
    assert list(table.columns) == [
        "claim",
        "setting tested",
        "measured (95 % interval)",
        "verdict",
    ]
    first_words = {v.split(" ")[0] for v in table["verdict"]}
    assert first_words <= {"supported", "refuted", "not", "mixed", "supported;", "refuted;"}


def test_every_run_of_an_activation_diverged_is_said_not_raised(tmp_path):
    inputs = inputs_of(
        (point("relu", 0.01), {}),
        (point("sigmoid", 0.01), {"status": "diverged"}),
        (point("relu", 3.0, optimizer="sgd"), {"status": "diverged"}),
    )
    findings.write(inputs, tmp_path / "findings.md", tmp_path / "findings.html")
    text = (tmp_path / "findings.md").read_text()
    assert "every run diverged" in text or "every reported run diverged" in text


def test_every_run_of_the_study_diverged_still_writes_a_report(tmp_path):
    inputs = inputs_of(
        (point("relu", 0.01), {"status": "diverged"}),
        (point("sigmoid", 0.01), {"status": "diverged"}),
    )
    findings.write(inputs, tmp_path / "findings.md")
    assert "## Claims tested" in (tmp_path / "findings.md").read_text()


def test_one_seed_says_there_is_no_interval(tmp_path):
    inputs = inputs_of(
        (point("relu", 0.001), {"seeds": 1}),
        (point("sigmoid", 0.001), {"seeds": 1, "ratio": 0.01}),
    )
    findings.write(inputs, tmp_path / "findings.md")
    text = (tmp_path / "findings.md").read_text()
    assert "one seed, no interval" in text
    assert "same single seed" in text


def test_zero_variance_is_an_interval_of_width_zero(tmp_path):
    inputs = inputs_of(
        (point("relu", 0.001, depth=4), {"spread": 0.0}),
        (point("sigmoid", 0.001, depth=4), {"spread": 0.0, "ratio": 0.01}),
    )
    findings.write(inputs, tmp_path / "findings.md")
    assert verdict(inputs, "ReLU's gradient does not vanish")[0].startswith("supported")


def test_every_number_names_its_optimizer_init_and_batch_norm():
    inputs = inputs_of(
        (point("relu", 0.01), {"dead": 0.2}),
        (point("relu", 3.0, optimizer="sgd"), {"dead": 0.5}),
    )
    q2 = [f.text for f in findings.q2_section(inputs).findings]
    headline = [t for t in q2 if t.startswith("The largest dead fraction")]
    assert len(headline) == 2
    assert any("Adam, PyTorch default init, no batch norm" in t for t in headline)
    assert any("plain SGD, PyTorch default init, no batch norm" in t for t in headline)


def test_a_table_without_rows_reads_as_empty(tmp_path):
    path = tmp_path / "gradient_flow.csv"
    pd.DataFrame().to_csv(path, index=False)
    assert findings.read_table(path).empty


def test_a_remedy_with_dead_units_refutes_the_fix():
    inputs = inputs_of(
        (point("relu", 3.0, optimizer="sgd"), {"dead": 0.5}),
        (point("elu", 3.0, optimizer="sgd"), {"dead": 0.3}),
    )
    found, _ = verdict(inputs, "Leaky ReLU")
    assert found == "refuted for elu (units dead there too)"


def twin_rows(departed, twin_max, control_max):
    return pd.DataFrame(
        {
            "activation": ["relu"],
            "lr": [0.01],
            "precision": ["float32"],
            "depth": [2],
            "batch_norm": [False],
            "optimizer": ["adam"],
            "init": ["default"],
            "zero_grad": [1.0],
            "variant": ["relu (f'(0)=1)"],
            "seeds": [3],
            "departed": [departed],
            "accuracy_difference_mean": [twin_max / 3],
            "accuracy_difference_ci_low": [-0.3],
            "accuracy_difference_ci_high": [0.4],
            "departed_accuracy_difference_max_abs": [twin_max if departed else float("nan")],
            "control_accuracy_difference_max_abs": [control_max],
        }
    )


@pytest.mark.parametrize(
    ("departed", "twin_max", "control_max", "expected"),
    [
        (0, 0.0, 0.02, "supported"),
        (1, 0.279, 0.065, "refuted"),
        (1, 0.01, 0.065, "refuted (no more than any last-bit change)"),
        (1, 0.0, 0.065, "supported"),
    ],
)
def test_accuracy_claim_is_judged_per_parted_seed_against_the_control(
    departed, twin_max, control_max, expected
):
    """Not on a t-interval over seeds that are equal to their twin by construction."""
    inputs = inputs_of((point("relu", 0.01), {}))
    inputs.zero_grad_effect = twin_rows(departed, twin_max, control_max)
    found, measured = verdict(inputs, "ReLU'(0) does not change what training reaches")
    assert found == expected
    assert f"{departed} of 3 runs parted" in measured
    if departed and twin_max:
        assert f"{100 * twin_max:.2f} points" in measured and "1-ulp" in measured
