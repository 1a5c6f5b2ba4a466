"""Word-line-voltage sweeps of 1T1R cells: the falling-then-saturating resistance after SET,
the fit that recovers the transistor, the V_WL-R table reader, ``birram wordline`` and
``birram fit --wordline``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from birram.errors import ConfigError, DataError
from birram.rram import fit_cli, wordline_cli
from birram.rram.transistor import Transistor
from birram.rram.wordline import SetDrive, fit_wordline, simulate_wordline
from birram.rram.wordline_table import read_wordline_table

V_WL = np.round(np.arange(0.2, 3.01, 0.2), 6)
TRUE = Transistor(v_th_v=0.45, k_a_per_v2=4e-4, slope_n=1.3, lambda_per_v=0.05)


@pytest.fixture(scope="module")
def sweep():
    return simulate_wordline(V_WL, TRUE)


def test_resistance_after_set_falls_with_word_line_voltage_then_saturates(sweep) -> None:
    r = sweep.r_read_ohm
    assert bool((np.diff(r) <= 0).all())
    # below threshold the transistor passes too little current to SET: the cell stays HRS
    assert r[0] == pytest.approx(sweep.r_initial_ohm, rel=0.5)
    assert r[0] > 1000 * r[-1]
    # the steepest fall is at low V_WL; over the top 0.6 V the curve is nearly flat ...
    slope = -np.diff(np.log10(r)) / np.diff(V_WL)
    top = V_WL[1:] > V_WL[-1] - 0.6
    assert slope[top].max() < 0.05 * slope.max()
    # ... close to the transistor-free resistance, never below it
    assert sweep.r_free_ohm < r[-1] < 2.5 * sweep.r_free_ohm
    # while it limits, the peak current is the transistor's saturation current
    i_sat = Transistor(v_wl_v=V_WL[:4], v_th_v=0.45, k_a_per_v2=4e-4).saturation_current_a()
    np.testing.assert_allclose(sweep.i_peak_a[:4], i_sat.numpy(), rtol=0.1)


def test_fit_recovers_threshold_and_k_within_ten_percent(sweep) -> None:
    rng = np.random.default_rng(0)
    noisy = sweep.r_read_ohm * np.exp(rng.normal(0.0, 0.05, V_WL.size))  # 5 % read scatter
    for measured in (sweep.r_read_ohm, noisy):
        result = fit_wordline(V_WL, measured)  # starts from the default transistor
        assert float(result.transistor.v_th_v) == pytest.approx(0.45, rel=0.1)
        assert float(result.transistor.k_a_per_v2) == pytest.approx(4e-4, rel=0.1)
        assert result.rms_log10_error < 0.05
    assert result.fitted == ("v_th_v", "k_a_per_v2")


def test_fit_refuses_what_it_cannot_fit() -> None:
    with pytest.raises(ConfigError, match="one resistance per word-line voltage"):
        fit_wordline([1.0, 2.0, 3.0], [1e4, 1e3])
    with pytest.raises(ConfigError, match="fit parameters must be"):
        fit_wordline([1.0, 2.0, 3.0], [1e4, 1e3, 1e3], fit=("v_th_v", "gain"))
    with pytest.raises(DataError, match="needs more than 2 word-line voltages"):
        fit_wordline([1.0, 2.0], [1e4, 1e3])
    with pytest.raises(ConfigError, match="increase strictly"):
        simulate_wordline([1.0, 0.5])
    with pytest.raises(ConfigError, match="pulse width"):
        simulate_wordline([1.0, 2.0], drive=SetDrive(pulse_width_s=0.0))


# ----------------------------------------------------------------------------- table reader

def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_table_units_delimiters_and_repeated_voltages(tmp_path: Path) -> None:
    text = "# 1T1R array, 3 cells per V_WL\nV_WL (mV);R (kOhm)\n800;20\n800;40\n800;10\n" \
           "1200;5,5\n1600;3\n"
    table = read_wordline_table(write(tmp_path, "wl.csv", text))
    np.testing.assert_allclose(table.v_wl_v, [0.8, 1.2, 1.6])
    np.testing.assert_allclose(table.r_ohm, [20e3, 5.5e3, 3e3])  # median of the repeats
    assert table.rows == 5
    mega = read_wordline_table(write(tmp_path, "m.tsv", "Vg\tR (MOhm)\n1\t2\n2\t0.5\n"))
    np.testing.assert_allclose(mega.r_ohm, [2e6, 5e5])


@pytest.mark.parametrize(("text", "pattern"), [
    ("", r"bad\.csv: line 1: .*empty"),
    ("V_WL,Current\n1,2\n2,3\n", r"bad\.csv: line 1: no resistance column.*\[V_WL, Current\]"),
    ("Gate,R\n1,1e4\n1.5,oops\n", r"bad\.csv: line 3: expected a number in column 'R'.*'oops'"),
    ("V_WL,R (ohm)\n1,1e4\n1.5,2.5 kOhm\n", r"bad\.csv: line 3: expected a number.*'2\.5 kOhm'"),
    ("V_WL (V),R (ohm)\n1.2,1e4\n", r"bad\.csv: line 2: expected at least 2 different"),
    ("V_WL,R\n1.0,1e4\n1.5,5e3\n1.2,4e3\n", r"bad\.csv: line 4: expected word-line voltages in "
                                           r"increasing order"),
    ("V_WL (A),R\n1,2\n", r"bad\.csv: line 1: .*expected a voltage unit"),
    ("V_WL,R (furlong)\n1,2\n", r"bad\.csv: line 1: .*expected a resistance unit"),
    ("V_WL,R\n1,0\n2,1\n", r"bad\.csv: line 2: expected a resistance > 0"),
    ("V_WL,R\n", r"bad\.csv: line 2: expected data rows"),
])
def test_bad_tables_name_the_file_line_and_expectation(tmp_path: Path, text: str,
                                                       pattern: str) -> None:
    with pytest.raises(DataError, match=pattern) as err:
        read_wordline_table(write(tmp_path, "bad.csv", text))
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- commands

def _app() -> typer.Typer:
    app = typer.Typer()
    wordline_cli.register(app)
    fit_cli.register(app)
    return app


def test_wordline_command_writes_the_sweep_and_fit_recovers_it(tmp_path: Path) -> None:
    out = tmp_path / "wl"
    result = CliRunner().invoke(_app(), ["wordline", "--v-wl", "0.2:3.0:0.2", "--v-th", "0.45",
                                         "--k", "4e-4", "--scatter", "0.05", "--seed", "3",
                                         "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "wordline.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points"] == V_WL.size and summary["r_min_ohm"] < summary["r_max_ohm"]
    rows = (out / "wordline.csv").read_text().splitlines()
    assert rows[0] == "v_wl_v,r_read_ohm,i_peak_a,r_simulated_ohm" and len(rows) == 1 + V_WL.size
    table = np.array([[float(c) for c in row.split(",")] for row in rows[1:]])
    spread = np.log(table[:, 1] / table[:, 3])
    assert 0.01 < spread.std() < 0.1  # the requested 5 % log-normal spread
    # the written table reads back as a measured sweep
    fit_out = tmp_path / "fit"
    result = CliRunner().invoke(_app(), ["fit", "--wordline", str(out / "wordline.csv"),
                                         "--out", str(fit_out)])
    assert result.exit_code == 0, result.output
    fitted = json.loads((fit_out / "fit.json").read_text())["transistor"]
    assert fitted["v_th_v"] == pytest.approx(0.45, rel=0.1)
    assert fitted["k_a_per_v2"] == pytest.approx(4e-4, rel=0.1)
    assert (fit_out / "fit.png").stat().st_size > 0


@pytest.mark.parametrize("args", [
    ["wordline", "--v-wl", "1:0.5:0.1"],
    ["wordline", "--v-wl", "a,b"],
    ["wordline", "--k", "-1"],
    ["wordline", "--pulse-width", "0"],
    ["wordline", "--scatter", "-1"],
    ["fit", "--wordline", "missing.csv"],
    ["fit", "--wordline", "missing.csv", "--fit-transistor", "gain"],
    ["fit", "sweeps.csv", "--wordline", "missing.csv"],
])
def test_bad_command_input_is_one_line(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(_app(), [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.startswith("error:") and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
