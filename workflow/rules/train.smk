# One rule per training job: its outputs are its points' files, declared here where they are
# produced, so Snakemake knows each point. Only unfinished points are dealt into jobs
# (common.smk), so a finished point's files are inputs of later rules and are never rewritten.
for job_name, job_points in JOBS.items():

    rule:
        name:
            f"train_{re.sub('[^A-Za-z0-9_]', '_', job_name)}"
        input:
            data=DATA_FILE,
            tracking=tracking_ready(),
        output:
            [path for point in job_points for path in paths.point_files(point.id)],
        log:
            str(paths.train_log(job_name)),
        conda:
            "../envs/relulab.yaml"
        threads: 1
        resources:
            **train_resources(),
            # sbatch --gpus (workflow/profiles/slurm); local runs ignore it.
            gpu=gpus(STUDY.training.device),
        params:
            points=job_points,
            # A changed fingerprint (settings) makes Snakemake train the point again.
            fingerprints=[grid.fingerprint(point, STUDY) for point in job_points],
            uri=TRACKING_URI,
        script:
            "../scripts/train.py"
