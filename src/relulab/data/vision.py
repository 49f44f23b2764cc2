"""MNIST, Fashion-MNIST and CIFAR-10: fetched once through torchvision, read from a data directory.

The files stay in the layout torchvision downloads them in, under one data directory
(``data_dir`` in the config, ``resources/data`` by default)::

    <data_dir>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    <data_dir>/FashionMNIST/raw/...                       (same names)
    <data_dir>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}

``fetch`` downloads them (torchvision checks the published MD5 sums while downloading).
``arrays`` reads them without network. Before it reads a byte of them it compares the
published checksums, and refuses files that differ (or that it cannot verify) unless told to
accept them (``accept_unverified``, the config key ``accept_unverified_data``): CIFAR-10's
batches are pickles, and a pickle from elsewhere can run any code while it is read. Even
accepted, a CIFAR-10 batch is read with an unpickler that admits only the NumPy array types
the real batches hold. After reading it verifies what a study relies on: image shapes,
matching image and label counts, labels in 0..9. ``missing_message`` says what is missing and
how to fetch it; the workflow calls it before any job starts.

Images are returned as ``uint8`` arrays ``[N, C, H, W]``; labels as ``int64``.
"""

from __future__ import annotations

import gzip
import logging
import pickle
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = "resources/data"
CLASSES = 10


@dataclass(frozen=True)
class Source:
    """Where a dataset lives under the data directory and what its images look like."""

    name: str
    title: str
    folder: str
    shape: tuple[int, int, int]


SOURCES: dict[str, Source] = {
    "mnist": Source("mnist", "MNIST", "MNIST/raw", (1, 28, 28)),
    "fashion_mnist": Source("fashion_mnist", "Fashion-MNIST", "FashionMNIST/raw", (1, 28, 28)),
    "cifar10": Source("cifar10", "CIFAR-10", "cifar-10-batches-py", (3, 32, 32)),
}
DATASETS = tuple(SOURCES)


class DataMissingError(FileNotFoundError):
    """A dataset's files are not in the data directory; the message says how to fetch them."""


class DataCorruptError(ValueError):
    """A dataset's files are there but do not hold what the format promises."""


class UnverifiedDataError(DataCorruptError):
    """A dataset's files differ from the published ones; they were not read."""


def _torchvision_class(name: str):
    try:
        from torchvision import datasets
    except ImportError as error:  # pragma: no cover - torchvision is pinned in constraints.txt
        raise ImportError(
            f"dataset {name!r} needs torchvision: pip install -c constraints.txt -e '.[vision]'"
        ) from error
    return {
        "mnist": datasets.MNIST,
        "fashion_mnist": datasets.FashionMNIST,
        "cifar10": datasets.CIFAR10,
    }[name]


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown downloadable dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return SOURCES[name]


def resolve_data_dir(data_dir: str | Path, base: str | Path = ".") -> Path:
    """``data_dir`` as an absolute path; a relative one is taken relative to ``base``."""
    path = Path(data_dir).expanduser()
    return (path if path.is_absolute() else Path(base) / path).resolve()


def checksums(name: str) -> dict[str, str]:
    """Published MD5 sum of each file, by file name, as torchvision knows them."""
    dataset = _torchvision_class(_source(name).name)
    if name == "cifar10":
        files = dataset.train_list + dataset.test_list
        return {file: md5 for file, md5 in files} | {dataset.meta["filename"]: dataset.meta["md5"]}
    return dict(dataset.resources)


def _mnist_files(split: str) -> tuple[str, str]:
    prefix = "train" if split == "train" else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def required_files(name: str) -> list[str]:
    """Files a study needs, relative to the dataset's folder (MNIST's may also be ``.gz``)."""
    if name == "cifar10":
        dataset = _torchvision_class(name)
        return [file for file, _ in dataset.train_list + dataset.test_list]
    _source(name)
    return [file for split in ("train", "test") for file in _mnist_files(split)]


def folder(name: str, data_dir: str | Path) -> Path:
    return Path(data_dir) / _source(name).folder


