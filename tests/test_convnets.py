"""VGG-style and ResNet-style networks: layouts, channels as units, training through the job."""

import json

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers.training import trainer
from helpers.vision_files import write_cifar10, write_mnist
from helpers.workflow import scratch_copy, snakemake
from torch import nn
from torchvision.models import resnet18
from torchvision.models.vgg import cfgs as vgg_layouts

from relulab.data import prepared as data
from relulab.nn import activations, convnets, probes
from relulab.study import config as cfg
from relulab.study import grid
from relulab.train import conv as conv_training
from relulab.train import job
from relulab.train.core import Settings
from relulab.train.lightning import SeedStackModule


def conv_layout(model: convnets.VGG) -> list:
    return [
        m.out_channels if isinstance(m, nn.Conv2d) else "M"
        for m in model.features
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d))
    ]


@pytest.mark.parametrize(("depth", "name"), [(8, "A"), (10, "B"), (13, "D")])
def test_vgg_depth_and_width_give_the_published_layouts(depth, name):
    """Depth 8/10/13 with width 64 are VGG11/13/16 (torchvision's configurations A/B/D)."""
    model = convnets.VGG((3, 32, 32), 10, depth=depth, width=64)
    assert conv_layout(model) == vgg_layouts[name]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnet18_layout_matches_torchvision_apart_from_the_cifar_stem():
    model = convnets.ResNet((3, 32, 32), 10, depth=18, width=64, batch_norm=True)
    assert convnets.resnet_stages(18) == [2, 2, 2, 2]
    ours = sum(p.numel() for p in model.parameters())
    reference = resnet18(num_classes=10)
    theirs = sum(p.numel() for p in reference.parameters())
    assert ours == theirs - 64 * 3 * 7 * 7 + 64 * 3 * 3 * 3  # 3x3 stem instead of 7x7
    assert len(convnets.activation_modules(model)) == 17 == len(model.hidden_weights())


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("arch", ["vgg", "resnet"])
def test_models_fit_every_image_size(arch, shape):
    model = convnets.build(arch, in_shape=shape, classes=10, depth=8, width=4)
    assert model(torch.randn(3, *shape)).shape == (3, 10)


def test_bad_depths_and_datasets_are_refused():
    with pytest.raises(ValueError, match="even number >= 4"):
        convnets.resnet_stages(5)
    base = {"dataset": "digits", "model": {"arch": "resnet", "depth": [18, 7]}}
    with pytest.raises(cfg.ConfigError, match="model.depth"):
        cfg.validate(base)
    with pytest.raises(cfg.ConfigError, match="mnist1d"):
        cfg.validate({"dataset": "mnist1d", "model": {"arch": "vgg"}})
    with pytest.raises(cfg.ConfigError, match="model.arch"):
        cfg.validate({"dataset": "digits", "model": {"arch": "alexnet"}})


@pytest.mark.parametrize("arch", ["vgg", "resnet"])
@pytest.mark.parametrize("name", activations.ACTIVATIONS)
def test_every_activation_with_its_zero_grad_in_every_layer(arch, name):
    zero_grad = 0.5 if activations.is_kinked(name) else None
    model = convnets.build(
        arch, in_shape=(1, 8, 8), classes=10, depth=4, width=4, activation=name,
        zero_grad=zero_grad, batch_norm=True,
    )  # fmt: skip
    acts = convnets.activation_modules(model)
    assert len(acts) == len(model.hidden_weights()) >= 3
    assert len({id(a) for a in acts}) == len(acts), "one module per layer"
    for act in acts:
        assert type(act) is type(activations.build(name, zero_grad))
        if zero_grad is not None:
            assert act.zero_grad == zero_grad
    loss = model(torch.randn(4, 1, 8, 8)).sum()
    loss.backward()
    assert all(w.grad is not None for w in model.hidden_weights())


