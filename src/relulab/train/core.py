"""The training core: all seeds of one grid point trained as one model, without any framework.

``SeedTraining`` runs relulab's own epoch loop over a model that holds the S seeds' networks and
implements ``SeedModel``: ``StackedMLP`` (the MLPs stacked into batched matrix products) or
``relulab.train.conv.SeedModels`` (one convolutional network per seed). After every epoch it
measures each seed on the whole training set (``measure``) and appends the rows of
``History``; ``state``/``load_state`` are what a checkpoint must hold to resume. Lightning
drives it from ``relulab.train.lightning``, the only module that imports Lightning. Nothing
inside the minibatch loop waits on the host: counters stay on the device and are read once per
epoch.

A seed fixes its initial weights, its data order and its RReLU noise, and none of these depend
on the activation or on ``zero_grad``, so runs that differ only in ``zero_grad`` are exact twins.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from relulab.data.prepared import Split
from relulab.nn import probes
from relulab.nn.models import DTYPES as DTYPES  # re-exported: job and bifurcation import it here
from relulab.nn.models import SeedStack, seeded_mlp
from relulab.train import optim

_NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"

# Independent random streams derived from one seed.
ORDER_STREAM = 1_000_003
NOISE_STREAM = 2_000_003


def generator(seed: int, stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed * 7919 + stream)
    return g


class SeedModel(Protocol):
    """What the training core asks of a model that holds the networks of S seeds.

    ``StackedMLP`` and ``relulab.train.conv.SeedModels`` implement it; every tensor it returns
    has the seeds along one dimension, in the order of ``Settings.seeds``.
    """

    seeds: int  # number of seeds
    depth: int  # number of hidden (activation) layers
    dtype: torch.dtype

    def backward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        alive: torch.Tensor,
        loss_scale: torch.Tensor | None = None,
    ) -> None:
        """Backpropagate each live seed's mean loss on its minibatch ``x[index[s]]``.

        Marks in ``alive`` (``[S]`` bool, in place) the seeds whose loss is not finite; a seed
        that is not alive contributes a zero loss, so its weights stop changing. With
        ``loss_scale`` (``[S]``, mixed precision) each seed's loss is multiplied by its scale.
        """

    def hidden_grad_norms(self) -> torch.Tensor:
        """``[depth, S]``: the L2 norm of each hidden layer's weight gradient, per seed."""

    def counted_activations(self) -> list[tuple[nn.Module, int | None]]:
        """Each activation module with its seed, or None when its input's dim 0 is the seed."""

    def noise_generators(self) -> list[torch.Generator]:
        """The generators of RReLU noise (empty for other activations), saved with a checkpoint."""

    def measure(self, data: Split) -> dict:
        """``measure``'s result for this model: per-seed metrics on the whole data set."""


def per_example_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each example: logits ``[S, B, C]``, labels ``[S, B]`` -> ``[S, B]``.

    Half-precision logits are reduced in float32; float32/float64 stay in their own dtype.
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    seeds, batch, classes = logits.shape
    losses = F.cross_entropy(
        logits.reshape(seeds * batch, classes), labels.reshape(seeds * batch), reduction="none"
    )
    return losses.view(seeds, batch)


def per_seed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each seed: logits ``[S, B, C]``, labels ``[S, B]`` -> ``[S]``."""
    return per_example_cross_entropy(logits, labels).mean(dim=1)


def grad_rms(grad: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Root mean square of ``grad`` over ``dims``, as a float64 tensor.

    The norm of each row along the last of ``dims`` is taken in ``grad``'s own type (float32
    for 16-bit types; a few hundred terms each, relative error ~1e-7 in float32), and these
    rows' norms are combined in float64: about 20 times faster on one CPU thread than
    converting every element to float64 (``tests/test_measurement.py`` checks it against a
    float64 reference).
    """
    dims = tuple(sorted(d % grad.dim() for d in dims))
    n = math.prod(grad.shape[d] for d in dims)
    return rms_of_row_norms(row_norms(grad, dims[-1]), dims[:-1], n)


