"""Alias kept for existing imports: ``relulab.models`` is ``relulab.nn.models``."""

import sys

from relulab.nn import models as _module

sys.modules[__name__] = _module
