from relulab.experiments import gemm_paths

BIFURCATION = STUDY.experiments.bifurcation
OTHER_GEMM_PATH = gemm_paths.name(BIFURCATION)


rule bifurcation:
    input:
        data=str(paths.dataset(BIFURCATION["dataset"])),
    output:
        str(paths.BIFURCATION / "{precision}.csv"),
    log:
        logfile("bifurcation/{precision}"),
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
        data=str(paths.dataset(BIFURCATION["dataset"])),
    output:
        str(paths.BIFURCATION / "gemm" / "{gemm_path}" / "{precision}.csv"),
    log:
        logfile("bifurcation/gemm/{gemm_path}/{precision}"),
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
            str(paths.BIFURCATION / "{precision}.csv"),
            precision=BIFURCATION["precisions"],
        ),
    output:
        inits=table("bifurcation_inits"),
        csv=table("bifurcation"),
        md=table("bifurcation", "md"),
        html=report(
            table("bifurcation", "html"),
            caption="../report/bifurcation_table.rst",
            category="Q1 ReLU'(0)",
            labels={"table": "bifurcation per precision, width and depth"},
        ),
        figure=report(
            figure("bifurcation"),
            caption="../report/bifurcation.rst",
            category="Q1 ReLU'(0)",
            labels={
                "figure": "bifurcation: share of initialisations where f'(0) changes a gradient"
            },
        ),
        svg=figure("bifurcation", "svg"),
    log:
        logfile("bifurcation_table"),
    localrule: True
    conda:
        "../envs/relulab.yaml"
    script:
        "../scripts/bifurcation_table.py"


rule bifurcation_machine:
    input:
        default=expand(
            str(paths.BIFURCATION / "{precision}.csv"),
            precision=BIFURCATION["precisions"],
        ),
        other=expand(
            str(paths.BIFURCATION / "gemm" / "{gemm_path}" / "{precision}.csv"),
            gemm_path=OTHER_GEMM_PATH,
            precision=gemm_paths.precisions(BIFURCATION),
        ),
    output:
        machine=table("bifurcation_machine"),
        machine_md=table("bifurcation_machine", "md"),
        machine_html=report(
            table("bifurcation_machine", "html"),
            caption="../report/bifurcation_machine.rst",
            category="Q1 ReLU'(0)",
            labels={"table": "bifurcation per GEMM path"},
        ),
        rates=table("bifurcation_rates"),
        rates_md=table("bifurcation_rates", "md"),
        rates_html=report(
            table("bifurcation_rates", "html"),
            caption="../report/bifurcation_rates.rst",
            category="Q1 ReLU'(0)",
            labels={"table": "exact-zero rate per precision, equal-rate test"},
        ),
    log:
        logfile("bifurcation_machine"),
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        name=OTHER_GEMM_PATH,
    script:
        "../scripts/bifurcation_machine.py"
