"""The training core: all seeds of one grid point trained as one model, without any framework.

``SeedTraining`` runs relulab's own epoch loop over a model that holds the S seeds' networks and
implements ``SeedModel``: ``StackedMLP`` (the MLPs stacked into batched matrix products) or
``relulab.train.conv.SeedModels`` (one convolutional network per seed). After every epoch it
measures each seed on the whole training set (``relulab.train.measure``) and appends the rows
(``relulab.train.rows``) of ``History``, with the units dead over the epoch's own training
steps beside those dead at its end (``relulab.train.step_death``); ``state``/``load_state`` are
what a checkpoint must hold to resume. Lightning drives it from ``relulab.train.lightning``, the
only module that imports Lightning. Nothing inside the minibatch loop waits on the host:
counters stay on the device and are read once per epoch.

A seed fixes its initial weights, its data order and its RReLU noise, and none of these depend
on the activation or on ``zero_grad``, so runs that differ only in ``zero_grad`` are exact twins.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from relulab.data.prepared import Split
from relulab.nn import probes
from relulab.nn.models import SeedStack
from relulab.train import optim, rows
from relulab.train.environment import cuda_check_without_nvml
from relulab.train.hashing import parameter_hashes
from relulab.train.seeding import ORDER_STREAM, generator
from relulab.train.stacked import StackedMLP
from relulab.train.step_death import NonzeroDerivatives, recording_nonzero_derivatives
from relulab.train.zeros import counting_exact_zeros_of

# The unit dynamics a layer row gives by each definition of dead (``probes.DeathHistory``).
DYNAMICS = ("dead", "ever_dead", "revived", "permanently_dead", *probes.CAUSE_COLUMNS)


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
    # Where the networks are made (device, code version): a checkpoint records it, and a job
    # resumes only a checkpoint made where it runs (``relulab.train.job``).
    origin: dict[str, str] = field(default_factory=dict)

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
        # The same by the step-level definition, from the first epoch of training on.
        self.step_death = [probes.DeathHistory() for _ in range(model.depth)]
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
            "seeds": list(self.settings.seeds),
            "points": self.settings.points,
            "origin": dict(self.settings.origin),
            "history": self.history.state(),
            "alive": self.alive.cpu(),
            "order": [g.get_state() for g in self.order],
            "noise": [g.get_state() for g in self.model.noise_generators()],
            "death": [d.state_dict() for d in self.death],
            "step_death": [d.state_dict() for d in self.step_death],
            "loss_scale": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def load_state(self, state: dict) -> None:
        """Continue from ``state``; its members must be this training's seeds, in order."""
        held = state.get("seeds")
        if held != list(self.settings.seeds):
            raise ValueError(
                f"the checkpoint holds the networks of seeds {held}, not of {self.settings.seeds}"
            )
        self.history = History.from_state(state["history"])
        self.alive = state["alive"].to(self.alive.device)
        for g, saved in zip(self.order, state["order"], strict=True):
            g.set_state(saved)
        for g, saved in zip(self.model.noise_generators(), state["noise"], strict=True):
            g.set_state(saved)
        for d, saved in zip(self.death, state["death"], strict=True):
            d.load_state_dict(saved)
        for d, saved in zip(self.step_death, state["step_death"], strict=True):
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
        nonzero_derivatives = NonzeroDerivatives(seeds, model.depth)
        steps = 0

        model.train()
        with (
            counting_exact_zeros_of(model, exact_zeros, live_zeros),
            recording_nonzero_derivatives(model, nonzero_derivatives),
            cuda_check_without_nvml(),
        ):
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
            "dead_over_steps": nonzero_derivatives.dead(),
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
        step_dynamics = self.update_step_death(c.get("dead_over_steps"))
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
            member = points[s] if points is not None else None
            self.history.epochs.append(
                rows.epoch_row(
                    member,
                    seed=seed,
                    epoch=epoch,
                    step=epoch * steps_per_epoch,
                    train_loss=float(m["train_loss"][s]),
                    val_loss=float(m["val_loss"][s]),
                    val_accuracy=float(m["val_accuracy"][s]),
                    dead_fraction=sum(int(d[s].sum()) for d in m["dead"]) / units,
                    inactive_fraction=sum(int(d[s].sum()) for d in m["inactive"]) / units,
                    exact_zeros=int(c["exact_zeros"][s]) if c else 0,
                    live_exact_zeros=int(c["live_zeros"][s]) if c else 0,
                    dead_at_inference_fraction=sum(int(d[s].sum()) for d in m["dead_at_inference"])
                    / units,
                    inactive_at_inference_fraction=sum(
                        int(d[s].sum()) for d in m["inactive_at_inference"]
                    )
                    / units,
                    status=status,
                    params_sha256=hashes[s],
                )
            )
            for layer, d in enumerate(dynamics):
                self.history.layers.append(
                    rows.layer_row(
                        member,
                        seed=seed,
                        epoch=epoch,
                        layer=layer + 1,
                        dead_fraction=float(d["dead"][s].double().mean()),
                        inactive_fraction=float(m["inactive"][layer][s].double().mean()),
                        ever_dead_fraction=float(d["ever_dead"][s].double().mean()),
                        revived_fraction=float(d["revived"][s].double().mean()),
                        permanently_dead_fraction=float(d["permanently_dead"][s].double().mean()),
                        **{
                            f"{cause}_fraction": float(d[cause][s].double().mean())
                            for cause in probes.CAUSE_COLUMNS
                        },
                        sparsity=float(m["sparsity"][layer][s]),
                        grad_norm=float(c["grad_norm"][layer][s]) if c else float("nan"),
                        dead_at_inference_fraction=float(
                            m["dead_at_inference"][layer][s].double().mean()
                        ),
                        inactive_at_inference_fraction=float(
                            m["inactive_at_inference"][layer][s].double().mean()
                        ),
                        pre_activation_grad_rms=float(m["pre_activation_grad_rms"][layer][s]),
                        **step_columns(step_dynamics[layer] if step_dynamics else None, s),
                    )
                )

    def update_step_death(self, dead_over_steps: list[torch.Tensor] | None) -> list[dict] | None:
        """Each layer's step-level dynamics after an epoch of training; None before any step."""
        if dead_over_steps is None:
            return None
        return [
            death.update(d.cpu()) for death, d in zip(self.step_death, dead_over_steps, strict=True)
        ]


def step_columns(dynamics: dict | None, seed: int) -> dict[str, float]:
    """A layer row's ``step_*`` fractions of seed ``seed``: NaN without steps (epoch 0)."""
    return {
        f"{rows.STEP_PREFIX}{name}_fraction": (
            float(dynamics[name][seed].double().mean()) if dynamics is not None else math.nan
        )
        for name in DYNAMICS
    }


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
