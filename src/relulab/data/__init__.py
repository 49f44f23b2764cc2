"""Datasets: generated (MNIST-1D, digits) or read from downloaded files, prepared once per study.

The names below load ``relulab.data.prepared`` (and torch) on first use only, so that
``relulab.data.vision`` (file checks the workflow makes while parsing) imports without torch.
"""

import importlib

__all__ = ["DOWNLOADED", "GENERATORS", "Split", "load", "prepare"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("relulab.data.prepared"), name)
    raise AttributeError(f"module 'relulab.data' has no attribute {name!r}")
