rule activation_cost:
    output:
        csv=table("cost"),
        md=table("cost", "md"),
        html=report(
            table("cost", "html"),
            caption="../report/cost_table.rst",
            category="Q3 Cost",
            labels={"table": "activation cost"},
        ),
        figure=report(
            figure("cost"),
            caption="../report/cost.rst",
            category="Q3 Cost",
            labels={"figure": "activation cost"},
        ),
        svg=figure("cost", "svg"),
    log:
        logfile("activation_cost"),
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
        csv=table("cost_step"),
        md=table("cost_step", "md"),
        html=report(
            table("cost_step", "html"),
            caption="../report/cost_step_table.rst",
            category="Q3 Cost",
            labels={"table": "training step cost"},
        ),
        figure=report(
            figure("cost_step"),
            caption="../report/cost_step.rst",
            category="Q3 Cost",
            labels={"figure": "training step cost"},
        ),
        svg=figure("cost_step", "svg"),
    log:
        logfile("training_step_cost"),
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
