# The figures the README shows (docs/images/), made by rule readme_images.
README_IMAGES = ["dead_heatmap"]


rule plot_study:
    input:
        summary=table("summary"),
        epochs=table("epochs"),
    output:
        dead_heatmap=report(
            figure("dead_heatmap"),
            caption="../report/dead_heatmap.rst",
            category="Q2 Dead units",
            labels={
                "figure": "dead units after training, by activation and learning rate"
            },
        ),
        dead_over_epochs=report(
            figure("dead_over_epochs"),
            caption="../report/dead_over_epochs.rst",
            category="Q2 Dead units",
            labels={"figure": "dead units over training"},
        ),
        accuracy_over_epochs=report(
            figure("accuracy_over_epochs"),
            caption="../report/accuracy_over_epochs.rst",
            category="Q3 Convergence",
            labels={"figure": "validation accuracy over training"},
        ),
        accuracy_vs_lr=report(
            figure("accuracy_vs_lr"),
            caption="../report/accuracy_vs_lr.rst",
            category="Q3 Convergence",
            labels={"figure": "final accuracy against learning rate"},
        ),
        svgs=expand(
            figure("{name}", "svg"),
            name=[
                "dead_heatmap",
                "dead_over_epochs",
                "accuracy_over_epochs",
                "accuracy_vs_lr",
            ],
        ),
    log:
        logfile("plot_study"),
    localrule: True
    conda:
        "../envs/relulab.yaml"
    script:
        "../scripts/plot_study.py"


# Not part of `all`: the README's figures, copied from this study's own output. After the
# default study, from the repository root:
#   .venv/bin/snakemake --cores 1 --forcerun readme_images readme_images
rule readme_images:
    input:
        expand(figure("{name}"), name=README_IMAGES),
    output:
        # The repository's docs/, not the study's folder (each study works in its own).
        expand(
            "{docs}/docs/images/{name}.png", docs=workflow.basedir, name=README_IMAGES
        ),
    log:
        logfile("readme_images"),
    localrule: True
    conda:
        "../envs/relulab.yaml"
    script:
        "../scripts/readme_images.py"
