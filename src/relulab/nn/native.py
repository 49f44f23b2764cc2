"""relulab's compiled operators: ReLU and Leaky ReLU with f'(0) := zero_grad, one-pass backward.

``operators()`` returns ``torch.ops.relulab.relu_zero_grad`` and ``leaky_relu_zero_grad``
(source in ``csrc/zero_grad.cpp``), building them with PyTorch's C++ extension tools on first
use (about 20 seconds on two cores; the build is cached per PyTorch version and rebuilt when the
source changes), or ``None`` when they cannot be built, with one warning naming the reason:
relulab then uses its Python implementation, which computes the same gradients more slowly on
small tensors. ``RELULAB_NATIVE=0`` turns them off. ``python -m relulab.nn.native`` builds them
ahead of time (``bin/setup`` does) and says whether they are available.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

import torch

SOURCE = Path(__file__).with_name("csrc") / "zero_grad.cpp"
NAME = "relulab_zero_grad"
DISABLE = "RELULAB_NATIVE"
# Built without -march=native: a build directory on a shared home may serve several CPU models.
CFLAGS = ["-O3", "-fno-trapping-math"]


class NativeUnavailableError(RuntimeError):
    """The compiled operators cannot be built or loaded here."""


class Operators(NamedTuple):
    relu: torch._ops.OpOverload  # (x, zero_grad)
    leaky_relu: torch._ops.OpOverload  # (x, negative_slope, zero_grad)


def openmp_flags() -> list[str]:
    """-fopenmp where PyTorch's own thread pool is OpenMP's (its Linux wheels): at::parallel_for
    then splits the loop over PyTorch's threads; without the flag it runs on one thread. The
    extension links the libgomp PyTorch has already loaded (same soname)."""
    if sys.platform.startswith("linux") and torch.backends.openmp.is_available():
        return ["-fopenmp"]
    return []


def build_directory() -> Path:
    """Where the operators are built: one directory per PyTorch version and Python version."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions"
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    return Path(root) / f"relulab-torch{torch.__version__}-{python}"


def _find_ninja() -> None:
    """Put the environment's own ninja (the ``ninja`` package) on PATH if none is there."""
    if shutil.which("ninja"):
        return
    environment_bin = Path(sys.executable).parent
    if (environment_bin / "ninja").exists():
        os.environ["PATH"] = f"{environment_bin}{os.pathsep}{os.environ.get('PATH', '')}"


@contextlib.contextmanager
def _one_process_at_a_time(directory: Path):
    """Hold an advisory lock on the build directory (released by the kernel if we die).

    Training jobs started together all load the operators. PyTorch before 2.14 serialises its
    builds with a lock file whose mere existence blocks, so a build killed half-way (a job
    cancelled while compiling) would hang every later job; under this lock no other relulab
    process is building, so such a file is stale and is removed.
    """
    with open(directory / "relulab.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            (directory / "lock").unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(verbose: bool = False) -> Operators:
    """Build (or load the cached build of) the operators; raise ``NativeUnavailableError``."""
    if os.environ.get(DISABLE, "1") == "0":
        raise NativeUnavailableError(f"turned off by {DISABLE}=0")
    _find_ninja()
    # Importing the extension tools on a machine without CUDA logs a warning about CUDA_HOME
    # that does not concern CPU-only operators.
    tools_logger = logging.getLogger("torch.utils.cpp_extension")
    level = tools_logger.level
    tools_logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension

        directory = build_directory()
        directory.mkdir(parents=True, exist_ok=True)
        with _one_process_at_a_time(directory):
            cpp_extension.load(
                name=NAME,
                sources=[str(SOURCE)],
                extra_cflags=CFLAGS + openmp_flags(),
                extra_ldflags=openmp_flags(),
                build_directory=str(directory),
                is_python_module=False,
                verbose=verbose,
            )
    except Exception as error:  # a missing compiler, ninja or header: all mean "not here"
        raise NativeUnavailableError(f"{type(error).__name__}: {error}".strip()) from error
    finally:
        tools_logger.setLevel(level)
    return Operators(
        relu=torch.ops.relulab.relu_zero_grad.default,
        leaky_relu=torch.ops.relulab.leaky_relu_zero_grad.default,
    )


@functools.cache
def operators() -> Operators | None:
    """The compiled operators, or None (with one warning per process) if unavailable."""
    try:
        return build()
    except NativeUnavailableError as reason:
        if os.environ.get(DISABLE) != "0":
            warnings.warn(
                f"relulab's compiled zero-gradient operators are unavailable ({reason}); "
                "using the Python implementation (same gradients, slower on small tensors)",
                RuntimeWarning,
                stacklevel=2,
            )
        return None


def main() -> int:
    try:
        build(verbose="--verbose" in sys.argv[1:])
    except NativeUnavailableError as reason:
        print(f"relulab: compiled zero-gradient operators unavailable: {reason}", file=sys.stderr)
        print("relulab: the Python implementation will be used", file=sys.stderr)
        return 1
    print(f"relulab: compiled zero-gradient operators ready in {build_directory()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
