rule prepare_data:
    output:
        "results/data/{dataset}.npz",
    log:
        "results/logs/prepare_data/{dataset}.log",
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        seed=config["data_seed"],
    script:
        "../scripts/prepare_data.py"


rule init_tracking:
    output:
        "results/mlflow/experiment.json",
    log:
        "results/logs/init_tracking.log",
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        uri=TRACKING_URI,
        experiment=config["study"],
        artifact_root="results/mlartifacts",
    script:
        "../scripts/init_tracking.py"
