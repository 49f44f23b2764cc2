"""Training all seeds of one grid point as one stacked model, driven by Lightning.

Lightning runs the epochs, the device placement and the checkpoints; one Lightning step is one
epoch of relulab's own minibatch loop (manual optimisation), because for models this small the
per-step hooks of a default Lightning loop cost several times the arithmetic. Nothing inside
the loop waits on the host: counters stay on the device and are read once per epoch.

A seed fixes its initial weights, its data order and its RReLU noise, and none of these depend
on the activation or on ``zero_grad``, so runs that differ only in ``zero_grad`` are exact twins.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from relulab.data.prepared import Split
from relulab.nn import probes
from relulab.nn.models import DTYPES as DTYPES  # re-exported: job and bifurcation import it here
from relulab.nn.models import SeedStack, seeded_mlp

OPTIMIZERS = ("sgd", "momentum", "adam")

_NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"

# Independent random streams derived from one seed.
_ORDER_STREAM = 1_000_003
_NOISE_STREAM = 2_000_003


def generator(seed: int, stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed * 7919 + stream)
    return g


def build_stack(
    seeds: list[int],
    in_features: int,
    classes: int,
    width: int,
    depth: int,
    activation: str,
    zero_grad: float | None,
    batch_norm: bool,
    init: str,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
) -> SeedStack:
    """The seeds' MLPs, initialised by seed alone, stacked into one model."""
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
            init=init,
        )
        for seed in seeds
    ]
    noise = [generator(seed, _NOISE_STREAM, device) for seed in seeds]
    stack = SeedStack(models, activation, zero_grad, rrelu_generators=noise)
    return stack.to(device=device, dtype=dtype)


@contextmanager
def counting_exact_zeros(
    acts: Iterable[nn.Module], exact_zeros: torch.Tensor, live_zeros: torch.Tensor
) -> Iterator[None]:
    """While inside, count per seed (dim 0) the activation inputs that are exactly 0.

    Every forward call of a module in ``acts`` adds its exact zeros to ``exact_zeros``; the
    backward pass adds to ``live_zeros`` those that meet a non-zero upstream gradient (the
    gradient with respect to the activation's output). Those are the only elements at which
    ``zero_grad`` changes a gradient, whatever its value (0 included).
    """

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        z = inputs[0]
        # Exact zeros are rare in float32/64. On the CPU, where reading a number back stalls
        # no device queue, one reduction finds the calls without any (min |z| > 0; NaN is not
        # > 0), which then need neither the exact count nor a backward hook.
        if z.device.type == "cpu" and z.numel() and bool(z.detach().abs().amin() > 0):
            return
        # 1 where the input is exactly 0, as arithmetic (probes.nonzero says why).
        zero = 1 - probes.nonzero(z)
        dims = tuple(range(1, zero.dim()))
        exact_zeros.add_(probes.count(zero, dims))
        if output.requires_grad:

            def count_live(upstream: torch.Tensor) -> None:
                live_zeros.add_(probes.count(probes.nonzero(upstream).mul_(zero), dims))

            output.register_hook(count_live)

    handles = [act.register_forward_hook(count) for act in acts]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


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


