"""Where data sources look for their files when no directory is given."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$BIRRAM_DATA``, else ``$XDG_CACHE_HOME/birram``, else ``~/.cache/birram``."""
    if os.environ.get("BIRRAM_DATA"):
        return Path(os.environ["BIRRAM_DATA"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "birram"


def candidate_dirs(data_dir: Path | None, subdir: str, default: Path) -> list[Path]:
    """Directories to search, in order: the one given, then its ``subdir``.

    Accepting the parent lets one ``--data-dir`` serve every dataset
    (``data/mnist``, ``data/cifar-10-batches-py``, ...).
    """
    if data_dir is None:
        return [default]
    data_dir = Path(data_dir).expanduser()
    return [data_dir, data_dir / subdir]
