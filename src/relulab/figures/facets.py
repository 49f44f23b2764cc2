"""What a figure's panels hold and what its title says: the pieces that keep a panel readable.

- ``merge_identical_twins``: f'(0) twins whose numbers are bitwise the same (no exact zero ever
  met a non-zero gradient) are one line, labelled ``relu (f'(0)=0, 0.5, 1 identical)``, instead
  of three lines drawn on top of each other;
- ``families``: the rows of a small-multiple figure, one per activation (and per setting that
  varies besides the ones the figure shows), so that a panel holds at most the f'(0) variants
  of one activation;
- ``can_die`` and ``visibly_dead``: death figures leave out activations that cannot die (their
  panels would be empty) and those in which nothing visible ever died;
- ``setting``: the fixed settings of what a figure shows (optimizer, depth, init, precision),
  for its title.
"""

from __future__ import annotations

import math

import pandas as pd

from relulab.figures import style

# Activations whose local derivative is never exactly 0 (SCIENCE.md: Leaky ReLU, PReLU, RReLU
# and ELU units cannot be dead); the smooth ones can, by saturation underflow.
CANNOT_DIE = ("leaky_relu", "prelu", "rrelu", "elu")
# The smallest dead fraction a death panel draws visibly (a pixel or two of a 0-1 axis).
VISIBLE_FRACTION = 0.01
# The settings a title states, in this order, and how it words them.
SETTING_WORDS = {
    "optimizer": str,
    "depth": lambda value: f"{int(value)} hidden layers",
    "init": lambda value: f"{value} init",
    "precision": str,
    "batch_norm": lambda value: "batch norm" if bool(value) else "no batch norm",
}


def family(label: str) -> str:
    """A variant label without its f'(0): ``relu | adam`` for ``relu (f'(0)=1) | adam``."""
    parsed = style.variant(label)
    setting = str(label).split(" | ", 1)
    return parsed.activation + (f" | {setting[1]}" if len(setting) == 2 else "")


def families(labels) -> list[str]:
    """The distinct families of ``labels``, in grid order."""
    return list(dict.fromkeys(family(label) for label in style.order(labels)))


def family_title(name: str, labels) -> str:
    """A panel's title for family ``name``: the family, and which of its f'(0) twins are drawn
    once (``relu, f'(0)=0, 0.5 identical``)."""
    merged = [
        str(label).split("(", 1)[1].split(")", 1)[0]
        for label in style.order(labels)
        if family(label) == name and "identical" in str(label)
    ]
    return ", ".join([name, *merged])


def _merged_label(label: str, zero_grads: list[float]) -> str:
    values = ", ".join(f"{value:g}" for value in sorted(zero_grads))
    parsed = style.variant(label)
    setting = str(label).split(" | ", 1)
    base = f"{parsed.activation} (f'(0)={values} identical)"
    return base + (f" | {setting[1]}" if len(setting) == 2 else "")


def _fingerprint(rows: pd.DataFrame, order: list[str], values: list[str]) -> tuple:
    rows = rows.sort_values(order)
    return tuple(
        tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in rows[column])
        for column in values
    )


def identical_twins(frame: pd.DataFrame, keys, values, order=("seed", "epoch")) -> dict:
    """``{variant: merged label}`` for the f'(0) twins whose ``values`` are bitwise equal in
    every row (per seed, epoch, ...: ``order``) at every value of ``keys`` (the axes a figure
    spreads over its panels or x axis). Twins that differ anywhere keep their own labels."""
    keys, values = list(keys), [v for v in values if v in frame]
    order = [c for c in [*keys, *order] if c in frame]
    mapping: dict[str, str] = {}
    labelled = frame.assign(_family=frame["variant"].map(family))
    for _, part in labelled.groupby("_family", sort=False):
        variants = [
            v for v in style.order(part["variant"]) if style.variant(v).zero_grad is not None
        ]
        if len(variants) < 2:
            continue
        groups: dict[tuple, list[str]] = {}
        for label in variants:
            rows = part[part["variant"] == label]
            groups.setdefault(_fingerprint(rows, order, values), []).append(label)
        for same in groups.values():
            if len(same) > 1:
                merged = _merged_label(same[0], [style.variant(v).zero_grad for v in same])
                mapping.update(dict.fromkeys(same, merged))
    return mapping


