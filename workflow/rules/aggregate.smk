rule summarize:
    input:
        trained(),
    output:
        csv=table("summary"),
        md=table("summary", "md"),
        html=report(
            table("summary", "html"),
            caption="../report/summary.rst",
            category="Q2 Dead units",
            labels={"table": "summary per grid point"},
        ),
        epochs=table("epochs"),
        layers=table("layers"),
        provenance=table("provenance", "json"),
    log:
        logfile("summarize"),
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        run_dirs=run_dirs(),
    script:
        "../scripts/summarize.py"
