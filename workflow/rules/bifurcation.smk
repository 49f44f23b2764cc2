from relulab.experiments import gemm_paths

BIFURCATION = STUDY.experiments.bifurcation
OTHER_GEMM_PATH = gemm_paths.name(BIFURCATION)


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
        env={},
    script:
        "../scripts/bifurcation.py"


# The same measurement on another GEMM code path (``relulab.experiments.gemm_paths``), on a
# subset of cells: its environment is set in the job's own process before torch loads.
rule bifurcation_other_gemm_path:
    input:
        data=f"results/data/{BIFURCATION['dataset']}.npz",
    output:
        "results/bifurcation/gemm/{gemm_path}/{precision}.csv",
    log:
        "results/logs/bifurcation/gemm/{gemm_path}/{precision}.log",
    wildcard_constraints:
        gemm_path=OTHER_GEMM_PATH,
        precision="|".join(BIFURCATION["precisions"]),
    conda:
        "../envs/relulab.yaml"
    threads: 1
    params:
        settings=gemm_paths.other_settings(BIFURCATION),
        env=gemm_paths.env(BIFURCATION),
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


rule bifurcation_machine:
    input:
        default=expand(
            "results/bifurcation/{precision}.csv", precision=BIFURCATION["precisions"]
        ),
        other=expand(
            "results/bifurcation/gemm/{gemm_path}/{precision}.csv",
            gemm_path=OTHER_GEMM_PATH,
            precision=gemm_paths.precisions(BIFURCATION),
        ),
    output:
        machine="results/tables/bifurcation_machine.csv",
        machine_md="results/tables/bifurcation_machine.md",
        machine_html=report(
            "results/tables/bifurcation_machine.html",
            caption="../report/bifurcation_machine.rst",
            category="Q1 ReLU'(0)",
            labels={"table": "bifurcation per GEMM path"},
        ),
        rates="results/tables/bifurcation_rates.csv",
        rates_md="results/tables/bifurcation_rates.md",
        rates_html=report(
            "results/tables/bifurcation_rates.html",
            caption="../report/bifurcation_rates.rst",
            category="Q1 ReLU'(0)",
            labels={"table": "exact-zero rate per precision, equal-rate test"},
        ),
    log:
        "results/logs/bifurcation_machine.log",
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        name=OTHER_GEMM_PATH,
    script:
        "../scripts/bifurcation_machine.py"
