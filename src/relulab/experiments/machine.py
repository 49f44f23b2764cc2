"""The machine a timing or a bitwise result was measured on, as table columns.

Kernel timings, exact zeros and f'(0) twins depend on the kernel path: the CPU model and the
instruction set ATen dispatches to (``torch.backends.cpu.get_cpu_capability()``: AVX2 or
AVX-512), the BLAS and its code path (MKL reads ``MKL_CBWR`` when it loads), the thread count,
and on a GPU its name and whether float32 matmuls may use TF32. ``columns`` records them with
one set of names, so that every row such a number appears in (the cost tables, each bifurcation
cell) says where it holds.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import torch

# Environment variables that choose a kernel path when the library loads: MKL's conditional
# numerical reproducibility (MKL_CBWR) and threads, ATen's CPU capability
# (ATEN_CPU_CAPABILITY), OpenBLAS's core type, oneDNN's instruction set.
ENV_PREFIXES = ("MKL_", "ATEN_", "OPENBLAS_", "DNNL_", "ONEDNN_")
COLUMNS = [
    "cpu_model",
    "cpu_capability",
    "torch_version",
    "blas",
    "threads",
    "env",
    "gpu",
    "tf32",
]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if found:
            return found.group(1).strip()
    return platform.processor() or platform.machine()


def blas() -> str:
    """The BLAS this torch was built with (``BLAS_INFO`` of ``torch.__config__.show()``),
    with MKL's version when MKL is the one."""
    shown = torch.__config__.show()
    info = re.search(r"BLAS_INFO=([^,\s]+)", shown)
    name = info.group(1) if info else ("mkl" if torch.backends.mkl.is_available() else "unknown")
    version = re.search(r"Math Kernel Library Version (\S+)", shown)
    return f"{name} {version.group(1)}" if name == "mkl" and version else name


def kernel_env(environ: dict[str, str] | None = None) -> str:
    """The kernel-path variables set (``ENV_PREFIXES``), as ``K=V;K=V`` sorted, or ``""``."""
    environ = os.environ if environ is None else environ
    chosen = sorted(f"{k}={v}" for k, v in environ.items() if k.startswith(ENV_PREFIXES))
    return ";".join(chosen)


def columns(device: torch.device | str = "cpu") -> dict[str, str | int]:
    """``COLUMNS`` for a number measured on ``device`` in this process (``gpu`` and ``tf32``
    are empty on the CPU)."""
    device = torch.device(device)
    on_gpu = device.type == "cuda"
    return {
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_version": torch.__version__,
        "blas": blas(),
        "threads": torch.get_num_threads(),
        "env": kernel_env(),
        "gpu": torch.cuda.get_device_name(device) if on_gpu else "",
        "tf32": ("on" if torch.backends.cuda.matmul.allow_tf32 else "off") if on_gpu else "",
    }


def describe(row: dict) -> str:
    """One line for a caption or a verdict: where the numbers of ``row`` hold."""
    where = f"{row['cpu_model']} ({row['cpu_capability']}, {row['blas']}, {row['threads']} thr."
    if row.get("env"):
        where += f", {row['env']}"
    where += f"), torch {row['torch_version']}"
    if row.get("gpu"):
        where = f"{row['gpu']} (TF32 {row['tf32']}) on {where}"
    return where
