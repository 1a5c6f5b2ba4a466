"""IDX reader and Fashion-MNIST on files written by the tests (and the real package files)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from birram.data.sources import FASHION_MNIST_CLASSES, load_fashion_mnist, parse_idx, read_idx
from birram.data.sources.fashion_mnist import DEBIAN_DIR
from birram.data.sources.idx import find_idx
from birram.errors import DataError


def one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("gz", [False, True])
def test_read_uint8_images_plain_and_gz(tmp_path: Path, idx_tools, gz: bool) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    path = idx_tools.write(tmp_path / ("x.gz" if gz else "x"), arr, gz=gz)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (7, 5, 3)
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable


@pytest.mark.parametrize("dtype", ["i1", "i2", "i4", "f4", "f8"])
def test_signed_and_float_types_round_trip(idx_tools, dtype: str) -> None:
    values = [[-3, 100], [7, -128]] if dtype == "i1" else [[-3, 1000], [7, -30000]]
    arr = np.array(values, dtype=dtype)
    out = parse_idx(idx_tools.encode(arr))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_data_is_read_big_endian() -> None:
    # Hand-written bytes: int16 (code 0x0B), one dimension of 2, values 1 and 258.
    raw = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 1, 2])
    np.testing.assert_array_equal(parse_idx(raw), np.array([1, 258], dtype=np.int16))


def test_gzip_content_is_detected_regardless_of_name(tmp_path: Path, idx_tools) -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "labels-without-suffix"
    path.write_bytes(gzip.compress(idx_tools.encode(arr)))
    np.testing.assert_array_equal(read_idx(path), arr)


def test_truncated_file_names_the_file(tmp_path: Path, idx_tools) -> None:
    raw = idx_tools.encode(np.zeros((4, 28, 28), dtype=np.uint8))
    path = tmp_path / "cut-idx3-ubyte"
    path.write_bytes(raw[:-10])
    with pytest.raises(DataError, match="truncated") as err:
        read_idx(path)
    assert str(path) in one_line(err)


def test_extra_bytes_are_rejected(idx_tools) -> None:
    raw = idx_tools.encode(np.zeros((2, 3), dtype=np.uint8)) + b"\x00"
    with pytest.raises(DataError, match="longer than its header"):
        parse_idx(raw, "f")


def test_header_cut_short_is_rejected(idx_tools) -> None:
    raw = idx_tools.encode(np.zeros((2, 3, 4), dtype=np.uint8))[:9]
    with pytest.raises(DataError, match="header"):
        parse_idx(raw, "f")


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"PK\x03\x04", b""])
def test_wrong_magic_is_rejected(magic: bytes) -> None:
    with pytest.raises(DataError, match="not an IDX file"):
        parse_idx(magic + b"\x00\x00\x00\x01\x05", "weird")


def test_truncated_gzip_is_a_data_error(tmp_path: Path, idx_tools) -> None:
    arr = np.random.default_rng(1).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    packed = gzip.compress(idx_tools.encode(arr))
    path = tmp_path / "x.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="gzip") as err:
        read_idx(path)
    assert str(path) in one_line(err)


def test_unreadable_path_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "nope")


def test_find_idx_prefers_plain_then_gz(tmp_path: Path) -> None:
    assert find_idx(tmp_path, "a") is None
    (tmp_path / "a.gz").write_bytes(b"")
    assert find_idx(tmp_path, "a") == tmp_path / "a.gz"
    (tmp_path / "a").write_bytes(b"")
    assert find_idx(tmp_path, "a") == tmp_path / "a"


def test_fashion_mnist_from_a_directory(idx_dir) -> None:
    directory, arrays = idx_dir
    data = load_fashion_mnist(directory)
    x_tr, y_tr, x_te, y_te = arrays.values()
    assert data.name == "fashion-mnist"
    assert data.x_train.dtype == torch.uint8 and data.y_train.dtype == torch.int64
    assert data.x_train.shape == (12, 1, 28, 28) and data.x_test.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(data.x_train[:, 0].numpy(), x_tr)
    np.testing.assert_array_equal(data.y_test.numpy(), y_te)
    assert data.class_names == FASHION_MNIST_CLASSES and data.n_classes == 10


def test_fashion_mnist_found_in_subfolder(tmp_path: Path, idx_tools) -> None:
    idx_tools.write_dir(tmp_path / "fashion-mnist", n_train=3, n_test=2)
    assert load_fashion_mnist(tmp_path).x_train.shape[0] == 3


def test_missing_file_message_names_file_and_fix(idx_dir) -> None:
    directory, _ = idx_dir
    (directory / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DataError) as err:
        load_fashion_mnist(directory)
    msg = one_line(err)
    assert "missing t10k-images-idx3-ubyte(.gz)" in msg and "train-images" not in msg
    assert "dataset-fashion-mnist" in msg and "--data-dir" in msg


def test_image_label_count_mismatch(tmp_path: Path, idx_tools) -> None:
    idx_tools.write_dir(tmp_path, n_train=6, n_test=2)
    idx_tools.write(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8), gz=True)
    with pytest.raises(DataError, match="6 images but .* 5 labels"):
        load_fashion_mnist(tmp_path)


def test_label_out_of_range(tmp_path: Path, idx_tools) -> None:
    idx_tools.write_dir(tmp_path, n_train=3, n_test=2)
    idx_tools.write(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 10], np.uint8))
    with pytest.raises(DataError, match=r"outside \[0, 10\)"):
        load_fashion_mnist(tmp_path)


def test_images_and_labels_swapped(tmp_path: Path, idx_tools) -> None:
    idx_tools.write_dir(tmp_path, n_train=3, n_test=2)
    idx_tools.write(tmp_path / "t10k-images-idx3-ubyte", np.array([1, 2], np.uint8))
    with pytest.raises(DataError, match=r"expected uint8 \[N, H, W\]"):
        load_fashion_mnist(tmp_path)


@pytest.mark.skipif(not (DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_package() -> None:
    data = load_fashion_mnist()
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert data.x_train.dtype == torch.uint8 and data.y_train.dtype == torch.int64
    assert data.n_classes == 10 and data.class_names[0] == "T-shirt/top"
    # The published splits are exactly balanced.
    assert torch.equal(data.y_train.bincount(), torch.full((10,), 6000))
    assert torch.equal(data.y_test.bincount(), torch.full((10,), 1000))
    assert int(data.x_train.max()) == 255 and int(data.x_train.min()) == 0
