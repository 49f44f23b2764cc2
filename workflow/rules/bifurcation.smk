BIFURCATION = config["bifurcation"]


rule bifurcation:
    input:
        data=f"results/data/{BIFURCATION['dataset']}.npz",
    output:
        "results/bifurcation/{precision}.csv",
    log:
        "results/logs/bifurcation/{precision}.log",
    wildcard_constraints:
        # The study's precisions (the schema admits only known ones): no torch import here.
        precision="|".join(BIFURCATION["precisions"]),
    conda:
        "../envs/relulab.yaml"
    threads: 1
    params:
        settings=BIFURCATION,
    script:
        "../scripts/bifurcation.py"


rule bifurcation_table:
    input:
        expand(
            "results/bifurcation/{precision}.csv", precision=BIFURCATION["precisions"]
        ),
    output:
        inits="results/tables/bifurcation_inits.csv",
        csv="results/tables/bifurcation.csv",
        md="results/tables/bifurcation.md",
        html=report(
            "results/tables/bifurcation.html",
            caption="../report/bifurcation_table.rst",
            category="Q1 ReLU'(0)",
            labels={"table": "bifurcation per precision, width and depth"},
        ),
        figure=report(
            "results/figures/bifurcation.png",
            caption="../report/bifurcation.rst",
            category="Q1 ReLU'(0)",
            labels={
                "figure": "bifurcation: share of initialisations where f'(0) changes a gradient"
            },
        ),
        svg="results/figures/bifurcation.svg",
    log:
        "results/logs/bifurcation_table.log",
    localrule: True
    conda:
        "../envs/relulab.yaml"
    script:
        "../scripts/bifurcation_table.py"
