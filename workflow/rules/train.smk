rule train:
    input:
        data=f"results/data/{config['dataset']}.npz",
        tracking="results/mlflow/experiment.json",
    output:
        epochs="results/runs/{point}/epochs.csv",
        layers="results/runs/{point}/layers.csv",
        summary="results/runs/{point}/point.json",
    log:
        "results/logs/train/{point}.log",
    conda:
        "../envs/relulab.yaml"
    threads: 1
    resources:
        # sbatch --gpus (workflow/profiles/slurm); local runs ignore it.
        gpu=gpus(config["training"]["device"]),
    params:
        point=point_of,
        uri=TRACKING_URI,
    script:
        "../scripts/train.py"
