"""The machine columns every cost and bifurcation row carries (relulab.experiments.machine)."""

import torch

from relulab.experiments import machine


def test_columns_record_this_process_machine_under_one_set_of_names():
    found = machine.columns("cpu")
    assert list(found) == machine.COLUMNS
    assert found["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert found["torch_version"] == torch.__version__
    assert found["threads"] == torch.get_num_threads()
    assert found["cpu_model"]
    assert found["gpu"] == "" and found["tf32"] == ""
    # The BLAS named as torch's build configuration names it.
    assert f"BLAS_INFO={found['blas'].split()[0]}" in torch.__config__.show()


def test_kernel_env_lists_only_kernel_path_variables_sorted():
    environ = {"PATH": "/bin", "MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2", "X": "1"}
    assert machine.kernel_env(environ) == "ATEN_CPU_CAPABILITY=avx2;MKL_CBWR=COMPATIBLE"
    assert machine.kernel_env({"PATH": "/bin"}) == ""


def test_kernel_env_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    assert "MKL_CBWR=COMPATIBLE" in machine.columns()["env"].split(";")


def test_describe_names_the_cpu_its_capability_and_what_was_set():
    row = {**machine.columns(), "env": "MKL_CBWR=COMPATIBLE"}
    line = machine.describe(row)
    assert row["cpu_model"] in line and row["cpu_capability"] in line
    assert "MKL_CBWR=COMPATIBLE" in line
    gpu = machine.describe({**row, "gpu": "NVIDIA H100", "tf32": "off"})
    assert gpu.startswith("NVIDIA H100 (TF32 off)")
