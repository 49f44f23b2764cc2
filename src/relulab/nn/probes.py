"""Dead, inactive, revived and sparse units: the definitions of docs/definitions.rst, in code.

Every probe runs on a whole data set with the weights frozen (eval mode, no parameter update),
in the model's own dtype. A *unit* is a hidden neuron of an MLP or a channel of a convolution.
With batch norm a unit is judged on the pre-activations training computes: each batch-norm
layer normalises with the mean and variance of its inputs over the whole data set, its running
buffers neither used nor changed (``normalising_by_whole_set``). The same probes with the
running statistics (``statistics="running"``) say what is dead *at inference*.

- dead: its local derivative f'(z) is exactly 0 on every example (and every position);
- inactive: z <= 0 on every example;
- revived: dead at an earlier measurement and not dead now;
- permanently dead: dead at every measurement since it first died;
- sparsity: fraction of (example, unit) activation outputs exactly equal to 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import torch
from torch import nn

from relulab.nn.activations import ZeroGradReLU, is_activation

# Units by cause of death, as fractions of a layer's units in layers.csv: born dead (dead at the
# first measurement) or died in training, and of each the revived and the permanently dead.
CAUSE_COLUMNS = (
    "born_dead",
    "born_dead_revived",
    "born_dead_permanent",
    "died_in_training",
    "died_in_training_revived",
    "died_in_training_permanent",
)


def local_derivative(activation: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """f'(z) elementwise, exactly as the activation's backward pass computes it."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        out = activation(z)
        # Upstream gradient 1 everywhere, as a broadcast scalar rather than a filled tensor.
        ones = torch.ones((), dtype=out.dtype, device=out.device).expand_as(out)
        (derivative,) = torch.autograd.grad(out, z, ones)
    return derivative


# The probes below reduce with max and count with sums of 0/1 values rather than building
# boolean masks: on CPUs, comparisons that write boolean tensors cost several times the
# arithmetic kernels (about 3 ns an element against 0.2 for a ReLU), and these run on every
# element of a layer's pre-activations on the whole training set. Max reductions propagate
# NaN, so a NaN anywhere makes a unit neither dead nor inactive, as the comparisons do.


def _reduced(x: torch.Tensor, keep: tuple[int, ...]) -> tuple[int, ...]:
    """The dimensions of ``x`` not in ``keep``."""
    return tuple(d for d in range(x.dim()) if d not in keep)


def dead_mask(derivative: torch.Tensor, keep: tuple[int, ...] = (1,)) -> torch.Tensor:
    """True where f'(z) == 0 on every example; ``keep`` are the unit (and seed) dimensions."""
    dims = _reduced(derivative, keep)
    if not dims or derivative.numel() == 0:
        return (derivative == 0).all(dim=dims) if dims else derivative == 0
    return derivative.abs().amax(dim=dims) == 0


def inactive_mask(z: torch.Tensor, keep: tuple[int, ...] = (1,)) -> torch.Tensor:
    """True where z <= 0 on every example; ``keep`` are the unit (and seed) dimensions."""
    dims = _reduced(z, keep)
    if not dims or z.numel() == 0:
        return (z <= 0).all(dim=dims) if dims else z <= 0
    return z.amax(dim=dims) <= 0


def dead_mask_of(activation: nn.Module, z: torch.Tensor, keep: tuple[int, ...]) -> torch.Tensor:
    """``dead_mask(local_derivative(activation, z), keep)``, without a backward pass for ReLU.

    A ReLU's backward pass gives 0 below 0, ``zero_grad`` at 0 and 1 above, so its unit is
    dead exactly where z <= 0 on every example (z < 0 when ``zero_grad != 0``): one max
    reduction. NaN (a diverged run), which ReLU's backward pass treats as not positive, and
    every other activation take the definition's own path.
    """
    zero_grad = relu_zero_grad(activation)
    dims = _reduced(z, keep)
    if zero_grad is None or not dims or z.numel() == 0:
        return dead_mask(local_derivative(activation, z), keep)
    top = z.amax(dim=dims)
    if bool(top.isnan().any()):
        return dead_mask(local_derivative(activation, z), keep)
    return top <= 0 if zero_grad == 0 else top < 0


def relu_zero_grad(activation: nn.Module) -> float | None:
    """f'(0) of a ReLU module (PyTorch's own or relulab's); None for any other activation."""
    if isinstance(activation, ZeroGradReLU):
        return activation.zero_grad
    return 0.0 if type(activation) is nn.ReLU else None


