"""Fashion-MNIST from the Debian package dataset-fashion-mnist or any IDX directory."""

from __future__ import annotations

from pathlib import Path

from birram.data.sources.idx import load_idx_dataset, missing_idx
from birram.data.sources.paths import candidate_dirs
from birram.data.types import ArrayDataset

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_HINT = ("install the Debian package dataset-fashion-mnist or pass --data-dir pointing at "
         "the four IDX files")


def load_fashion_mnist(data_dir: Path | None = None) -> ArrayDataset:
    """Fashion-MNIST, 60000 train / 10000 test 28x28 images, 10 classes.

    ``data_dir`` holds the four standard IDX files (plain or .gz), directly or in a
    ``fashion-mnist/`` subfolder; by default the Debian package's folder.
    """
    dirs = candidate_dirs(data_dir, "fashion-mnist", DEBIAN_DIR)
    found = next((d for d in dirs if not missing_idx(d)), dirs[0])
    return load_idx_dataset("fashion-mnist", "Fashion-MNIST", found, FASHION_MNIST_CLASSES, _HINT)
