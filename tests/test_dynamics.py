"""Death over time, revival by layer and gradient flow per grid point, on planted numbers."""

import math

import pandas as pd
import pytest

from relulab.tables import dynamics


def layer_rows(point, seed, per_epoch, activation="relu", lr=0.1, depth=2, status="finished"):
    """``per_epoch[epoch][layer - 1]`` is a dict of that layer's measurements."""
    rows = []
    for epoch, layers in enumerate(per_epoch):
        for layer, values in enumerate(layers, start=1):
            row = {
                "point": point,
                "activation": activation,
                "zero_grad": 0.0 if activation == "relu" else math.nan,
                "lr": lr,
                "precision": "float32",
                "depth": depth,
                "batch_norm": False,
                "variant": activation,
                "seed": seed,
                "epoch": epoch,
                "layer": layer,
                "final_status": status,
                "grad_norm": math.nan if epoch == 0 else 1.0,
            }
            row.update(dict.fromkeys(dynamics.FRACTIONS, 0.0))
            row.update(values)
            rows.append(row)
    return rows


def dead(fraction, ever=None, revived=0.0, permanent=None):
    return {
        "dead_fraction": fraction,
        "inactive_fraction": fraction,
        "ever_dead_fraction": fraction + revived if ever is None else ever,
        "revived_fraction": revived,
        "permanently_dead_fraction": fraction if permanent is None else permanent,
    }


@pytest.fixture
def layers():
    # Two seeds; layer 1 dies and stays dead, layer 2 dies then half of it comes back.
    history = [
        [dead(0.0), dead(0.0)],
        [dead(0.2), dead(0.4)],
        [dead(0.2), dead(0.2, ever=0.4, revived=0.2, permanent=0.2)],
    ]
    rows = layer_rows("relu_p", 0, history) + layer_rows("relu_p", 1, history)
    # A diverged seed with a dead fraction that would dominate every mean.
    rows += layer_rows(
        "relu_p", 2, [[dead(0.0), dead(0.0)], [dead(1.0), dead(1.0)]], status="diverged"
    )
    return pd.DataFrame(rows)


def test_death_table_has_peak_final_and_revival_over_finished_seeds(layers):
    row = dynamics.death_table(layers).iloc[0]
    assert (row["seeds"], row["diverged"]) == (3, 1)
    assert row["born_dead_mean"] == 0
    assert row["peak_dead_mean"] == pytest.approx(0.3)  # (0.2 + 0.4) / 2 at epoch 1
    assert row["peak_epoch_median"] == 1
    assert row["final_dead_mean"] == pytest.approx(0.2)
    assert row["final_revived_mean"] == pytest.approx(0.1)
    assert row["final_ever_dead_mean"] == pytest.approx(0.3)
    assert row["worst_layer_dead_mean"] == pytest.approx(0.4)
    assert row["first_layer_revived_mean"] == 0
    assert row["deeper_revived_mean"] == pytest.approx(0.2)
    assert row["final_dead_ci95"] == 0  # both finished seeds agree


def test_revival_table_gives_the_share_of_dead_units_that_came_back_per_layer(layers):
    table = dynamics.revival_table(layers)
    table = table[table["cause"] == dynamics.ANY_CAUSE].set_index("layer")
    assert table.loc[1, "layer_group"] == dynamics.FIRST_LAYER
    assert table.loc[2, "layer_group"] == dynamics.DEEPER_LAYERS
    assert table.loc[1, "revived_share"] == 0
    assert table.loc[2, "revived_share"] == pytest.approx(0.5)
    assert (table["seeds"] == 2).all()


def test_revived_share_is_empty_where_no_unit_died():
    rows = layer_rows("elu_p", 0, [[dead(0.0)], [dead(0.0)]], activation="elu", depth=1)
    table = dynamics.revival_table(pd.DataFrame(rows))
    assert math.isnan(table.iloc[0]["revived_share"])


def caused(born, born_revived, died, died_revived):
    """A layer's measurements split by cause of death (permanent: the rest of each cause)."""
    return {
        "born_dead_fraction": born,
        "born_dead_revived_fraction": born_revived,
        "born_dead_permanent_fraction": born - born_revived,
        "died_in_training_fraction": died,
        "died_in_training_revived_fraction": died_revived,
        "died_in_training_permanent_fraction": died - died_revived,
        "ever_dead_fraction": born + died,
        "revived_fraction": born_revived + died_revived,
        "permanently_dead_fraction": born + died - born_revived - died_revived,
    }


