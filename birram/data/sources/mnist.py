"""MNIST from a folder of IDX files, with an opt-in checksummed download."""

from __future__ import annotations

from pathlib import Path

from birram.data.sources.download import RemoteFile, download_verified
from birram.data.sources.idx import find_idx, load_idx_dataset, missing_idx
from birram.data.sources.paths import cache_root, candidate_dirs
from birram.data.types import ArrayDataset

MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# Sizes and digests of the published gzip files; a mirror serving anything else is rejected.
MNIST_FILES: tuple[RemoteFile, ...] = (
    RemoteFile("train-images-idx3-ubyte.gz", 9_912_422,
               "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
               "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    RemoteFile("train-labels-idx1-ubyte.gz", 28_881,
               "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
               "d53e105ee54ea40749a09fcbcd1e9432"),
    RemoteFile("t10k-images-idx3-ubyte.gz", 1_648_877,
               "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
               "9fb629c4189551a2d022fa330f9573f3"),
    RemoteFile("t10k-labels-idx1-ubyte.gz", 4_542,
               "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
               "ec29112dd5afa0611ce80d1b7f02629c"),
)


def default_mnist_dir() -> Path:
    return cache_root() / "mnist"


def download_mnist(dest_dir: Path) -> Path:
    """Fetch whichever of the four MNIST files ``dest_dir`` lacks; returns ``dest_dir``."""
    dest_dir = Path(dest_dir)
    for remote in MNIST_FILES:
        if find_idx(dest_dir, remote.name.removesuffix(".gz")) is None:
            download_verified(remote, MNIST_MIRRORS, dest_dir)
    return dest_dir


def load_mnist(data_dir: Path | None = None, download: bool = False) -> ArrayDataset:
    """MNIST, 60000 train / 10000 test 28x28 digit images.

    ``data_dir`` holds the four IDX files (plain or .gz), directly or in an ``mnist/``
    subfolder; by default ``~/.cache/birram/mnist`` (see ``cache_root``). With
    ``download=True`` missing files are fetched into ``data_dir`` (or the default) and
    verified against their published SHA-256 and MD5 digests.
    """
    dirs = candidate_dirs(data_dir, "mnist", default_mnist_dir())
    found = next((d for d in dirs if not missing_idx(d)), None)
    if found is None and download:
        found = download_mnist(dirs[0])
    hint = ("pass --download to fetch it (about 11 MB) or --data-dir pointing at the four "
            "IDX files")
    return load_idx_dataset("mnist", "MNIST", found or dirs[0], MNIST_CLASSES, hint)
