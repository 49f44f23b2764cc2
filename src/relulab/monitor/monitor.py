"""The dead-unit monitor for any ``nn.Module``: ``Monitor(model, probe).check()``.

A check measures, on a fixed probe set with the weights frozen, what relulab's study measures
on its own networks, by the same functions (``relulab.nn.probes``): per call site of every
activation module and per unit (a feature of a linear layer, a channel of a convolution over
all positions), dead and inactive units as training computes them (batch norm normalising with
the probe set's statistics, running buffers untouched) and at inference (running statistics),
exact zeros at the kink, sparsity, non-finite pre-activations (counted, never raised), the RMS
of dL/dz at the pre-activations, and, against earlier checks, revived and newly dead units.
The model leaves a check as it came in (``state.preserved``): modes, buffers, ``.grad`` and
random state. Nothing stays attached to the model between checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from relulab.monitor import capture, state
from relulab.monitor.activations import activation_modules
from relulab.monitor.check import Check, LayerCheck
from relulab.monitor.probe import DEFAULT_SIZE, ProbeSet
from relulab.monitor.totals import LayerTotals, reduce_across_processes
from relulab.nn import probes

# Probe examples per forward/backward pass: the default probe set is one pass, in which batch
# norm normalises with that pass's own statistics exactly as ``relulab.nn.probes``'s study
# probes do. A pass holds a chunk's pre-activations twice (copies and graph), so a smaller chunk
# bounds memory for large networks; batch-norm statistics are then gathered chunk by chunk, one
# sweep per batch-norm layer (``probes.normalising_by_whole_set``), which costs more time.
DEFAULT_CHUNK = DEFAULT_SIZE


def summed_cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The study's loss for dL/dz: each example's own cross-entropy, summed over examples."""
    return F.cross_entropy(output, target, reduction="sum")


def _history_masks(history: probes.DeathHistory, previous: torch.Tensor | None, dead):
    """Dead-unit dynamics by the study's ``DeathHistory`` and against the last check."""
    found = history.update(dead)
    before = torch.zeros_like(dead) if previous is None else previous
    return {
        "ever_dead": found["ever_dead"],
        "revived": found["revived"],
        "permanently_dead": found["permanently_dead"],
        "revived_since_last": before & ~dead,
        "newly_dead": dead & ~before,
    }


class Monitor:
    """Checks a model's activations on a probe set; keeps what revival needs between checks.

    ``loss(output, target)`` must sum over examples (default: cross-entropy summed), so that
    dL/dz at an example is that example's own loss gradient; without targets the RMS of dL/dz
    is NaN. ``unit_dim`` is the dimension of a pre-activation that indexes units (1: features
    of ``[N, F]``, channels of ``[N, C, H, W]``). Under DDP (``torch.distributed`` initialised)
    each process measures every ``world_size``-th probe example and the counts are summed
    across processes; batch norm then normalises with each process's own part, as DDP training
    without SyncBatchNorm does.
    """

    def __init__(
        self,
        model: nn.Module,
        probe: ProbeSet,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = summed_cross_entropy,
        chunk: int = DEFAULT_CHUNK,
        unit_dim: int = 1,
    ):
        self.model = model
        self.named_acts = activation_modules(model)
        self.probe = probe
        self.loss = loss
        self.chunk = chunk
        self.unit_dim = unit_dim
        self.histories: dict[str, probes.DeathHistory] = {}
        self.previous_dead: dict[str, torch.Tensor] = {}
        self.last: Check | None = None

    def _part(self) -> ProbeSet:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return self.probe.shard(dist.get_rank(), dist.get_world_size())
        return self.probe

    def _device(self) -> torch.device:
        first = next(self.model.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    def _passes(self, part: ProbeSet, statistics: str, grad: bool):
        """Yield each chunk's (calls, grads) with batch norm as ``statistics`` asks."""
        device, n = self._device(), len(part)
        x_all, y_all = part.inputs, part.targets
        starts = range(0, n, self.chunk)

        def forward(start: int, stop: int):
            return self.model(x_all[start:stop].to(device))

        norms = probes.batch_norms(self.model)
        if statistics == "running" or not norms:
            context = nullcontext()
        elif len(starts) == 1:
            context = probes.normalising_by_whole_set(self.model)
        else:
            context = probes.normalising_by_whole_set(self.model, forward, n, self.chunk)
        with context:
            for start in starts:
                stop = min(start + self.chunk, n)
                y = None if y_all is None or not grad else y_all[start:stop].to(device)
                yield capture.run(
                    self.model,
                    self.named_acts,
                    x_all[start:stop].to(device),
                    y,
                    self.loss if grad else None,
                    self.unit_dim,
                )

    def _totals(self, part: ProbeSet) -> list[LayerTotals]:
        totals: dict[tuple[str, int], LayerTotals] = {}
        for calls, grads in self._passes(part, "batch", grad=True):
            for call, grad in zip(calls, grads, strict=True):
                if call.key not in totals:
                    name = call.key[0] + (f"#{call.key[1] + 1}" if call.key[1] else "")
                    units = call.z.shape[self.unit_dim] if call.z.dim() > 1 else 1
                    totals[call.key] = LayerTotals(name, type(call.module).__name__, units)
                totals[call.key].add_training_view(call, grad, self.unit_dim)
        if probes.batch_norms(self.model):
            for calls, _ in self._passes(part, "running", grad=False):
                for call in calls:
                    totals[call.key].add_inference_view(call, self.unit_dim)
        else:
            for layer in totals.values():
                layer.same_at_inference()
        return list(totals.values())

    def check(self, step: int = 0) -> Check:
        """Measure the model now; ``step`` labels the check (a training step or epoch)."""
        started = time.perf_counter()
        with state.preserved(self.model):
            self.model.eval()
            layers = self._totals(self._part())
        reduce_across_processes(layers)
        results = []
        for index, t in enumerate(layers, start=1):
            c = t.counts
            dead = c["not_dead"] == 0
            n = t.values
            results.append(
                LayerCheck(
                    layer=index,
                    name=t.name,
                    kind=t.kind,
                    units=t.units,
                    values=t.values,
                    dead=dead,
                    inactive=c["not_inactive"] == 0,
                    dead_at_inference=c["not_dead_at_inference"] == 0,
                    inactive_at_inference=c["not_inactive_at_inference"] == 0,
                    exact_zeros=c["exact_zeros"],
                    zero_outputs=c["zero_outputs"],
                    nonfinite=c["nonfinite"],
                    grad_rms=(t.grad_sumsq / n).sqrt(),
                    grad_sumsq=t.grad_sumsq,
                    history=_history_masks(
                        self.histories.setdefault(t.name, probes.DeathHistory()),
                        self.previous_dead.get(t.name),
                        dead,
                    ),
                )
            )
            self.previous_dead[t.name] = dead
        seconds = time.perf_counter() - started
        self.last = Check(step, results, seconds, len(self.probe))
        return self.last

    def state_dict(self) -> dict:
        """The dead-unit history between checks (for a checkpoint)."""
        return {
            "histories": {k: h.state_dict() for k, h in self.histories.items()},
            "previous_dead": dict(self.previous_dead),
        }

    def load_state_dict(self, saved: dict) -> None:
        self.histories = {}
        for key, value in saved["histories"].items():
            history = probes.DeathHistory()
            history.load_state_dict(value)
            self.histories[key] = history
        self.previous_dead = dict(saved["previous_dead"])
