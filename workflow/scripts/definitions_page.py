import html
from pathlib import Path

from relulab.study import logs

logs.to_file(snakemake.log[0])  # noqa: F821
text = Path(snakemake.input[0]).read_text()  # noqa: F821
# Markdown shown as written: the report needs a page, and no Markdown renderer is installed.
page = (
    '<html><head><meta charset="utf-8"><title>relulab definitions</title></head><body>'
    '<pre style="white-space: pre-wrap; font-family: sans-serif; max-width: 60em">'
    f"{html.escape(text)}</pre></body></html>\n"
)
Path(snakemake.output[0]).write_text(page)  # noqa: F821
