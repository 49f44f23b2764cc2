"""The findings rendered: Markdown (findings.md) and a stand-alone styled HTML page
(findings.html, from a Jinja2 template). Both carry the same items in the same order: the
summary, the claims table with short cells, the sections, and each claim in detail."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from relulab.report import wording
from relulab.report.inputs import Section
from relulab.report.outcome import Outcome
from relulab.report.pages import environment
from relulab.study import paths

TITLE = "relulab findings"


@dataclass(frozen=True)
class Report:
    study: str
    outcomes: list[Outcome]
    sections: list[Section]


# -- Markdown ---------------------------------------------------------------------------------
def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a Markdown table; a "|" inside a cell (``|Δ accuracy|``) is escaped, so that
    it is not read as a column separator."""
    escaped = table.map(lambda cell: cell.replace("|", "\\|") if isinstance(cell, str) else cell)
    return escaped.to_markdown(index=False)


def to_markdown(report: Report) -> str:
    lines = [f"# {TITLE}", "", report.study, "", "## Summary", ""]
    for line in wording.summary(report.outcomes):
        lines.append(
            f"- **{line.question}** {line.answer}: {line.key_number} ([details](#{line.anchor}))"
        )
    lines += ["", "## Claims tested", "", wording.counts_sentence(report.outcomes), ""]
    table = wording.claims_table(report.outcomes)
    table["details"] = [f"[rule and numbers](#{d})" for d in table["details"]]
    lines += [markdown_table(table), ""]
    for section in report.sections:
        lines += [f'<a id="{section.anchor}"></a>', "", f"## {section.title}", ""]
        for finding in section.findings:
            links = ", ".join(f"[{Path(s).name}]({s})" for s in finding.sources)
            lines.append(f"- {finding.text}" + (f" ({links})" if links else ""))
        lines.append("")
        if section.table is not None and len(section.table):
            lines += [markdown_table(section.table), ""]
        for caption, table in section.tables:
            if len(table):
                lines += [f"{caption}:", "", markdown_table(table), ""]
    lines += ["## Claims in detail", ""]
    for outcome in report.outcomes:
        lines += [f'<a id="claim-{outcome.key}"></a>', "", f"### {outcome.claim}", ""]
        lines += [f"- **{label}**: {text}" for label, text in wording.detail(outcome)]
        lines += [f"  - {d}" for d in outcome.details]
        lines.append("")
    return "\n".join(lines)


# -- HTML -------------------------------------------------------------------------------------
# Suffixes of the results that are items of the HTML report (every table's HTML and every
# figure; ``tests/test_workflow.py`` checks each link of the report's findings resolves).
REPORT_SUFFIXES = (".html", ".png")

# Makes the links of findings.html work where it is opened: from results/ as they are; inside
# Snakemake's zipped report (``--report x.zip``: each item in data/raw/<id>/) to the other items;
# inside the single-file report, which embeds each item as its own data: URL and so cannot link
# between them, as plain names with a hint.
LINK_SCRIPT = """<script>
(function () {
  var inZip = /\\/data\\/raw\\/[0-9a-f]{16}\\/[^\\/]+$/.test(location.pathname);
  var embedded = location.protocol === "data:";
  document.querySelectorAll("a.source").forEach(function (a) {
    if (inZip && a.dataset.reportHref) {
      a.href = a.dataset.reportHref;
    } else if (inZip || embedded) {
      a.removeAttribute("href");
      a.title = "open it from the report's menu";
    }
  });
})();
</script>"""


def report_href(source: str) -> str:
    """The link from one item of Snakemake's zipped report to the item ``source`` (a path
    relative to results/): ``../<id>/<file name>``, the id the first 16 hex digits of the
    SHA-256 of the path as the workflow names it (Snakemake's ``report_href``)."""
    path = (paths.RESULTS / source).as_posix()
    return f"../{hashlib.sha256(path.encode()).hexdigest()[:16]}/{Path(source).name}"


def source_link(source: str) -> str:
    name = html.escape(Path(source).name)
    href = html.escape(source, quote=True)
    in_report = Path(source).suffix in REPORT_SUFFIXES
    target = f' data-report-href="{html.escape(report_href(source))}"' if in_report else ""
    return f'<a class="source" href="{href}"{target} target="_blank" rel="noopener">{name}</a>'


def html_table(table: pd.DataFrame) -> str:
    return table.to_html(index=False, border=0, classes="relulab-table", na_rep="")


def to_html(report: Report) -> str:
    template = environment().get_template("findings.html.j2")
    return template.render(
        title=TITLE,
        study=report.study,
        summary=wording.summary(report.outcomes),
        counts=wording.counts_sentence(report.outcomes),
        outcomes=report.outcomes,
        sections=report.sections,
        short=lambda o: wording.claims_table([o])["key number"].iloc[0],
        detail=wording.detail,
        html_table=html_table,
        link=source_link,
        link_script=LINK_SCRIPT,
    )
