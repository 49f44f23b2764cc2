"""Process environment settings that training needs undone while it runs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


@contextmanager
def cuda_check_without_nvml() -> Iterator[None]:
    """Undo, while inside, the ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` that importing Lightning sets.

    Lightning sets it so that checking for CUDA does not initialise CUDA before it forks worker
    processes; relulab trains in one process and forks none. With it set and no CUDA driver,
    every ``torch.cuda.is_available()`` tries NVML again (0.1-0.2 ms), and ``Adam.step`` asks
    once per step.
    """
    saved = os.environ.pop(_NVML_CHECK, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[_NVML_CHECK] = saved
