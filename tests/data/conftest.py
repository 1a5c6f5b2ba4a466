"""Fixtures that write tiny IDX and CIFAR files, so data tests need no downloads."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B,
             np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``: magic, big-endian dims, big-endian data."""
    code = IDX_CODES[array.dtype.newbyteorder("=")]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx_file(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def make_split(n: int, side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, side, side), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.uint8))


def write_idx_dir(directory: Path, n_train: int = 12, n_test: int = 5, side: int = 28,
                  gz: tuple[bool, bool, bool, bool] = (True, True, False, False),
                  seed: int = 0) -> dict[str, np.ndarray]:
    """The four MNIST-layout files in ``directory``; returns the arrays written."""
    directory.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr = make_split(n_train, side, seed)
    x_te, y_te = make_split(n_test, side, seed + 1)
    arrays = dict(zip(STEMS, (x_tr, y_tr, x_te, y_te)))
    for (stem, arr), zipped in zip(arrays.items(), gz):
        write_idx_file(directory / (stem + (".gz" if zipped else "")), arr, gz=zipped)
    return arrays


@pytest.fixture
def idx_dir(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    directory = tmp_path / "idx"
    return directory, write_idx_dir(directory)


def write_pickle(path: Path, obj: object) -> None:
    # Protocol 2 like the published files (written by Python 2).
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=2)


def cifar_batch(n: int, n_classes: int, label_key: bytes, seed: int) -> dict[bytes, object]:
    """A batch whose red, green and blue planes hold 1, 2 and 3 plus a per-image offset."""
    offsets = np.arange(n, dtype=np.uint8) * 10
    planes = np.array([1, 2, 3], dtype=np.uint8)
    data = (offsets[:, None, None] + planes[None, :, None]).repeat(1024, axis=2)
    labels = np.random.default_rng(seed).integers(0, n_classes, n).tolist()
    return {b"batch_label": b"synthetic", b"data": data.reshape(n, 3072), label_key: labels,
            b"filenames": [f"img{i}.png".encode() for i in range(n)]}


@pytest.fixture
def cifar10_dir(tmp_path: Path) -> Path:
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for i in range(1, 6):
        write_pickle(root / f"data_batch_{i}", cifar_batch(4, 10, b"labels", seed=i))
    write_pickle(root / "test_batch", cifar_batch(3, 10, b"labels", seed=9))
    names = [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                  "frog", "horse", "ship", "truck")]
    write_pickle(root / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    return root


@pytest.fixture
def cifar100_dir(tmp_path: Path) -> Path:
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    for split, n, seed in (("train", 6, 1), ("test", 4, 2)):
        batch = cifar_batch(n, 100, b"fine_labels", seed)
        batch[b"coarse_labels"] = [0] * n
        write_pickle(root / split, batch)
    write_pickle(root / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                                 b"coarse_label_names": [b"x"] * 20})
    return root


@pytest.fixture
def idx_tools() -> SimpleNamespace:
    """The IDX writers, for tests that build their own files."""
    return SimpleNamespace(encode=idx_bytes, write=write_idx_file, write_dir=write_idx_dir,
                           stems=STEMS)


@pytest.fixture
def pickle_tools() -> SimpleNamespace:
    return SimpleNamespace(write=write_pickle, batch=cifar_batch)