def test_revival_by_cause_separates_born_dead_from_died_in_training():
    # Half of the born-dead units come back; none of those killed in training do.
    history = [[caused(0.4, 0.0, 0.0, 0.0)], [caused(0.4, 0.2, 0.1, 0.0)]]
    frame = pd.DataFrame(layer_rows("relu_deep", 0, history, depth=1))
    table = dynamics.revival_table(frame).set_index("cause")
    assert table.loc["born dead", "revived_share"] == pytest.approx(0.5)
    assert table.loc["died in training", "revived_share"] == 0
    assert table.loc["any", "revived_share"] == pytest.approx(0.4)
    assert table.loc["born dead", "died_mean"] == pytest.approx(0.4)


def step_caused(born, born_revived, died, died_revived):
    """``caused`` by the step-level definition (the ``step_*`` columns)."""
    return {f"step_{k}": v for k, v in caused(born, born_revived, died, died_revived).items()}


def test_revival_tables_give_the_step_level_definition_beside_the_snapshot_one():
    # At snapshots 20 % died in training and half of them came back; over the steps only 5 %
    # were dead for a whole epoch, and none of those came back.
    history = [
        [{**caused(0.0, 0.0, 0.0, 0.0), **step_caused(*[math.nan] * 4)}],
        [{**caused(0.0, 0.0, 0.2, 0.1), **step_caused(0.0, 0.0, 0.05, 0.0)}],
    ]
    frame = pd.DataFrame(layer_rows("relu_deep", 0, history, depth=1))
    table = dynamics.revival_table(frame).set_index("cause")
    assert table.loc["died in training", "revived_share"] == pytest.approx(0.5)
    assert table.loc["died in training", "step_revived_share"] == 0
    assert table.loc["died in training", "step_died_mean"] == pytest.approx(0.05)
    assert table.loc["died in training", "step_runs_with_deaths"] == 1
    assert math.isnan(table.loc["born dead", "step_revived_share"])  # none dead over epoch 1
    pooled = dynamics.revival_by_cause(frame).set_index("cause")
    assert pooled.loc["died in training", "revived_share_pooled"] == pytest.approx(0.5)
    assert pooled.loc["died in training", "step_revived_share_pooled"] == 0
    assert pooled.loc["died in training", "step_died_mean"] == pytest.approx(0.05)
    death = dynamics.death_table(frame).iloc[0]
    assert death["final_step_died_in_training_mean"] == pytest.approx(0.05)
    assert death["final_died_in_training_revived_mean"] == pytest.approx(0.1)


def test_revival_tables_of_a_study_without_step_columns_keep_their_columns():
    history = [[caused(0.0, 0.0, 0.0, 0.0)], [caused(0.0, 0.0, 0.2, 0.1)]]
    frame = pd.DataFrame(layer_rows("relu_deep", 0, history, depth=1))
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("step_")])
    assert not any(c.startswith("step_") for c in dynamics.revival_table(frame).columns)
    assert not any(c.startswith("step_") for c in dynamics.revival_by_cause(frame).columns)


def twin_epochs(hashes_by_zero_grad):
    """Epoch rows of seed 0 at each f'(0), with the given parameter hash per epoch."""
    rows = []
    for zero_grad, hashes in hashes_by_zero_grad.items():
        for epoch, digest in enumerate(hashes):
            rows.append(
                {
                    "point": f"relu_zg{zero_grad:g}",
                    "activation": "relu",
                    "zero_grad": zero_grad,
                    "lr": 0.1,
                    "precision": "float32",
                    "depth": 1,
                    "batch_norm": False,
                    "seed": 0,
                    "epoch": epoch,
                    "params_sha256": digest,
                }
            )
    return pd.DataFrame(rows)


def test_a_bitwise_twin_counts_once_and_a_departed_one_twice():
    runs = dynamics.distinct_runs(twin_epochs({0.0: "ab", 1.0: "ab", 0.5: "ac"})).set_index("point")
    assert runs.loc["relu_zg0", "counted"]
    assert not runs.loc["relu_zg1", "counted"]
    assert runs.loc["relu_zg1", "copy_of"] == "relu_zg0"
    assert runs.loc["relu_zg0.5", "counted"]


