from relulab.report import pages
from relulab.study import logs

logs.to_file(snakemake.log[0])  # noqa: F821
pages.rst_to_html(snakemake.input[0], snakemake.output[0])  # noqa: F821
