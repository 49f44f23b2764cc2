"""MNIST, Fashion-MNIST and CIFAR-10 from files in torchvision's on-disk formats, written here."""

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.vision_files import idx_bytes, write_cifar10, write_mnist
from helpers.workflow import scratch_copy, snakemake

from relulab import cli
from relulab.data import prepared as data
from relulab.data import vision
from relulab.study import config as cfg
from relulab.study import grid, paths

WRITERS = {
    "mnist": lambda d: write_mnist(d, "mnist"),
    "mnist_gz": lambda d: write_mnist(d, "mnist", gz=True),
    "fashion_mnist": lambda d: write_mnist(d, "fashion_mnist"),
    "fashion_mnist_gz": lambda d: write_mnist(d, "fashion_mnist", gz=True),
    "cifar10": write_cifar10,
}
SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


@pytest.mark.parametrize("files", list(WRITERS))
def test_loader_reads_the_files_exactly(files, tmp_path):
    name = files.removesuffix("_gz")
    written = WRITERS[files](tmp_path)
    arrays = vision.arrays(name, tmp_path, accept_unverified=True)
    assert arrays["x_train"].dtype == np.uint8
    assert arrays["x_train"].shape[1:] == SHAPES[name]
    for key in ("x_train", "x_test"):
        assert np.array_equal(arrays[key].reshape(written[key].shape), written[key])
    for key in ("y_train", "y_test"):
        assert arrays[key].dtype == np.int64
        assert np.array_equal(arrays[key], written[key])


def test_cifar_images_keep_channel_order(tmp_path):
    written = write_cifar10(tmp_path)
    arrays = vision.arrays("cifar10", tmp_path, accept_unverified=True)
    # Row 3072 bytes = 1024 red, 1024 green, 1024 blue, each 32x32 row-major.
    first = written["x_train"][0].reshape(3072)
    assert np.array_equal(arrays["x_train"][0, 1].reshape(-1), first[1024:2048])


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_prepare_keeps_image_shape_and_load_flattens_for_mlps(name, tmp_path):
    WRITERS[name](tmp_path)
    path = data.prepare(name, tmp_path / f"{name}.npz", data_dir=tmp_path, accept_unverified=True)
    with np.load(path) as stored:
        assert stored["x_train"].dtype == np.uint8
        assert stored["x_train"].shape[1:] == SHAPES[name]
    images = data.load(path, flatten=False)
    assert tuple(images.x_train.shape[1:]) == SHAPES[name]
    means = images.x_train.mean(dim=(0, 2, 3))
    stds = images.x_train.std(dim=(0, 2, 3), unbiased=False)
    assert np.allclose(means, 0, atol=1e-12) and np.allclose(stds, 1, atol=1e-12)
    flat = data.load(path)
    assert flat.x_train.shape == (images.x_train.shape[0], int(np.prod(SHAPES[name])))
    assert flat.in_features == int(np.prod(SHAPES[name])) and flat.classes == 10


def test_missing_files_name_dataset_directory_and_fetch_command(tmp_path):
    with pytest.raises(vision.DataMissingError) as error:
        data.prepare("fashion_mnist", tmp_path / "out.npz", data_dir=tmp_path / "nowhere")
    message = str(error.value)
    assert "'fashion_mnist'" in message
    assert str(tmp_path / "nowhere") in message
    assert f"relulab fetch fashion_mnist --data-dir {tmp_path / 'nowhere'}" in message
    assert not (tmp_path / "out.npz").exists()


