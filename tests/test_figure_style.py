"""Every figure takes its look from ``relulab.figures.style``: one colour per activation in
every figure, f'(0) as line style and marker, legends in grid order, bands where a mean is
shown, and runs that never reach the convergence target drawn as such."""

from __future__ import annotations

import inspect
import itertools
import math

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D

from relulab.figures import dynamics as dynamics_figures
from relulab.figures import facets, style
from relulab.figures import study as study_figures
from relulab.tables import convergence
from relulab.tables import dynamics as dynamics_tables
from relulab.tables.summary import variant_label

# Listed out of grid order on purpose: legends must put them back in it.
VARIANTS = [("tanh", None), ("relu", 1.0), ("sigmoid", None), ("relu", 0.0), ("leaky_relu", 0.0)]
LRS = [0.01, 0.1]
SEEDS = [0, 1, 2]
EPOCHS = 3


def point_columns(activation, zero_grad, lr, depth=2) -> dict:
    return {
        "point": f"{activation}_{zero_grad}_{lr}_{depth}",
        "activation": activation,
        "zero_grad": math.nan if zero_grad is None else zero_grad,
        "lr": lr,
        "precision": "float32",
        "depth": depth,
        "batch_norm": False,
        "variant": variant_label(activation, zero_grad),
    }


def epochs_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for (activation, zero_grad), lr, seed, epoch in itertools.product(
        VARIANTS, LRS, SEEDS, range(EPOCHS + 1)
    ):
        # tanh never gets past 0.3, so it never reaches the 0.6 target.
        top = 0.3 if activation == "tanh" else 0.9
        rows.append(
            {
                **point_columns(activation, zero_grad, lr),
                "seed": seed,
                "epoch": epoch,
                "step": 10 * epoch,
                "val_accuracy": top * epoch / EPOCHS + rng.uniform(0, 0.02),
                "dead_fraction": 0.1 * epoch + rng.uniform(0, 0.02),
                "final_status": "finished",
            }
        )
    return pd.DataFrame(rows)


def layers_frame() -> pd.DataFrame:
    rows = []
    for (activation, zero_grad), lr, seed, epoch, layer in itertools.product(
        VARIANTS, LRS, SEEDS, range(EPOCHS + 1), (1, 2)
    ):
        fraction = 0.1 * epoch * (seed + 1) / 3 if activation == "relu" else 0.0
        row = {
            **point_columns(activation, zero_grad, lr),
            "seed": seed,
            "epoch": epoch,
            "layer": layer,
            "final_status": "finished",
            "grad_norm": math.nan if epoch == 0 else 1.0 / layer + seed / 10,
        }
        row.update(dict.fromkeys(dynamics_tables.FRACTIONS, 0.0))
        row.update(
            dead_fraction=fraction,
            inactive_fraction=fraction,
            ever_dead_fraction=fraction,
            permanently_dead_fraction=fraction,
        )
        rows.append(row)
    return pd.DataFrame(rows)


