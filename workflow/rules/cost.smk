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
        settings=config["cost"],
    script:
        "../scripts/activation_cost.py"
