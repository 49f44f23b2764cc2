"""Copy the study's figures that the README shows into the repository's docs/images/."""

import shutil

for source, target in zip(snakemake.input, snakemake.output, strict=True):  # noqa: F821
    shutil.copyfile(source, target)
