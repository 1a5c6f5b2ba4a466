"""Checksummed, atomic downloads: a file appears under its final name only once verified."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from birram.errors import DataError

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A published file and the digests it must have."""

    name: str
    size: int
    sha256: str
    md5: str


class ChecksumMismatch(Exception):
    """The bytes served differ from the published file."""


def _fetch_to(url: str, tmp_fd: int, expected: RemoteFile, timeout_s: float) -> None:
    sha, md5, n = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    # The file is opened first so that its descriptor is closed even when urlopen fails.
    with os.fdopen(tmp_fd, "wb") as out, urlopen(url, timeout=timeout_s) as response:
        while chunk := response.read(CHUNK_BYTES):
            n += len(chunk)
            # Stop early rather than fill the disk when a mirror serves something else.
            if n > expected.size:
                raise ChecksumMismatch(f"{url} sent more than the expected {expected.size} "
                                       f"bytes")
            sha.update(chunk)
            md5.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if n != expected.size:
        raise ChecksumMismatch(f"{url} sent {n} bytes, expected {expected.size}")
    if sha.hexdigest() != expected.sha256 or md5.hexdigest() != expected.md5:
        raise ChecksumMismatch(f"{url} failed its checksum (sha256 {sha.hexdigest()}, "
                               f"expected {expected.sha256})")


def download_verified(remote: RemoteFile, mirrors: Sequence[str], dest_dir: Path,
                      timeout_s: float = 60.0) -> Path:
    """Fetch ``remote`` from the first mirror that serves the right bytes.

    The download goes to a temporary file in ``dest_dir`` (same file system, so the
    final ``os.replace`` is atomic) and is renamed only after its size, SHA-256 and MD5
    match; on any failure the temporary file is removed and the next mirror is tried.
    """
    dest_dir = Path(dest_dir)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create download folder {dest_dir}: {err.strerror}; pass "
                        f"--data-dir pointing at a writable folder") from None
    dest = dest_dir / remote.name
    problems: list[str] = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + remote.name
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{remote.name}.",
                                        suffix=".part")
        tmp = Path(tmp_name)
        try:
            _fetch_to(url, fd, remote, timeout_s)
            os.replace(tmp, dest)
            return dest
        except ChecksumMismatch as err:
            problems.append(str(err))
        except (URLError, OSError, HTTPException) as err:
            reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or err
            problems.append(f"{url}: {reason}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(f"could not download {remote.name}: {'; '.join(problems)}; retry later "
                    f"or place the file in {dest_dir} by hand")