def test_initial_weights_depend_on_the_seed_alone():
    kwargs = {"in_shape": (1, 8, 8), "classes": 10, "depth": 3, "width": 4}
    relu = convnets.seeded("vgg", 7, activation="relu", zero_grad=0.0, **kwargs)
    elu = convnets.seeded("vgg", 7, activation="elu", **kwargs)
    other = convnets.seeded("vgg", 8, activation="relu", zero_grad=0.0, **kwargs)
    for a, b in zip(relu.hidden_weights(), elu.hidden_weights(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(relu.hidden_weights()[0], other.hidden_weights()[0])


# -- probes: a channel is a unit ------------------------------------------------------------


def hand_built_conv(activation: str, zero_grad):
    """1x1 convolution, z = w * x + b per channel, on x in [-1, 1] but for one position.

    Channel 0: z = x (both signs). Channel 1: z = 0 exactly everywhere. Channel 2: z = x - 2,
    positive at one position of one example only. Channel 3: z = -1 everywhere.
    """
    conv = nn.Conv2d(1, 4, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 0.0, 1.0, 0.0]).view(4, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, 0.0, -2.0, -1.0]))
    return nn.Sequential(
        conv, activations.build(activation, zero_grad), nn.Flatten(), nn.Linear(4 * 2 * 2, 2)
    )


def inputs() -> torch.Tensor:
    x = torch.linspace(-1, 1, 3 * 4).view(3, 1, 2, 2)
    x[2, 0, 1, 0] = 5.0
    return x


def test_channel_is_dead_only_if_its_derivative_is_zero_at_every_position_of_every_example():
    x = inputs()
    assert probes.dead_units(hand_built_conv("relu", 0.0), x)[0].tolist() == [0, 1, 0, 1]
    assert probes.dead_units(hand_built_conv("relu", 1.0), x)[0].tolist() == [0, 0, 0, 1]
    for zero_grad in (0.0, 1.0):
        inactive = probes.inactive_units(hand_built_conv("relu", zero_grad), x)[0]
        assert inactive.tolist() == [0, 1, 0, 1]
    # Without its one positive position, channel 2 dies.
    x[2, 0, 1, 0] = 0.5
    assert probes.dead_units(hand_built_conv("relu", 1.0), x)[0].tolist() == [0, 0, 1, 1]
    assert not probes.dead_units(hand_built_conv("leaky_relu", 1.0), x)[0].any()


@pytest.mark.parametrize("zero_grad", [0.0, 1.0])
def test_chunked_measurement_equals_the_probes_on_the_whole_set(zero_grad):
    model = hand_built_conv("relu", zero_grad)
    x = inputs()
    split = data.Split(x, torch.tensor([0, 1, 0]), x, torch.tensor([0, 1, 0]))
    m = conv_training.measure_one(model, split, batch=1)
    assert m["dead"][0].tolist() == probes.dead_units(model, x)[0].tolist()
    assert m["inactive"][0].tolist() == probes.inactive_units(model, x)[0].tolist()
    outputs = model[1](model[0](x))
    assert float(m["sparsity"][0]) == pytest.approx(float(probes.sparsity(outputs)))
    with torch.no_grad():
        loss = nn.functional.cross_entropy(model(x), split.y_train)
    assert float(m["train_loss"]) == pytest.approx(float(loss), rel=1e-6)


def test_measure_on_a_vgg_matches_the_probes_per_seed():
    models = conv_training.build_models(
        [0, 1], "vgg", (1, 8, 8), 10, 4, 3, "relu", 0.0, True, "default", torch.float64
    )
    x = torch.randn(10, 1, 8, 8, dtype=torch.float64) - 1.5
    split = data.Split(x, torch.arange(10), x, torch.arange(10))
    m = conv_training.measure(models, split, batch=3)
    assert m["train_loss"].shape == (2,) and len(m["dead"]) == 3
    for s, model in enumerate(models.models):
        for layer, mask in enumerate(probes.dead_units(model, x)):
            assert m["dead"][layer][s].tolist() == mask.tolist()


# -- training through the real job code ----------------------------------------------------


