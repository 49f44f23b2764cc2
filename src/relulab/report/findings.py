"""The findings report: the study's evidence judged claim by claim, then each question
answered in sentences built from its numbers.

Evidence (``evidence``) -> one judge per claim (``claims``) -> words (``wording``, ``sections``)
-> Markdown and HTML (``render``). Every sentence is computed from the study's tables and names
the table or figure it rests on, as a path relative to ``results/``.
"""

from __future__ import annotations

from pathlib import Path

from relulab.report import claims, evidence, render
from relulab.report.inputs import Inputs, Section, read_optional, read_table
from relulab.report.sections import cost, gradient, q1, q2, study

__all__ = ["Inputs", "build", "read_optional", "read_table", "write"]

Q3_TITLE = "Q3. The other claims made for ReLU"


def q3_section(inputs: Inputs) -> Section:
    found = Section(Q3_TITLE, "q3")
    gradient.gradient_findings(found, inputs)
    gradient.convergence_findings(found, inputs)
    cost.step_findings(found, inputs.cost_step)
    cost.kernel_findings(found, inputs.cost)
    cost.sparsity_findings(found, inputs)
    return found


def build(inputs: Inputs) -> render.Report:
    """The findings of a study: every claim judged, and the sections."""
    found = evidence.gather(inputs)
    outcomes = claims.judge_all(found)
    sections = [
        study.section(inputs, found.training),
        q1.section(inputs),
        q2.section(inputs),
        q3_section(inputs),
    ]
    return render.Report(study.describe(inputs) + ".", outcomes, sections)


def write(inputs: Inputs, markdown_path: str | Path, html_path: str | Path | None = None) -> None:
    report = build(inputs)
    Path(markdown_path).parent.mkdir(parents=True, exist_ok=True)
    Path(markdown_path).write_text(render.to_markdown(report))
    if html_path is not None:
        Path(html_path).write_text(render.to_html(report))
