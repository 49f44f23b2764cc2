"""Alias kept for existing imports: ``relulab.activations`` is ``relulab.nn.activations``."""

import sys

from relulab.nn import activations as _module

sys.modules[__name__] = _module
