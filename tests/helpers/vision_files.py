"""Small MNIST/Fashion-MNIST/CIFAR-10 files in the on-disk formats torchvision downloads."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

MNIST_FOLDERS = {"mnist": "MNIST/raw", "fashion_mnist": "FashionMNIST/raw"}


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx-ubyte file: magic (0, 0, 0x08 = uint8, number of dims), big-endian dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def images_and_labels(n: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random images whose mean brightness grows with the label, so a model can learn them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    noise = rng.integers(0, 100, size=(n, *shape))
    images = noise + labels.reshape(-1, *([1] * len(shape))) * 15
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_mnist(
    data_dir: Path, name: str = "mnist", train: int = 60, test: int = 20, gz: bool = False
) -> dict[str, np.ndarray]:
    """``<data_dir>/MNIST/raw/*-ubyte`` (or ``.gz``) as torchvision leaves them; returns arrays."""
    raw = Path(data_dir) / MNIST_FOLDERS[name]
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, prefix, n, seed in (("train", "train", train, 1), ("test", "t10k", test, 2)):
        images, labels = images_and_labels(n, (28, 28), seed)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            path = raw / f"{prefix}-{kind}-ubyte"
            if gz:
                with gzip.open(path.with_name(path.name + ".gz"), "wb") as handle:
                    handle.write(idx_bytes(array))
            else:
                path.write_bytes(idx_bytes(array))
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels
    return arrays


def write_cifar10(data_dir: Path, per_batch: int = 12, test: int = 20) -> dict[str, np.ndarray]:
    """``<data_dir>/cifar-10-batches-py/`` with five training batches, a test batch, the meta."""
    folder = Path(data_dir) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = [], []
    files = [(f"data_batch_{i}", per_batch, 10 + i) for i in range(1, 6)]
    for name, n, seed in [*files, ("test_batch", test, 20)]:
        images, labels = images_and_labels(n, (3, 32, 32), seed)
        entry = {
            "batch_label": name,
            "labels": [int(v) for v in labels],
            "data": images.reshape(n, 3072),
            "filenames": [f"{name}_{i}.png" for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(entry))
        if name == "test_batch":
            test_arrays = (images, labels)
        else:
            train_images.append(images)
            train_labels.append(labels)
    meta = {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return {
        "x_train": np.concatenate(train_images),
        "y_train": np.concatenate(train_labels),
        "x_test": test_arrays[0],
        "y_test": test_arrays[1],
    }