@pytest.fixture(scope="module")
def image_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    write_mnist(root, "mnist", train=48, test=16)
    write_mnist(root, "fashion_mnist", train=48, test=16, gz=True)
    write_cifar10(root, per_batch=10, test=16)
    return {
        name: data.prepare(name, root / f"{name}.npz", data_dir=root, accept_unverified=True)
        for name in ("mnist", "fashion_mnist", "cifar10")
    }


def conv_config(dataset, arch, batch_norm, activation, zero_grad, depth, **training):
    return cfg.validate(
        {
            "dataset": dataset,
            "activation": [activation],
            "zero_grad": [zero_grad],
            "lr": [0.05],
            "model": {"arch": arch, "width": 4, "depth": depth, "batch_norm": batch_norm},
            "training": {"epochs": 1, "batch_size": 16, "seeds": 2, **training},
        }
    )


CASES = [
    ("mnist", "vgg", False, "relu", 0.0, 3),
    ("cifar10", "vgg", True, "gelu", 0.0, 3),
    ("mnist", "vgg", True, "rrelu", 0.5, 2),
    ("cifar10", "resnet", True, "relu", 1.0, 4),
    ("fashion_mnist", "resnet", False, "softplus", 0.0, 4),
    ("fashion_mnist", "resnet", False, "prelu", 0.0, 4),
]


