"""Every data source by name, behind one uniform call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from birram.data.sources.bundled import load_digits, load_mnist5k
from birram.data.sources.cifar import load_cifar10, load_cifar100
from birram.data.sources.fashion_mnist import load_fashion_mnist
from birram.data.sources.mnist import load_mnist
from birram.data.types import ArrayDataset
from birram.errors import ConfigError

# Uniform signature (data_dir, download, seed): each source uses what applies to it.
SourceLoader = Callable[[Path | None, bool, int], ArrayDataset]


def _local_only(name: str, load: Callable[[Path | None], ArrayDataset]) -> SourceLoader:
    def loader(data_dir: Path | None, download: bool, seed: int) -> ArrayDataset:
        # Refuse rather than ignore: a user asking for a download expects one.
        if download:
            raise ConfigError(f"dataset {name} cannot be downloaded; set download to false "
                              f"and pass --data-dir pointing at its files")
        return load(data_dir)

    return loader


def _bundled(load: Callable[[int], ArrayDataset]) -> SourceLoader:
    # Shipped inside a package: no folder to read and nothing to download.
    def loader(data_dir: Path | None, download: bool, seed: int) -> ArrayDataset:
        return load(seed)

    return loader


def _mnist(data_dir: Path | None, download: bool, seed: int) -> ArrayDataset:
    return load_mnist(data_dir, download=download)


SOURCES: dict[str, SourceLoader] = {
    "fashion-mnist": _local_only("fashion-mnist", load_fashion_mnist),
    "mnist": _mnist,
    "mnist5k": _bundled(load_mnist5k),
    "digits": _bundled(load_digits),
    "cifar10": _local_only("cifar10", load_cifar10),
    "cifar100": _local_only("cifar100", load_cifar100),
}


def load_source(name: str, data_dir: Path | None = None, download: bool = False,
                seed: int = 0) -> ArrayDataset:
    """Load the dataset ``name``; ``seed`` fixes the train/test split of pooled sources."""
    if name not in SOURCES:
        raise ConfigError(f"unknown dataset {name!r}; allowed: {', '.join(SOURCES)}")
    return SOURCES[name](Path(data_dir) if data_dir is not None else None, download, seed)
