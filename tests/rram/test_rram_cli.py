"""The simulate command on a throwaway app: files, plots, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import typer
from typer.testing import CliRunner

from birram.rram.cli import register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_simulate_writes_features_traces_and_plots(tmp_path):
    out = tmp_path / "sim"
    result = CliRunner().invoke(_app(), ["simulate", "--params", "filament", "--icc",
                                         "1e-5,1e-4,1e-3", "--devices", "3", "--cycles", "2",
                                         "--out", str(out), "--step", "0.02"])
    assert result.exit_code == 0, result.output
    for name in ("rram_simulation.npz", "features.csv", "iv_curves.png", "r_lrs_vs_icc.png",
                 "feature_distributions.png", "summary.json"):
        assert (out / name).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert -1.3 < summary["r_lrs_exponent"] < -0.8
    data = np.load(out / "rram_simulation.npz")
    assert data["r_lrs_ohm"].shape == (2, 9)
    assert data["trace"].shape == (2, 9, 64)
    rows = (out / "features.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * 9


def test_one_level_has_no_scaling_exponent(tmp_path):
    out = tmp_path / "one"
    result = CliRunner().invoke(_app(), ["simulate", "--params", "filament", "--icc", "1e-4",
                                         "--devices", "2", "--cycles", "1", "--out", str(out),
                                         "--step", "0.02"])
    assert result.exit_code == 0, result.output
    assert "I_CC^" not in result.output
    text = (out / "summary.json").read_text()
    assert "NaN" not in text and json.loads(text)["r_lrs_exponent"] is None


def test_errors_are_one_line_with_exit_code_2(tmp_path):
    runner = CliRunner()
    cases = [(["--icc", "0,1e-3"], "compliance"),
             (["--params", "stanford-v1", "--v-set-max", "1.0"], "v_set_max"),
             (["--params", "unknown"], "unknown")]
    for args, word in cases:
        result = runner.invoke(_app(), ["simulate", "--out", str(tmp_path / "x"), *args])
        assert result.exit_code == 2
        assert word in result.output and result.output.count("\n") <= 2