def make_optimizer(name: str, parameters, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD, SGD with momentum 0.9, or Adam; Adam (and SGD on a GPU) with fused kernels.

    A fused step is PyTorch's own update in one kernel per tensor instead of several small
    ops per tensor: Adam's step is otherwise the largest per-step cost of these small models
    (2-4x less on one CPU thread). SGD's step is a single op per tensor on the CPU already,
    and its fused CPU kernel splits even tiny tensors across threads.
    """
    parameters = list(parameters)
    devices = {p.device.type for p in parameters}
    fused = (
        bool(parameters)
        and all(p.is_floating_point() for p in parameters)
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


def per_seed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each seed: logits ``[S, B, C]``, labels ``[S, B]`` -> ``[S]``.

    Half-precision logits are reduced in float32; float32/float64 stay in their own dtype.
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    seeds, batch, classes = logits.shape
    losses = F.cross_entropy(
        logits.reshape(seeds * batch, classes), labels.reshape(seeds * batch), reduction="none"
    )
    return losses.view(seeds, batch).mean(dim=1)


@torch.no_grad()
def measure(stack: SeedStack, data: Split) -> dict[str, torch.Tensor]:
    """Per-seed metrics with frozen weights on the whole training set and on the test set.

    Returns tensors with a leading seed dimension: ``train_loss``, ``val_loss``,
    ``val_accuracy`` ``[S]`` and, per hidden layer, ``dead``/``inactive`` masks ``[S, units]``
    and ``sparsity`` ``[S]`` (lists in forward order).
    """
    was_training = stack.training
    stack.eval()
    seeds = stack.seeds
    try:
        zs: list[torch.Tensor] = []
        hs: list[torch.Tensor] = []
        x_train = data.x_train.expand(seeds, *data.x_train.shape)
        logits = stack(x_train, pre_activations=zs, outputs=hs)
        y_train = data.y_train.expand(seeds, -1)
        train_loss = per_seed_cross_entropy(logits, y_train)
        val_logits = stack(data.x_test.expand(seeds, *data.x_test.shape))
        y_test = data.y_test.expand(seeds, -1)
        val_loss = per_seed_cross_entropy(val_logits, y_test)
        val_accuracy = (val_logits.argmax(dim=-1) == y_test).double().mean(dim=1)
        dead, inactive, sparsity = [], [], []
        for act, z, h in zip(stack.acts, zs, hs, strict=True):
            derivative = probes.local_derivative(act, z)
            dead.append(probes.dead_mask(derivative, keep=(0, 2)))
            inactive.append(probes.inactive_mask(z, keep=(0, 2)))
            sparsity.append(probes.sparsity(h, reduce=(1, 2)))
    finally:
        stack.train(was_training)
    return {
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "dead": dead,
        "inactive": inactive,
        "sparsity": sparsity,
    }


@dataclass
class Settings:
    """What a training job needs besides the model and the data."""

    seeds: list[int]
    lr: float
    epochs: int
    batch_size: int
    optimizer: str = "sgd"
    weight_decay: float = 0.0
    fingerprint: str = ""


@dataclass
class History:
    """Rows gathered during training, kept in checkpoints so an interrupted job resumes."""

    epochs: list[dict] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)
    diverged_epoch: dict[int, int] = field(default_factory=dict)

    def state(self) -> dict:
        return {"epochs": self.epochs, "layers": self.layers, "diverged": self.diverged_epoch}

    @classmethod
    def from_state(cls, state: dict) -> History:
        return cls(list(state["epochs"]), list(state["layers"]), dict(state["diverged"]))


class SeedStackModule(L.LightningModule):
    """Trains a ``SeedStack``; one Lightning step is one epoch over the training set."""

    def __init__(self, stack: SeedStack, data: Split, settings: Settings):
        super().__init__()
        self.stack = stack
        self.data = data
        self.settings = settings
        self.automatic_optimization = False
        seeds = len(settings.seeds)
        self.order = [generator(seed, _ORDER_STREAM) for seed in settings.seeds]
        self.register_buffer("alive", torch.ones(seeds, dtype=torch.bool))
        self.history = History()
        self.death = [probes.DeathHistory() for _ in range(stack.depth)]
        self.logged_rows = 0

    # -- Lightning hooks ---------------------------------------------------------------
    def configure_optimizers(self):
        s = self.settings
        return make_optimizer(s.optimizer, self.stack.parameters(), s.lr, s.weight_decay)

    def train_dataloader(self):
        # One item per epoch: the minibatch loop lives in training_step.
        return torch.utils.data.DataLoader([0], batch_size=1)

    def on_train_start(self) -> None:
        self.data = self.data.to(self.device, self.dtype_of_stack)
        if not self.history.epochs:
            self._record(epoch=0, counters=None)

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers(use_pl_optimizer=False)
        counters = self._train_one_epoch(optimizer)
        self._record(epoch=self.current_epoch + 1, counters=counters)
        if not bool(self.alive.any()):
            self.trainer.should_stop = True

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["relulab"] = {
            "fingerprint": self.settings.fingerprint,
            "history": self.history.state(),
            "order": [g.get_state() for g in self.order],
            "noise": [g.get_state() for g in self._noise_generators()],
            "death": [d.state_dict() for d in self.death],
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["relulab"]
        self.history = History.from_state(state["history"])
        for g, saved in zip(self.order, state["order"], strict=True):
            g.set_state(saved)
        for g, saved in zip(self._noise_generators(), state["noise"], strict=True):
            g.set_state(saved)
        for d, saved in zip(self.death, state["death"], strict=True):
            d.load_state_dict(saved)

    # -- the work ----------------------------------------------------------------------
    @property
    def dtype_of_stack(self) -> torch.dtype:
        return self.stack.weights[0].dtype

    def _measure(self) -> dict[str, torch.Tensor]:
        """``measure`` on the whole data set; models other than ``SeedStack`` override it."""
        return measure(self.stack, self.data)

    def _noise_generators(self) -> list[torch.Generator]:
        act = self.stack.acts[0]
        return list(getattr(act, "generators", None) or [])

    def _train_one_epoch(self, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        stack, data, batch_size = self.stack, self.data, self.settings.batch_size
        seeds, n = stack.seeds, data.x_train.shape[0]
        device = data.x_train.device
        exact_zeros = torch.zeros(seeds, dtype=torch.int64, device=device)
        live_zeros = torch.zeros(seeds, dtype=torch.int64, device=device)
        grad_norms = torch.zeros(stack.depth, seeds, dtype=torch.float64, device=device)
        orders = torch.stack([torch.randperm(n, generator=g) for g in self.order]).to(device)
        hidden = stack.hidden_weights()
        steps = 0

        stack.train()
        with counting_exact_zeros(stack.acts, exact_zeros, live_zeros), _cuda_check_without_nvml():
            for start in range(0, n, batch_size):
                index = orders[:, start : start + batch_size]
                logits = stack(data.x_train[index])
                losses = per_seed_cross_entropy(logits, data.y_train[index])
                self.alive &= torch.isfinite(losses)
                optimizer.zero_grad(set_to_none=True)
                torch.where(self.alive, losses, 0).sum().backward()
                norms = [torch.linalg.vector_norm(w.grad, dim=(1, 2)) for w in hidden]
                grad_norms.add_(torch.stack(norms))
                optimizer.step()
                steps += 1
        return {
            "exact_zeros": exact_zeros,
            "live_zeros": live_zeros,
            "grad_norm": grad_norms / max(steps, 1),
            "steps": steps,
        }

    def _record(self, epoch: int, counters: dict | None) -> None:
        """Measure every live seed and append its rows; mark seeds that diverged."""
        m = self._measure()
        alive = self.alive & torch.isfinite(m["train_loss"])
        self.alive.copy_(alive)
        m = {k: [t.cpu() for t in v] if isinstance(v, list) else v.cpu() for k, v in m.items()}
        c = {k: v.cpu() if torch.is_tensor(v) else v for k, v in (counters or {}).items()}
        alive = alive.cpu()
        dynamics = [self.death[i].update(m["dead"][i]) for i in range(self.stack.depth)]
        steps_per_epoch = math.ceil(self.data.x_train.shape[0] / self.settings.batch_size)
        hashes = parameter_hashes(self.stack)
        for s, seed in enumerate(self.settings.seeds):
            if seed in self.history.diverged_epoch:
                continue
            status = "ok" if bool(alive[s]) else "diverged"
            if status == "diverged":
                self.history.diverged_epoch[seed] = epoch
            units = sum(mask[s].numel() for mask in m["dead"])
            self.history.epochs.append(
                {
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
                    "status": status,
                    "params_sha256": hashes[s],
                }
            )
            for layer, d in enumerate(dynamics):
                self.history.layers.append(
                    {
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
                    }
                )


def seed_status(history: History, seeds: list[int]) -> dict[int, dict]:
    """Final status of each seed: finished, or diverged with the epoch it happened."""
    return {
        seed: (
            {"status": "diverged", "diverged_epoch": history.diverged_epoch[seed]}
            if seed in history.diverged_epoch
            else {"status": "finished", "diverged_epoch": None}
        )
        for seed in seeds
    }
