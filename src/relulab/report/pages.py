"""Stand-alone HTML pages: the documentation pages (``docs/*.rst``) for the report, and the
study's tables, each a styled page of its own (head, title, style) from a Jinja2 template."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2


@functools.cache
def environment() -> jinja2.Environment:
    """The templates of ``relulab/report/templates``, HTML-escaped by default."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("relulab.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def rst_to_html(source: str | Path, target: str | Path) -> None:
    """Render the reStructuredText page ``source`` to one self-contained HTML file."""
    from docutils.core import publish_string

    html = publish_string(
        Path(source).read_text(),
        writer_name="html5",
        settings_overrides={"embed_stylesheet": True, "report_level": 2, "halt_level": 2},
    )
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_bytes(html)


def table_page(table_html: str, title: str, caption: str = "") -> str:
    """A table (HTML from pandas) as a stand-alone styled page."""
    template = environment().get_template("table.html.j2")
    return template.render(title=title, caption=caption, table=table_html)
