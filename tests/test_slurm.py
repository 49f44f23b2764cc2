"""The smoke study on a real SLURM cluster through workflow/profiles/slurm.

Needs a running cluster whose nodes see this machine's /tmp (the one-node cluster of
.ci/start-slurm). Without one the tests are skipped, except in CI (CI=true), where they fail.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.ci import in_ci
from helpers.workflow import check_study, scratch_copy, snakemake, study_config

from relulab.study import grid, paths

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

PROFILE = "workflow/profiles/slurm"
# The profile as it stands, adapted to a one-node cluster without an accounting database
# (job states from squeue) whose jobs take seconds.
CLUSTER_OVERRIDES = [
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "2",
    "--slurm-keep-successful-logs",
    "--default-resources",
    "mem_mb=500",
    "runtime=10",
    "--set-resources",
    "train:mem_mb=500",
]
# The compute rules, submitted to the cluster; everything else (data, the MLflow experiment,
# aggregation, tables, plots) is a localrule and runs where snakemake runs. And every training
# job's train_<job>.
# Compute jobs other than training: measurements that belong on the cluster's nodes.
CLUSTER_RULES = {
    "zero_grad_control",
    "bifurcation",
    "bifurcation_other_gemm_path",
    "born_dead",
    "activation_cost",
    "training_step_cost",
}
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")


def cluster_problem() -> str | None:
    """Why no SLURM cluster can take jobs from here, or None when one can."""
    if shutil.which("sinfo") is None:
        return "sinfo is not installed"
    try:
        result = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "sinfo timed out"
    if result.returncode != 0:
        return f"sinfo failed: {result.stderr.strip()}"
    states = result.stdout.split()
    if not any(s.rstrip("*~#") in ("idle", "mixed", "allocated", "completing") for s in states):
        return f"no node takes jobs (node states: {states or 'none'})"
    return None


def slurm_jobs(log: str) -> dict[str, dict]:
    """SLURM's record (finished jobs included) of every job a Snakemake log says it submitted."""
    submitted = [job_id for job_id, _ in SUBMITTED.findall(log)]
    assert submitted, "no job was submitted to SLURM"
    fields = "JobID:0|,State:0|,Comment:0|,WorkDir:0|,tres-per-job:0"
    result = subprocess.run(
        ["squeue", "--states=all", "-h", "-j", ",".join(submitted), "-O", fields],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    jobs = {}
    for line in result.stdout.splitlines():
        job_id, state, comment, workdir, tres = line.strip().split("|")
        rule = comment.removeprefix("rule_").split("_wildcards_")[0]
        wildcards = comment.partition("_wildcards_")[2]
        jobs[job_id] = {
            "state": state,
            "rule": rule,
            "wildcards": wildcards,
            "workdir": workdir,
            "gpus": tres,
        }
    assert sorted(jobs) == sorted(submitted), "SLURM knows every job Snakemake submitted"
    return jobs


def cancel_jobs_under(folder: Path) -> None:
    """Cancel queued or running jobs of a test run that did not end by itself."""
    result = subprocess.run(
        ["squeue", "-h", "-o", "%i|%Z"], capture_output=True, text=True, timeout=30
    )
    ids = [
        job_id
        for job_id, job_workdir in (line.split("|", 1) for line in result.stdout.splitlines())
        if job_workdir.startswith(str(folder))
    ]
    if ids:
        subprocess.run(["scancel", *ids], timeout=30)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    problem = cluster_problem()
    if problem and in_ci():
        pytest.fail(f"CI needs a SLURM cluster (start it with .ci/start-slurm): {problem}")
    if problem:
        pytest.skip(f"no SLURM cluster reachable ({problem}); start one with .ci/start-slurm")
    folder = tmp_path_factory.mktemp("slurm").resolve()
    yield folder
    cancel_jobs_under(folder)


@pytest.fixture(scope="module")
def slurm_study(scratch):
    workdir = scratch_copy(scratch / "study")
    result = snakemake(
        workdir,
        "--workflow-profile",
        PROFILE,
        "--configfile",
        "config/smoke.yaml",
        *CLUSTER_OVERRIDES,
        timeout=900,
    )
    return workdir, result.stdout + result.stderr


def test_outputs_and_mlflow_runs_are_those_of_a_local_run(slurm_study):
    workdir, _ = slurm_study
    check_study(workdir, study_config(workdir))


def training_rules(config: dict) -> set[str]:
    return {f"train_{re.sub('[^A-Za-z0-9_]', '_', name)}" for name in grid.jobs(config)}


def test_every_training_job_ran_through_slurm(slurm_study):
    workdir, log = slurm_study
    rules = training_rules(study_config(workdir))
    jobs = slurm_jobs(log)
    assert all(job["workdir"] == str(workdir) for job in jobs.values()), jobs
    assert all(job["state"] == "COMPLETED" for job in jobs.values()), jobs
    trained = {job["rule"]: job_id for job_id, job in jobs.items() if job["rule"] in rules}
    assert set(trained) == rules
    # A CPU study asks for no GPU.
    assert all(jobs[job_id]["gpus"] == "N/A" for job_id in trained.values()), jobs
    # SLURM wrote each job's output where the README says.
    logs = dict(SUBMITTED.findall(log))
    for rule, job_id in trained.items():
        slurm_log = workdir / ".snakemake/slurm_logs" / f"rule_{rule}" / f"{job_id}.log"
        assert Path(logs[job_id]) == slurm_log
        assert f"rule {rule}:" in slurm_log.read_text() or f"Rule: {rule}" in slurm_log.read_text()


def test_aggregation_and_plotting_stay_local(slurm_study):
    _, log = slurm_study
    submitted_rules = {
        job["rule"] for job in slurm_jobs(log).values() if not job["rule"].startswith("train_")
    }
    assert submitted_rules <= CLUSTER_RULES, (
        f"{submitted_rules - CLUSTER_RULES} went to SLURM: mark them `localrule: True`, "
        "or add them to CLUSTER_RULES when they are compute jobs"
    )
    for rule in ("prepare_data", "init_tracking", "summarize", "plot_study", "findings"):
        assert f"localrule {rule}:" in log


def test_training_asks_for_a_gpu_when_the_config_trains_on_cuda(slurm_study, scratch):
    workdir, _ = slurm_study
    copy = scratch / "cuda"
    shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("slurm_logs"))
    first = next(iter(grid.jobs(study_config(copy)).values()))[0]
    target = str(paths.point_summary(first.id))
    # A finished point is no job's output: make this one due again so that its job is planned.
    (copy / target).unlink()
    result = snakemake(
        copy,
        "--workflow-profile",
        PROFILE,
        "--configfile",
        "config/smoke.yaml",
        *CLUSTER_OVERRIDES,
        "--config",
        "training={device: cuda}",
        "--forcerun",
        target,
        "--retries",
        "0",
        "--verbose",
        target,
        check=False,
        timeout=300,
    )
    # A GPU-less cluster refuses the job; one with GPUs runs it. Either way sbatch was asked.
    calls = [line for line in (result.stdout + result.stderr).splitlines() if "sbatch " in line]
    train_calls = [call for call in calls if "rule_train_" in call]
    assert train_calls, result.stdout[-3000:] + result.stderr[-3000:]
    assert all("--gpus=1" in call for call in train_calls)
