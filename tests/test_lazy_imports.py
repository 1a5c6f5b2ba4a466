"""The command line's listing commands import no torch, and using birram writes nothing into
the installed package (compiled kernels go to the user's cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import birram

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(birram.__file__).resolve().parent


def run_python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter that imports this tree's birram; its stdout."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    done = subprocess.run([sys.executable, "-B", "-c", code], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


LISTING = """
import json, sys
from typer.testing import CliRunner
from birram.cli import app
from birram.methods.registry import METHODS
from birram.data.registry import PROTOCOLS
outputs = {c: CliRunner().invoke(app, [c]).output for c in ("methods", "protocols", "presets",
                                                              "chips", "--help")}
heavy = sorted(m for m in ("torch", "numba", "matplotlib", "scipy", "numpy")
               if m in sys.modules)
print(json.dumps({"heavy": heavy, "outputs": outputs,
                  "descriptions": {n: s.description for n, s in METHODS.items()},
                  "scenarios": {n: list(s.scenarios) for n, s in METHODS.items()}}))
"""


def test_listing_commands_import_no_torch():
    result = json.loads(run_python(LISTING))
    assert result["heavy"] == []
    out = result["outputs"]
    # The listings are complete, not empty because their modules were left out.
    assert "bir-no-feedback" in out["methods"] and "generative replay" in out["methods"]
    assert "rram-compliance" in out["protocols"]
    assert "rram-demo" in out["presets"] and "rram-4bit" in out["chips"]
    assert "compare" in out["--help"] and "chip-sweep" in out["--help"]
    assert result["scenarios"]["xdg"] == ["task"]
    assert len(result["descriptions"]) > 20


def test_building_every_method_still_works():
    """The registry's lazy factories import their modules when called."""
    from birram.config import MethodConfig
    from birram.methods.base import Method
    from birram.methods.registry import METHODS, build_method

    for name in METHODS:
        assert isinstance(build_method(name, MethodConfig()), Method), name


def tree(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


SIMULATE = """
import numba, torch
from birram.rram import FILAMENT, IntegratorOptions, run_cycles
from birram.rram.kernel import available
result = run_cycles(FILAMENT, torch.tensor([1e-4, 1e-3]), n=2, cycles=1,
                    options=IntegratorOptions(backend="compiled" if available() else "torch"))
assert torch.isfinite(result.features["r_lrs_ohm"]).all()
print(numba.config.CACHE_DIR)
"""


def test_a_simulation_writes_nothing_into_the_package():
    pytest.importorskip("numba")
    before = tree(PACKAGE)
    # NUMBA_CACHE_DIR unset: birram must choose the place itself (the default of a fresh user).
    cache = Path(run_python("import os; os.environ.pop('NUMBA_CACHE_DIR', None)\n"
                            + SIMULATE).strip())
    assert tree(PACKAGE) == before
    assert PACKAGE not in cache.resolve().parents
    assert any(cache.rglob("kernel.*.nbi")), "the compiled kernel was not cached"
