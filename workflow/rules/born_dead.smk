BORN_DEAD = STUDY.experiments.born_dead


rule born_dead:
    input:
        data=DATA_FILE,
    output:
        networks=table("born_dead_networks"),
        csv=table("born_dead"),
        md=table("born_dead", "md"),
        html=report(
            table("born_dead", "html"),
            caption="../report/born_dead_table.rst",
            category="Q2 Dead units",
            labels={"table": "born dead per init, width and depth"},
        ),
        figure=report(
            figure("born_dead"),
            caption="../report/born_dead.rst",
            category="Q2 Dead units",
            labels={"figure": "born dead against depth, per init and width"},
        ),
        svg=figure("born_dead", "svg"),
    log:
        logfile("born_dead"),
    conda:
        "../envs/relulab.yaml"
    threads: 1
    params:
        settings=BORN_DEAD,
    script:
        "../scripts/born_dead.py"
