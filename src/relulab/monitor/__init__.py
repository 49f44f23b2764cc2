"""A dead-unit monitor for anyone's network: relulab's measurements on any ``nn.Module``.

    from relulab.monitor import Monitor, ProbeSet
    monitor = Monitor(model, ProbeSet.drawn(train_dataset))
    check = monitor.check(step)          # per layer and per unit
    check.metrics()                      # {"layer1/dead_fraction": ..., ...}

``relulab.monitor.callback.DeadUnitMonitor`` does this from a Lightning Trainer, and
``relulab audit`` for a saved model. Only activation *modules* are seen (see
``relulab.monitor.activations``).
"""

from relulab.monitor.activations import MONITORED_TYPES, NoActivationsError, activation_modules
from relulab.monitor.check import SECONDS_METRIC, Check, LayerCheck
from relulab.monitor.monitor import DEFAULT_CHUNK, Monitor, summed_cross_entropy
from relulab.monitor.probe import DEFAULT_SEED, DEFAULT_SIZE, EmptyProbeError, ProbeSet

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_SEED",
    "DEFAULT_SIZE",
    "MONITORED_TYPES",
    "SECONDS_METRIC",
    "Check",
    "EmptyProbeError",
    "LayerCheck",
    "Monitor",
    "NoActivationsError",
    "ProbeSet",
    "activation_modules",
    "summed_cross_entropy",
]
