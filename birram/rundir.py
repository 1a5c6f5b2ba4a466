"""Run directories: checked before anything is written, sealed when a result is complete.

A directory is reused only to resume the run it holds, with the same configuration. A finished
(method, seed) directory is sealed by ``manifest.json``, which records a SHA-256 digest of every
result file; a result is reused only while its files still match their digests.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from birram import io
from birram.errors import ConfigError, DataError

MANIFEST = "manifest.json"


def check_writable(path: Path, option: str = "--out") -> None:
    """Refuse a path that is a file or lies in a directory we cannot write, writing nothing."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, not a directory; give a directory path")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"{option} {path}: {probe} is a file, not a directory")
    try:
        fd, name = tempfile.mkstemp(dir=probe, prefix=".birram-write-test-")
    except OSError as err:
        raise ConfigError(f"{option} {path}: cannot write in {probe} ({err.strerror}); choose a "
                          "writable directory") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)


def flat(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train.lr": 0.001, ...}`` from a nested dict."""
    if not isinstance(config, dict):
        return {prefix: config}
    out: dict[str, Any] = {}
    for key, value in config.items():
        out.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


# Settings that do not change a result: a run may be resumed with them changed.
RESULT_NEUTRAL = ("track",)


def config_differences(old: Any, new: dict[str, Any]) -> list[str]:
    """Human-readable ``field: old -> new`` lines for every setting that differs."""
    a, b = flat(old), flat(new)
    return [f"{key}: {a.get(key, '(unset)')!r} -> {b.get(key, '(unset)')!r}"
            for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key) and key.split(".")[0] not in RESULT_NEUTRAL]


def check_out_dir(out: Path, config: dict[str, Any], resume: bool) -> None:
    """Refuse to mix results of two configurations in one directory; writes nothing."""
    check_writable(out)
    if not out.exists():
        return
    entries = [p for p in out.iterdir() if not p.name.startswith(".")]
    if not entries:
        return
    if not resume:
        raise ConfigError(f"{out} already holds a run (or other files); choose another --out, "
                          "or add --resume to continue the run it holds")
    recorded = out / "config.json"
    if not recorded.is_file():
        raise ConfigError(f"{out} is not a birram run directory (it has no config.json); "
                          "choose another --out")
    try:
        old = io.read_json_strict(recorded)
    except (OSError, ValueError) as err:
        raise DataError(f"{recorded} is damaged ({err}); the run's configuration is unknown, "
                        "so choose another --out") from None
    differences = config_differences(old, config)
    if differences:
        shown = "; ".join(differences[:4]) + (" ..." if len(differences) > 4 else "")
        raise ConfigError(f"{out} holds a run with a different configuration ({shown}); "
                          "resume it with its own settings or choose another --out")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def seal(run_dir: Path, names: list[str]) -> None:
    """Record the digests of ``names`` (files in ``run_dir``): the result is complete."""
    io.write_json(run_dir / MANIFEST, {name: sha256_file(run_dir / name) for name in names})


def is_sealed(run_dir: Path) -> bool:
    return (run_dir / MANIFEST).is_file()


def verify(run_dir: Path) -> None:
    """DataError naming the first result file that is missing or changed since it was sealed."""
    fix = f"delete {run_dir} to recompute this result"
    try:
        digests = io.read_json_strict(run_dir / MANIFEST)
        if not isinstance(digests, dict) or not digests:
            raise ValueError("no digests")
    except (OSError, ValueError) as err:
        raise DataError(f"{run_dir / MANIFEST} is damaged ({err}); {fix}") from None
    for name, digest in digests.items():
        path = run_dir / str(name)
        if not path.is_file():
            raise DataError(f"{path} is missing; {fix}")
        if sha256_file(path) != digest:
            raise DataError(f"{path} was changed or damaged after it was written; {fix}")