def merge_identical_twins(frame: pd.DataFrame, keys, values, order=("seed", "epoch")):
    """``frame`` with bitwise-identical f'(0) twins (``identical_twins``) as one variant: the
    rows of the first twin kept under the merged label, the others' dropped."""
    mapping = identical_twins(frame, keys, values, order)
    return apply_merge(frame, mapping)


def apply_merge(frame: pd.DataFrame, mapping: dict) -> pd.DataFrame:
    """``frame`` relabelled by ``mapping`` (``identical_twins``), one twin's rows kept."""
    if not mapping:
        return frame
    kept = {}
    for label in style.order(mapping):
        kept.setdefault(mapping[label], label)
    keep = ~frame["variant"].isin(mapping) | frame["variant"].isin(set(kept.values()))
    out = frame[keep].copy()
    out["variant"] = out["variant"].map(lambda v: mapping.get(v, v))
    return out


def can_die(label: str) -> bool:
    """Whether a unit of this variant's activation can be dead (``CANNOT_DIE``)."""
    return style.variant(label).activation not in CANNOT_DIE


def visibly_dead(frame: pd.DataFrame, column: str, by=("variant",)) -> list[str]:
    """Variants that can die and whose mean over seeds of ``column`` reaches
    ``VISIBLE_FRACTION`` somewhere (at some epoch of some point), in grid order."""
    finished = frame[frame.get("final_status", "finished") != "diverged"]
    finished = finished[finished["variant"].map(can_die)]
    if finished.empty or column not in finished:
        return []  # every run diverged (or none can die): nothing to show
    group = [c for c in ["variant", *by, "lr", "epoch"] if c in finished]
    means = finished.groupby(list(dict.fromkeys(group)))[column].mean()
    peak = means.groupby(level="variant").max()
    return style.order(peak[peak >= VISIBLE_FRACTION].index)


def left_out_note(all_labels, shown) -> str:
    """What a death figure leaves out, and why: ``not shown: leaky_relu, elu (cannot die);
    gelu (never 1 % dead)``."""
    missing = [label for label in families(all_labels) if label not in families(shown)]
    cannot = [f for f in missing if not can_die(f)]
    never = [f for f in missing if can_die(f)]
    parts = []
    if cannot:
        parts.append(f"{', '.join(cannot)} (cannot die)")
    if never:
        parts.append(f"{', '.join(never)} (never {VISIBLE_FRACTION:.0%} dead)")
    return f"not shown: {'; '.join(parts)}" if parts else ""


def setting(frame: pd.DataFrame, shown=()) -> str:
    """The settings every row of ``frame`` shares, as a title states them: ``adam, 3 hidden
    layers, default init, float32``. An axis with several values (and not in ``shown``, the
    axes the figure draws) is named as varying: its values are in the line labels."""
    parts = []
    for axis, word in SETTING_WORDS.items():
        if axis in shown or axis not in frame:
            continue
        values = frame[axis].dropna().unique()
        if len(values) == 1:
            parts.append(word(values[0]))
        elif len(values) > 1:
            parts.append(f"{axis} in the labels")
    return ", ".join(parts)


def seeds_text(frame: pd.DataFrame) -> str:
    """``4 seeds`` (or ``2-4 seeds``): how many seeds each mean is over."""
    if "seed" not in frame or frame.empty:
        return "seeds"
    keys = [c for c in ("point", "variant") if c in frame]
    counts = frame.groupby(keys[:1])["seed"].nunique()
    low, high = int(counts.min()), int(counts.max())
    return f"{low} seeds" if low == high else f"{low}-{high} seeds"


def title(figure, heading: str, frame: pd.DataFrame, shown=(), note: str = "", y=None) -> None:
    """A figure's title: what it shows, then the setting it was measured in (``setting``),
    then what it leaves out (``note``)."""
    lines = [heading, setting(frame, shown), note]
    kwargs = {"fontsize": 11} if y is None else {"fontsize": 11, "y": y}
    figure.suptitle("\n".join(line for line in lines if line), **kwargs)
