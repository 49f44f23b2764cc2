rule definitions:
    input:
        workflow.source_path("../../docs/definitions.rst"),
    output:
        report(
            str(paths.DEFINITIONS),
            caption="../report/definitions.rst",
            category="Reference: Definitions",
            labels={"page": "definitions: dead, inactive, revived, f'(0), statistics"},
        ),
    log:
        logfile("definitions"),
    localrule: True
    conda:
        "../envs/relulab.yaml"
    script:
        "../scripts/definitions.py"
