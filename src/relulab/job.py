"""Alias kept for existing imports: ``relulab.job`` is ``relulab.train.job``."""

import sys

from relulab.train import job as _module

sys.modules[__name__] = _module
