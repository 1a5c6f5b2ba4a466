"""CIFAR-10 and CIFAR-100 from their standard python-pickle folders."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from birram.data.sources.paths import cache_root, candidate_dirs
from birram.data.types import ArrayDataset
from birram.errors import DataError

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

# What a CIFAR pickle may reference: numpy arrays and dtypes, nothing that runs code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        # Old pickles name numpy.core, which numpy 2 still serves but with a warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def _load_pickle(path: Path, title: str) -> dict[bytes, Any]:
    if not path.is_file():
        raise DataError(f"{title} file {path} is missing; download the python version from "
                        f"{_URL}, unpack it and pass --data-dir pointing at its folder")
    try:
        with path.open("rb") as f:
            # encoding="bytes": the files were written by Python 2; keys come back as bytes.
            obj = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as err:
        raise DataError(f"{title} file {path} is corrupt or not a CIFAR pickle ({err}); "
                        f"delete it and unpack the archive again") from None
    if not isinstance(obj, dict):
        raise DataError(f"{title} file {path} holds a {type(obj).__name__}, not a dict; "
                        f"unpack the original archive again")
    return obj


def _require(obj: dict[bytes, Any], key: bytes, path: Path, title: str) -> Any:
    if key not in obj:
        raise DataError(f"{title} file {path} lacks the key {key.decode()!r}; unpack the "
                        f"original archive again")
    return obj[key]


def _read_batch(path: Path, label_key: bytes, n_classes: int,
                title: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 3, 32, 32]`` uint8 and labels ``[N]`` int64 from one pickle."""
    obj = _load_pickle(path, title)
    data = np.asarray(_require(obj, b"data", path, title))
    labels = np.asarray(_require(obj, label_key, path, title))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{title} file {path}: data is {data.dtype} {data.shape}, expected "
                        f"uint8 [N, 3072]; unpack the original archive again")
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{title} file {path}: {labels.shape} labels for {data.shape[0]} "
                        f"images; unpack the original archive again")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{title} file {path}: labels outside [0, {n_classes}); unpack the "
                        f"original archive again")
    # Rows are the red, green and blue planes one after another, each 32x32 row-major.
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _class_names(path: Path, key: bytes, n_classes: int, title: str) -> tuple[str, ...]:
    names = _require(_load_pickle(path, title), key, path, title)
    if not isinstance(names, list) or len(names) != n_classes:
        raise DataError(f"{title} file {path}: expected {n_classes} class names under "
                        f"{key.decode()!r}; unpack the original archive again")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _find_dir(data_dir: Path | None, subdir: str, marker: str) -> Path:
    dirs = candidate_dirs(data_dir, subdir, cache_root() / subdir)
    found = next((d for d in dirs if (d / marker).is_file()), None)
    if found is not None:
        return found
    # Nothing there: name the folder the user most likely meant in the error that follows.
    return dirs[0] if data_dir is None or Path(data_dir).name == subdir else dirs[-1]


def _stack(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return torch.from_numpy(x), torch.from_numpy(y)


def load_cifar10(data_dir: Path | None = None) -> ArrayDataset:
    """CIFAR-10, 50000 train / 10000 test 3x32x32 images, 10 classes.

    ``data_dir`` is the ``cifar-10-batches-py`` folder or its parent; by default
    ``cache_root()/cifar-10-batches-py``.
    """
    title = "CIFAR-10"
    root = _find_dir(data_dir, CIFAR10_DIR, "test_batch")
    names = _class_names(root / "batches.meta", b"label_names", 10, title)
    train = [_read_batch(root / b, b"labels", 10, title) for b in CIFAR10_TRAIN]
    x_train, y_train = _stack(train)
    x_test, y_test = _stack([_read_batch(root / "test_batch", b"labels", 10, title)])
    return ArrayDataset("cifar10", x_train, y_train, x_test, y_test, names)


def load_cifar100(data_dir: Path | None = None) -> ArrayDataset:
    """CIFAR-100 with its 100 fine labels, 50000 train / 10000 test 3x32x32 images.

    ``data_dir`` is the ``cifar-100-python`` folder or its parent; by default
    ``cache_root()/cifar-100-python``.
    """
    title = "CIFAR-100"
    root = _find_dir(data_dir, CIFAR100_DIR, "test")
    names = _class_names(root / "meta", b"fine_label_names", 100, title)
    x_train, y_train = _stack([_read_batch(root / "train", b"fine_labels", 100, title)])
    x_test, y_test = _stack([_read_batch(root / "test", b"fine_labels", 100, title)])
    return ArrayDataset("cifar100", x_train, y_train, x_test, y_test, names)
