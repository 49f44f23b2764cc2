"""Q3, cost (whole training steps where timed, and the activation kernels) and sparsity."""

from __future__ import annotations

import pandas as pd

from relulab.experiments import cost as cost_benchmark
from relulab.report import labels
from relulab.report.evidence import questions
from relulab.report.inputs import Inputs, Section, main_points, with_axes
from relulab.report.text import listing, num, pct_ci, ratio


def step_findings(section: Section, step: pd.DataFrame | None) -> None:
    """Whole training steps (forward, backward, optimizer at the study's sizes), as users pay."""
    if step is None or step.empty:
        section.add(
            "Whole training steps were not timed; the kernel timings below are the activation "
            "alone, not what a training step pays."
        )
        return
    others = step[step["activation"] != "relu"]
    parts = [
        f"{r.activation} {ratio(r.ratio_to_relu)} [{num(r.ratio_low, 3)}, {num(r.ratio_high, 3)}]"
        f" ({r.verdict})"
        for r in others.itertuples()
    ]
    section.add(
        f"A whole training step (forward, backward and optimizer at the study's sizes) cost, "
        f"relative to ReLU's: {listing(parts)}; on {questions.machine_text(step.iloc[0])}.",
        "cost",
        items=list(others["activation"]),
    )


def kernel_findings(section: Section, cost: pd.DataFrame | None) -> None:
    if cost is None or cost.empty:
        section.add("The cost benchmark was not run, so no cost is reported.")
        return
    if "verdict" not in cost and "relative_low" in cost:
        cost = cost_benchmark.add_verdicts(cost)
    for device, table in cost.groupby("device", sort=False):
        largest = int(table["elements"].max())
        at = table[table["elements"] == largest].set_index("variant")
        reference = at.loc[cost_benchmark.REFERENCE]
        own = at[
            (at["implementation"] == "pytorch")
            & ~at.index.isin([cost_benchmark.REFERENCE, cost_benchmark.NULL])
        ]
        relative = own["relative"].sort_values()
        dearest = relative.index[-1]
        text = (
            f"Cost on {device} ({table['precision'].iloc[0]}, {largest:,} elements, "
            f"forward + backward, median of {int(reference['repeats'])} repeats): torch.relu "
            f"took {num(reference['ns_per_element'], 3)} ns per element; "
            + listing([f"{v} {ratio(r)}" for v, r in relative.items()])
            + f" of that. The most expensive was {dearest}."
        )
        if cost_benchmark.NULL in at.index and "verdict" in at:
            null = at.loc[cost_benchmark.NULL]
            verdicts = own["verdict"]
            cheaper = sorted(verdicts.index[verdicts == "cheaper"])
            dearer = sorted(verdicts.index[verdicts == "dearer"])
            noise = sorted(verdicts.index[verdicts == "within noise"])
            text += (
                f" torch.relu timed against a second copy of itself measured "
                f"{ratio(null['relative'])} [{num(null['relative_low'], 3)}, "
                f"{num(null['relative_high'], 3)}] (95 % interval of the median), the noise a "
                f"difference must exceed: cheaper than torch.relu {listing(cheaper) or 'none'};"
                f" dearer {listing(dearer) or 'none'}; within the noise "
                f"{listing(noise) or 'none'}."
            )
        else:
            text += " No null comparison was timed, so no variant is called cheaper or dearer."
        section.add(text, "cost", "cost_figure")
        ours = cost_benchmark.zero_grad_relu_overhead(table)
        if len(ours):
            worst = ours.loc[ours.groupby("zero_grad")["relative"].idxmax()]
            limit = cost_benchmark.ZERO_GRAD_RELU_LIMIT
            over = [f"f'(0)={z:g}" for z in worst.loc[worst["relative"] > limit, "zero_grad"]]
            shown = [
                f"{ratio(r.relative)} for f'(0)={r.zero_grad:g} (at {r.elements:,} elements)"
                for r in worst.itertuples()
            ]
            verdict = (
                f"more than the {limit:g}× relulab allows it for {listing(over)}"
                if over
                else f"within the {limit:g}× relulab allows it"
            )
            section.add(
                f"relulab's ReLU with a chosen f'(0) (the module the study trains ReLU with) "
                f"cost at worst {listing(shown)} the time of torch.relu on {device}: "
                f"{verdict}.{_relu_implementation(ours)}",
                "cost",
                "cost_figure",
            )
        _other_kinked_cost(section, table, device)


def _relu_implementation(ours: pd.DataFrame) -> str:
    """Which CPU implementation timed the f'(0) values PyTorch has no kernel for, if recorded."""
    if "compiled_operator" not in ours:
        return ""
    custom = ours[~ours["zero_grad"].isin([0.0, 1.0])]
    if custom.empty:
        return ""
    if custom["compiled_operator"].all():
        return " For f'(0) other than 0 and 1 this is relulab's compiled operator."
    return (
        " For f'(0) other than 0 and 1 this is relulab's Python implementation: its compiled "
        "operator could not be built on this machine (see `python -m relulab.nn.native`)."
    )


def _other_kinked_cost(section: Section, table: pd.DataFrame, device: str) -> None:
    """The other kinked activations with a chosen f'(0), each against PyTorch's own module."""
    ours = table[
        (table["implementation"] == "relulab")
        & (table["activation"].isin(["leaky_relu", "prelu", "rrelu"]))
    ]
    own = table[table["implementation"] == "pytorch"].set_index(["elements", "variant"])
    against_own = [
        (row.relative / own.loc[(row.elements, f"torch.{row.activation}"), "relative"], row)
        for row in ours.itertuples()
        if (row.elements, f"torch.{row.activation}") in own.index
    ]
    if not against_own:
        return
    worst, row = max(against_own, key=lambda pair: pair[0])
    section.add(
        f"The other kinked activations with a chosen f'(0) cost at worst {ratio(worst)} "
        f"PyTorch's own module ({row.variant} against torch.{row.activation}, at "
        f"{int(row.elements):,} elements on {device}).",
        "cost",
    )


def sparsity_findings(section: Section, inputs: Inputs) -> None:
    death = with_axes(main_points(inputs.death, inputs), inputs.study)
    death = death.dropna(subset=["final_sparsity_mean"])
    for context, rows in labels.groups(death, ("activation", "zero_grad", "lr")):
        rows = (
            rows[rows["zero_grad"].isna() | (rows["zero_grad"] == 0.0)]
            if "zero_grad" in rows
            else rows
        )
        best = rows.loc[rows.groupby("activation")["final_sparsity_mean"].idxmax()]
        best = best.sort_values("final_sparsity_mean", ascending=False)
        sparse = best[best["final_sparsity_mean"] > 0]
        dense = sorted(best.loc[best["final_sparsity_mean"] == 0, "activation"])
        names = [labels.label(r, ("activation", "zero_grad", "lr")) for _, r in sparse.iterrows()]
        text = (
            f"Sparsity ({context}; outputs exactly 0 on the training set, last epoch, the "
            "largest over lr, 95 % interval clipped to [0, 100]): "
        )
        shown = [
            f"{n} {pct_ci(r.final_sparsity_mean, r.final_sparsity_ci95)}"
            for n, r in zip(names, sparse.itertuples(), strict=True)
        ]
        if shown:
            text += listing(shown) + (
                f"; {listing(dense)} never output an exact 0" if dense else ""
            )
        else:
            text += f"{listing(dense)} never output an exact 0"
        section.add(text + ".", "death", items=names + dense)
