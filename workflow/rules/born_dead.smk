BORN_DEAD = STUDY.experiments.born_dead


rule born_dead:
    input:
        data=DATA_FILE,
    output:
        networks="results/tables/born_dead_networks.csv",
        csv="results/tables/born_dead.csv",
        md="results/tables/born_dead.md",
        html=report(
            "results/tables/born_dead.html",
            caption="../report/born_dead_table.rst",
            category="Q2 Dead units",
            labels={"table": "born dead per init, width and depth"},
        ),
        figure=report(
            "results/figures/born_dead.png",
            caption="../report/born_dead.rst",
            category="Q2 Dead units",
            labels={"figure": "born dead against depth, per init and width"},
        ),
        svg="results/figures/born_dead.svg",
    log:
        "results/logs/born_dead.log",
    conda:
        "../envs/relulab.yaml"
    threads: 1
    params:
        settings=BORN_DEAD,
    script:
        "../scripts/born_dead.py"
