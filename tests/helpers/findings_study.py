"""A small study built row by row, its tables computed as the workflow computes them, for the
findings' tests."""

import math

import pandas as pd

from relulab.report import findings
from relulab.study import config as cfg
from relulab.study import settings
from relulab.tables import convergence, dynamics
from relulab.tables import summary as analysis

EPOCHS = 3


def point(
    activation,
    lr,
    optimizer="adam",
    depth=2,
    init="default",
    zero_grad=0.0,
    precision="float32",
    batch_norm=False,
):
    kinked = activation in ("relu", "leaky_relu", "prelu", "rrelu")
    return {
        "point": (
            f"{activation}_zg{zero_grad}_lr{lr:g}_{optimizer}_{precision}_d{depth}_{init}"
            f"_bn{batch_norm}"
        ),
        "activation": activation,
        "zero_grad": zero_grad if kinked else math.nan,
        "lr": lr,
        "optimizer": optimizer,
        "init": init,
        "precision": precision,
        "depth": depth,
        "batch_norm": batch_norm,
        "variant": analysis.variant_label(activation, zero_grad if kinked else None),
    }


def runs(
    params,
    seeds=3,
    dead=0.0,
    revived=0.0,
    ratio=0.5,
    status="finished",
    spread=0.01,
    accuracy=0.7,
    loss=1.0,
):
    """Epoch and layer rows of one point. ``dead`` dies in training in every layer after
    epoch 0; a share ``revived`` of it is alive again at the last epoch in deeper layers."""
    epochs, layers = [], []
    for seed in range(seeds):
        jitter = spread * seed
        for epoch in range(EPOCHS + 1):
            now = 0.0 if epoch == 0 else dead
            for layer in range(1, params["depth"] + 1):
                back = now * revived if (epoch == EPOCHS and layer > 1) else 0.0
                died = dead if epoch > 0 else 0.0
                layers.append(
                    {
                        **params,
                        "seed": seed,
                        "epoch": epoch,
                        "layer": layer,
                        "final_status": status,
                        "dead_fraction": now - back,
                        "inactive_fraction": now - back,
                        "ever_dead_fraction": died,
                        "revived_fraction": back,
                        "permanently_dead_fraction": now - back,
                        "born_dead_fraction": 0.0,
                        "born_dead_revived_fraction": 0.0,
                        "born_dead_permanent_fraction": 0.0,
                        "died_in_training_fraction": died,
                        "died_in_training_revived_fraction": back,
                        "died_in_training_permanent_fraction": died - back,
                        "sparsity": 0.5 if params["activation"] == "relu" else 0.0,
                        "grad_norm": math.nan if epoch == 0 else 1.0,
                        "pre_activation_grad_rms": (
                            ratio ** ((params["depth"] - layer) / (params["depth"] - 1))
                            * (1 + jitter)
                            if params["depth"] > 1
                            else 1.0
                        ),
                    }
                )
            epochs.append(
                {
                    **params,
                    "seed": seed,
                    "epoch": epoch,
                    "step": 10 * epoch,
                    "train_loss": math.log(10) if epoch == 0 else loss,
                    "val_loss": 1.0,
                    "val_accuracy": [0.1, 0.5, 0.6, accuracy][epoch] + jitter,
                    "dead_fraction": now,
                    "inactive_fraction": now,
                    "exact_zeros": 0,
                    "live_exact_zeros": 0,
                    "status": "ok" if status == "finished" else "diverged",
                    "params_sha256": f"{params['point']}-{seed}-{epoch}",
                    "final_status": status,
                }
            )
    return epochs, layers


def inputs_of(
    *specs,
    config_optimizer="adam",
    main=lambda i: "_adam_" in i and "_d2_" in i,
    deep=lambda i: "_adam_" in i,
):
    """``findings.Inputs`` from (params, runs keyword arguments) pairs, tables as the workflow
    computes them."""
    epochs, layers = [], []
    for params, options in specs:
        e, la = runs(params, **options)
        epochs += e
        layers += la
    epochs, layers = pd.DataFrame(epochs), pd.DataFrame(layers)
    conv_runs = convergence.run_table(epochs, 0.6)
    counted = dynamics.distinct_runs(epochs)
    ids = set(epochs["point"])
    return findings.Inputs(
        summary=analysis.summary(epochs, layers),
        death=dynamics.death_table(layers),
        revival=dynamics.revival_table(layers),
        gradient=dynamics.gradient_table(layers),
        convergence=convergence.point_table(conv_runs),
        epochs=epochs,
        main_ids={i for i in ids if main(i)},
        depth_ids={i for i in ids if deep(i)},
        study=settings.from_config(
            cfg.validate(
                {
                    "study": "claims",
                    "dataset": "mnist1d",
                    "model": {"width": 8, "init": "default"},
                    "training": {
                        "optimizer": config_optimizer,
                        "epochs": EPOCHS,
                        "batch_size": 16,
                    },
                }
            )
        ),
        best_lr=convergence.best_lr_table(conv_runs),
        revival_pooled=dynamics.revival_by_cause(layers, counted, by=dynamics.SETTING_COLUMNS),
        layers=layers,
    )