def missing_files(name: str, data_dir: str | Path) -> list[str]:
    """Required files absent from ``data_dir`` (an MNIST file counts as present if gzipped)."""
    where = folder(name, data_dir)
    return [
        file
        for file in required_files(name)
        if not (where / file).is_file()
        and not (name != "cifar10" and (where / f"{file}.gz").is_file())
    ]


def fetch_command(name: str, data_dir: str | Path) -> str:
    """The command that fetches ``name``, quoted so that it can be pasted into a shell."""
    return f"relulab fetch {name} --data-dir {shlex.quote(str(data_dir))}"


def missing_message(name: str, data_dir: str | Path) -> str | None:
    """Why ``name`` cannot be read from ``data_dir`` and how to fetch it; None if it can."""
    missing = missing_files(name, data_dir)
    if not missing:
        return None
    source = _source(name)
    if len(missing) == len(required_files(name)):
        shown = f"no files under {source.folder}/"
    else:
        suffix = " (or .gz)" if name != "cifar10" else ""
        shown = "missing " + ", ".join(f"{source.folder}/{file}{suffix}" for file in missing)
    return (
        f"dataset '{name}' ({source.title}) is not in the data directory {data_dir}: "
        f"{shown}. Fetch it once on a machine with network access with\n"
        f"    {fetch_command(name, data_dir)}\n"
        "(torchvision downloads and checks it), or set the config key data_dir to the "
        f"directory that holds {source.folder}/."
    )


def require(name: str, data_dir: str | Path) -> None:
    """Raise ``DataMissingError`` (with the fetch command) unless all files are present."""
    message = missing_message(name, data_dir)
    if message:
        raise DataMissingError(message)


def fetch(
    name: str, data_dir: str | Path = DEFAULT_DATA_DIR, accept_unverified: bool = False
) -> Path:
    """Download ``name`` into ``data_dir`` with torchvision (nothing is fetched twice)."""
    dataset = _torchvision_class(_source(name).name)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if not unverified_files(name, data_dir):
        for train in (True, False):
            dataset(root=str(data_dir), train=train, download=True)
    elif not accept_unverified:
        # torchvision unpickles CIFAR-10's files itself: it only ever sees verified ones.
        refuse_unverified(name, data_dir)
    arrays(name, data_dir, accept_unverified=accept_unverified)
    return folder(name, data_dir)


def _md5(path: Path) -> str:
    from torchvision.datasets.utils import calculate_md5

    return calculate_md5(str(path))


def checksum_mismatches(name: str, data_dir: str | Path) -> list[str]:
    """Files present in ``data_dir`` whose MD5 differs from the published one."""
    where = folder(name, data_dir)
    return [
        file
        for file, md5 in checksums(name).items()
        if (where / file).is_file() and _md5(where / file) != md5
    ]


def unverified_files(name: str, data_dir: str | Path) -> list[str]:
    """Files ``arrays`` would read that do not match a published checksum.

    MNIST's checksums are those of the ``.gz`` files, which are read when present; a plain
    ``-ubyte`` file without its ``.gz`` cannot be verified.
    """
    where = folder(name, data_dir)
    unknown = []
    if name != "cifar10":
        unknown = [
            file
            for file in required_files(name)
            if (where / file).is_file() and not (where / f"{file}.gz").is_file()
        ]
    return sorted({*checksum_mismatches(name, data_dir), *unknown})


def refuse_unverified(name: str, data_dir: str | Path) -> None:
    """Raise ``UnverifiedDataError`` if any file to read is not the published one.

    Called before any file is opened for reading: a CIFAR-10 batch is a pickle, and
    unpickling a crafted file runs its code.
    """
    bad = unverified_files(name, data_dir)
    if not bad:
        return
    raise UnverifiedDataError(
        f"{name}: {', '.join(bad)} in {folder(name, data_dir)} do not match the published "
        "checksums, so they are not the files torchvision downloads; relulab has not read them. "
        f"Delete them and fetch again with `{fetch_command(name, data_dir)}`, or, for files "
        "you made yourself, set the config key accept_unverified_data: true "
        "(`relulab fetch --accept-unverified`)."
    )


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10 batches: dicts, lists, strings, numbers and NumPy arrays, no code.

    A pickle names the functions it calls to rebuild its objects; these are the only ones a
    real batch names (as written by NumPy 1 and NumPy 2), and none of them runs code.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds arrays only"
            )
        if module.startswith("numpy.core."):
            module = module.replace("numpy.core.", "numpy._core.", 1)
        return super().find_class(module, name)


