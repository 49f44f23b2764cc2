"""Prepared datasets: MNIST-1D at any size, and inputs on their raw scale or standardised."""

import numpy as np
import pytest
import torch

from relulab.data import prepared


def _write(path, x_train, x_test):
    np.savez(
        path,
        x_train=x_train,
        y_train=np.arange(len(x_train)) % 2,
        x_test=x_test,
        y_test=np.arange(len(x_test)) % 2,
    )
    return path


def test_raw_images_are_pixels_over_255_with_their_exact_zeros(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 1, 4, 4), dtype=np.uint8)
    images[:, :, 0, :] = 0  # a black border, as MNIST has
    images[::2, :, 1, :] = 0  # and black pixels in some images only
    path = _write(tmp_path / "images.npz", images, images[:2])
    raw = prepared.load(path, inputs="raw")
    assert torch.equal(raw.x_train, torch.from_numpy(images.reshape(6, -1) / 255.0))
    assert raw.x_train.dtype == torch.float64
    assert (raw.x_train[::2, :8] == 0).all()
    # Standardising moves the black pixels of non-constant features off 0.
    standard = prepared.load(path)
    assert (standard.x_train[::2, 4:8] != 0).all()
    assert standard.x_train[:, 4:].mean(dim=0).abs().max() < 1e-12


def test_raw_floats_are_kept_as_stored(tmp_path):
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(8, 5))
    path = _write(tmp_path / "floats.npz", x, x[:3])
    assert torch.equal(prepared.load(path, inputs="raw").x_train, torch.from_numpy(x))
    with pytest.raises(ValueError, match="inputs"):
        prepared.load(path, inputs="scaled")


def test_mnist1d_at_another_size_has_exactly_that_split():
    arrays = prepared.make_mnist1d(seed=0, train=60, test=30)
    assert arrays["x_train"].shape == (60, 40) and arrays["x_test"].shape == (30, 40)
    assert len(arrays["y_train"]) == 60 and len(arrays["y_test"]) == 30
    assert set(arrays["y_train"]) <= set(range(10))
    with pytest.raises(ValueError, match="multiple of 10"):
        prepared.make_mnist1d(train=61, test=30)
    assert prepared.MNIST_SIZE == (60_000, 10_000)
    assert prepared.GENERATORS["mnist1d_60k"] is prepared.make_mnist1d_60k


@pytest.mark.slow
def test_default_mnist1d_is_the_published_split():
    from mnist1d.data import get_dataset_args, make_dataset

    ours = prepared.make_mnist1d(seed=42)
    args = get_dataset_args()
    args.seed = 42
    theirs = make_dataset(args)
    assert np.array_equal(ours["x_train"], theirs["x"])
    assert np.array_equal(ours["y_test"], theirs["y_test"])
