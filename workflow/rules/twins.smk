rule zero_grad_control:
    input:
        data=DATA_FILE,
    output:
        # Lists the controls; each one's epochs.csv, layers.csv and point.json are written
        # to results/controls/<point>/ as it finishes.
        str(paths.CONTROLS / "manifest.json"),
    log:
        logfile("zero_grad_control"),
    conda:
        "../envs/relulab.yaml"
    threads: 1
    resources:
        gpu=gpus(STUDY.training.device),
    params:
        points=control_points(),
    script:
        "../scripts/zero_grad_control.py"


rule zero_grad_effect:
    input:
        trained(),
        control_manifest(),
    output:
        csv=table("zero_grad_effect"),
        md=table("zero_grad_effect", "md"),
        html=report(
            table("zero_grad_effect", "html"),
            caption="../report/zero_grad_effect_table.rst",
            category="Q1 ReLU'(0)",
            labels={"table": "zero_grad twins per grid point"},
        ),
        figure=report(
            figure("zero_grad_effect"),
            caption="../report/zero_grad_effect.rst",
            category="Q1 ReLU'(0)",
            labels={"figure": "f'(0)=0 against f'(0)=1: where twins part"},
        ),
        svg=figure("zero_grad_effect", "svg"),
    log:
        logfile("zero_grad_effect"),
    localrule: True
    conda:
        "../envs/relulab.yaml"
    params:
        run_dirs=run_dirs(),
        control_dirs=expand(
            str(paths.CONTROLS / "{point}"), point=[p.id for p in control_points()]
        ),
    script:
        "../scripts/twins.py"
