"""Documentation pages of the repository (``docs/*.rst``) as stand-alone HTML for the report."""

from __future__ import annotations

from pathlib import Path

from docutils.core import publish_string


def rst_to_html(source: str | Path, target: str | Path) -> None:
    """Render the reStructuredText page ``source`` to one self-contained HTML file."""
    html = publish_string(
        Path(source).read_text(),
        writer_name="html5",
        settings_overrides={"embed_stylesheet": True, "report_level": 2, "halt_level": 2},
    )
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_bytes(html)
