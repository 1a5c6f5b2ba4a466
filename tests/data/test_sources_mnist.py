"""MNIST: loading from a folder and the checksummed, atomic download, all without network."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from birram.data.sources import MNIST_FILES, MNIST_MIRRORS, RemoteFile, load_mnist
from birram.data.sources import download as download_mod
from birram.data.sources import mnist as mnist_mod
from birram.data.sources.download import download_verified
from birram.errors import DataError


def remote_for(name: str, payload: bytes) -> RemoteFile:
    return RemoteFile(name, len(payload), hashlib.sha256(payload).hexdigest(),
                      hashlib.md5(payload).hexdigest())


class FakeServer:
    """Stands in for ``urlopen``: serves bytes per URL and records what was asked."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requested: list[str] = []

    def __call__(self, url: str, timeout: float) -> io.BytesIO:
        self.requested.append(url)
        if url not in self.files:
            raise URLError("connection refused")
        return io.BytesIO(self.files[url])


@pytest.fixture
def published(tmp_path: Path, idx_tools, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Small gz IDX files standing in for the four MNIST files, with a digest table to match."""
    src = tmp_path / "published"
    idx_tools.write_dir(src, n_train=10, n_test=4, gz=(True, True, True, True))
    payloads = {p.name: p.read_bytes() for p in sorted(src.iterdir())}
    monkeypatch.setattr(mnist_mod, "MNIST_FILES",
                        tuple(remote_for(n, b) for n, b in payloads.items()))
    return payloads


def serve(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> FakeServer:
    server = FakeServer(files)
    monkeypatch.setattr(download_mod, "urlopen", server)
    return server


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".part")]


def test_digest_table_describes_the_published_files() -> None:
    names = [f.name for f in MNIST_FILES]
    assert names == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                     "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    for f in MNIST_FILES:
        assert re.fullmatch(r"[0-9a-f]{64}", f.sha256) and re.fullmatch(r"[0-9a-f]{32}", f.md5)
    assert [f.size for f in MNIST_FILES] == [9_912_422, 28_881, 1_648_877, 4_542]
    assert MNIST_MIRRORS[0].startswith("https://")


def test_load_mnist_from_folder_never_touches_network(idx_dir, monkeypatch) -> None:
    server = serve(monkeypatch, {})
    directory, arrays = idx_dir
    data = load_mnist(directory, download=True)
    assert server.requested == []
    assert data.name == "mnist" and data.class_names == tuple("0123456789")
    np.testing.assert_array_equal(data.y_train.numpy(), arrays["train-labels-idx1-ubyte"])


def test_missing_without_download_says_how_to_get_it(tmp_path: Path, monkeypatch) -> None:
    server = serve(monkeypatch, {})
    with pytest.raises(DataError) as err:
        load_mnist(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "MNIST not found" in msg and "--download" in msg
    assert server.requested == []


def test_download_writes_verified_files_and_loads(tmp_path: Path, published, monkeypatch) -> None:
    server = serve(monkeypatch, {MNIST_MIRRORS[0] + n: b for n, b in published.items()})
    dest = tmp_path / "mnist-cache"
    data = load_mnist(dest, download=True)
    assert data.x_train.shape == (10, 1, 28, 28) and data.x_test.shape == (4, 1, 28, 28)
    assert sorted(p.name for p in dest.iterdir()) == sorted(published)
    for name, payload in published.items():
        assert (dest / name).read_bytes() == payload
    assert server.requested == [MNIST_MIRRORS[0] + n for n in published]


def test_download_falls_back_to_second_mirror(tmp_path: Path, published, monkeypatch) -> None:
    server = serve(monkeypatch, {MNIST_MIRRORS[1] + n: b for n, b in published.items()})
    load_mnist(tmp_path, download=True)
    assert len(server.requested) == 8 and server.requested[1].startswith(MNIST_MIRRORS[1])
    assert leftovers(tmp_path) == []


def test_download_fetches_only_missing_files(tmp_path: Path, published, monkeypatch) -> None:
    first, *rest = published
    (tmp_path / first).write_bytes(published[first])
    server = serve(monkeypatch, {MNIST_MIRRORS[0] + n: published[n] for n in rest})
    load_mnist(tmp_path, download=True)
    assert server.requested == [MNIST_MIRRORS[0] + n for n in rest]


def test_checksum_mismatch_leaves_nothing_behind(tmp_path: Path, published, monkeypatch) -> None:
    name = "t10k-labels-idx1-ubyte.gz"
    tampered = bytearray(published[name])
    tampered[-5] ^= 0xFF  # same size, different bytes
    files = {m + n: b for m in MNIST_MIRRORS for n, b in published.items()}
    for m in MNIST_MIRRORS:
        files[m + name] = bytes(tampered)
    serve(monkeypatch, files)
    with pytest.raises(DataError) as err:
        load_mnist(tmp_path, download=True)
    msg = str(err.value)
    assert "\n" not in msg and "checksum" in msg and name in msg
    assert hashlib.sha256(tampered).hexdigest() in msg
    assert not (tmp_path / name).exists() and leftovers(tmp_path) == []
    # Files fetched before the bad one verified and are kept: a retry fetches only the rest.
    assert (tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes() == \
        published["t10k-images-idx3-ubyte.gz"]


def test_oversized_response_is_cut_off(tmp_path: Path, monkeypatch) -> None:
    payload = b"x" * 100
    remote = remote_for("f.gz", payload)
    serve(monkeypatch, {"m/f.gz": payload * 50})
    with pytest.raises(DataError, match="more than the expected 100 bytes"):
        download_verified(remote, ["m/"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_connection_dropped_midway_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    payload = gzip.compress(bytes(range(256)) * 100)
    remote = remote_for("f.gz", payload)

    class Dropping(io.BytesIO):
        def read(self, n: int = -1) -> bytes:
            if self.tell() > 0:
                raise ConnectionResetError(104, "connection reset by peer")
            return super().read(min(n, 1000))

    monkeypatch.setattr(download_mod, "urlopen", lambda url, timeout: Dropping(payload))
    with pytest.raises(DataError, match="connection reset") as err:
        download_verified(remote, ["https://a/", "https://b/"], tmp_path)
    assert "https://a/f.gz" in str(err.value) and "https://b/f.gz" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_replaced_only_by_verified_bytes(tmp_path: Path, monkeypatch) -> None:
    old, new = b"old contents", b"new contents"
    (tmp_path / "f.gz").write_bytes(old)
    serve(monkeypatch, {"m/f.gz": b"bad contents"})
    with pytest.raises(DataError):
        download_verified(remote_for("f.gz", new), ["m/"], tmp_path)
    assert (tmp_path / "f.gz").read_bytes() == old
    serve(monkeypatch, {"m/f.gz": new})
    download_verified(remote_for("f.gz", new), ["m/"], tmp_path)
    assert (tmp_path / "f.gz").read_bytes() == new


def test_default_folder_follows_birram_data(tmp_path: Path, idx_tools, monkeypatch) -> None:
    monkeypatch.setenv("BIRRAM_DATA", str(tmp_path))
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "mnist"))):
        load_mnist()
    idx_tools.write_dir(tmp_path / "mnist", n_train=7, n_test=3)
    assert load_mnist().x_train.shape[0] == 7