def nonzero_derivative_units(
    activation: nn.Module, z: torch.Tensor, output: torch.Tensor, keep: tuple[int, ...]
) -> torch.Tensor:
    """True for each unit (``keep``: the unit and seed dimensions) whose local derivative f'(z)
    is non-zero on some element of one training call ``output = activation(z)``.

    The step-level view of death: a unit without a non-zero derivative in any step of an epoch
    got no gradient through it in that epoch. Made for the training loop, so it reads nothing
    back from the device. A ReLU's derivative is non-zero exactly where z > 0 (z >= 0 when
    ``zero_grad != 0``) or z is NaN (its backward passes the gradient through a NaN): one max
    reduction per call. Any other activation's derivative is the one its own backward pass
    computes, taken from the call's graph (``output`` must require grad), so RReLU's sampled
    slopes are the ones the step used and no noise is drawn again. NaN counts as non-zero.
    """
    dims = _reduced(z, keep)
    zero_grad = relu_zero_grad(activation)
    if zero_grad is not None and dims and z.numel():
        top = z.detach().amax(dim=dims)
        live = top > 0 if zero_grad == 0 else top >= 0
        return live | top.isnan()
    ones = torch.ones((), dtype=output.dtype, device=output.device).expand_as(output)
    (derivative,) = torch.autograd.grad(output, z, ones, retain_graph=True)
    if not dims:
        return derivative != 0
    return derivative.abs().amax(dim=dims) != 0


def nonzero(x: torch.Tensor) -> torch.Tensor:
    """1 where ``x != 0`` (NaN and infinities included), 0 where ``x == 0``; ``x``'s dtype."""
    # torch.sign(NaN) is 0, so NaN becomes 1 first.
    return x.nan_to_num(nan=1.0).sign_().abs_()


def count(ones: torch.Tensor, dim: tuple[int, ...] | None = None) -> torch.Tensor:
    """The exact number of ones in a tensor of 0s and 1s (over ``dim``, all by default), int64."""
    n = ones.numel() if dim is None else math.prod(ones.shape[d] for d in dim)
    # Sums of 0/1 values are exact in float32 up to 2**24 terms (float16 and bfloat16 are not).
    exact = torch.float32 if n <= 2**24 and ones.dtype != torch.float64 else torch.float64
    total = ones.sum(dtype=exact) if dim is None else ones.sum(dim=dim, dtype=exact)
    return total.to(torch.int64)


def sparsity(outputs: torch.Tensor, reduce: tuple[int, ...] | None = None) -> torch.Tensor:
    """Fraction of activation outputs exactly 0 (over ``reduce`` dims, all by default)."""
    n = outputs.numel() if reduce is None else math.prod(outputs.shape[d] for d in reduce)
    return zero_count(outputs, reduce).to(torch.float64) / n


def zero_count(outputs: torch.Tensor, reduce: tuple[int, ...] | None = None) -> torch.Tensor:
    """The number of activation outputs exactly 0 (over ``reduce`` dims, all by default), int64."""
    if not outputs.is_floating_point():
        zeros = (outputs == 0).to(torch.int64)
        return zeros.sum() if reduce is None else zeros.sum(dim=reduce)
    n = outputs.numel() if reduce is None else math.prod(outputs.shape[d] for d in reduce)
    return n - count(nonzero(outputs), reduce)


def batch_norms(model: nn.Module) -> list[nn.Module]:
    """The model's batch-norm layers: modules with ``running_mean`` and ``running_var`` buffers."""
    return [
        m
        for m in model.modules()
        if torch.is_tensor(m._buffers.get("running_mean"))
        and torch.is_tensor(m._buffers.get("running_var"))
    ]


def _statistics_dims(norm: nn.Module, x: torch.Tensor) -> tuple[int, ...]:
    """The dimensions a batch-norm layer averages over: ``norm.batch_dims``, else all but 1."""
    dims = getattr(norm, "batch_dims", None)
    return tuple(dims) if dims is not None else tuple(d for d in range(x.dim()) if d != 1)


