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
    table = dynamics.revival_table(layers).set_index("layer")
    assert table.loc[1, "layer_group"] == dynamics.FIRST_LAYER
    assert table.loc[2, "layer_group"] == dynamics.DEEPER_LAYERS
    assert table.loc[1, "revived_share"] == 0
    assert table.loc[2, "revived_share"] == pytest.approx(0.5)
    assert (table["seeds"] == 2).all()


def test_revived_share_is_empty_where_no_unit_died():
    rows = layer_rows("elu_p", 0, [[dead(0.0)], [dead(0.0)]], activation="elu", depth=1)
    table = dynamics.revival_table(pd.DataFrame(rows))
    assert math.isnan(table.iloc[0]["revived_share"])


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
    assert table.loc[1, "ratio_to_last_mean"] == pytest.approx(0.2)
    assert table.loc[3, "ratio_to_last_mean"] == 1
    assert table.loc[1, "grad_norm_mean"] == pytest.approx(0.2)
    last = dynamics.gradient_table(pd.concat(rows), epoch=None).set_index("layer")
    assert last.loc[1, "grad_norm_mean"] == pytest.approx(0.4)
    assert last.loc[1, "ratio_to_last_mean"] == pytest.approx(0.2)


def test_network_fraction_is_the_mean_over_equal_width_layers(layers):
    whole = dynamics.network(layers)
    epoch1 = whole[(whole["seed"] == 0) & (whole["epoch"] == 1)].iloc[0]
    assert epoch1["dead_fraction"] == pytest.approx(0.3)
