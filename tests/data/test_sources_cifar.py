"""CIFAR-10 and CIFAR-100 on small pickles in the published layout."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from birram.data.sources import load_cifar10, load_cifar100
from birram.errors import DataError


def test_cifar10_shapes_layout_and_order(cifar10_dir: Path) -> None:
    data = load_cifar10(cifar10_dir)
    assert data.name == "cifar10"
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (3, 3, 32, 32)
    assert data.x_train.dtype == torch.uint8 and data.y_train.dtype == torch.int64
    # Channel planes: red 1, green 2, blue 3, plus 10 x the image's index in its batch.
    first = data.x_train[0]
    assert [int(first[c].unique()) for c in range(3)] == [1, 2, 3]
    assert int(data.x_train[5, 2, 31, 31]) == 13  # batch 2, image 1, blue
    expected = []
    for i in range(1, 6):
        with (cifar10_dir / f"data_batch_{i}").open("rb") as f:
            expected += pickle.load(f, encoding="bytes")[b"labels"]
    assert data.y_train.tolist() == expected
    assert data.class_names[0] == "airplane" and data.n_classes == 10


def test_cifar10_from_parent_folder(cifar10_dir: Path) -> None:
    assert load_cifar10(cifar10_dir.parent).x_train.shape[0] == 20


def test_cifar100_uses_fine_labels(cifar100_dir: Path) -> None:
    data = load_cifar100(cifar100_dir.parent)
    assert data.name == "cifar100" and data.n_classes == 100
    assert data.x_train.shape == (6, 3, 32, 32) and data.x_test.shape == (4, 3, 32, 32)
    with (cifar100_dir / "test").open("rb") as f:
        fine = pickle.load(f, encoding="bytes")[b"fine_labels"]
    assert data.y_test.tolist() == fine and data.class_names[99] == "c99"


def test_missing_batch_names_file_and_fix(cifar10_dir: Path) -> None:
    (cifar10_dir / "data_batch_3").unlink()
    with pytest.raises(DataError) as err:
        load_cifar10(cifar10_dir)
    msg = str(err.value)
    assert "\n" not in msg and "data_batch_3" in msg and "--data-dir" in msg


def test_missing_folder_names_the_expected_place(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar-100-python"):
        load_cifar100(tmp_path)


def test_truncated_pickle_is_a_data_error(cifar10_dir: Path) -> None:
    path = cifar10_dir / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="corrupt") as err:
        load_cifar10(cifar10_dir)
    assert "test_batch" in str(err.value)


def test_wrong_image_size_is_rejected(cifar10_dir: Path, pickle_tools) -> None:
    batch = pickle_tools.batch(4, 10, b"labels", seed=0)
    batch[b"data"] = batch[b"data"][:, :1024]
    pickle_tools.write(cifar10_dir / "data_batch_2", batch)
    with pytest.raises(DataError, match=r"expected uint8 \[N, 3072\]"):
        load_cifar10(cifar10_dir)


def test_missing_key_and_bad_labels(cifar100_dir: Path, pickle_tools) -> None:
    batch = pickle_tools.batch(4, 100, b"labels", seed=0)  # CIFAR-10 key in a CIFAR-100 file
    pickle_tools.write(cifar100_dir / "train", batch)
    with pytest.raises(DataError, match="lacks the key 'fine_labels'"):
        load_cifar100(cifar100_dir)
    batch[b"fine_labels"] = [0, 1, 2, 100]
    pickle_tools.write(cifar100_dir / "train", batch)
    with pytest.raises(DataError, match=r"labels outside \[0, 100\)"):
        load_cifar100(cifar100_dir)


class _Payload:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (self.target,)


def test_pickle_that_runs_code_is_refused(cifar10_dir: Path, tmp_path: Path,
                                          pickle_tools) -> None:
    marker = tmp_path / "should-not-exist"
    pickle_tools.write(cifar10_dir / "batches.meta", {b"label_names": _Payload(str(marker))})
    with pytest.raises(DataError, match="refusing to load"):
        load_cifar10(cifar10_dir)
    assert not marker.exists()


def test_pickled_numpy_labels_are_accepted(cifar10_dir: Path, pickle_tools) -> None:
    batch = pickle_tools.batch(3, 10, b"labels", seed=4)
    batch[b"labels"] = np.array(batch[b"labels"], dtype=np.int64)
    pickle_tools.write(cifar10_dir / "test_batch", batch)
    assert load_cifar10(cifar10_dir).y_test.tolist() == batch[b"labels"].tolist()
