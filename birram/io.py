"""Atomic file writes: a temp file in the target directory, then ``os.replace``.

A run killed half-way leaves either the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO


@contextlib.contextmanager
def atomic_open(path: Path | str) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only if the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def write_text(path: Path | str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path | str, obj: Any) -> None:
    """Strict JSON: an undefined number (NaN, infinity) is written as ``null``."""
    text = json.dumps(finite_or_none(obj), indent=2, sort_keys=False, allow_nan=False)
    write_text(path, text + "\n")


def finite_or_none(obj: Any) -> Any:
    """``obj`` as plain JSON values, with every non-finite float replaced by ``None``."""
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): finite_or_none(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def read_json_strict(path: Path | str) -> Any:
    """Parse JSON refusing NaN and infinity (which strict parsers reject)."""
    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard JSON value {token}")

    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=refuse)


def remove_stale_temporaries(root: Path | str) -> int:
    """Delete temp files left by writes that were killed; returns how many were removed."""
    removed = 0
    for tmp in Path(root).rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed += 1
    return removed


def write_with(path: Path | str, writer: Callable[[BinaryIO], None]) -> None:
    """Atomically write whatever ``writer`` puts into the file object (torch.save, savefig)."""
    with atomic_open(path) as f:
        writer(f)

