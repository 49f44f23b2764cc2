"""``torch.optim``'s optimisers for a stacked model whose members have their own learning rates.

A stacked model (``relulab.nn.models.SeedStack``) holds the networks of M members along dim 0 of
every parameter. Grid points that share an architecture train as one such model, their seeds side
by side, so the members of one point form a contiguous run of dim 0 and share its learning rate.
``member_optimizer`` gives each run its own parameter group of ``torch.optim``'s own SGD, SGD
with momentum or (fused) Adam, whose parameters are views of that run's slices: every update is
PyTorch's own, elementwise, and a member computes the same bits whichever other members share
its model (``tests/test_member_batching.py``).

The views' gradients are views of the stacked parameters' gradients, so those are kept (zeroed in
place, ``zero_grad``) instead of being freed after every step.
"""

from __future__ import annotations

import itertools

import torch

OPTIMIZERS = ("sgd", "momentum", "adam")


def make_optimizer(name: str, parameters, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD, SGD with momentum 0.9, or Adam; Adam (and SGD on a GPU) with fused kernels.

    ``parameters``: tensors, or parameter groups (dicts with ``params``). A fused step is
    PyTorch's own update in one kernel per tensor instead of several small ops per tensor:
    Adam's step is otherwise the largest per-step cost of these small models (2-4x less on one
    CPU thread). SGD's step is a single op per tensor on the CPU already, and its fused CPU
    kernel splits even tiny tensors across threads.
    """
    parameters = list(parameters)
    tensors = [
        p for entry in parameters for p in (entry["params"] if isinstance(entry, dict) else [entry])
    ]
    devices = {p.device.type for p in tensors}
    fused = (
        bool(tensors)
        and all(p.is_floating_point() for p in tensors)
        and devices <= {"cpu", "cuda"}
        and (name == "adam" or devices == {"cuda"})
    )
    options = {"lr": lr, "weight_decay": weight_decay, "fused": fused or None}
    if name == "sgd":
        return torch.optim.SGD(parameters, **options)
    if name == "momentum":
        return torch.optim.SGD(parameters, momentum=0.9, **options)
    if name == "adam":
        return torch.optim.Adam(parameters, **options)
    raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")


def member_runs(lrs: list[float]) -> list[tuple[int, int, float]]:
    """``(start, stop, lr)`` for each run of consecutive members with one learning rate."""
    runs, start = [], 0
    for lr, members in itertools.groupby(lrs):
        stop = start + len(list(members))
        runs.append((start, stop, lr))
        start = stop
    return runs


def member_optimizer(
    name: str, parameters, lrs: list[float], weight_decay: float, per_member: bool = False
) -> torch.optim.Optimizer:
    """``make_optimizer`` for stacked ``parameters`` (members along dim 0), member ``m`` at
    learning rate ``lrs[m]``: one parameter group of slice views per run of equal rates (per
    member with ``per_member``, so that ``skip_members`` can leave one out of a step), or the
    parameters themselves where all rates are equal."""
    parameters = list(parameters)
    runs = member_runs(lrs)
    if per_member:
        runs = [(m, m + 1, lr) for m, lr in enumerate(lrs)]
    if len(runs) == 1:
        return make_optimizer(name, parameters, runs[0][2], weight_decay)
    members = {p.shape[0] for p in parameters}
    if members != {len(lrs)}:
        raise ValueError(f"{len(lrs)} learning rates for parameters with {sorted(members)} members")
    groups = [
        {"params": [p.detach()[start:stop] for p in parameters], "lr": lr}
        for start, stop, lr in runs
    ]
    optimizer = make_optimizer(name, groups, runs[0][2], weight_decay)
    optimizer.member_runs = [(start, stop) for start, stop, _ in runs]
    # Not part of the optimiser's state_dict: which stacked parameter each view slices.
    optimizer.member_views = [
        (
            p,
            [
                (group["params"][i], start, stop)
                for group, (start, stop, _) in zip(groups, runs, strict=True)
            ],
        )
        for i, p in enumerate(parameters)
    ]
    zero_grad(optimizer)
    return optimizer


def zero_grad(optimizer: torch.optim.Optimizer) -> None:
    """Clear the gradients before a backward pass and a step.

    Freed, as ``torch.optim`` does, except for a ``member_optimizer``'s stacked parameters: their
    gradients are zeroed in place, and each view's gradient is made the slice of its stacked
    parameter's gradient wherever it is not that already (the first step, or after a framework
    has freed the gradients), so that a backward pass fills the views' gradients too.
    """
    member_views = getattr(optimizer, "member_views", None)
    if member_views is None:
        optimizer.zero_grad(set_to_none=True)
        return
    grads = []
    for stacked, views in member_views:
        if stacked.grad is None:
            stacked.grad = torch.zeros_like(stacked)
        grad = stacked.grad
        member_bytes = grad.stride(0) * grad.element_size()
        for view, start, stop in views:
            if view.grad is None or view.grad.data_ptr() != grad.data_ptr() + start * member_bytes:
                view.grad = grad[start:stop]
        grads.append(grad)
    torch._foreach_zero_(grads)


def skip_members(optimizer: torch.optim.Optimizer, members: list[int]) -> None:
    """Leave ``members`` out of the next ``step`` (a loss-scaled step whose gradients
    overflowed): their views' gradients are cleared, which ``torch.optim`` skips entirely
    (parameters, moments and step count), and ``zero_grad`` restores them for the step after.
    Each member must have a parameter group of its own (``member_optimizer(per_member=True)``),
    or be the model's only member."""
    if not members:
        return
    member_views = getattr(optimizer, "member_views", None)
    if member_views is None:
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = None
        return
    for group, (start, stop) in zip(optimizer.param_groups, optimizer.member_runs, strict=True):
        if any(start <= m < stop for m in members):
            if stop - start != 1:
                raise ValueError("skipping a member needs a parameter group per member")
            for view in group["params"]:
                view.grad = None


