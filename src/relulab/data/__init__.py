"""Datasets: generated (MNIST-1D, digits) or read from downloaded files, prepared once per study."""

from relulab.data.prepared import DOWNLOADED, GENERATORS, Split, load, prepare

__all__ = ["DOWNLOADED", "GENERATORS", "Split", "load", "prepare"]
