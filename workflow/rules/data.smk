rule prepare_data:
    output:
        str(paths.dataset("{dataset}")),
    log:
        logfile("prepare_data/{dataset}"),
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        seed=STUDY.data.seed,
        data_dir=DATA_DIR,
        accept_unverified=STUDY.data.accept_unverified,
    script:
        "../scripts/prepare_data.py"


# The MLflow store and the study's experiment, made once; finished points whose runs it lacks
# (a store made again) are sent to it from results/runs/, verified point by point.
rule init_tracking:
    output:
        EXPERIMENT_MARKER,
    log:
        logfile("init_tracking"),
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        uri=TRACKING_URI,
        experiment=STUDY.tracking.experiment,
        artifact_root=str(paths.ARTIFACTS),
        report=False,
    script:
        "../scripts/init_tracking.py"


if REBUILD_REPORT:

    # A lost store made again, or an interrupted rebuild finished: every finished point is
    # verified against its files and re-sent where its runs are missing or incomplete.
    rule rebuild_store:
        input:
            EXPERIMENT_MARKER,
        output:
            REBUILD_REPORT,
        log:
            logfile("rebuild_store"),
        localrule: True
        conda:
            "../envs/relulab.yaml"
        params:
            uri=TRACKING_URI,
            experiment=STUDY.tracking.experiment,
            artifact_root=str(paths.ARTIFACTS),
            report=True,
        script:
            "../scripts/init_tracking.py"