def row_norms(grad: torch.Tensor, dim: int) -> torch.Tensor:
    """The L2 norm along ``dim`` of ``grad`` (float32 for 16-bit types): ``grad_rms``'s rows."""
    if grad.dtype in (torch.float16, torch.bfloat16):
        grad = grad.float()
    return torch.linalg.vector_norm(grad, dim=dim)


def rms_of_row_norms(rows: torch.Tensor, dims: tuple[int, ...], n: int) -> torch.Tensor:
    """``grad_rms`` from its rows' norms: combined over ``dims`` in float64, over ``n`` values."""
    if dims:
        rows = torch.linalg.vector_norm(rows.double(), dim=dims)
    return rows.double() / math.sqrt(n)


def autocast(dtype: torch.dtype | None, device: torch.device):
    """``torch.autocast`` to ``dtype`` on ``device``'s type; nothing when ``dtype`` is None."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def measure(stack: SeedStack, data: Split) -> dict[str, torch.Tensor]:
    """Per-seed metrics with frozen weights on the whole training set and on the test set.

    Returns tensors with a leading seed dimension: ``train_loss``, ``val_loss``,
    ``val_accuracy`` ``[S]`` and, per hidden layer (lists in forward order), ``dead``,
    ``inactive``, ``dead_at_inference``, ``inactive_at_inference`` masks ``[S, units]``,
    ``sparsity`` and ``pre_activation_grad_rms`` ``[S]``.

    Dead, inactive, sparsity and the gradient are measured on what training computes (batch
    norm with the whole training set's statistics, ``probes.normalising_by_whole_set``), in one
    forward pass and one backward pass to the pre-activations; the ``_at_inference`` masks and
    the losses use batch norm's running statistics. Without batch norm the two views are one
    pass. The gradient is that of each example's own cross-entropy (their sum, backpropagated
    with batch norm's statistics fixed), RMS over (example, unit). In mixed precision every
    forward pass runs under autocast, as training's does.
    """
    with autocast(getattr(stack, "autocast_dtype", None), data.x_train.device):
        return _measure(stack, data)


# Examples per pass of the measurement over the training set (models without batch norm, whose
# whole-set statistics need the whole set in one pass). Every quantity is per example, or a
# conjunction, count or sum of squares of per-example values combined exactly, so the numbers
# are those of one pass (``tests/test_measurement.py`` checks them bitwise); a layer's
# [S, ~512, width] tensors stay in the CPU's caches: 20-30 % faster than one pass over
# MNIST-1D's 4,000 examples with 4-16 members on one core, and memory no longer grows with the
# training set. The slices are of near-equal size, never a sliver of a few examples, which
# some matrix-product kernels round differently.
MEASURE_CHUNK = 512


def measurement_slices(n: int, chunk: int | None = None) -> list[tuple[int, int]]:
    """``n`` examples as (start, stop) slices of near-equal size, about ``chunk`` each."""
    chunk = MEASURE_CHUNK if chunk is None else chunk
    count = max(1, round(n / chunk))
    bounds = [n * i // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


@dataclass
class _TrainingSetPass:
    """What one pass over a slice of the training set measures (per seed, in the slice)."""

    losses: torch.Tensor  # [S, examples] cross-entropy of each example
    dead: list[torch.Tensor]  # per hidden layer [S, units]: dead on every example of the slice
    inactive: list[torch.Tensor]
    zeros: list[torch.Tensor]  # per hidden layer [S]: activation outputs exactly 0 (int64)
    grad_rows: list[torch.Tensor]  # per hidden layer [S, examples]: norm of dL/dz over units


# The dimensions of a stacked layer's [seed, example, unit] tensors a unit's masks keep.
SEED_AND_UNIT = (0, 2)


def _training_set_pass(stack: SeedStack, x: torch.Tensor, y: torch.Tensor) -> _TrainingSetPass:
    """Forward and backward to the pre-activations on examples ``x`` (``[N, features]``)."""
    seeds = stack.seeds
    keep = SEED_AND_UNIT
    zs: list[torch.Tensor] = []
    hs: list[torch.Tensor] = []
    with torch.enable_grad():
        logits = stack(x.expand(seeds, *x.shape), pre_activations=zs, outputs=hs)
        losses = per_example_cross_entropy(logits, y.expand(seeds, -1))
        grads = torch.autograd.grad(losses.sum(), zs)
    with torch.no_grad():
        zs = [z.detach() for z in zs]
        return _TrainingSetPass(
            losses=losses.detach(),
            dead=[probes.dead_mask_of(a, z, keep) for a, z in zip(stack.acts, zs, strict=True)],
            inactive=[probes.inactive_mask(z, keep) for z in zs],
            zeros=[probes.zero_count(h.detach(), reduce=(1, 2)) for h in hs],
            grad_rows=[row_norms(g, 2) for g in grads],
        )


def _every(masks: Iterable[torch.Tensor]) -> torch.Tensor:
    """True where every mask is (a unit dead on every slice is dead on the whole set)."""
    masks = list(masks)
    result = masks[0]
    for mask in masks[1:]:
        result = result & mask
    return result


def _measure(stack: SeedStack, data: Split) -> dict[str, torch.Tensor]:
    was_training = stack.training
    stack.eval()
    seeds = stack.seeds
    keep = SEED_AND_UNIT
    n = data.x_train.shape[0]
    slices = [(0, n)] if len(stack.norms) else measurement_slices(n)
    try:
        with probes.normalising_by_whole_set(stack):
            parts = [
                _training_set_pass(stack, data.x_train[start:stop], data.y_train[start:stop])
                for start, stop in slices
            ]
        with torch.no_grad():
            dead, inactive, sparsity, rms = [], [], [], []
            for layer in range(len(parts[0].dead)):
                dead.append(_every(p.dead[layer] for p in parts))
                inactive.append(_every(p.inactive[layer] for p in parts))
                values = n * dead[layer].shape[1]  # examples x units
                zeros = sum(p.zeros[layer] for p in parts)
                sparsity.append(zeros.to(torch.float64) / values)
                rows = torch.cat([p.grad_rows[layer] for p in parts], dim=1)
                rms.append(rms_of_row_norms(rows, (1,), values))
            if len(stack.norms):
                x_train = data.x_train.expand(seeds, *data.x_train.shape)
                y_train = data.y_train.expand(seeds, -1)
                running: list[torch.Tensor] = []
                train_loss = per_seed_cross_entropy(stack(x_train, running), y_train)
                dead_inference = [
                    probes.dead_mask_of(a, z, keep)
                    for a, z in zip(stack.acts, running, strict=True)
                ]
                inactive_inference = [probes.inactive_mask(z, keep) for z in running]
            else:
                train_loss = torch.cat([p.losses for p in parts], dim=1).mean(dim=1)
                dead_inference, inactive_inference = dead, inactive
            val_logits = stack(data.x_test.expand(seeds, *data.x_test.shape))
            y_test = data.y_test.expand(seeds, -1)
            val_loss = per_seed_cross_entropy(val_logits, y_test)
            val_accuracy = (val_logits.argmax(dim=-1) == y_test).double().mean(dim=1)
    finally:
        stack.train(was_training)
    return {
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "dead": dead,
        "inactive": inactive,
        "dead_at_inference": dead_inference,
        "inactive_at_inference": inactive_inference,
        "sparsity": sparsity,
        "pre_activation_grad_rms": rms,
    }


class StackedMLP(SeedStack):
    """A ``SeedStack`` with what the training core asks of a model (``SeedModel``)."""

    @property
    def dtype(self) -> torch.dtype:
        return self.weights[0].dtype

    # (exact_zeros, live_zeros) while ``counting_exact_zeros_of`` counts this model's zeros.
    zero_counters: tuple[torch.Tensor, torch.Tensor] | None = None

    # Mixed precision: the type of the forward pass under ``torch.autocast`` (None: off).
    autocast_dtype: torch.dtype | None = None

    def backward(self, x, y, index, alive, loss_scale=None) -> None:
        # The exact zeros are counted here rather than by forward hooks: one check per step
        # for all layers instead of a hook and a read-back per layer (same counts).
        counting = self.zero_counters is not None
        zs: list[torch.Tensor] | None = [] if counting else None
        hs: list[torch.Tensor] | None = [] if counting else None
        with autocast(self.autocast_dtype, x.device):
            losses = per_seed_cross_entropy(self(x[index], zs, hs), y[index])
        if counting and may_hold_exact_zeros(zs):
            for z, h in zip(zs, hs, strict=True):
                count_exact_zeros(z, h, *self.zero_counters)
        alive &= torch.isfinite(losses)
        losses = torch.where(alive, losses, 0)
        if loss_scale is not None:
            losses = losses * loss_scale
        losses.sum().backward()

    def hidden_grad_norms(self) -> torch.Tensor:
        hidden = tuple(self.weights._parameters.values())[:-1]
        return torch.stack([torch.linalg.vector_norm(w.grad, dim=(1, 2)) for w in hidden])

    def counted_activations(self) -> list[tuple[nn.Module, int | None]]:
        return []  # counted in ``backward`` (``zero_counters``)

    def noise_generators(self) -> list[torch.Generator]:
        return list(getattr(self.acts[0], "generators", None) or [])

    def measure(self, data: Split) -> dict:
        return measure(self, data)


def build_stack(
    seeds: list[int],
    in_features: int,
    classes: int,
    width: int,
    depth: int,
    activation: str,
    zero_grad: float | None,
    batch_norm: bool,
    init: str | list[str],
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
) -> StackedMLP:
    """The seeds' MLPs, initialised by seed (and ``init``, one for all or one per seed) alone,
    stacked into one model."""
    inits = [init] * len(seeds) if isinstance(init, str) else list(init)
    models = [
        seeded_mlp(
            seed,
            in_features=in_features,
            width=width,
            depth=depth,
            classes=classes,
            activation=activation,
            zero_grad=zero_grad,
            batch_norm=batch_norm,
            init=member_init,
        )
        for seed, member_init in zip(seeds, inits, strict=True)
    ]
    noise = [generator(seed, NOISE_STREAM, device) for seed in seeds]
    stack = StackedMLP(models, activation, zero_grad, rrelu_generators=noise)
    return stack.to(device=device, dtype=dtype)


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


@contextmanager
def _cuda_check_without_nvml() -> Iterator[None]:
    """Undo, while inside, the ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` that importing Lightning sets.

    Lightning sets it so that checking for CUDA does not initialise CUDA before it forks worker
    processes; relulab trains in one process and forks none. With it set and no CUDA driver,
    every ``torch.cuda.is_available()`` tries NVML again (0.1-0.2 ms), and ``Adam.step`` asks
    once per step.
    """
    saved = os.environ.pop(_NVML_CHECK, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[_NVML_CHECK] = saved


def parameter_hashes(model: nn.Module) -> list[str]:
    """Per seed, the sha256 of its parameters and buffers (names and raw bytes, in order).

    Two seeds' hashes are equal exactly when their weights are bitwise equal. For a
    ``SeedStack`` a seed is slice ``[s]`` of every tensor; for a model holding one network per
    seed (``model.models``) it is that network's whole state.
    """
    per_seed = getattr(model, "models", None)
    if per_seed is not None:
        states = [m.state_dict().items() for m in per_seed]
    else:
        state = model.state_dict()
        states = [[(name, t[s]) for name, t in state.items()] for s in range(model.seeds)]
    hashes = []
    for items in states:
        digest = hashlib.sha256()
        for name, tensor in items:
            digest.update(name.encode())
            raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
            digest.update(raw.numpy().tobytes())
        hashes.append(digest.hexdigest())
    return hashes


@dataclass
class Settings:
    """What a training job needs besides the model and the data.

    The model's members are ``seeds`` (one per member). Members of several grid points that
    share an architecture train as one model: ``lr`` then holds one learning rate per member and
    ``points`` the grid point of each member, which its rows carry in a ``point`` column.
    """

    seeds: list[int]
    lr: float | list[float]
    epochs: int
    batch_size: int
    optimizer: str = "sgd"
    weight_decay: float = 0.0
    fingerprint: str = ""
    points: list[str] | None = None
    # Mixed precision: the forward pass's type under autocast (float32 master weights and data);
    # float16 adds dynamic loss scaling per member.
    autocast: torch.dtype | None = None

    def member_lrs(self) -> list[float]:
        """The learning rate of each member."""
        if isinstance(self.lr, (int, float)):
            return [float(self.lr)] * len(self.seeds)
        if len(self.lr) != len(self.seeds):
            raise ValueError(f"{len(self.lr)} learning rates for {len(self.seeds)} members")
        return [float(lr) for lr in self.lr]


@dataclass
class History:
    """Rows gathered during training, kept in checkpoints so an interrupted job resumes."""

    epochs: list[dict] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)
    diverged_epoch: dict[int, int] = field(default_factory=dict)  # member index -> epoch

    def state(self) -> str:
        """The rows as JSON text: one string for a checkpoint to pickle instead of thousands
        of small objects (it is written every epoch). Floats round-trip exactly."""
        return json.dumps(
            {"epochs": self.epochs, "layers": self.layers, "diverged": self.diverged_epoch}
        )

    @classmethod
    def from_state(cls, state: str) -> History:
        rows = json.loads(state)
        diverged = {int(member): epoch for member, epoch in rows["diverged"].items()}
        return cls(rows["epochs"], rows["layers"], diverged)


class SeedTraining:
    """The epoch loop of one grid point's seeds, its measurements and its resumable state.

    ``start`` once (it records epoch 0 unless resumed), then ``train_epoch`` per epoch; the
    rows are in ``history``. The model's parameters and the optimiser's state are checkpointed
    by whoever drives the loop; ``state``/``load_state`` hold the rest.
    """

    def __init__(self, model: SeedModel, data: Split, settings: Settings):
        self.model = model
        self.data = data
        self.settings = settings
        self.order = [generator(seed, ORDER_STREAM) for seed in settings.seeds]
        self.alive = torch.ones(len(settings.seeds), dtype=torch.bool)
        self.history = History()
        self.death = [probes.DeathHistory() for _ in range(model.depth)]
        self.scaler: optim.MemberLossScaler | None = None
        if settings.autocast is not None:
            if not isinstance(model, StackedMLP):
                raise ValueError("mixed precision trains stacked MLPs only")
            model.autocast_dtype = settings.autocast
            if settings.autocast == torch.float16:
                self.scaler = optim.MemberLossScaler(len(settings.seeds))

    def optimizer(self) -> torch.optim.Optimizer:
        """``torch.optim``'s optimiser; a stacked model's members step at their own learning
        rates (``optim.member_optimizer``), a model of one network per seed at one."""
        s = self.settings
        lrs = s.member_lrs()
        if isinstance(self.model, SeedStack):
            # With loss scaling a member skips the steps whose gradients overflowed: a
            # parameter group per member.
            return optim.member_optimizer(
                s.optimizer,
                self.model.parameters(),
                lrs,
                s.weight_decay,
                per_member=self.scaler is not None,
            )
        if len(set(lrs)) > 1:
            raise ValueError("members with different learning rates need a stacked model")
        return optim.make_optimizer(s.optimizer, self.model.parameters(), lrs[0], s.weight_decay)

    def start(self, device: torch.device | str) -> None:
        """Move the data to ``device`` in the model's dtype; measure epoch 0 unless resumed."""
        self.data = self.data.to(device, self.model.dtype)
        self.alive = self.alive.to(device)
        if self.scaler is not None:
            self.scaler.to(device)
        if not self.history.epochs:
            self.record(epoch=0, counters=None)

    def train_epoch(self, optimizer: torch.optim.Optimizer, epoch: int) -> bool:
        """Train and measure epoch ``epoch`` (1-based); whether any seed is still alive."""
        counters = self.run_epoch(optimizer)
        self.record(epoch=epoch, counters=counters)
        return bool(self.alive.any())

    def state(self) -> dict:
        """What a checkpoint holds besides the model's parameters and the optimiser."""
        return {
            "fingerprint": self.settings.fingerprint,
            "history": self.history.state(),
            "alive": self.alive.cpu(),
            "order": [g.get_state() for g in self.order],
            "noise": [g.get_state() for g in self.model.noise_generators()],
            "death": [d.state_dict() for d in self.death],
            "loss_scale": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def load_state(self, state: dict) -> None:
        self.history = History.from_state(state["history"])
        self.alive = state["alive"].to(self.alive.device)
        for g, saved in zip(self.order, state["order"], strict=True):
            g.set_state(saved)
        for g, saved in zip(self.model.noise_generators(), state["noise"], strict=True):
            g.set_state(saved)
        for d, saved in zip(self.death, state["death"], strict=True):
            d.load_state_dict(saved)
        if self.scaler is not None:
            self.scaler.load_state_dict(state["loss_scale"])

    def run_epoch(self, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        """One pass over the training set in each seed's own order; the epoch's counters."""
        model, data, batch_size = self.model, self.data, self.settings.batch_size
        seeds, n = model.seeds, data.x_train.shape[0]
        device = data.x_train.device
        exact_zeros = torch.zeros(seeds, dtype=torch.int64, device=device)
        live_zeros = torch.zeros(seeds, dtype=torch.int64, device=device)
        grad_norms = torch.zeros(model.depth, seeds, dtype=torch.float64, device=device)
        orders = torch.stack([torch.randperm(n, generator=g) for g in self.order]).to(device)
        steps = 0

        model.train()
        with counting_exact_zeros_of(model, exact_zeros, live_zeros), _cuda_check_without_nvml():
            for start in range(0, n, batch_size):
                index = orders[:, start : start + batch_size]
                optim.zero_grad(optimizer)
                if self.scaler is None:
                    model.backward(data.x_train, data.y_train, index, self.alive)
                    grad_norms.add_(model.hidden_grad_norms())
                else:
                    self.scaled_backward(model, data, index, optimizer, grad_norms)
                optimizer.step()
                steps += 1
        return {
            "exact_zeros": exact_zeros,
            "live_zeros": live_zeros,
            "grad_norm": grad_norms / max(steps, 1),
            "steps": steps,
        }

    def scaled_backward(self, model, data, index, optimizer, grad_norms) -> None:
        """Loss scaling's backward pass: scale, unscale, and leave out of the step the members
        whose gradients overflowed (their weight-gradient norms count 0 for that step)."""
        scaler = self.scaler
        model.backward(data.x_train, data.y_train, index, self.alive, loss_scale=scaler.scale)
        overflowed = scaler.unscale_(model.parameters())
        grad_norms.add_(torch.where(overflowed, 0.0, model.hidden_grad_norms()))
        optim.skip_members(optimizer, overflowed.nonzero().flatten().tolist())
        scaler.update(overflowed)

    def record(self, epoch: int, counters: dict | None) -> None:
        """Measure every live seed and append its rows; mark seeds that diverged."""
        m = self.model.measure(self.data)
        alive = self.alive & torch.isfinite(m["train_loss"])
        self.alive.copy_(alive)
        m = {k: [t.cpu() for t in v] if isinstance(v, list) else v.cpu() for k, v in m.items()}
        c = {k: v.cpu() if torch.is_tensor(v) else v for k, v in (counters or {}).items()}
        alive = alive.cpu()
        dynamics = [self.death[i].update(m["dead"][i]) for i in range(self.model.depth)]
        steps_per_epoch = math.ceil(self.data.x_train.shape[0] / self.settings.batch_size)
        hashes = parameter_hashes(self.model)
        points = self.settings.points
        for s, seed in enumerate(self.settings.seeds):
            if s in self.history.diverged_epoch:
                continue
            status = "ok" if bool(alive[s]) else "diverged"
            if status == "diverged":
                self.history.diverged_epoch[s] = epoch
            units = sum(mask[s].numel() for mask in m["dead"])
            member = {"point": points[s]} if points is not None else {}
            self.history.epochs.append(
                {
                    **member,
                    "seed": seed,
                    "epoch": epoch,
                    "step": epoch * steps_per_epoch,
                    "train_loss": float(m["train_loss"][s]),
                    "val_loss": float(m["val_loss"][s]),
                    "val_accuracy": float(m["val_accuracy"][s]),
                    "dead_fraction": sum(int(d[s].sum()) for d in m["dead"]) / units,
                    "inactive_fraction": sum(int(d[s].sum()) for d in m["inactive"]) / units,
                    "exact_zeros": int(c["exact_zeros"][s]) if c else 0,
                    "live_exact_zeros": int(c["live_zeros"][s]) if c else 0,
                    "dead_at_inference_fraction": sum(
                        int(d[s].sum()) for d in m["dead_at_inference"]
                    )
                    / units,
                    "inactive_at_inference_fraction": sum(
                        int(d[s].sum()) for d in m["inactive_at_inference"]
                    )
                    / units,
                    "status": status,
                    "params_sha256": hashes[s],
                }
            )
            for layer, d in enumerate(dynamics):
                self.history.layers.append(
                    {
                        **member,
                        "seed": seed,
                        "epoch": epoch,
                        "layer": layer + 1,
                        "dead_fraction": float(d["dead"][s].double().mean()),
                        "inactive_fraction": float(m["inactive"][layer][s].double().mean()),
                        "ever_dead_fraction": float(d["ever_dead"][s].double().mean()),
                        "revived_fraction": float(d["revived"][s].double().mean()),
                        "permanently_dead_fraction": float(
                            d["permanently_dead"][s].double().mean()
                        ),
                        **{
                            f"{cause}_fraction": float(d[cause][s].double().mean())
                            for cause in probes.CAUSE_COLUMNS
                        },
                        "sparsity": float(m["sparsity"][layer][s]),
                        "grad_norm": float(c["grad_norm"][layer][s]) if c else float("nan"),
                        "dead_at_inference_fraction": float(
                            m["dead_at_inference"][layer][s].double().mean()
                        ),
                        "inactive_at_inference_fraction": float(
                            m["inactive_at_inference"][layer][s].double().mean()
                        ),
                        "pre_activation_grad_rms": float(m["pre_activation_grad_rms"][layer][s]),
                    }
                )


def seed_status(history: History, seeds: list[int], members: list[int] | None = None) -> dict:
    """Final status of each seed: finished, or diverged with the epoch it happened.

    ``members``: each seed's member index in the model (default: its position in ``seeds``).
    """
    members = list(range(len(seeds))) if members is None else members
    return {
        seed: (
            {"status": "diverged", "diverged_epoch": history.diverged_epoch[member]}
            if member in history.diverged_epoch
            else {"status": "finished", "diverged_epoch": None}
        )
        for seed, member in zip(seeds, members, strict=True)
    }
