"""Keithley 4200A (Clarius) exports: the .xlsx workbook (run sheets + Settings) and the
tab-separated text, each written here in the instrument's layout and read back."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl  # in the test extra; the reader itself asks for birram[lab] when it is missing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from birram.errors import DataError
from birram.rram.measured import read_sweeps

VOLTS = np.array([0.0, 0.2, 0.4, 0.6, 0.4, 0.2, 0.0, -0.2, -0.4, -0.2, 0.0])
AMPS = np.array([0.0, 2e-6, 5e-6, 9e-5, 8e-5, 4e-5, 0.0, -3e-5, -6e-6, -1e-6, 0.0])
TIMES = np.arange(VOLTS.size) * 0.05


def settings_grid(compliance: dict[str, float], device: str = "wafer3-die7-cell12"
                  ) -> list[list[Any]]:
    terminals = list(compliance)
    return [["Test Name", "ivswp#1@1"], ["Device", device],
            ["Terminal", *terminals],
            ["Instrument", *[f"SMU{k + 1}" for k in range(len(terminals))]],
            ["Operation Mode", "Voltage Linear Sweep", *["Voltage Bias"] * (len(terminals) - 1)],
            ["Start", 0, *[0] * (len(terminals) - 1)], ["Stop", 0.6, 0], ["Step", 0.2, 0],
            ["Compliance", *compliance.values()], ["Measure I", "Yes", "Yes"]]


def workbook(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def run_sheet(scale: float = 1.0) -> list[list[Any]]:
    return [["AI", "AV", "Time"], *([float(i * scale), float(v), float(t)]
                                    for v, i, t in zip(VOLTS, AMPS, TIMES))]


def test_workbook_runs_become_sweeps_with_the_settings_compliance(tmp_path: Path) -> None:
    path = workbook(tmp_path / "ivswp.xlsx", {
        "Run12": run_sheet(), "Run13": run_sheet(2.0), "Calc": [["Formula"]],
        "Settings": settings_grid({"A": 1e-4, "B": 0.1})})
    sweeps = read_sweeps(path)
    assert [s.cycle for s in sweeps] == [12, 13]
    assert all(s.compliance_a == pytest.approx(1e-4) for s in sweeps)
    assert sweeps[0].device == "wafer3-die7-cell12" and sweeps[0].source == "ivswp.xlsx"
    np.testing.assert_allclose(sweeps[0].voltage_v, VOLTS)
    np.testing.assert_allclose(sweeps[1].current_a, 2 * AMPS)
    assert sweeps[0].time_s is not None
    np.testing.assert_allclose(sweeps[0].time_s, TIMES)


def test_workbook_of_a_1t1r_cell_picks_the_swept_drain(tmp_path: Path) -> None:
    # the gate (word line) is held at 1.2 V; the drain (bit line) is swept
    rows = [["GateI", "GateV", "DrainI", "DrainV", "Time"],
            *([1e-11, 1.2, float(i), float(v), float(t)] for v, i, t in zip(VOLTS, AMPS, TIMES))]
    settings = settings_grid({"Gate": 1e-3, "Drain": 2e-4})
    sweeps = read_sweeps(workbook(tmp_path / "1t1r.xlsx", {
        "Run1": rows, "Run2": rows, "Settings": settings,
        "Run2 Settings": settings_grid({"Gate": 1e-3, "Drain": 5e-4})}))
    np.testing.assert_allclose(sweeps[0].voltage_v, VOLTS)
    np.testing.assert_allclose(sweeps[0].current_a, AMPS)
    # Run2 has its own settings sheet; Run1 takes the shared one
    assert [s.compliance_a for s in sweeps] == [pytest.approx(2e-4), pytest.approx(5e-4)]


def clarius_text(runs: int = 2, header: str = "AV\tAI\tTime") -> str:
    lines = ["Test Name\tivswp#1@1", "Terminal\tA\tB", "Compliance\t1E-4\t0.1"]
    for r in range(runs):
        lines += [f"Run{r + 1}", header]
        lines += [f"{v:.6g}\t{i * (r + 1):.6g}\t{t:.6g}" for v, i, t in zip(VOLTS, AMPS, TIMES)]
    return "\n".join(lines) + "\n"


def test_tab_separated_text_export(tmp_path: Path) -> None:
    path = tmp_path / "ivswp.txt"
    path.write_text(clarius_text(), encoding="utf-8")
    sweeps = read_sweeps(path)
    assert [s.cycle for s in sweeps] == [1, 2]
    assert all(s.compliance_a == pytest.approx(1e-4) for s in sweeps)
    np.testing.assert_allclose(sweeps[1].current_a, 2 * AMPS)
    np.testing.assert_allclose(sweeps[0].voltage_v, VOLTS)
    assert sweeps[0].time_s is not None
    # the same file named by format
    assert len(read_sweeps(path, "keithley")) == 2


def test_missing_openpyxl_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / "r.xlsx", {"Run1": run_sheet()})
    real_import = builtins.__import__

    def no_openpyxl(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "openpyxl":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openpyxl)
    with pytest.raises(DataError, match=r"r\.xlsx: .*pip install birram\[lab\]"):
        read_sweeps(path)


def _with_row(row: int, values: list[Any]) -> list[list[Any]]:
    rows = run_sheet()
    rows[row] = values
    return rows


@pytest.mark.parametrize(("sheets", "pattern"), [
    ({"Run3": _with_row(4, [5e-6, "oops", 0.15])},
     r"bad\.xlsx: sheet 'Run3', row 5: expected a number in column 'AV', got 'oops'"),
    ({"Run3": _with_row(4, ["2.5 mA", 0.4, 0.15])},
     r"bad\.xlsx: sheet 'Run3', row 5: expected a number.*mixes units"),
    ({"Run3": _with_row(4, [None, 0.4, 0.15])},
     r"bad\.xlsx: sheet 'Run3', row 5: expected a number in column 'AI', got an empty cell"),
    ({"Run3": [["Gate", "Drain"], [1.0, 2.0], [2.0, 3.0]]},
     r"bad\.xlsx: sheet 'Run3', row 1: no voltage and current column.*AV and AI"),
    ({"Run3": []}, r"bad\.xlsx: sheet 'Run3': expected a header row and data, the sheet is empty"),
    ({"Run3": [["AI", "AV", "Time"]]}, r"bad\.xlsx: sheet 'Run3', row 1: expected data rows"),
    ({"Run3": [["AI", "AV", "Time"], [1e-6, 0.1, 0.0]]},
     r"bad\.xlsx: sheet 'Run3', row 2: expected at least 2 points in a sweep, found 1"),
    ({"Run3": _with_row(6, [4e-5, 0.2, 0.01])},
     r"bad\.xlsx: sheet 'Run3', row 7: expected time to increase.*0\.01 s after 0\.2 s"),
])
def test_bad_workbooks_name_the_file_sheet_row_and_expectation(tmp_path: Path, sheets: dict,
                                                               pattern: str) -> None:
    good = {"Run2": run_sheet()}  # a good run first: nothing of the file may be returned
    path = workbook(tmp_path / "bad.xlsx", {**good, **sheets})
    with pytest.raises(DataError, match=pattern) as err:
        read_sweeps(path)
    assert "\n" not in str(err.value)


def test_a_workbook_without_run_sheets_lists_its_sheets(tmp_path: Path) -> None:
    path = workbook(tmp_path / "odd.xlsx", {"Sheet1": run_sheet(), "Settings": [["x"]]})
    with pytest.raises(DataError, match=r"odd\.xlsx: expected run sheets named Run1, Run2, "
                                        r".*\[Sheet1, Settings\]"):
        read_sweeps(path)


def test_a_damaged_workbook_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip archive")
    with pytest.raises(DataError, match=r"broken\.xlsx: expected an Excel \.xlsx workbook"):
        read_sweeps(path)


@pytest.mark.parametrize(("edit", "pattern"), [
    (lambda t: t.replace("0.4\t5e-06", "0.4\toops"),
     r"bad\.txt: line 8: expected a number in column 'AI', got 'oops'"),
    (lambda t: t.replace("0.4\t5e-06", "0.4\t5 uA"), r"bad\.txt: line 8: .*mixes units"),
    (lambda t: t.replace("0.4\t5e-06", "oops\t5e-06"),
     r"bad\.txt: line 8: expected a data row of 3 numbers"),
    (lambda t: t.replace("\t0.3\n", "\t0.01\n", 1),
     r"bad\.txt: line 12: expected time to increase"),
    (lambda t: "\n".join(t.splitlines()[:6]) + "\n",
     r"bad\.txt: line 6: expected at least 2 points in a sweep, found 1"),
])
def test_bad_text_exports_name_the_file_line_and_expectation(tmp_path: Path, edit: Any,
                                                             pattern: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(edit(clarius_text()), encoding="utf-8")
    with pytest.raises(DataError, match=pattern):
        read_sweeps(path)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(
    st.integers(0, VOLTS.size), st.integers(0, 3),
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
              st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=8))),
    max_size=4))
def test_garbage_cells_only_ever_raise_data_error(tmp_path: Path, edits: list) -> None:
    rows = run_sheet()
    for row, col, value in edits:
        while len(rows[row]) <= col:
            rows[row].append(None)
        rows[row][col] = value
    path = workbook(tmp_path / "fuzz.xlsx", {"Run1": rows,
                                              "Settings": settings_grid({"A": 1e-4, "B": 0.1})})
    try:
        sweeps = read_sweeps(path)
    except DataError as err:
        assert "fuzz.xlsx" in str(err) and "\n" not in str(err)
        return
    assert all(s.voltage_v.shape == s.current_a.shape and s.points >= 2 for s in sweeps)