class Moments:
    """Mean and (biased) variance of a layer's inputs over chunks of a data set, in float64.

    Chunks are merged with Chan, Golub & LeVeque's pairwise update, so the result does not
    depend on the chunk size beyond rounding, and one chunk gives its own mean and variance.
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def add(self, x: torch.Tensor, dims: tuple[int, ...]) -> None:
        x = x.detach().to(torch.float64)
        n = math.prod(x.shape[d] for d in dims)
        mean = x.mean(dim=dims, keepdim=True)
        m2 = (x - mean).square_().sum(dim=dims)
        mean = mean.reshape(m2.shape)
        if self.mean is None:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.n * n / total)
        self.n = total

    def variance(self) -> torch.Tensor:
        return self.m2 / self.n


def _set_statistics(norm: nn.Module, moments: Moments) -> None:
    buffer = norm.running_mean
    norm.running_mean = moments.mean.to(buffer.dtype)
    norm.running_var = moments.variance().to(buffer.dtype)


class _SeenError(Exception):
    """Stops a forward pass once the layer being measured has seen its input."""


@contextmanager
def normalising_by_whole_set(
    model: nn.Module, run: Callable[[int, int], object] | None = None, n: int = 0, chunk: int = 0
) -> Iterator[None]:
    """While inside, each batch-norm layer normalises (in eval mode) with the statistics of its
    inputs over the whole data set, as training's batch statistics do; running buffers untouched.

    With ``run=None`` the caller's forward passes each take the whole data set in one call, and
    each layer uses the statistics of the input it is given. Otherwise ``run(start, stop)``
    runs the model on examples ``start:stop`` of ``n``: the statistics are gathered ``chunk``
    examples at a time, one layer per sweep in the order the forward pass reaches them (a
    layer's inputs depend on the statistics of the layers before it), and fixed before the
    caller's own forward passes. The running buffers are restored on exit.
    """
    norms = batch_norms(model)
    saved = [(m.running_mean, m.running_var) for m in norms]
    handles = []
    try:
        if run is None:

            def own_statistics(norm: nn.Module, inputs: tuple) -> None:
                x = inputs[0].detach()
                # One pass in the input's own precision (float32 for half), as training's
                # batch norm computes its batch statistics.
                var, mean = torch.var_mean(
                    x if x.dtype in (torch.float32, torch.float64) else x.float(),
                    dim=_statistics_dims(norm, x),
                    correction=0,
                )
                buffer = norm.running_mean
                norm.running_mean, norm.running_var = mean.to(buffer.dtype), var.to(buffer.dtype)

            handles = [m.register_forward_pre_hook(own_statistics) for m in norms]
        else:
            _gather_statistics(norms, run, n, chunk)
        yield
    finally:
        for handle in handles:
            handle.remove()
        for norm, (mean, var) in zip(norms, saved, strict=True):
            norm.running_mean, norm.running_var = mean, var


def _gather_statistics(norms: list[nn.Module], run, n: int, chunk: int) -> None:
    """Fix each layer's whole-set statistics in turn, sweeping the data once per layer."""
    pending = list(norms)
    while pending:
        found = _first_layer_statistics(pending, run, n, chunk)
        if found is None:
            return  # layers the forward pass never reaches keep their buffers
        norm, moments = found
        _set_statistics(norm, moments)
        pending.remove(norm)


@torch.no_grad()
def _first_layer_statistics(pending: list[nn.Module], run, n: int, chunk: int):
    """The first of ``pending`` that the forward pass reaches, and its inputs' moments.

    Every layer before it in the data flow already has its statistics; the forward pass stops
    there, so a sweep costs only the layers up to it.
    """
    first: list[nn.Module] = []
    moments = Moments()

    def measure_first(norm: nn.Module, inputs: tuple) -> None:
        if not first:
            first.append(norm)
        if norm is first[0]:
            moments.add(inputs[0], _statistics_dims(norm, inputs[0]))
        raise _SeenError

    handles = [m.register_forward_pre_hook(measure_first) for m in pending]
    try:
        for start in range(0, n, chunk):
            with suppress(_SeenError):
                run(start, min(start + chunk, n))
    finally:
        for handle in handles:
            handle.remove()
    return (first[0], moments) if first else None


STATISTICS = ("batch", "running")


def pre_activations(
    model: nn.Module, x: torch.Tensor, statistics: str = "batch"
) -> list[tuple[nn.Module, torch.Tensor]]:
    """Each activation module of ``model`` with its input on ``x``, in forward order.

    The model runs in eval mode without gradients, so weights are frozen; batch norm normalises
    with the statistics of the whole ``x`` (``statistics="batch"``, what training computes) or
    with its running statistics (``"running"``, at inference). The model's training flag and
    batch-norm buffers are restored afterwards.
    """
    if statistics not in STATISTICS:
        raise ValueError(f"statistics must be one of {STATISTICS}, not {statistics!r}")
    captured: list[tuple[nn.Module, torch.Tensor]] = []

    def capture(module: nn.Module, inputs: tuple[torch.Tensor, ...], _output) -> None:
        captured.append((module, inputs[0].detach()))

    handles = [m.register_forward_hook(capture) for m in model.modules() if is_activation(m)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if statistics == "batch":
                with normalising_by_whole_set(model):
                    model(x)
            else:
                model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return captured


def dead_units(model: nn.Module, x: torch.Tensor, statistics: str = "batch") -> list[torch.Tensor]:
    """One boolean mask per hidden layer, in forward order: True where the unit is dead on x.

    ``statistics`` as in ``pre_activations``: "batch" (what training sees) or "running".
    """
    was_training = model.training
    model.eval()
    try:
        return [
            dead_mask(local_derivative(act, z)) for act, z in pre_activations(model, x, statistics)
        ]
    finally:
        model.train(was_training)


def inactive_units(
    model: nn.Module, x: torch.Tensor, statistics: str = "batch"
) -> list[torch.Tensor]:
    """One boolean mask per hidden layer, in forward order: True where the unit is inactive."""
    return [inactive_mask(z) for _, z in pre_activations(model, x, statistics)]


def pre_activation_grad_rms(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, statistics: str = "batch"
) -> list[torch.Tensor]:
    """Per hidden layer, the RMS over (example, unit) of dL_i/dz, in forward order.

    L_i is example i's own cross-entropy and z the layer's pre-activations (the activation's
    input), with the weights frozen; batch norm normalises as in ``pre_activations``, with its
    statistics held fixed, so that each example's loss depends on its own z alone.
    """
    captured: list[torch.Tensor] = []

    def capture(module: nn.Module, inputs: tuple[torch.Tensor, ...], _output) -> None:
        captured.append(inputs[0])

    handles = [m.register_forward_hook(capture) for m in model.modules() if is_activation(m)]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            if statistics == "batch":
                with normalising_by_whole_set(model):
                    logits = model(x)
            else:
                logits = model(x)
            loss = nn.functional.cross_entropy(logits, y, reduction="sum")
            grads = torch.autograd.grad(loss, captured)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return [g.detach().double().square().mean().sqrt() for g in grads]


@dataclass
class DeathHistory:
    """Per-unit death state carried from one measurement to the next.

    Masks have any shape (for example ``[seeds, units]``); each call to ``update`` takes the
    dead mask of the newest measurement and returns the unit-level dynamics at that time. The
    first measurement (the untrained network) fixes which units were *born dead*; every other
    unit that is ever dead *died in training*. The two have different causes (initialisation
    against learning rate), so revival and permanence are also returned per cause.
    """

    ever_dead: torch.Tensor | None = None
    permanently_dead: torch.Tensor | None = None
    born_dead: torch.Tensor | None = None

    def update(self, dead: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.ever_dead is None:
            previously_dead = torch.zeros_like(dead)
            permanent = dead.clone()
            self.born_dead = dead.clone()
        else:
            previously_dead = self.ever_dead
            # Permanent: dead now, and either dead at every measurement since first dying,
            # or dying for the first time now.
            permanent = dead & (self.permanently_dead | ~previously_dead)
        self.ever_dead = previously_dead | dead
        self.permanently_dead = permanent
        revived = previously_dead & ~dead
        born = self.born_dead
        return {
            "dead": dead,
            "ever_dead": self.ever_dead,
            "revived": revived,
            "permanently_dead": permanent,
            "born_dead": born,
            "born_dead_revived": revived & born,
            "born_dead_permanent": permanent & born,
            "died_in_training": self.ever_dead & ~born,
            "died_in_training_revived": revived & ~born,
            "died_in_training_permanent": permanent & ~born,
        }

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {
            "ever_dead": self.ever_dead,
            "permanently_dead": self.permanently_dead,
            "born_dead": self.born_dead,
        }

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        self.ever_dead = state["ever_dead"]
        self.permanently_dead = state["permanently_dead"]
        # A checkpoint from before the split by cause: no unit counts as born dead.
        born = state.get("born_dead")
        if born is None and self.ever_dead is not None:
            born = torch.zeros_like(self.ever_dead)
        self.born_dead = born


def exact_zeros(z: torch.Tensor, reduce: tuple[int, ...] | None = None) -> torch.Tensor:
    """The number of pre-activations exactly 0 (over ``reduce`` dims, all by default), int64:
    the inputs at the kink, where the choice of f'(0) is used."""
    return count(1 - nonzero(z.detach()), reduce)


def nonfinite_count(z: torch.Tensor, reduce: tuple[int, ...] | None = None) -> torch.Tensor:
    """The number of NaN or infinite values (over ``reduce`` dims, all by default), int64."""
    z = z.detach()
    if not z.is_floating_point() or bool(torch.isfinite(z.sum(dtype=torch.float64))):
        shape = () if reduce is None else [s for d, s in enumerate(z.shape) if d not in reduce]
        return torch.zeros(shape, dtype=torch.int64, device=z.device)
    bad = (~torch.isfinite(z)).to(torch.int64)
    return bad.sum() if reduce is None else bad.sum(dim=reduce)
