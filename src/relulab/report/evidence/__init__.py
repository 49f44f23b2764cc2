"""Evidence: the numbers each claim is judged on, typed and frozen, read from the study's tables
once. ``gather`` is the one place the findings read the tables for the claims."""

from __future__ import annotations

from dataclasses import dataclass

from relulab.report.evidence import questions
from relulab.report.evidence.runs import (
    CHANCE,
    DIVERGED_LOSS,
    MIN_FINISHED_SEEDS,
    Interval,
    PointRuns,
    TrainingEvidence,
    training_evidence,
)
from relulab.report.inputs import Inputs
from relulab.report.outcome import NotMeasured

__all__ = [
    "CHANCE",
    "DIVERGED_LOSS",
    "MIN_FINISHED_SEEDS",
    "Evidence",
    "Interval",
    "PointRuns",
    "TrainingEvidence",
    "gather",
]


@dataclass(frozen=True)
class Evidence:
    training: TrainingEvidence
    bifurcation: tuple[questions.BifurcationCell, ...] | NotMeasured
    gemm_paths: tuple[questions.GemmPathCount, ...] | NotMeasured
    twins: tuple[questions.TwinPoint, ...] | NotMeasured
    gradient: tuple[questions.GradientRatio, ...] | NotMeasured
    cost: questions.CostEvidence | NotMeasured
    born_dead: tuple[questions.BornDeadDepths, ...] | NotMeasured
    revival: tuple[questions.RevivalCount, ...] | NotMeasured
    sparsity: tuple[questions.Sparsity, ...] | NotMeasured


def gather(inputs: Inputs) -> Evidence:
    """Every claim's evidence from the study's tables."""
    return Evidence(
        training=training_evidence(inputs.epochs, inputs.study),
        bifurcation=questions.bifurcation(inputs.bifurcation),
        gemm_paths=questions.gemm_paths(inputs.bifurcation_machine),
        twins=questions.twins(inputs.zero_grad_effect),
        gradient=questions.gradient(inputs.gradient, inputs.depth_ids),
        cost=questions.cost(inputs.cost_step, inputs.cost),
        born_dead=questions.born_dead(inputs.born_dead),
        revival=questions.revival(inputs.layers, inputs.epochs, inputs.study),
        sparsity=questions.sparsity(inputs.death),
    )
