"""Where birram keeps what it can recompute: simulated datasets, cell calibrations, compiled code.

Always outside the installed package, which may be read-only and is shared by every user.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$BIRRAM_CACHE``, else ``~/.cache/birram``."""
    return Path(os.environ.get("BIRRAM_CACHE") or Path.home() / ".cache" / "birram")


def numba_cache_dir() -> Path:
    """Compiled kernels (numba's ``cache=True`` writes beside the module unless told where)."""
    return cache_dir() / "numba"


def inductor_cache_dir() -> Path:
    """torch.compile's generated code (its default, under /tmp, is lost at every reboot)."""
    return cache_dir() / "inductor"
