"""Reader for the IDX format used by MNIST and Fashion-MNIST (plain or gzipped)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from birram.data.types import ArrayDataset
from birram.errors import DataError

# Type code (third magic byte) -> big-endian numpy dtype, as in the IDX specification.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read IDX file {path}: {err.strerror}; check the path and "
                        f"its permissions") from None
    # Sniff the content rather than trust the suffix: mirrors sometimes serve
    # decompressed files under a .gz name and vice versa.
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(f"corrupt or truncated gzip file {path} ({err}); delete it and "
                        f"fetch it again") from None


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into a native-endian, writable numpy array."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(f"{source} is not an IDX file (bad magic number "
                        f"{raw[:4].hex() or 'empty'}); point at the original IDX files")
    dtype = IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {source} is truncated inside its header; delete it and "
                        f"fetch it again")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(f"IDX file {source} is {what}: {len(raw)} bytes, header {dims} needs "
                        f"{expected}; delete it and fetch it again")
    data = np.frombuffer(raw, dtype=dtype, count=int(np.prod(dims, dtype=np.int64)),
                         offset=header)
    # astype copies: the result is writable and native-endian, safe for torch.from_numpy.
    return data.reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file, plain or gzipped, validating magic, dimensions and size."""
    return parse_idx(_read_bytes(Path(path)), str(path))


def find_idx(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` or ``directory/stem.gz``, whichever exists (plain first)."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_image_label_pair(images_path: Path, labels_path: Path,
                          n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, 1, H, W]`` uint8 and labels ``[N]`` int64, checked against each other."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path} holds {images.dtype} data of shape {images.shape}, "
                        f"expected uint8 [N, H, W] images; check the file is an image file")
    if labels.ndim != 1:
        raise DataError(f"{labels_path} holds data of shape {labels.shape}, expected [N] "
                        f"labels; check the file is a label file")
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{images_path} has {images.shape[0]} images but {labels_path} has "
                        f"{labels.shape[0]} labels; the files come from different sets")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{labels_path} has labels outside [0, {n_classes}); the file is "
                        f"corrupt or from another dataset")
    return (torch.from_numpy(images).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)))


# The four files of the MNIST layout, shared by MNIST and Fashion-MNIST.
IDX_STEMS: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def missing_idx(directory: Path) -> list[str]:
    """Stems of the four standard files that ``directory`` lacks (plain and .gz)."""
    return [stem for stem in IDX_STEMS if find_idx(directory, stem) is None]


def load_idx_dataset(name: str, title: str, directory: Path, class_names: tuple[str, ...],
                     hint: str) -> ArrayDataset:
    """The four standard IDX files in ``directory`` as a dataset called ``name``.

    ``title`` names the dataset in messages; ``hint`` ends the message for missing
    files with how to get them.
    """
    paths = [find_idx(directory, stem) for stem in IDX_STEMS]
    if any(p is None for p in paths):
        raise DataError(f"{title} not found in {directory}: missing "
                        f"{', '.join(s + '(.gz)' for s in missing_idx(directory))}; {hint}")
    tr_img, tr_lab, te_img, te_lab = paths
    x_train, y_train = read_image_label_pair(tr_img, tr_lab, len(class_names))
    x_test, y_test = read_image_label_pair(te_img, te_lab, len(class_names))
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{title} in {directory}: train images {tuple(x_train.shape[2:])} and "
                        f"test images {tuple(x_test.shape[2:])} differ in size; the files "
                        f"come from different datasets")
    return ArrayDataset(name, x_train, y_train, x_test, y_test, class_names)