class MemberLossScaler:
    """Dynamic loss scaling per member, as ``torch.amp.GradScaler`` does it for one model.

    Each member's loss is multiplied by its scale before the backward pass; its gradients are
    divided by it after. A member whose gradients are not all finite skips the step and halves
    its scale; one that has gone ``growth_interval`` steps without doing so doubles it
    (GradScaler's defaults: 2**16, x2, x0.5, 2000 steps).
    """

    def __init__(
        self,
        members: int,
        device: torch.device | str = "cpu",
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ):
        self.scale = torch.full((members,), init_scale, dtype=torch.float32, device=device)
        self.growth = torch.zeros(members, dtype=torch.int64, device=device)
        self.growth_factor, self.backoff_factor = growth_factor, backoff_factor
        self.growth_interval = growth_interval

    def unscale_(self, parameters) -> torch.Tensor:
        """Divide each member's gradients by its scale, in place; ``[M]`` True where a member's
        gradients hold an infinity or a NaN."""
        inverse = self.scale.double().reciprocal().float()
        found = torch.zeros_like(self.growth, dtype=torch.bool)
        for p in parameters:
            if p.grad is None:
                continue
            p.grad.mul_(inverse.to(p.grad.dtype).view(-1, *([1] * (p.grad.dim() - 1))))
            found |= ~torch.isfinite(p.grad).flatten(1).all(dim=1)
        return found

    def update(self, found: torch.Tensor) -> None:
        """After a step: back off where ``found``, grow where the interval has passed."""
        self.growth = torch.where(found, 0, self.growth + 1)
        grow = self.growth >= self.growth_interval
        self.scale = torch.where(
            found,
            self.scale * self.backoff_factor,
            torch.where(grow, self.scale * self.growth_factor, self.scale),
        )
        self.growth = torch.where(grow, 0, self.growth)

    def state_dict(self) -> dict:
        return {"scale": self.scale.cpu(), "growth": self.growth.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.scale = state["scale"].to(self.scale.device)
        self.growth = state["growth"].to(self.growth.device)

    def to(self, device: torch.device | str) -> None:
        self.scale, self.growth = self.scale.to(device), self.growth.to(device)
