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


def claim_inductor_cache() -> Path | None:
    """Point torch.compile's code cache at :func:`inductor_cache_dir`, created private (0700):
    torch reads pickled graphs back from it. A folder the user chose
    (``$TORCHINDUCTOR_CACHE_DIR``) is kept, and None returned.

    torch writes its own default into the variable the first time it looks (building an
    optimiser is enough), so that default counts as not chosen.
    """
    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen is not None and os.path.abspath(chosen) != _torch_default_inductor_cache():
        return None
    cache = inductor_cache_dir()
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
    return cache


def _torch_default_inductor_cache() -> str | None:
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:  # another torch layout: only an unset variable counts as not chosen
        return None
    return os.path.abspath(default_cache_dir())
