rule train:
    input:
        data=f"results/data/{config['dataset']}.npz",
        tracking="results/mlflow/experiment.json",
    output:
        # Lists the job's points; each point's epochs.csv, layers.csv and point.json are
        # written to results/runs/<point>/ as it finishes.
        "results/batches/{batch}.json",
    log:
        "results/logs/train/{batch}.log",
    conda:
        "../envs/relulab.yaml"
    threads: 1
    resources:
        # sbatch --gpus (workflow/profiles/slurm); local runs ignore it.
        gpu=gpus(config["training"]["device"]),
    params:
        points=points_of,
        uri=TRACKING_URI,
    script:
        "../scripts/train.py"