@pytest.mark.parametrize(
    ("dataset", "arch", "batch_norm", "activation", "zero_grad", "depth"), CASES
)
def test_one_epoch_of_a_few_batches_through_the_job(
    image_data, tmp_path, dataset, arch, batch_norm, activation, zero_grad, depth
):
    config = conv_config(dataset, arch, batch_norm, activation, zero_grad, depth, optimizer="adam")
    (point,) = grid.expand(config)
    out = tmp_path / point.id
    summary = job.run_point(point, config, image_data[dataset], out, tracking_uri=None)
    epochs = pd.read_csv(out / "epochs.csv")
    layers = pd.read_csv(out / "layers.csv")
    split = data.load(image_data[dataset], flatten=False)
    model = convnets.build(arch, in_shape=tuple(split.x_train.shape[1:]), classes=10, depth=depth)
    n_layers = len(model.hidden_weights())
    steps = -(-split.x_train.shape[0] // 16)
    assert sorted(epochs.epoch.unique()) == [0, 1]
    assert len(epochs) == 2 * 2 and len(layers) == 2 * 2 * n_layers
    assert (epochs.status == "ok").all()
    assert np.isfinite(epochs[["train_loss", "val_loss", "val_accuracy"]]).all().all()
    assert (epochs[epochs.epoch == 1].step == steps).all()
    assert sorted(layers.layer.unique()) == list(range(1, n_layers + 1))
    trained = layers[layers.epoch == 1]
    assert (trained.grad_norm > 0).all() and np.isfinite(trained.grad_norm).all()
    assert layers[["dead_fraction", "inactive_fraction", "sparsity"]].stack().between(0, 1).all()
    saved = json.loads((out / "point.json").read_text())
    assert saved["params"]["optimizer"] == "adam" and summary["point"].endswith(point.id)
    assert {info["status"] for info in saved["seeds"].values()} == {"finished"}
    assert not (out / "checkpoints").exists()


def fit(split, seeds, zero_grad=0.0, poison=None, batch_norm=False):
    models = conv_training.build_models(
        seeds, "vgg", tuple(split.x_train.shape[1:]), 10, 4, 3, "relu", zero_grad, batch_norm,
        "default", torch.float64, measure_batch=20,
    )  # fmt: skip
    if poison is not None:
        with torch.no_grad():
            models.models[poison].hidden_weights()[0].fill_(float("inf"))
    module = SeedStackModule(models, split, Settings(seeds=seeds, lr=0.05, epochs=2, batch_size=16))
    trainer(2).fit(module)
    return module, models


def test_seeds_train_side_by_side_as_alone_and_divergence_stays_local(image_data):
    split = data.load(image_data["mnist"], flatten=False)
    together, models = fit(split, [0, 3], poison=0, batch_norm=True)
    assert together.history.diverged_epoch == {0: 0}
    alone, single = fit(split, [3], batch_norm=True)
    trained_together, trained_alone = models.models[1].state_dict(), single.models[0].state_dict()
    assert trained_together.keys() == trained_alone.keys()
    for key, value in trained_alone.items():
        assert torch.equal(trained_together[key], value), key
    rows = pd.DataFrame(together.history.layers)
    pd.testing.assert_frame_equal(
        rows[rows.seed == 3].reset_index(drop=True),
        pd.DataFrame(alone.history.layers),
        check_exact=True,
    )


def test_zero_grad_twins_are_identical_without_live_exact_zeros(image_data):
    split = data.load(image_data["cifar10"], flatten=False)
    first, w0 = fit(split, [0], zero_grad=0.0)
    second, w1 = fit(split, [0], zero_grad=1.0)
    assert all(row["live_exact_zeros"] == 0 for row in first.history.epochs)
    for a, b in zip(w0.parameters(), w1.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_vision_study_through_snakemake(tmp_path):
    """Fetched files under a relative data_dir, prepared once, a VGG trained, summarised."""
    workdir = scratch_copy(tmp_path)
    write_mnist(workdir / "resources" / "data", "fashion_mnist", train=40, test=20, gz=True)
    study = {
        "study": "vision-test",
        "dataset": "fashion_mnist",
        "accept_unverified_data": True,  # files written here, not the published ones
        "activation": ["relu"],
        "zero_grad": [0.0],
        "lr": [0.05],
        "model": {"arch": "vgg", "width": 4, "depth": 2, "batch_norm": [False, True]},
        "training": {"optimizer": "sgd", "epochs": 1, "batch_size": 16, "seeds": 2},
        # Only this study's grid: not the extra studies config/config.yaml switches on.
        "depth_study": {"enabled": False},
        "bifurcation": {"enabled": False},
        "cost": {"sizes": [1000], "repeats": 3},
    }
    (workdir / "config" / "vision.yaml").write_text(yaml.safe_dump(study))
    target = "results/tables/summary.csv"  # training and its table, not every figure
    snakemake(workdir, target, "--cores", "2", "--configfile", "config/vision.yaml")
    summary = pd.read_csv(workdir / "results/tables/summary.csv")
    assert sorted(summary.point) == sorted(p.id for p in grid.expand(cfg.validate(study)))
    assert len(summary) == 2
    with np.load(workdir / "results/data/fashion_mnist.npz") as stored:
        assert stored["x_train"].shape == (40, 1, 28, 28)


def test_interrupted_training_resumes_to_the_same_result(image_data, tmp_path):
    """Checkpoints hold each seed's network, optimiser, data order and RReLU noise."""
    split = data.load(image_data["mnist"], flatten=False)

    def run(epochs, resume=None):
        models = conv_training.build_models(
            [0, 1], "resnet", (1, 28, 28), 10, 4, 4, "rrelu", 0.0, True, "default", torch.float64
        )
        settings = Settings(seeds=[0, 1], lr=0.05, epochs=epochs, batch_size=16, optimizer="adam")
        module = SeedStackModule(models, split, settings)
        checkpoint = L.pytorch.callbacks.ModelCheckpoint(
            dirpath=tmp_path, save_last=True, save_top_k=0, every_n_epochs=1
        )
        trainer(epochs, [checkpoint]).fit(module, ckpt_path=resume)
        return module

    straight = run(2)
    (tmp_path / "last.ckpt").unlink()
    run(1)
    resumed = run(2, resume=str(tmp_path / "last.ckpt"))
    pd.testing.assert_frame_equal(
        pd.DataFrame(resumed.history.layers), pd.DataFrame(straight.history.layers)
    )
    for a, b in zip(resumed.stack.parameters(), straight.stack.parameters(), strict=True):
        assert torch.equal(a, b)
