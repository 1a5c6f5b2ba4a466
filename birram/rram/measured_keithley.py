"""Keithley 4200A-SCS (Clarius) exports: the .xlsx workbook and its tab-separated text form.

The workbook holds one sheet per run (``Run1``, ``Run12``, ...; older KITE files one ``Data``
sheet), each a table whose first row names the columns, plus a ``Settings`` sheet (and often
``Calc``). Clarius names columns after the terminal and the quantity: ``AV``/``AI`` (terminal
A), ``DrainV``/``DrainI``, ``GateV``, ..., with ``Time``; UTM tests write ``Voltage``,
``Current``. Values are in V, A and s. The Settings sheet is a grid of labels in the first
column and one column per terminal (``Terminal``/``Device Terminal``, ``Operation Mode``,
``Start``, ``Stop``, ``Step``, ``Compliance``, ...); the compliance of the swept terminal
becomes each sweep's compliance. A sheet named ``Settings`` beside ``RunN`` data sheets
applies to all runs; one whose name also names the run (``Run12 Settings``) only to that run.

The text form has the same content: settings lines (``Compliance<TAB>1E-4``), then per run an
optional ``Run12`` line, a header line and tab-separated data rows.

Reading the workbook needs openpyxl (``pip install birram[lab]``). As with the other readers the
whole file is parsed before anything is returned, and errors name the file, the sheet or line,
and what was expected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from birram.errors import DataError
from birram.rram.measured import (
    NAME_PATTERNS,
    MeasuredSweep,
    ReadOptions,
    _Layout,
    _number,
    _split_sweeps,
    _unit_scale,
    guess_layout,
    mixed_units_hint,
    parse_header_cell,
)

_RUN_NAME = re.compile(r"(run|append)\s*#?\s*(?P<number>\d+)", re.IGNORECASE)
_TERMINAL_VOLTAGE = re.compile(r"(?P<terminal>[a-z][a-z0-9]*?)v")
_TERMINAL_CURRENT = re.compile(r"(?P<terminal>[a-z][a-z0-9]*?)i")
_TIME = re.compile(r"\w*time\w*|t|timestamp")

Grid = list[list[Any]]  # a settings sheet: rows of cells


# ----------------------------------------------------------------------------- columns

def clarius_layout(header: Sequence[str], columns: Sequence[Sequence[float | None]],
                   options: ReadOptions, where: str) -> _Layout:
    """Which column is the swept voltage, its current and the time.

    Plain names (``Voltage``, ``V1``...) and explicit choices are handled as in any table; else
    terminal names: the swept voltage is the first ``<terminal>V`` column that varies, its
    current the ``<terminal>I`` column of the same terminal.
    """
    constant = frozenset(k for k, col in enumerate(columns) if len(set(col)) <= 1)
    try:
        return guess_layout(header, options, where, constant)
    except DataError:
        if options.voltage_column is not None or options.current_column is not None:
            raise
    keys = [parse_header_cell(c) for c in header]
    voltages = [(k, m["terminal"]) for k, (key, _) in enumerate(keys)
                if (m := _TERMINAL_VOLTAGE.fullmatch(key)) and not _TIME.fullmatch(key)]
    currents = {m["terminal"]: k for k, (key, _) in enumerate(keys)
                if (m := _TERMINAL_CURRENT.fullmatch(key))}
    if not voltages or not currents:
        missing = " and ".join(name for name, found in (("voltage", voltages),
                                                        ("current", currents)) if not found)
        raise DataError(f"{where}: no {missing} column in [{', '.join(map(str, header))}]; "
                        f"expected Clarius names such as AV and AI (terminal + V / I) or "
                        f"Voltage and Current")
    swept = [(k, t) for k, t in voltages if k not in constant] or voltages
    v_col, terminal = swept[0]
    i_col = currents.get(terminal, next(iter(currents.values())))
    index = {"voltage": v_col, "current": i_col}
    time_cols = [k for k, (key, _) in enumerate(keys) if _TIME.fullmatch(key)]
    if time_cols:
        index["time"] = time_cols[0]
    scale = {role: _unit_scale(role, keys[k][1], f"{where}: column {header[k]!r}")
             for role, k in index.items()}
    return _Layout(index, scale)


def _terminal_of(header: Sequence[str], layout: _Layout) -> str:
    key = parse_header_cell(str(header[layout.index["voltage"]]))[0]
    match = _TERMINAL_VOLTAGE.fullmatch(key)
    return match["terminal"] if match else key


# ----------------------------------------------------------------------------- settings

def _label(cell: Any) -> str:
    return str(cell).strip().lower() if cell is not None else ""


def settings_compliance(grid: Grid, terminal: str) -> float | None:
    """The compliance of the swept terminal in a settings grid (None when not recorded)."""
    terminals: list[Any] = []
    values: list[Any] | None = None
    for row in grid:
        label = _label(row[0]) if row else ""
        if label in ("terminal", "terminals", "device terminal", "terminal name") \
                and not terminals:
            terminals = list(row[1:])
        elif "compliance" in label and values is None:
            values = list(row[1:])
    if not values:
        return None
    numbers = [_as_number(v) for v in values]
    for k, name in enumerate(terminals):
        text = _label(name)
        if text and (text == terminal or text.startswith(terminal) or terminal.startswith(text)) \
                and k < len(numbers) and numbers[k] is not None:
            return abs(numbers[k])
    found = [n for n in numbers if n is not None]
    return abs(found[0]) if found else None


def settings_device(grid: Grid) -> str | None:
    for row in grid:
        if row and _label(row[0]) in ("device", "device name", "device id", "dut", "sample"):
            named = [str(v).strip() for v in row[1:] if v is not None and str(v).strip()]
            if named:
                return named[0]
    return None


def _as_number(cell: Any) -> float | None:
    if isinstance(cell, bool):
        return None
    if isinstance(cell, (int, float)):
        return float(cell) if math.isfinite(cell) else None  # as the text readers do
    if isinstance(cell, str):
        return _number(cell.strip(), False)
    return None


# ----------------------------------------------------------------------------- one run

def _run_sweeps(header: list[str], rows: list[tuple[str, list[Any]]], source: str,
                where: str, options: ReadOptions, settings: Grid,
                cycle: int | None) -> list[MeasuredSweep]:
    """Parse one run's table; ``rows`` are (location, cells) pairs."""
    if not rows:
        raise DataError(f"{source}: {where}: expected data rows below the header")
    width = len(header)
    for loc, cells in rows:
        if len(cells) > width and any(c not in (None, "") for c in cells[width:]):
            raise DataError(f"{source}: {loc}: expected {width} columns like the header, found "
                            f"{len(cells)}")
    numbers = [[_as_number(c) if k < len(cells) else None for k, c in enumerate(cells[:width])]
               + [None] * (width - len(cells)) for _, cells in rows]
    columns = list(zip(*numbers))
    layout = clarius_layout(header, columns, options, f"{source}: {where}")
    table: dict[str, list] = {role: [] for role in layout.index}
    table["_where"] = []
    for (loc, cells), values in zip(rows, numbers):
        for role, k in layout.index.items():
            if values[k] is None:
                cell = cells[k] if k < len(cells) else None
                shown = "an empty cell" if cell in (None, "") else repr(cell)
                raise DataError(f"{source}: {loc}: expected a number in column {header[k]!r}, "
                                f"got {shown}{mixed_units_hint(str(cell or ''))}")
            table[role].append(values[k] * layout.scale.get(role, 1.0))
        table["_where"].append(loc)
    compliance = settings_compliance(settings, _terminal_of(header, layout))
    return _split_sweeps(table, layout, source, compliance_a=compliance, cycle=cycle,
                         device=settings_device(settings))