def test_pooled_revival_leaves_out_bitwise_copies():
    history = [[caused(0.0, 0.0, 0.0, 0.0)], [caused(0.0, 0.0, 0.2, 0.1)]]
    frame = pd.DataFrame(
        layer_rows("relu_zg0", 0, history, depth=1) + layer_rows("relu_zg1", 0, history, depth=1)
    )
    counted = dynamics.distinct_runs(twin_epochs({0.0: "ab", 1.0: "ab"}))
    pooled = dynamics.revival_by_cause(frame, counted)
    row = pooled[pooled["cause"] == "died in training"].iloc[0]
    assert row["runs"] == 1
    assert row["revived_share_pooled"] == pytest.approx(0.5)
    assert dynamics.revival_by_cause(frame)["runs"].max() == 2


def test_geometric_mean_interval_skips_ratios_it_cannot_take():
    gmean, low, high = dynamics.geometric_mean_ci95([0.1, 1.0, 10.0, 0.0, math.nan])
    assert gmean == pytest.approx(1.0)
    assert low < 1 < high
    assert math.isnan(dynamics.geometric_mean_ci95([2.0])[1])
    assert math.isnan(dynamics.geometric_mean_ci95([])[0])


def test_gradient_flow_is_measured_at_the_pre_activations_of_the_untrained_net():
    rows = []
    for seed, rms in enumerate([(0.01, 0.1, 1.0), (0.04, 0.2, 1.0)]):
        history = [[{}, {}, {}], [{}, {}, {}]]
        part = pd.DataFrame(layer_rows("relu", seed, history, depth=3))
        part["pre_activation_grad_rms"] = math.nan
        for layer, value in enumerate(rms, start=1):
            part.loc[(part["epoch"] == 0) & (part["layer"] == layer), "pre_activation_grad_rms"] = (
                value
            )
        rows.append(part)
    table = dynamics.gradient_table(pd.concat(rows)).set_index("layer")
    assert table.loc[1, "ratio_to_last_gmean"] == pytest.approx(0.02)  # sqrt(0.01 * 0.04)
    assert table.loc[1, "ratio_to_last_low"] < 0.02 < table.loc[1, "ratio_to_last_high"]
    assert table.loc[1, "epoch"] == 0
    assert table.loc[1, "weight_ratio_to_last_gmean"] == pytest.approx(1.0)
    ratios = dynamics.first_last_ratios(pd.concat(rows), "pre_activation_grad_rms", 0)
    assert sorted(ratios["ratio"]) == pytest.approx([0.01, 0.04])


def test_gradient_table_ratio_to_the_last_hidden_layer():
    rows = []
    for seed, norms in enumerate([(0.1, 0.5, 1.0), (0.3, 0.5, 1.0)]):
        history = [[{}, {}, {}], [{}, {}, {}], [{}, {}, {}]]
        part = pd.DataFrame(layer_rows("sig", seed, history, activation="sigmoid", depth=3))
        for layer, norm in enumerate(norms, start=1):
            part.loc[(part["epoch"] == 1) & (part["layer"] == layer), "grad_norm"] = norm
            part.loc[(part["epoch"] == 2) & (part["layer"] == layer), "grad_norm"] = 2 * norm
        rows.append(part)
    table = dynamics.gradient_table(pd.concat(rows)).set_index("layer")
    # Geometric mean of the per-seed ratios 0.1 and 0.3.
    assert table.loc[1, "weight_ratio_to_last_gmean"] == pytest.approx(math.sqrt(0.03))
    assert table.loc[3, "weight_ratio_to_last_gmean"] == 1
    assert table.loc[1, "grad_norm_mean"] == pytest.approx(0.2)
    last = dynamics.gradient_table(pd.concat(rows), weight_epoch=None).set_index("layer")
    assert last.loc[1, "grad_norm_mean"] == pytest.approx(0.4)
    assert last.loc[1, "weight_ratio_to_last_gmean"] == pytest.approx(math.sqrt(0.03))


def test_network_fraction_is_the_mean_over_equal_width_layers(layers):
    whole = dynamics.network(layers)
    epoch1 = whole[(whole["seed"] == 0) & (whole["epoch"] == 1)].iloc[0]
    assert epoch1["dead_fraction"] == pytest.approx(0.3)
