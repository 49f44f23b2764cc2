"""Helpers the sections share: picking rows, comparing intervals."""

from __future__ import annotations

import math

import pandas as pd

from relulab.nn import activations


def top(frame: pd.DataFrame, column: str, largest: bool = True) -> pd.Series | None:
    """The row with the largest (smallest) finite ``column``, or None when there is none."""
    if column not in frame:
        return None
    finite = frame[pd.to_numeric(frame[column], errors="coerce").notna()]
    if finite.empty:
        return None
    index = finite[column].astype(float).idxmax() if largest else finite[column].idxmin()
    return finite.loc[index]


def having(frame: pd.DataFrame, **values) -> pd.DataFrame:
    """Rows whose columns equal ``values`` (a column the frame lacks is not filtered on)."""
    for key, value in values.items():
        if key in frame.columns:
            allowed = value if isinstance(value, (list, tuple, set)) else [value]
            frame = frame[frame[key].isin(allowed)]
    return frame


def kinked(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["activation"].isin(activations.KINKED)]


def interval(mean: float, half: float) -> tuple[float, float]:
    if not math.isfinite(half):
        return -math.inf, math.inf
    return mean - half, mean + half


def separated(a: tuple[float, float], b: tuple[float, float]) -> int:
    """+1 if interval ``a`` lies wholly above ``b``, -1 if wholly below, 0 if they overlap."""
    if a[0] > b[1]:
        return 1
    if a[1] < b[0]:
        return -1
    return 0


def rank_text(best: int, worst: int) -> str:
    if best == 0:
        return "no rank"
    return f"rank {best}" if best == worst else f"rank {best}–{worst}"