# ----------------------------------------------------------------------------- workbook

def _load_workbook(path: Path) -> Any:
    try:
        import openpyxl
    except ImportError:
        raise DataError(f"{path.name}: reading Keithley .xlsx files needs openpyxl: "
                        f"pip install birram[lab]") from None
    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    except Exception as err:  # zipfile/XML errors of a damaged or mislabelled file
        raise DataError(f"{path.name}: expected an Excel .xlsx workbook, could not open it "
                        f"({type(err).__name__})") from None


def _sheet_rows(sheet: Any) -> list[list[Any]]:
    if not hasattr(sheet, "iter_rows"):  # a chart sheet: no cells
        return []
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    while rows and all(c in (None, "") for c in rows[-1]):
        rows.pop()
    return rows


def read_clarius_workbook(path: Path | str, options: ReadOptions | None = None
                          ) -> list[MeasuredSweep]:
    """Every run sheet of a Clarius .xlsx export, in sheet order."""
    path = Path(path)
    options = options or ReadOptions()
    book = _load_workbook(path)
    try:
        sheets = {name: _sheet_rows(book[name]) for name in book.sheetnames}
    finally:
        book.close()
    runs = [n for n in sheets if _RUN_NAME.fullmatch(n.strip())] or \
        [n for n in sheets if n.strip().lower() == "data"]
    if not runs:
        raise DataError(f"{path.name}: expected run sheets named Run1, Run2, ... (or Data), "
                        f"found sheets [{', '.join(sheets)}]")
    shared = next((sheets[n] for n in sheets if n.strip().lower() == "settings"), [])
    sweeps: list[MeasuredSweep] = []
    for name in runs:
        rows = sheets[name]
        first = next((k for k, r in enumerate(rows) if any(c not in (None, "") for c in r)),
                     None)
        if first is None:
            raise DataError(f"{path.name}: sheet {name!r}: expected a header row and data, the "
                            f"sheet is empty")
        header = [str(c).strip() if c is not None else "" for c in rows[first]]
        while header and header[-1] == "":
            header.pop()
        number = _run_number(name)
        own = next((sheets[n] for n in sheets if n != name and "settings" in n.lower()
                    and _run_number(n) == number), None)
        data = [(f"sheet {name!r}, row {first + 2 + k}", r) for k, r in
                enumerate(rows[first + 1:])]
        sweeps += _run_sweeps(header, data, path.name, f"sheet {name!r}, row {first + 1}",
                              options, own if own is not None else shared,
                              int(number) if number is not None else None)
    return sweeps