def test_partly_missing_files_are_listed(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    message = vision.missing_message("cifar10", tmp_path)
    assert "cifar-10-batches-py/data_batch_3" in message
    assert "data_batch_2" not in message
    assert vision.missing_message("mnist", tmp_path) is not None
    write_mnist(tmp_path, gz=True)
    assert vision.missing_message("mnist", tmp_path) is None


def test_inconsistent_files_are_rejected(tmp_path):
    write_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(7, dtype=np.uint8)))
    with pytest.raises(vision.DataCorruptError, match="20 images but labels"):
        vision.arrays("mnist", tmp_path, accept_unverified=True)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(20, 12, dtype=np.uint8)))
    with pytest.raises(vision.DataCorruptError, match="labels outside 0..9"):
        vision.arrays("mnist", tmp_path, accept_unverified=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file")
    with pytest.raises(vision.DataCorruptError, match="cannot read"):
        vision.arrays("mnist", tmp_path, accept_unverified=True)


def test_checksums_are_compared_with_the_published_ones(tmp_path, monkeypatch):
    write_mnist(tmp_path, gz=True)
    raw = tmp_path / "MNIST" / "raw"
    published = vision.checksums("mnist")
    assert set(published) == {f"{f}.gz" for f in vision.required_files("mnist")}
    assert sorted(vision.checksum_mismatches("mnist", tmp_path)) == sorted(published)
    ours = {file: hashlib.md5((raw / file).read_bytes()).hexdigest() for file in published}
    monkeypatch.setattr(vision, "checksums", lambda name: ours)
    assert vision.checksum_mismatches("mnist", tmp_path) == []
    with gzip.open(raw / "train-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(idx_bytes(np.arange(60, dtype=np.uint8) % 10))
    assert vision.checksum_mismatches("mnist", tmp_path) == ["train-labels-idx1-ubyte.gz"]


def test_fetch_command_finds_files_already_there_without_network(tmp_path, capsys):
    write_mnist(tmp_path)
    assert cli.main(["fetch", "mnist", "--data-dir", str(tmp_path)]) == 1
    assert "do not match the published checksums" in capsys.readouterr().err
    arguments = ["fetch", "mnist", "--data-dir", str(tmp_path), "--accept-unverified"]
    assert cli.main(arguments) == 0
    assert "mnist: ready in" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["fetch", "imagenet", "--data-dir", str(tmp_path)])


def test_relative_data_dir_is_taken_from_the_workflow_folder(tmp_path):
    assert vision.resolve_data_dir("resources/data", tmp_path) == tmp_path / "resources" / "data"
    assert vision.resolve_data_dir(tmp_path / "x", "/elsewhere") == tmp_path / "x"


# -- the workflow: paper-scale configs and the data check before any job -------------------


PAPER_CONFIGS = ["config/paper-mnist-mlp.yaml", "config/paper-cifar10-vgg11.yaml"]


def paper_config(repo_root: Path, name: str) -> dict:
    return cfg.validate(yaml.safe_load((repo_root / name).read_text()))


def test_paper_configs_cover_the_published_settings(repo_root):
    mlp, vgg = (paper_config(repo_root, name) for name in PAPER_CONFIGS)
    assert (mlp["dataset"], mlp["model"]["arch"]) == ("mnist", "mlp")
    assert (vgg["dataset"], vgg["model"]["arch"], vgg["model"]["depth"]) == ("cifar10", "vgg", 8)
    assert vgg["model"]["width"] == 64  # VGG11
    for config in (mlp, vgg):
        points = grid.expand(config)
        assert {p.batch_norm for p in points} == {False, True}
        assert {p.optimizer for p in points} == {"sgd", "adam"}
        assert {p.zero_grad for p in points} >= {0.0, 1.0}
        assert len(cfg.seeds(config)) >= 5
        assert config["training"]["device"] == "auto"


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_dry_runs_without_the_data(name, repo_root, tmp_path):
    """A dry run shows the whole DAG and warns that the data is missing (a plan needs no data)."""
    workdir = scratch_copy(tmp_path)
    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", name)
    out = result.stdout + result.stderr
    dataset = paper_config(repo_root, name)["dataset"]
    assert "warning (dry run)" in out and f"relulab fetch {dataset} --data-dir" in out
    for point in grid.expand(paper_config(repo_root, name)):
        assert str(paths.point_summary(point.id)) in out
    assert not (workdir / "results").exists()


@pytest.mark.slow
def test_real_run_stops_before_any_job_when_data_is_missing(tmp_path):
    workdir = scratch_copy(tmp_path)
    result = snakemake(
        workdir,
        "--cores",
        "1",
        "--configfile",
        "config/paper-cifar10-vgg11.yaml",
        "--config",
        "data_dir=nowhere",
        check=False,
    )
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "dataset 'cifar10'" in out
    assert str(workdir / "nowhere") in out
    assert f"relulab fetch cifar10 --data-dir {workdir / 'nowhere'}" in out
    assert not (workdir / "results").exists()
