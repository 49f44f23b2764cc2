"""The references relulab's training speed is measured against, each run in its own process.

Imports neither Lightning nor relulab, so it pays neither's import time nor Lightning's
``PYTORCH_NVML_BASED_CUDA_CHECK``. Both peers train the MLP of one grid point (Linear -> ReLU
blocks, PyTorch's default initialisation, cross-entropy, Adam or SGD) on a prepared ``.npz``
dataset standardised as relulab does, and run the same per-epoch dead-unit probe (ReLU units
whose pre-activation is <= 0 on the whole training set) before training and after every epoch.

- ``tight``: the loop an experienced researcher writes for in-memory data: the data on the
  device, one ``randperm`` per epoch, index slices, ``torch.optim`` with PyTorch's defaults.
- ``ensemble``: PyTorch's documented model-ensembling recipe (``torch.func.stack_module_state``
  + ``functional_call`` + ``vmap``) training S seeds as one, each on its own data order.
- ``gemm``: the machine's matrix-product rate (GFLOP/s) on the model's own layer shapes.

Prints one JSON line: wall seconds of the training (after data loading and warm-up).

    python benchmarks/peers.py tight --data data.npz --seeds 1 --epochs 15 --width 100 ...
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


def load(path: str, dtype: torch.dtype, device: str):
    """Inputs flattened and standardised per feature with the training set's statistics."""
    with np.load(path) as arrays:
        x_train, y_train = arrays["x_train"], arrays["y_train"]
    x_train = np.asarray(x_train, dtype=np.float64).reshape(len(x_train), -1)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0
    x = torch.from_numpy((x_train - mean) / std).to(device=device, dtype=dtype)
    return x, torch.from_numpy(np.asarray(y_train, dtype=np.int64)).to(device)


def mlp(features: int, width: int, depth: int, classes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(features, width), nn.ReLU()]
        features = width
    return nn.Sequential(*layers, nn.Linear(features, classes))


def optimizer(name: str, parameters, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr)
    return torch.optim.SGD(parameters, lr=lr, momentum=0.9 if name == "momentum" else 0.0)


@torch.no_grad()
def dead_fraction(model: nn.Sequential, x: torch.Tensor) -> float:
    """Fraction of hidden ReLU units with pre-activation <= 0 on every training example."""
    dead = units = 0
    h = x
    for module in model:
        if isinstance(module, nn.ReLU):
            dead += int((h.amax(dim=0) <= 0).sum())
            units += h.shape[1]
        h = module(h)
    return dead / units


def tight(args, x, y) -> dict:
    """S seeds one after another, each with the plain loop."""
    dead = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        model = mlp(x.shape[1], args.width, args.depth, args.classes).to(x.device, x.dtype)
        opt = optimizer(args.optimizer, model.parameters(), args.lr)
        loss_fn = nn.CrossEntropyLoss()
        dead.append(dead_fraction(model, x))
        for _ in range(args.epochs):
            order = torch.randperm(len(x), device=x.device)
            for start in range(0, len(x), args.batch_size):
                index = order[start : start + args.batch_size]
                opt.zero_grad(set_to_none=True)
                loss_fn(model(x[index]), y[index]).backward()
                opt.step()
            dead.append(dead_fraction(model, x))
    return {"dead_last": dead[-1]}


def ensemble(args, x, y) -> dict:
    """S seeds as one model: torch.func's ensembling recipe, one data order per seed."""
    models = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        models.append(mlp(x.shape[1], args.width, args.depth, args.classes).to(x.device, x.dtype))
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def loss_one(p, b, xb, yb):
        logits = functional_call(base, (p, b), (xb,))
        return nn.functional.cross_entropy(logits, yb)

    def total(p, b, xb, yb):
        return vmap(loss_one)(p, b, xb, yb).sum()

    opt = optimizer(args.optimizer, params.values(), args.lr)

    @torch.no_grad()
    def dead_all() -> float:
        def pre_activations(p, b, xs):
            h, zs = xs, []
            for i in range(args.depth):
                z = h @ p[f"{2 * i}.weight"].T + p[f"{2 * i}.bias"]
                zs.append(z.amax(dim=0))
                h = torch.relu(z)
            return torch.stack(zs)

        hidden = vmap(pre_activations, in_dims=(0, 0, None))(params, buffers, x)
        return float((hidden <= 0).double().mean())

    dead = [dead_all()]
    n = len(x)
    for _ in range(args.epochs):
        orders = torch.stack([torch.randperm(n, device=x.device) for _ in range(args.seeds)])
        for start in range(0, n, args.batch_size):
            index = orders[:, start : start + args.batch_size]
            opt.zero_grad(set_to_none=True)
            total(params, buffers, x[index], y[index]).backward()
            opt.step()
        dead.append(dead_all())
    return {"dead_last": dead[-1]}


def gemm(args, x, y) -> dict:
    """GFLOP/s of the forward matrix products of the model's hidden layer, batch-sized."""
    g = torch.Generator(device=x.device).manual_seed(0)
    a = torch.randn(args.batch_size, args.width, generator=g, dtype=x.dtype, device=x.device)
    w = torch.randn(args.width, args.width, generator=g, dtype=x.dtype, device=x.device)
    big = torch.randn(4096, args.width, generator=g, dtype=x.dtype, device=x.device)
    rates = {}
    for name, left in (("batch", a), ("large", big)):
        for _ in range(20):
            left @ w
        calls = max(20, int(2e8 / (2 * left.shape[0] * args.width * args.width)))
        start = time.perf_counter()
        for _ in range(calls):
            left @ w
        seconds = time.perf_counter() - start
        rates[name] = 2 * left.shape[0] * args.width * args.width * calls / seconds / 1e9
    return {"gflops_batch": rates["batch"], "gflops_large": rates["large"]}


PEERS = {"tight": tight, "ensemble": ensemble, "gemm": gemm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--optimizer", default="adam", choices=["sgd", "momentum", "adam"])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = load(args.data, getattr(torch, args.dtype), args.device)
    run = PEERS[args.peer]
    # Warm-up on a slice: first-call costs (kernels, the optimiser's lazy state) stay out.
    run(
        argparse.Namespace(**{**vars(args), "epochs": 1, "seeds": min(args.seeds, 2)}),
        x[:640],
        y[:640],
    )
    start = time.perf_counter()
    result = run(args, x, y)
    if args.device == "cuda":
        torch.cuda.synchronize()
    result["seconds"] = time.perf_counter() - start
    print(json.dumps(result))


if __name__ == "__main__":
    main()
