rule summarize:
    input:
        trained(),
    output:
        csv="results/tables/summary.csv",
        md="results/tables/summary.md",
        html=report(
            "results/tables/summary.html",
            caption="../report/summary.rst",
            category="Q2 Dead units",
            labels={"table": "summary per grid point"},
        ),
        epochs="results/tables/epochs.csv",
        layers="results/tables/layers.csv",
        provenance="results/tables/provenance.json",
    log:
        "results/logs/summarize.log",
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        run_dirs=run_dirs(),
    script:
        "../scripts/summarize.py"