def _run_number(sheet_name: str) -> str | None:
    match = _RUN_NAME.search(sheet_name)
    return match["number"] if match else None


# ----------------------------------------------------------------------------- text

def _cells(line: str) -> list[str]:
    return [c.strip().strip('"') for c in line.rstrip("\n").split("\t")]


def _is_header(cells: Sequence[str]) -> bool:
    keys = [parse_header_cell(c)[0] for c in cells if c]
    plain_v = any(NAME_PATTERNS["voltage"].fullmatch(k) for k in keys)
    plain_i = any(NAME_PATTERNS["current"].fullmatch(k) for k in keys)
    volts = {m["terminal"] for k in keys if (m := _TERMINAL_VOLTAGE.fullmatch(k))}
    amps = {m["terminal"] for k in keys if (m := _TERMINAL_CURRENT.fullmatch(k))}
    return (plain_v and plain_i) or bool(volts & amps)


def looks_like_clarius_text(lines: Sequence[str]) -> bool:
    """Tab-separated, with a header of Clarius terminal columns (AV and AI, DrainV and
    DrainI, ...) that a plain-table reader would not recognise."""
    for line in lines[:200]:
        if "\t" not in line:
            continue
        keys = [parse_header_cell(c)[0] for c in _cells(line) if c]
        volts = {m["terminal"] for k in keys if (m := _TERMINAL_VOLTAGE.fullmatch(k))}
        amps = {m["terminal"] for k in keys if (m := _TERMINAL_CURRENT.fullmatch(k))}
        if volts & amps:
            return True
    return False


def read_clarius_text_lines(lines: Sequence[str], source: str,
                            options: ReadOptions | None = None) -> list[MeasuredSweep]:
    """The tab-separated text form: settings lines, then per run an optional ``RunN`` line, a
    header and data rows; a ``Settings`` line starts settings that apply to the runs."""
    options = options or ReadOptions()
    settings: Grid = []
    runs: list[dict[str, Any]] = []
    pending_name: int | None = None
    in_settings = False
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cells = _cells(line)
        while cells and cells[-1] == "":
            cells.pop()
        first = cells[0] if cells else ""
        if len(cells) == 1 and (run := _RUN_NAME.fullmatch(first)):
            pending_name, in_settings = int(run["number"]), False
        elif len(cells) == 1 and first.lower() == "settings":
            in_settings = True
        elif not in_settings and _is_header(cells):
            runs.append({"line": n, "header": cells, "rows": [], "number": pending_name})
            pending_name = None
        elif not in_settings and runs and _number(first, False) is not None:
            runs[-1]["rows"].append((f"line {n}", cells))
        elif not in_settings and runs and runs[-1]["rows"]:
            raise DataError(f"{source}: line {n}: expected a data row of "
                            f"{len(runs[-1]['header'])} numbers like the header, got "
                            f"{line.strip()[:40]!r}{mixed_units_hint(first)}")
        else:
            settings.append(cells)
    if not runs:
        raise DataError(f"{source}: line {len(lines)}: expected a header line with Clarius "
                        f"columns (e.g. AV<TAB>AI<TAB>Time), found none")
    sweeps: list[MeasuredSweep] = []
    for k, run in enumerate(runs, 1):
        sweeps += _run_sweeps(run["header"], run["rows"], source, f"line {run['line']}",
                              options, settings, run["number"] if run["number"] is not None
                              else k)
    return sweeps


def read_clarius_text(path: Path | str, options: ReadOptions | None = None
                      ) -> list[MeasuredSweep]:
    from birram.rram.measured import _read_lines

    path = Path(path)
    return read_clarius_text_lines(_read_lines(path), path.name, options)


def is_workbook(path: Path) -> bool:
    """An .xlsx file (a zip archive), by its first bytes."""
    try:
        with path.open("rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False

