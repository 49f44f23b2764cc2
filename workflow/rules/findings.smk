from pathlib import Path

# Q1 tables the findings read: the zero_grad twins, and the bifurcation study when enabled.
Q1_TABLES = {"zero_grad_effect": table("zero_grad_effect")}
if STUDY.experiments.bifurcation["enabled"]:
    Q1_TABLES["bifurcation"] = table("bifurcation")
# Q2 tables of experiments that may be switched off.
Q2_TABLES = {}
if STUDY.experiments.born_dead["enabled"]:
    Q2_TABLES["born_dead"] = table("born_dead")
# Whole-step cost and, with the bifurcation, its equal-rate test and its two GEMM paths side by
# side: inputs of the findings (the findings script still says "not measured" for a table a
# study does not make).
OPTIONAL_TABLES = {"cost_step": table("cost_step")}
if STUDY.experiments.bifurcation["enabled"]:
    OPTIONAL_TABLES["bifurcation_rates"] = table("bifurcation_rates")
    OPTIONAL_TABLES["bifurcation_machine"] = table("bifurcation_machine")


rule dynamics_tables:
    input:
        epochs=table("epochs"),
        layers=table("layers"),
    output:
        death=table("death"),
        death_md=table("death", "md"),
        death_html=report(
            table("death", "html"),
            caption="../report/death.rst",
            category="Q2 Dead units",
            labels={"table": "death over time per grid point"},
        ),
        revival=table("revival"),
        revival_md=table("revival", "md"),
        revival_html=report(
            table("revival", "html"),
            caption="../report/revival.rst",
            category="Q2 Dead units",
            labels={"table": "revival per layer"},
        ),
        gradient=table("gradient_flow"),
        gradient_md=table("gradient_flow", "md"),
        gradient_html=report(
            table("gradient_flow", "html"),
            caption="../report/gradient_flow.rst",
            category="Q3 Gradient flow",
            labels={"table": "gradient norm per layer"},
        ),
        convergence=table("convergence"),
        convergence_md=table("convergence", "md"),
        convergence_html=report(
            table("convergence", "html"),
            caption="../report/convergence_table.rst",
            category="Q3 Convergence",
            labels={"table": "convergence per grid point"},
        ),
        convergence_runs=table("convergence_runs"),
        best_lr=table("convergence_best_lr"),
        best_lr_md=table("convergence_best_lr", "md"),
        best_lr_html=report(
            table("convergence_best_lr", "html"),
            caption="../report/convergence_best_lr.rst",
            category="Q3 Convergence",
            labels={"table": "best learning rate on held-out seeds"},
        ),
        revival_pooled=table("revival_pooled"),
        revival_pooled_md=table("revival_pooled", "md"),
        revival_pooled_html=report(
            table("revival_pooled", "html"),
            caption="../report/revival_pooled.rst",
            category="Q2 Dead units",
            labels={"table": "revival by cause, pooled over grid points"},
        ),
    log:
        logfile("dynamics_tables"),
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        target=STUDY.experiments.convergence_target,
    script:
        "../scripts/dynamics_tables.py"


rule dynamics_figures:
    input:
        layers=table("layers"),
        convergence=table("convergence"),
    output:
        death_over_time=report(
            figure("death_over_time"),
            caption="../report/death_over_time.rst",
            category="Q2 Dead units",
            labels={
                "figure": "dead, revived and permanently dead units over training"
            },
        ),
        death_by_layer=report(
            figure("death_by_layer"),
            caption="../report/death_by_layer.rst",
            category="Q2 Dead units",
            labels={"figure": "dead units: first hidden layer against deeper ones"},
        ),
        gradient_by_depth=report(
            figure("gradient_by_depth"),
            caption="../report/gradient_by_depth.rst",
            category="Q3 Gradient flow",
            labels={"figure": "gradient norm by layer and depth"},
        ),
        convergence=report(
            figure("convergence"),
            caption="../report/convergence.rst",
            category="Q3 Convergence",
            labels={"figure": "convergence: speed, epochs to target, depth"},
        ),
        svgs=expand(
            figure("{name}", "svg"),
            name=[
                "death_over_time",
                "death_by_layer",
                "gradient_by_depth",
                "convergence",
            ],
        ),
    log:
        logfile("dynamics_figures"),
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        main_ids=[point.id for point in grid.main_grid(STUDY)],
        depth_ids=[point.id for point in grid.depth_study_points(STUDY)],
    script:
        "../scripts/dynamics_figures.py"


rule findings:
    input:
        summary=table("summary"),
        epochs=table("epochs"),
        layers=table("layers"),
        death=table("death"),
        revival=table("revival"),
        gradient=table("gradient_flow"),
        convergence=table("convergence"),
        best_lr=table("convergence_best_lr"),
        revival_pooled=table("revival_pooled"),
        cost=table("cost"),
        q1=list(Q1_TABLES.values()),
        q2=list(Q2_TABLES.values()),
        optional=list(OPTIONAL_TABLES.values()),
        figures=rules.dynamics_figures.output,
    output:
        markdown=str(paths.FINDINGS),
        html=report(
            str(paths.FINDINGS_HTML),
            caption="../report/findings.rst",
            category="Findings",
            labels={"report": "findings: summary, claims, every question"},
        ),
    log:
        logfile("findings"),
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        main_ids=[point.id for point in grid.main_grid(STUDY)],
        depth_ids=[point.id for point in grid.depth_study_points(STUDY)],
        q1_tables=Q1_TABLES,
        q2_tables=Q2_TABLES,
        optional_tables=OPTIONAL_TABLES,
    script:
        "../scripts/findings.py"


rule track_study:
    input:
        study_outputs(),
    output:
        str(paths.STUDY_RUN),
    log:
        logfile("track_study"),
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        uri=TRACKING_URI,
        experiment=STUDY.tracking.experiment,
    script:
        "../scripts/track_study.py"


onsuccess:
    if Path(str(paths.FINDINGS)).exists():
        print(
            f"\nrelulab: study {STUDY.name} is complete. Where to look:\n"
            "  findings  results/findings.md (each question, its answer and verdict)\n"
            "  figures   results/figures/, tables results/tables/\n"
            "  report    snakemake --report results/report.zip, unzip it in results/, open\n"
            "            results/report/report.html (findings linked to figures and tables)\n"
            "  MLflow    relulab ui (it prints the address of the runs' charts)\n"
        )


onerror:
    print(
        "relulab: the study stopped; rerun the same command to resume "
        "(finished grid points are kept, interrupted ones resume from their checkpoint)."
    )
