"""Labels of grid settings in words, from the grid's one definition of its axes (``grid.AXES``).

A sentence or table row that summarises several grid points names every axis that varies among
them: the axes constant in what it summarises go into its context ("Adam, float32, 3 hidden
layers"), the axes that vary go into the label of each item it lists. No two items of one
sentence can then carry the same label unless they are the same grid point.
"""

from __future__ import annotations

import math

import pandas as pd

from relulab.study import grid

OPTIMIZER_NAMES = {"sgd": "plain SGD", "momentum": "SGD with momentum 0.9", "adam": "Adam"}
INIT_NAMES = {
    "default": "PyTorch default init",
    "kaiming_normal": "Kaiming normal init",
    "kaiming_uniform": "Kaiming uniform init",
    "xavier_normal": "Xavier normal init",
    "xavier_uniform": "Xavier uniform init",
}
# The activation and f'(0) read as one word (``relu (f'(0)=0)``): the variant.
VARIANT_AXES = ("activation", "zero_grad")
# The order axes are named in a label: what a reader looks for first.
ORDER = ("activation", "zero_grad", "optimizer", "lr", "precision", "depth", "init", "batch_norm")
AXES = tuple(a for a in ORDER if a in grid.AXES) + tuple(a for a in grid.AXES if a not in ORDER)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def variant(activation: str, zero_grad) -> str:
    """``relu (f'(0)=0)`` for kinked activations, the bare name for smooth ones."""
    if _missing(zero_grad):
        return str(activation)
    return f"{activation} (f'(0)={float(zero_grad):g})"


def truthy(value) -> bool:
    return str(value) in ("True", "true", "1", "1.0")


def axis_text(axis: str, value) -> str:
    """One axis's value in words."""
    if axis == "optimizer":
        return OPTIMIZER_NAMES.get(value, str(value))
    if axis == "init":
        return INIT_NAMES.get(value, f"{value} init")
    if axis == "batch_norm":
        return "batch norm" if truthy(value) else "no batch norm"
    if axis == "depth":
        return f"{int(value)} hidden layer" + ("" if int(value) == 1 else "s")
    if axis == "lr":
        return f"lr {float(value):g}"
    if axis == "zero_grad":
        return "" if _missing(value) else f"f'(0)={float(value):g}"
    return str(value)


def _value(row, axis):
    if isinstance(row, dict):
        return row.get(axis)
    return row.get(axis, None)


def label(row, axes) -> str:
    """``row``'s values of ``axes`` in words, the variant first when both its axes are named."""
    axes = [a for a in AXES if a in axes]
    parts = []
    if "activation" in axes:
        parts.append(variant(_value(row, "activation"), _value(row, "zero_grad")))
        axes = [a for a in axes if a not in VARIANT_AXES]
    for axis in axes:
        text = axis_text(axis, _value(row, axis))
        if text:
            parts.append(text)
    return ", ".join(parts)


def varying(frame: pd.DataFrame, among=AXES) -> list[str]:
    """The axes of ``among`` that take more than one value in ``frame``."""
    return [a for a in AXES if a in among and a in frame and frame[a].nunique(dropna=False) > 1]


def constant(frame: pd.DataFrame, among=AXES) -> list[str]:
    """The axes of ``among`` present in ``frame`` with one value."""
    return [a for a in AXES if a in among and a in frame and frame[a].nunique(dropna=False) == 1]


def context(frame: pd.DataFrame, among=AXES, skip=VARIANT_AXES) -> str:
    """The settings every row of ``frame`` shares (axes of ``among`` but ``skip``), in words."""
    if frame.empty:
        return ""
    axes = [a for a in constant(frame, among) if a not in skip]
    return label(frame.iloc[0], axes)


def item_labels(frame: pd.DataFrame, listed=AXES) -> list[str]:
    """One label per row of ``frame``: the axes of ``listed`` that vary among the rows (the
    activation always, as the variant)."""
    axes = set(varying(frame, listed))
    if "zero_grad" in axes or "activation" in listed:
        axes |= {"activation"}
    return [label(row, axes) for _, row in frame.iterrows()]


def spans(frame: pd.DataFrame, axes) -> str:
    """The values each of ``axes`` takes in ``frame`` where it takes several, in words:
    ``lr 0.001, 0.01 and 0.03; 3, 6 and 10 hidden layers`` (what a pooled number pools over)."""
    parts = []
    for axis in varying(frame, axes):
        values = sorted(frame[axis].dropna().unique(), key=str)
        if axis in ("lr", "depth"):
            values = sorted(values)
        words = [axis_text(axis, v) for v in values]
        parts.append(", ".join(words))
    return "; ".join(parts)


def groups(frame: pd.DataFrame, listed):
    """(context, rows) per combination of the axes that vary in ``frame`` and are not
    ``listed`` (each is said in the sentence's context, never averaged over)."""
    if frame.empty:
        return
    keys = [a for a in varying(frame) if a not in listed]
    parts = [frame] if not keys else [rows for _, rows in frame.groupby(keys, dropna=False)]
    for rows in parts:
        # A listed axis that varies among the rows is named by each item, not the context.
        skip = (*VARIANT_AXES, *varying(rows, listed))
        yield context(rows, skip=skip), rows
