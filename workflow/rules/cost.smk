rule activation_cost:
    output:
        csv="results/tables/cost.csv",
        md="results/tables/cost.md",
        html=report(
            "results/tables/cost.html",
            caption="../report/cost_table.rst",
            category="Q3 Cost",
            labels={"table": "activation cost"},
        ),
        figure=report(
            "results/figures/cost.png",
            caption="../report/cost.rst",
            category="Q3 Cost",
            labels={"figure": "activation cost"},
        ),
        svg="results/figures/cost.svg",
    log:
        "results/logs/activation_cost.log",
    conda:
        "../envs/relulab.yaml"
    # Both cores of the default machine, so that no training job runs beside the timing
    # (the timing itself uses one thread).
    threads: 2
    params:
        settings=STUDY.experiments.cost,
    script:
        "../scripts/activation_cost.py"


rule training_step_cost:
    input:
        data=DATA_FILE,
    output:
        csv="results/tables/cost_step.csv",
        md="results/tables/cost_step.md",
        html=report(
            "results/tables/cost_step.html",
            caption="../report/cost_step_table.rst",
            category="Q3 Cost",
            labels={"table": "training step cost"},
        ),
        figure=report(
            "results/figures/cost_step.png",
            caption="../report/cost_step.rst",
            category="Q3 Cost",
            labels={"figure": "training step cost"},
        ),
        svg="results/figures/cost_step.svg",
    log:
        "results/logs/training_step_cost.log",
    conda:
        "../envs/relulab.yaml"
    # Both cores, as for the per-element timing: nothing trains beside it.
    threads: 2
    params:
        settings=STUDY.experiments.cost,
        activations=list(STUDY.main.activations),
        zero_grads=list(STUDY.main.zero_grads),
        # The optimizers the study trains with, in the order its points first use them.
        optimizers=list(dict.fromkeys(point.optimizer for point in POINTS.values())),
        batch_size=STUDY.training.batch_size,
        width=STUDY.model.width,
        depth=STUDY.main.depths[0],
    script:
        "../scripts/training_step_cost.py"