def summary_frame() -> pd.DataFrame:
    rows = [
        {
            **point_columns(activation, zero_grad, lr),
            "dead_fraction_mean": 0.3,
            "dead_fraction_ci95": 0.05,
        }
        for (activation, zero_grad), lr in itertools.product(VARIANTS, LRS)
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def saved():
    """Every figure the plotting code would save, by file name, drawn once for the module."""
    import matplotlib.pyplot as plt

    figures = {}

    def keep(figure, path):
        figures[str(path)] = figure

    with pytest.MonkeyPatch.context() as patch:
        for module in (study_figures, dynamics_figures):
            patch.setattr(module, "save", keep)
        draw_every_figure()
    yield figures
    plt.close("all")


def draw_every_figure() -> None:
    epochs, layers = epochs_frame(), layers_frame()
    study_figures.dead_heatmap(summary_frame(), "dead_heatmap.png")
    study_figures.over_epochs(epochs, "val_accuracy", "validation accuracy", "accuracy.png")
    study_figures.final_accuracy_vs_lr(epochs[epochs.epoch == EPOCHS], "accuracy_vs_lr.png")
    dynamics_figures.death_over_time(layers, "death_over_time.png")
    dynamics_figures.death_by_layer(layers, "death_by_layer.png")
    dynamics_figures.gradient_by_depth(layers, "gradient_by_depth.png")
    points = convergence.point_table(convergence.run_table(epochs, 0.6))
    dynamics_figures.convergence(points, points["point"].unique(), [], "convergence.png")
    cost = pd.DataFrame(
        {
            "device": "cpu",
            "precision": "float32",
            "variant": ["tanh", "torch.relu", "relu (f'(0)=0)", "elu", "torch.relu (null)"] * 2,
            "elements": [1000] * 5 + [10_000] * 5,  # two panels that share their y axis
            "ns_per_element": [2.0, 1.0, 1.1, 3.0, 1.0] * 2,
        }
    )
    dynamics_figures.cost(cost, "cost.png")


def hex_colour(colour) -> str:
    return mcolors.to_hex(colour)


def test_every_variant_line_has_its_activations_colour_in_every_figure(saved):
    labels = {variant_label(a, z) for a, z in VARIANTS}
    checked = 0
    for name, figure in saved.items():
        for line in figure.findobj(Line2D):
            if line.get_label() in labels:
                assert hex_colour(line.get_color()) == style.colour(line.get_label()), name
                checked += 1
    assert checked > 20


def test_f0_twins_share_the_colour_and_differ_in_style():
    zero, one = "relu (f'(0)=0)", "relu (f'(0)=1)"
    assert style.colour(zero) == style.colour(one) == style.colour("torch.relu")
    a, b = style.line_kwargs(zero), style.line_kwargs(one)
    assert (a.get("dashes"), a["marker"]) != (b.get("dashes"), b["marker"])
    assert b["markerfacecolor"] == "none", "an open marker lets its twin show through"


def test_relu_family_is_warm_and_smooth_activations_are_cool():
    for name, colour in style.COLOURS.items():
        hue = mcolors.rgb_to_hsv(mcolors.to_rgb(colour))[0] * 360
        warm = hue < 70 or hue > 330
        assert warm == (name in ("relu", "leaky_relu", "prelu", "rrelu")), (name, hue)
    assert len(set(style.COLOURS.values())) == len(style.COLOURS)


def test_palette_covers_every_activation_the_schema_allows():
    from relulab.study.config import load_schema

    allowed = load_schema()["properties"]["activation"]["items"]["enum"]
    assert list(style.ACTIVATION_ORDER) == allowed


def test_legends_list_variants_in_grid_order(saved):
    expected = style.order(variant_label(a, z) for a, z in VARIANTS)
    assert expected[:3] == ["relu (f'(0)=0)", "relu (f'(0)=1)", "leaky_relu (f'(0)=0)"]
    # layers_frame's gradients are alike for relu's two f'(0): bitwise twins, one entry.
    merged = ["relu (f'(0)=0, 1 identical)", *expected[2:]]
    for name, labels in (("gradient_by_depth.png", merged), ("convergence.png", expected)):
        figure = saved[name]
        legends = [*figure.legends, *(ax.get_legend() for ax in figure.axes)]
        (legend,) = [lg for lg in legends if lg is not None]
        assert [t.get_text() for t in legend.get_texts()] == labels, name


def visible_axes(figure):
    return [ax for ax in figure.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def variant_lines(ax) -> list[Line2D]:
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_small_multiples_hold_one_activation_and_few_lines_per_panel(saved):
    families = ["relu", "leaky_relu", "sigmoid", "tanh"]  # grid order
    for name in ("accuracy.png", "accuracy_vs_lr.png"):
        axes = visible_axes(saved[name])
        assert len(axes) == len(families) * (len(LRS) if name == "accuracy.png" else 1), name
        titles = [ax.get_title() for ax in axes]
        assert [t.split(",")[0] for t in titles][:: len(axes) // len(families)] == families
        for ax in axes:
            lines = variant_lines(ax)
            assert 1 <= len(lines) <= 3, (name, ax.get_title())
            assert len({hex_colour(line.get_color()) for line in lines}) == 1, ax.get_title()


def test_legends_sit_outside_the_panels_and_are_not_taller_than_them(saved):
    for name, figure in saved.items():
        figure.canvas.draw()
        inside = [ax.get_legend() for ax in figure.axes if ax.get_legend() is not None]
        assert not inside, name
        plots = [ax.get_window_extent() for ax in visible_axes(figure)]
        top, bottom = max(b.y1 for b in plots), min(b.y0 for b in plots)
        for legend in figure.legends:
            assert legend.get_window_extent().height <= (top - bottom) * 1.05, name


def test_every_title_states_the_setting(saved):
    for name, figure in saved.items():
        if name in ("cost.png",):
            continue
        title = figure._suptitle.get_text()
        # A figure that draws depth as panels says it there.
        fixed = ("float32", "no batch norm", *([] if "by_depth" in name else ["2 hidden layers"]))
        for setting in fixed:
            assert setting in title, (name, title)


def test_bitwise_f0_twins_are_drawn_once_and_labelled_so(tmp_path):
    epochs = epochs_frame()
    # relu's f'(0)=1 twin met no exact zero: its numbers are those of f'(0)=0.
    zero = epochs[epochs["variant"] == "relu (f'(0)=0)"]
    one = zero.assign(variant="relu (f'(0)=1)", zero_grad=1.0)
    epochs = pd.concat([epochs[epochs["variant"] != "relu (f'(0)=1)"], one])
    merged = facets.merge_identical_twins(epochs, ["lr"], ["val_accuracy"])
    assert "relu (f'(0)=0, 1 identical)" in set(merged["variant"])
    assert not merged["variant"].isin(["relu (f'(0)=0)", "relu (f'(0)=1)"]).any()
    assert len(merged) == len(epochs) - len(one)
    # Twins that differ at one learning rate only stay apart everywhere.
    one.loc[one["lr"] == LRS[0], "val_accuracy"] += 1e-9
    apart = pd.concat([epochs[epochs["variant"] != "relu (f'(0)=1)"], one])
    assert facets.identical_twins(apart, ["lr"], ["val_accuracy"]) == {}


def test_death_figures_leave_out_activations_that_cannot_die_and_merge_twins(saved):
    # In layers_frame only relu units die, alike for both f'(0): one row, one panel per lr.
    for name in ("death_over_time.png", "death_by_layer.png"):
        figure = saved[name]
        titles = [ax.get_title() for ax in visible_axes(figure)]
        assert len(titles) == len(LRS), (name, titles)
        assert all(t.startswith("relu (f'(0)=0, 1 identical)") for t in titles), titles
        text = figure._suptitle.get_text()
        assert "leaky_relu (cannot die)" in text and "sigmoid, tanh (never" in text, text


def test_every_death_panel_draws_something(saved):
    for name in ("death_over_time.png",):
        for ax in visible_axes(saved[name]):
            assert ax.collections, ax.get_title()


def test_cost_bars_are_linear_without_the_null_comparison(saved):
    figure = saved["cost.png"]
    for ax in visible_axes(figure):
        assert ax.get_xscale() == "linear"
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_visible()]
        if not any(labels):  # the panels share the first one's labels
            continue
        assert "torch.relu (null)" not in labels and "torch.relu" in labels
        top_first = sorted(ax.get_yticklabels(), key=lambda t: -t.get_window_extent().y0)
        assert [t.get_text() for t in top_first] == style.order(labels)


def test_learning_rates_never_take_an_activation_colour():
    colours = style.learning_rate_colours([0.001, 0.01, 0.1, 1.0, 3.0])
    activation_colours = set(style.COLOURS.values())
    assert not {hex_colour(c) for c in colours.values()} & activation_colours
    assert list(colours) == [0.001, 0.01, 0.1, 1.0, 3.0]


def test_convergence_shows_each_init_of_the_depth_study_in_its_own_panel(tmp_path):
    import matplotlib.pyplot as plt

    epochs = epochs_frame()
    deep = []
    for init, depth in itertools.product(("default", "kaiming_normal"), (2, 6)):
        part = epochs[epochs["lr"] == LRS[0]].copy()
        part["point"] = part["point"] + f"_{init}_{depth}"
        deep.append(part.assign(init=init, depth=depth))
    epochs = pd.concat([epochs.assign(init="default"), *deep])
    points = convergence.point_table(convergence.run_table(epochs, 0.6))
    main_ids = epochs.loc[epochs["init"].eq("default") & epochs["depth"].eq(2), "point"]
    deep_ids = pd.concat(deep)["point"].unique()
    kept = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dynamics_figures, "save", lambda figure, path: kept.update(f=figure))
        dynamics_figures.convergence(points, main_ids.unique(), deep_ids, "c.png")
    titles = [ax.get_title() for ax in kept["f"].axes]
    assert any("default init" in t for t in titles) and any(
        "kaiming_normal init" in t for t in titles
    )
    plt.close(kept["f"])


def test_figures_of_means_draw_their_95_percent_bands(saved):
    for name in ("accuracy.png", "accuracy_vs_lr.png", "gradient_by_depth.png"):
        figure = saved[name]
        assert figure.findobj(PolyCollection), name
    heatmap = saved["dead_heatmap.png"]
    assert any("±" in text.get_text() for text in heatmap.axes[0].texts)
    death = saved["death_over_time.png"]
    assert any(
        c.get_label() == "dead now: 95 % interval" for ax in death.axes for c in ax.collections
    )


def test_points_that_never_reach_the_target_are_drawn_as_such(saved):
    figure = saved["convergence.png"]
    crosses = [line for line in figure.findobj(Line2D) if line.get_marker() == "x"]
    assert {hex_colour(line.get_color()) for line in crosses} == {style.colour("tanh")}
    assert any(
        "no seed reached" in text.get_text()
        for text in figure.findobj(lambda o: hasattr(o, "get_text") and not isinstance(o, Line2D))
    )


def test_figure_modules_take_no_colours_of_their_own():
    for module in (study_figures, dynamics_figures):
        source = inspect.getsource(module)
        for own in ("color_palette(", "tab10", "tab20", 'hue="variant"'):
            assert own not in source, (module.__name__, own)


def test_death_figures_of_a_grid_where_every_run_diverged_have_nothing_to_show():
    from relulab.figures import facets

    diverged = pd.DataFrame({"variant": ["relu (f'(0)=0)"], "final_status": ["diverged"]})
    assert facets.visibly_dead(diverged, "ever_dead_fraction") == []
