"""The study: what was trained, and which runs diverged (by the findings' divergence rule)."""

from __future__ import annotations

import pandas as pd

from relulab.report import labels
from relulab.report.evidence.runs import DIVERGED_LOSS, TrainingEvidence
from relulab.report.inputs import Inputs, Section, with_axes
from relulab.report.text import listing

TITLE = "The study"
ANCHOR = "study"


def describe(inputs: Inputs) -> str:
    """The study in one sentence, from its tables and config (every axis that varies named)."""
    study = inputs.study
    summary = with_axes(inputs.summary, study)
    seeds = int(summary["seeds"].max()) if len(summary) else 0
    shared = labels.context(summary)
    varied = labels.spans(summary, [a for a in labels.AXES if a not in labels.VARIANT_AXES])
    return (
        f"Study `{study.name}` on {study.data.name}: MLPs of width "
        f"{study.model.width}, {shared}"
        + (f"; varied: {varied}" if varied else "")
        + f"; {study.training.epochs} epochs (batch "
        f"{study.training.batch_size}), {len(summary)} grid points "
        f"({len(inputs.depth_ids - inputs.main_ids)} of them from the depth study) with "
        f"{seeds} seeds each"
    )


def section(inputs: Inputs, training: TrainingEvidence) -> Section:
    found = Section(TITLE, ANCHOR)
    found.add(
        describe(inputs) + ". Fractions are means over seeds with a 95 % interval in brackets "
        "(clipped to [0, 100] %); pooled counts get Wilson intervals.",
        "summary",
    )
    total = sum(p.seeds for p in training.points)
    gone = [p for p in training.points if p.diverged]
    if not gone:
        found.add(f"None of the {total} runs diverged.", "summary")
        return found
    rows = pd.DataFrame([p.row for p in gone])
    names = labels.item_labels(rows)
    listed = [f"{n} ({p.diverged}/{p.seeds})" for n, p in zip(names, gone, strict=True)]
    found.add(
        f"{sum(p.diverged for p in gone)} of {total} runs diverged: final training loss NaN, "
        f"infinite or above {DIVERGED_LOSS:.2f} (twice an untrained network's ln 10): "
        f"{listing(listed)}. They are counted as diverged in every claim and left out of its "
        "means.",
        "summary",
        items=names,
    )
    return found
