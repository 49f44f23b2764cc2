"""Datasets, prepared once per study and loaded by every training job.

A prepared dataset is one ``.npz`` file with ``x_train``, ``y_train``, ``x_test``, ``y_test``.
Image datasets keep their shape ``[N, C, H, W]`` (``uint8`` where the source is) so that
convolutional models can use it; ``load(flatten=True)`` flattens it for MLPs. Jobs load it with
``load``, which standardises inputs with the training set's statistics. MNIST, Fashion-MNIST and
CIFAR-10 are read from a data directory (``relulab.data.vision``), not generated.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from relulab.data import vision


@dataclass(frozen=True)
class Split:
    """Tensors of one dataset: standardised inputs and integer labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def in_features(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))

    @property
    def classes(self) -> int:
        return int(torch.max(self.y_train).item()) + 1

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Split:
        return Split(
            self.x_train.to(device=device, dtype=dtype),
            self.y_train.to(device=device),
            self.x_test.to(device=device, dtype=dtype),
            self.y_test.to(device=device),
        )


# MNIST's own split, for MNIST-1D generated at MNIST's size (``mnist1d_60k``): the exposure
# of the bifurcation study (pre-activations per initialisation) then matches Bertoin et al.'s.
MNIST_SIZE = (60_000, 10_000)


def make_mnist1d(seed: int = 42, train: int = 4000, test: int = 1000) -> dict[str, np.ndarray]:
    """MNIST-1D (Greydanus 2020), generated procedurally and offline: 4000 train, 1000 test
    by default (the published set), or ``train``/``test`` examples drawn the same way.

    The generator draws ``train + test`` examples (a multiple of its 10 classes) and splits
    them in that order; at MNIST's size it takes about 40 s of one core, once per study.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    total = train + test
    if total % 10 or train <= 0 or test <= 0:
        raise ValueError(f"train + test must be a positive multiple of 10, not {train} + {test}")
    args = get_dataset_args()
    args.seed = seed
    args.num_samples = total
    args.train_split = train / total
    data = make_dataset(args)
    # Split at ``train`` exactly (the generator's int(total * fraction) can round down).
    x = np.concatenate([data["x"], data["x_test"]])
    y = np.concatenate([data["y"], data["y_test"]])
    return {"x_train": x[:train], "y_train": y[:train], "x_test": x[train:], "y_test": y[train:]}


def make_digits(seed: int = 42) -> dict[str, np.ndarray]:
    """scikit-learn's 8x8 digits (shipped inside the package), split 80/20 with ``seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x.reshape(len(x), 1, 8, 8)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=seed, stratify=y
    )
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def make_mnist1d_60k(seed: int = 42) -> dict[str, np.ndarray]:
    """MNIST-1D at MNIST's size: 60,000 train, 10,000 test (``MNIST_SIZE``)."""
    return make_mnist1d(seed, *MNIST_SIZE)


GENERATORS: dict[str, Callable[..., dict[str, np.ndarray]]] = {
    "mnist1d": make_mnist1d,
    "mnist1d_60k": make_mnist1d_60k,
    "digits": make_digits,
}
# Read from the data directory (``data_dir``) rather than generated from a seed.
DOWNLOADED = vision.DATASETS


def prepare(
    name: str,
    path: str | Path,
    seed: int = 42,
    data_dir: str | Path = vision.DEFAULT_DATA_DIR,
    accept_unverified: bool = False,
) -> Path:
    """Make dataset ``name`` and write it to ``path`` (``.npz``); done once per study.

    ``seed`` is the generator's (mnist1d) or the split's (digits) seed; the datasets in
    ``DOWNLOADED`` are read and verified from ``data_dir`` instead (``accept_unverified``: see
    ``vision.arrays``).
    """
    if name in DOWNLOADED:
        arrays = vision.arrays(name, data_dir, accept_unverified=accept_unverified)
    elif name in GENERATORS:
        arrays = GENERATORS[name](seed=seed)
    else:
        allowed = ", ".join([*GENERATORS, *DOWNLOADED])
        raise ValueError(f"unknown dataset {name!r}; allowed: {allowed}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = {
        "x_train": _inputs(arrays["x_train"]),
        "y_train": np.asarray(arrays["y_train"], dtype=np.int64),
        "x_test": _inputs(arrays["x_test"]),
        "y_test": np.asarray(arrays["y_test"], dtype=np.int64),
    }
    check_arrays(stored, path)
    tmp = path.with_suffix(".tmp.npz")
    try:
        np.savez_compressed(tmp, **stored)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # left only when writing failed (a full disk)
    return path


def _inputs(x) -> np.ndarray:
    """Inputs as stored: 8-bit images stay ``uint8`` (8x smaller), everything else float64."""
    x = np.asarray(x)
    return x if x.dtype == np.uint8 else x.astype(np.float64)