def _read_idx(path: Path, reader):
    """An idx-ubyte file read by torchvision's reader; its ``.gz`` (verified) is preferred."""
    if path.is_file() and not path.with_name(path.name + ".gz").is_file():
        return reader(str(path)).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / path.name
        with gzip.open(path.with_name(path.name + ".gz"), "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return reader(str(plain)).numpy()


def _mnist_split(name: str, data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    from torchvision.datasets.mnist import read_image_file, read_label_file

    where = folder(name, data_dir)
    image_file, label_file = _mnist_files(split)
    try:
        images = _read_idx(where / image_file, read_image_file)
        labels = _read_idx(where / label_file, read_label_file)
    except (AssertionError, TypeError, ValueError, RuntimeError, EOFError, OSError) as error:
        raise DataCorruptError(f"{name}: cannot read {where / image_file}: {error}") from error
    return images[:, None, :, :], labels


def _cifar_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    dataset = _torchvision_class("cifar10")
    where = folder("cifar10", data_dir)
    files = dataset.train_list if split == "train" else dataset.test_list
    images, labels = [], []
    for file, _ in files:
        try:
            with open(where / file, "rb") as handle:
                entry = _ArrayUnpickler(handle, encoding="latin1").load()
            data = np.asarray(entry["data"], dtype=np.uint8)
            images.append(data.reshape(len(data), 3, 32, 32))
            labels.append(np.asarray(entry["labels"]))
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as error:
            raise DataCorruptError(f"cifar10: cannot read {where / file}: {error}") from error
    return np.concatenate(images), np.concatenate(labels)


def _check(name: str, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    shape = SOURCES[name].shape
    if images.dtype != np.uint8 or images.shape[1:] != shape:
        raise DataCorruptError(
            f"{name} {split}: images are {images.dtype} {list(images.shape)}, expected uint8 "
            f"[N, {', '.join(map(str, shape))}]"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataCorruptError(
            f"{name} {split}: {len(images)} images but labels of shape {list(labels.shape)}"
        )
    if len(images) == 0:
        raise DataCorruptError(f"{name} {split}: no examples")
    if labels.min() < 0 or labels.max() >= CLASSES:
        raise DataCorruptError(f"{name} {split}: labels outside 0..{CLASSES - 1}")


def arrays(
    name: str, data_dir: str | Path = DEFAULT_DATA_DIR, accept_unverified: bool = False
) -> dict[str, np.ndarray]:
    """The dataset as ``x_train``, ``y_train``, ``x_test``, ``y_test`` (images ``[N, C, H, W]``).

    Files that differ from the published ones are refused before they are read, unless
    ``accept_unverified``.
    """
    data_dir = Path(data_dir)
    require(name, data_dir)
    if accept_unverified:
        unverified = unverified_files(name, data_dir)
        if unverified:
            log.warning(
                "%s: reading %s, which differ from the published checksums "
                "(accept_unverified_data is set)",
                name,
                ", ".join(unverified),
            )
    else:
        refuse_unverified(name, data_dir)
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        if name == "cifar10":
            images, labels = _cifar_split(data_dir, split)
        else:
            images, labels = _mnist_split(name, data_dir, split)
        labels = labels.astype(np.int64)
        _check(name, split, images, labels)
        out[f"x_{split}"], out[f"y_{split}"] = images, labels
    log.info(
        "%s from %s: %d train, %d test images of shape %s",
        name,
        folder(name, data_dir),
        len(out["x_train"]),
        len(out["x_test"]),
        list(out["x_train"].shape[1:]),
    )
    return out
