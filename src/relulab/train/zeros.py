"""Counting exact zeros: the activation inputs that are exactly 0 during training, and those of
them that meet a non-zero upstream gradient (the only elements at which ``zero_grad`` changes a
gradient). Counters stay on the device and are read once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from relulab.nn import probes

if TYPE_CHECKING:
    from relulab.train.core import SeedModel


def may_hold_exact_zeros(inputs: list[torch.Tensor]) -> bool:
    """False only where none of ``inputs`` (activation inputs) can hold an exact 0.

    On the CPU one reduction per tensor, read back once for all of them (min |z| > 0; NaN is
    not > 0, so a NaN answers True); elsewhere always True, as reading a number back would
    stall the device's queue. ``count_exact_zeros`` adds nothing where this is False.
    """
    inputs = [z.detach() for z in inputs if z.numel()]
    if not inputs or any(z.device.type != "cpu" for z in inputs):
        return bool(inputs)
    smallest = [z.abs().amin() for z in inputs]
    least = smallest[0] if len(smallest) == 1 else torch.stack(smallest).amin()
    return not bool(least > 0)


def count_exact_zeros(
    z: torch.Tensor,
    output: torch.Tensor,
    exact_zeros: torch.Tensor,
    live_zeros: torch.Tensor,
    seed: int | None = None,
) -> None:
    """Add the exact zeros of one activation call's input ``z`` to ``exact_zeros`` per seed, and
    arrange for its backward pass to add to ``live_zeros`` those that meet a non-zero upstream
    gradient (the gradient with respect to the activation's ``output``). ``seed`` as in
    ``counting_exact_zeros``.
    """
    # 1 where the input is exactly 0, as arithmetic (probes.nonzero says why).
    zero = 1 - probes.nonzero(z.detach())
    dims = tuple(range(0 if seed is not None else 1, zero.dim()))
    exact = exact_zeros if seed is None else exact_zeros[seed]
    live = live_zeros if seed is None else live_zeros[seed]
    exact.add_(probes.count(zero, dims))
    if output.requires_grad:

        def count_live(upstream: torch.Tensor) -> None:
            live.add_(probes.count(probes.nonzero(upstream).mul_(zero), dims))

        output.register_hook(count_live)


@contextmanager
def counting_exact_zeros(
    acts: Iterable[nn.Module],
    exact_zeros: torch.Tensor,
    live_zeros: torch.Tensor,
    seed: int | None = None,
) -> Iterator[None]:
    """While inside, count per seed the activation inputs that are exactly 0.

    Every forward call of a module in ``acts`` adds its exact zeros to ``exact_zeros``; the
    backward pass adds to ``live_zeros`` those that meet a non-zero upstream gradient (the
    gradient with respect to the activation's output). Those are the only elements at which
    ``zero_grad`` changes a gradient, whatever its value (0 included). With ``seed=None`` the
    inputs' dim 0 is the seed (``exact_zeros[s]`` counts slice ``s``); with ``seed=s`` every
    element counts for seed ``s``.
    """

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        # Exact zeros are rare in float32/64. On the CPU, where reading a number back stalls
        # no device queue, one reduction finds the calls without any, which then need neither
        # the exact count nor a backward hook.
        if not may_hold_exact_zeros([inputs[0]]):
            return
        count_exact_zeros(inputs[0], output, exact_zeros, live_zeros, seed)

    handles = [act.register_forward_hook(count) for act in acts]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def counting_exact_zeros_of(
    model: SeedModel, exact_zeros: torch.Tensor, live_zeros: torch.Tensor
) -> Iterator[None]:
    """``counting_exact_zeros`` on every activation of ``model``, each with its seed; a model
    with ``zero_counters`` (``StackedMLP``) counts its own while inside."""
    counts_own = hasattr(model, "zero_counters")
    with ExitStack() as stack:
        for act, seed in model.counted_activations():
            stack.enter_context(counting_exact_zeros([act], exact_zeros, live_zeros, seed))
        if counts_own:
            model.zero_counters = (exact_zeros, live_zeros)
        try:
            yield
        finally:
            if counts_own:
                model.zero_counters = None