def standardise(
    x_train: np.ndarray, x_test: np.ndarray, axis: tuple[int, ...] = (0,)
) -> tuple[np.ndarray, np.ndarray]:
    """Zero mean, unit variance with the training set's statistics, reduced over ``axis``.

    The default ``(0,)`` standardises each input feature; ``(0, 2, 3)`` each image channel.
    """
    mean = x_train.mean(axis=axis, keepdims=True)
    std = x_train.std(axis=axis, keepdims=True)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


INPUTS = ("standardised", "raw")


def raw_scale(x: np.ndarray) -> np.ndarray:
    """Inputs on the dataset's own scale as float64: 8-bit images divided by 255 (MNIST pixels
    in [0, 1], most of them exactly 0, as Bertoin et al. feed them), anything else as stored."""
    return x / 255.0 if x.dtype == np.uint8 else np.asarray(x, dtype=np.float64)


# Every dataset relulab prepares has ten classes, labelled 0..9.
CLASSES = vision.CLASSES
KEYS = ("x_train", "y_train", "x_test", "y_test")


class PreparedDataError(ValueError):
    """A prepared ``.npz`` file that cannot be trusted; the message says how to make it again."""


def _regenerate(path: Path) -> str:
    return (
        f"delete {path} and run the workflow again (rule prepare_data writes it anew), "
        f"or: snakemake --forcerun prepare_data"
    )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of a prepared file; ``PreparedDataError`` naming it when unreadable."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            missing = [key for key in KEYS if key not in stored.files]
            if missing:
                raise PreparedDataError(
                    f"prepared data {path} lacks {', '.join(missing)}; {_regenerate(path)}"
                )
            return {key: stored[key] for key in KEYS}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as error:
        if isinstance(error, PreparedDataError):
            raise
        raise PreparedDataError(
            f"prepared data {path} cannot be read ({type(error).__name__}: {error}); "
            f"{_regenerate(path)}"
        ) from error


def check_arrays(arrays: dict[str, np.ndarray], path: str | Path) -> None:
    """Raise ``PreparedDataError`` unless ``arrays`` are what training relies on.

    Finite numeric inputs of one example shape in both splits (``[N, F]`` or ``[N, C, H, W]``),
    one integer label per example in 0..9, and examples in both splits. A NaN in the inputs
    would otherwise make every seed "diverge" at epoch 0, and a label of 12 would silently
    widen the output layer.
    """
    path = Path(path)
    problems = []
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if not (np.issubdtype(x.dtype, np.floating) or x.dtype == np.uint8):
            problems.append(f"x_{split} is {x.dtype}, not numeric")
        elif not np.isfinite(x).all():
            bad = int(np.size(x) - np.isfinite(x).sum())
            problems.append(f"x_{split} holds {bad} NaN or infinite values")
        if x.ndim not in (2, 4):
            problems.append(f"x_{split} has shape {list(x.shape)}, not [N, F] or [N, C, H, W]")
        if len(x) == 0:
            problems.append(f"x_{split} has no examples")
        if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
            problems.append(f"y_{split} is {y.dtype} {list(y.shape)}, not one integer per example")
        elif len(y) != len(x):
            problems.append(f"{len(x)} inputs but {len(y)} labels in the {split} split")
        elif len(y) and (y.min() < 0 or y.max() >= CLASSES):
            problems.append(f"y_{split} has labels outside 0..{CLASSES - 1}")
    if x_train.shape[1:] != x_test.shape[1:]:
        problems.append(
            f"train inputs are {list(x_train.shape[1:])} but test inputs {list(x_test.shape[1:])}"
        )
    if problems:
        raise PreparedDataError(
            f"prepared data {path} is not valid: {'; '.join(problems)}; {_regenerate(path)}"
        )


def load(path: str | Path, flatten: bool = True, inputs: str = "standardised") -> Split:
    """A prepared dataset as float64 tensors; ``flatten`` for MLPs.

    ``inputs="standardised"`` (what training uses): flattened inputs standardised per
    feature, images kept as ``[N, C, H, W]`` per channel. ``inputs="raw"``: on the dataset's
    own scale (``raw_scale``), not standardised. The file is checked first (``check_arrays``),
    so a job trains on valid data or not at all.
    """
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {', '.join(INPUTS)}, not {inputs!r}")
    arrays = _read_npz(Path(path))
    check_arrays(arrays, path)
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    y_train, y_test = arrays["y_train"], arrays["y_test"]
    if flatten:
        x_train = x_train.reshape(len(x_train), -1)
        x_test = x_test.reshape(len(x_test), -1)
    if inputs == "raw":
        x_train, x_test = raw_scale(x_train), raw_scale(x_test)
    else:
        axis = (0, 2, 3) if x_train.ndim == 4 else (0,)
        x_train, x_test = standardise(
            np.asarray(x_train, dtype=np.float64), np.asarray(x_test, dtype=np.float64), axis
        )
    return Split(
        torch.from_numpy(x_train),
        torch.from_numpy(y_train),
        torch.from_numpy(x_test),
        torch.from_numpy(y_test),
    )
