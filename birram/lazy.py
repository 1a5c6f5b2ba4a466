"""Package namespaces whose names are imported on first use (PEP 562).

A package ``__init__`` that re-exported its submodules eagerly made importing any one of them
(the command line's, say) import torch and the compiled kernel too.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any


class _ExportsWin(types.ModuleType):
    """A package whose exported names win over its submodules of the same name.

    Once a submodule is loaded, the import system binds it on its package under its own name;
    where the package exports a name from that submodule (``birram.hardware.deploy`` holds the
    function ``deploy``), that binding would replace the export with the module.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        home = self.__dict__.get("_lazy_home", {})
        if (isinstance(value, types.ModuleType) and home.get(name) == value.__name__
                and hasattr(value, name)):
            value = getattr(value, name)
        super().__setattr__(name, value)


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]
                 ) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package``, given ``{module: names}``."""
    home = {name: module for module, names in exports.items() for name in names}
    module = sys.modules[package]
    module.__class__ = _ExportsWin
    namespace = module.__dict__
    namespace["_lazy_home"] = home

    def getattr_(name: str) -> Any:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home[name]), name)
        namespace[name] = value  # later look-ups are plain attribute reads
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *home})

    return sorted(home), getattr_, dir_
