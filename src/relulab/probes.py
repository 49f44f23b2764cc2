"""Alias kept for existing imports: ``relulab.probes`` is ``relulab.nn.probes``."""

import sys

from relulab.nn import probes as _module

sys.modules[__name__] = _module
