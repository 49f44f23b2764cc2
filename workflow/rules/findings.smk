from pathlib import Path

# Q1 tables the findings read: the zero_grad twins, and the bifurcation study when enabled.
Q1_TABLES = {"zero_grad_effect": "results/tables/zero_grad_effect.csv"}
if config["bifurcation"]["enabled"]:
    Q1_TABLES["bifurcation"] = "results/tables/bifurcation.csv"
# Q2 tables of experiments that may be switched off.
Q2_TABLES = {}
if config["born_dead"]["enabled"]:
    Q2_TABLES["born_dead"] = "results/tables/born_dead.csv"
# Whole-step cost and, with the bifurcation, its equal-rate test and its two GEMM paths side by
# side: inputs of the findings (the findings script still says "not measured" for a table a
# study does not make).
OPTIONAL_TABLES = {"cost_step": "results/tables/cost_step.csv"}
if config["bifurcation"]["enabled"]:
    OPTIONAL_TABLES["bifurcation_rates"] = "results/tables/bifurcation_rates.csv"
    OPTIONAL_TABLES["bifurcation_machine"] = "results/tables/bifurcation_machine.csv"


rule dynamics_tables:
    input:
        epochs="results/tables/epochs.csv",
        layers="results/tables/layers.csv",
    output:
        death="results/tables/death.csv",
        death_md="results/tables/death.md",
        death_html=report(
            "results/tables/death.html",
            caption="../report/death.rst",
            category="Q2 Dead units",
            labels={"table": "death over time per grid point"},
        ),
        revival="results/tables/revival.csv",
        revival_md="results/tables/revival.md",
        revival_html=report(
            "results/tables/revival.html",
            caption="../report/revival.rst",
            category="Q2 Dead units",
            labels={"table": "revival per layer"},
        ),
        gradient="results/tables/gradient_flow.csv",
        gradient_md="results/tables/gradient_flow.md",
        gradient_html=report(
            "results/tables/gradient_flow.html",
            caption="../report/gradient_flow.rst",
            category="Q3 Gradient flow",
            labels={"table": "gradient norm per layer"},
        ),
        convergence="results/tables/convergence.csv",
        convergence_md="results/tables/convergence.md",
        convergence_html=report(
            "results/tables/convergence.html",
            caption="../report/convergence_table.rst",
            category="Q3 Convergence",
            labels={"table": "convergence per grid point"},
        ),
        convergence_runs="results/tables/convergence_runs.csv",
        best_lr="results/tables/convergence_best_lr.csv",
        best_lr_md="results/tables/convergence_best_lr.md",
        best_lr_html=report(
            "results/tables/convergence_best_lr.html",
            caption="../report/convergence_best_lr.rst",
            category="Q3 Convergence",
            labels={"table": "best learning rate on held-out seeds"},
        ),
        revival_pooled="results/tables/revival_pooled.csv",
        revival_pooled_md="results/tables/revival_pooled.md",
        revival_pooled_html=report(
            "results/tables/revival_pooled.html",
            caption="../report/revival_pooled.rst",
            category="Q2 Dead units",
            labels={"table": "revival by cause, pooled over grid points"},
        ),
    log:
        "results/logs/dynamics_tables.log",
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        target=config["convergence"]["target_accuracy"],
    script:
        "../scripts/dynamics_tables.py"


rule dynamics_figures:
    input:
        layers="results/tables/layers.csv",
        convergence="results/tables/convergence.csv",
    output:
        death_over_time=report(
            "results/figures/death_over_time.png",
            caption="../report/death_over_time.rst",
            category="Q2 Dead units",
            labels={
                "figure": "dead, revived and permanently dead units over training"
            },
        ),
        death_by_layer=report(
            "results/figures/death_by_layer.png",
            caption="../report/death_by_layer.rst",
            category="Q2 Dead units",
            labels={"figure": "dead units: first hidden layer against deeper ones"},
        ),
        gradient_by_depth=report(
            "results/figures/gradient_by_depth.png",
            caption="../report/gradient_by_depth.rst",
            category="Q3 Gradient flow",
            labels={"figure": "gradient norm by layer and depth"},
        ),
        convergence=report(
            "results/figures/convergence.png",
            caption="../report/convergence.rst",
            category="Q3 Convergence",
            labels={"figure": "convergence: speed, epochs to target, depth"},
        ),
        svgs=expand(
            "results/figures/{name}.svg",
            name=[
                "death_over_time",
                "death_by_layer",
                "gradient_by_depth",
                "convergence",
            ],
        ),
    log:
        "results/logs/dynamics_figures.log",
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        main_ids=[point.id for point in grid.main_grid(config)],
        depth_ids=[point.id for point in grid.depth_study_points(config)],
    script:
        "../scripts/dynamics_figures.py"


rule findings:
    input:
        summary="results/tables/summary.csv",
        epochs="results/tables/epochs.csv",
        layers="results/tables/layers.csv",
        death="results/tables/death.csv",
        revival="results/tables/revival.csv",
        gradient="results/tables/gradient_flow.csv",
        convergence="results/tables/convergence.csv",
        best_lr="results/tables/convergence_best_lr.csv",
        revival_pooled="results/tables/revival_pooled.csv",
        cost="results/tables/cost.csv",
        q1=list(Q1_TABLES.values()),
        q2=list(Q2_TABLES.values()),
        optional=list(OPTIONAL_TABLES.values()),
        figures=rules.dynamics_figures.output,
    output:
        markdown="results/findings.md",
        html=report(
            "results/findings.html",
            caption="../report/findings.rst",
            category="Findings",
            labels={"report": "findings: summary, claims, every question"},
        ),
    log:
        "results/logs/findings.log",
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        main_ids=[point.id for point in grid.main_grid(config)],
        depth_ids=[point.id for point in grid.depth_study_points(config)],
        q1_tables=Q1_TABLES,
        q2_tables=Q2_TABLES,
        optional_tables=OPTIONAL_TABLES,
    script:
        "../scripts/findings.py"


rule track_study:
    input:
        study_outputs(),
    output:
        "results/mlflow/study.json",
    log:
        "results/logs/track_study.log",
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        uri=TRACKING_URI,
        experiment=config["study"],
    script:
        "../scripts/track_study.py"


onsuccess:
    if Path("results/findings.md").exists():
        print(
            f"\nrelulab: study {config['study']} is complete. Where to look:\n"
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
