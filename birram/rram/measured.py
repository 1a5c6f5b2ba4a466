"""Measured I-V sweeps as instruments and users write them: plain CSV/TSV tables, Keysight
EasyEXPERT exports and Keithley 4200A Clarius exports (.xlsx and tab-separated text, in
``measured_keithley.py``), read into :class:`MeasuredSweep` records in SI units.

Every reader parses the whole file before returning, so a bad file raises one
:class:`~birram.errors.DataError` naming the file and line and nothing is half-imported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from birram.errors import DataError

Column = str | int | None
Format = Literal["auto", "table", "easyexpert", "keithley"]

UNIT_SCALES: dict[str, dict[str, float]] = {
    "voltage": {"v": 1.0, "mv": 1e-3, "uv": 1e-6, "kv": 1e3},
    "current": {"a": 1.0, "ma": 1e-3, "ua": 1e-6, "na": 1e-9, "pa": 1e-12, "fa": 1e-15},
    "time": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "min": 60.0},
}
UNIT_SCALES["compliance"] = UNIT_SCALES["current"]

# Header names (lower case, without spaces, underscores, dots or units) for each role.
NAME_PATTERNS: dict[str, re.Pattern[str]] = {
    "voltage": re.compile(r"(v\d*|vbias|bias|voltage\w*|v(d|ds|te|top|force|applied|in|set|sweep"
                          r"|smu\d*)|(applied|sweep|bias|drain|top)voltage)"),
    "current": re.compile(r"(i\d*|id|ids|ite|itop|imeas|current\w*|(measured|drain|top)current"
                          r"|ismu\d*)"),
    "time": re.compile(r"(t|time|@time|times|elapsedtime)"),
    "device": re.compile(r"(device\w*|dev|dut|cell|die|sample)"),
    "cycle": re.compile(r"(cycle\w*|cyc|sweep(no|number|index|id)?|ncycle)"),
    "compliance": re.compile(r"(compliance\w*|icc|icomp|cc|compliancecurrent)"),
}
_UNIT_SUFFIX = re.compile(r"^(?P<name>.*?)[\s_/]*[(\[](?P<unit>[^)\]]*)[)\]]\s*$")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# A number written with its own unit ('2.5 mA'): a table that mixes units.
_NUMBER_WITH_UNIT = re.compile(r"\s*[+-]?(\d+[.,]?\d*|[.,]\d+)([eE][+-]?\d+)?\s*"
                               r"(?P<unit>[a-zA-Zµμ]{1,4})\s*")


@dataclass(frozen=True, eq=False)
class MeasuredSweep:
    """One measured sweep: voltage and current in SI units, in the order they were measured."""

    voltage_v: np.ndarray = field(repr=False)
    current_a: np.ndarray = field(repr=False)
    time_s: np.ndarray | None = field(default=None, repr=False)
    source: str = ""
    device: str | None = None
    cycle: int | str | None = None
    compliance_a: float | None = None

    def __post_init__(self) -> None:
        shape = np.shape(self.voltage_v)
        if len(shape) != 1 or np.shape(self.current_a) != shape or (
                self.time_s is not None and np.shape(self.time_s) != shape):
            raise DataError(f"{self.source or 'sweep'}: voltage, current and time must be 1-D "
                            f"arrays of one length, got {shape} and {np.shape(self.current_a)}")

    @property
    def points(self) -> int:
        return int(self.voltage_v.size)


@dataclass(frozen=True)
class ReadOptions:
    """Explicit choices that override what the reader would guess (names or 0-based indices)."""

    voltage_column: Column = None
    current_column: Column = None
    time_column: Column = None
    device_column: Column = None
    cycle_column: Column = None
    compliance_column: Column = None
    voltage_unit: str | None = None
    current_unit: str | None = None
    time_unit: str | None = None
    compliance_unit: str | None = None
    delimiter: str | None = None


def read_sweep_files(paths: Sequence[Path | str], format: Format = "auto",
                     **overrides: object) -> list[MeasuredSweep]:
    """All sweeps of several files, in order; any bad file stops the whole read."""
    return [sweep for path in paths for sweep in read_sweeps(path, format, **overrides)]


def read_sweeps(path: Path | str, format: Format = "auto",
                **overrides: object) -> list[MeasuredSweep]:
    """Read every sweep in ``path``; ``overrides`` are :class:`ReadOptions` fields."""
    try:
        options = ReadOptions(**overrides)  # type: ignore[arg-type]
    except TypeError as err:
        raise DataError(f"unknown reader option: {err}") from None
    path = Path(path)
    if format not in ("auto", "table", "easyexpert", "keithley"):
        raise DataError(f"unknown measured-data format {format!r}: use auto, table, easyexpert "
                        f"or keithley")
    from birram.rram import measured_keithley as keithley

    if format in ("auto", "keithley") and (path.suffix.lower() in (".xlsx", ".xlsm")
                                           or keithley.is_workbook(path)):
        return keithley.read_clarius_workbook(path, options)
    lines = _read_lines(path)
    if format == "auto":
        format = ("easyexpert" if any(_is_easyexpert_key(s) for s in lines[:200]) else
                  "keithley" if keithley.looks_like_clarius_text(lines) else "table")
    if format == "easyexpert":
        return read_easyexpert_lines(lines, path.name, options)
    if format == "keithley":
        return keithley.read_clarius_text_lines(lines, path.name, options)
    return read_table_lines(lines, path.name, options)


def _read_lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    if b"\x00" in raw[:4096]:
        raise DataError(f"{path.name}: line 1: expected a text file (CSV/TSV), found binary data")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # older instrument exports write the micro sign this way
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not any(s.strip() for s in lines):
        raise DataError(f"{path.name}: line 1: expected a header and data rows, the file is empty")
    return lines


# ----------------------------------------------------------------------------- header guessing

def parse_header_cell(cell: str) -> tuple[str, str | None]:
    """``'Current (uA)'`` -> ``('current', 'ua')``; ``'voltage_v'`` -> ``('voltage', 'v')``."""
    text = cell.strip().strip('"').strip("'").replace("µ", "u").replace("μ", "u").lower()
    match = _UNIT_SUFFIX.match(text)
    name, unit = (match["name"], match["unit"].strip()) if match else (text, None)
    key = re.sub(r"[\s_.\-#]", "", name)
    if unit is None and "_" in text:  # 'voltage_v', 'time_ms', 'current_ua'
        base, _, suffix = text.rpartition("_")
        base_key = re.sub(r"[\s_.\-#]", "", base)
        if any(suffix in scales for scales in UNIT_SCALES.values()) and _role_of(base_key):
            key, unit = base_key, suffix
    return key, unit


def _role_of(key: str) -> str | None:
    for role, pattern in NAME_PATTERNS.items():
        if pattern.fullmatch(key):
            return role
    return None


def _unit_scale(role: str, unit: str | None, where: str) -> float:
    if unit is None or unit == "":
        return 1.0
    scales = UNIT_SCALES[role]
    key = unit.strip().replace("µ", "u").replace("μ", "u").lower()
    if key not in scales:
        raise DataError(f"{where}: expected a {role} unit ({', '.join(scales)}), got {unit!r}")
    return scales[key]


@dataclass(frozen=True)
class _Layout:
    index: dict[str, int]  # role -> column
    scale: dict[str, float]  # role -> factor to SI


def guess_layout(header: Sequence[str], options: ReadOptions, where: str,
                 constant: frozenset[int] = frozenset()) -> _Layout:
    """Which column holds which quantity, and the factor that turns it into SI units.

    With several candidates (two source-measure units: V1, I1, V2, I2) the swept voltage is
    the first that is not ``constant``, and the current is the one on the same channel.
    """
    parsed = [parse_header_cell(c) for c in header]
    index: dict[str, int] = {}
    units: dict[str, str | None] = {}
    for role in NAME_PATTERNS:
        chosen = getattr(options, f"{role}_column")
        if chosen is not None:
            k = _column_index(chosen, header, parsed, where)
            index[role], units[role] = k, parsed[k][1]
            continue
        candidates = [k for k, (key, _) in enumerate(parsed)
                      if k not in index.values() and _role_of(key) == role]
        if candidates:
            k = min(candidates, key=lambda c: _preference(role, c, parsed, index, constant))
            index[role], units[role] = k, parsed[k][1]
    if "voltage" not in index or "current" not in index:
        missing = " and ".join(r for r in ("voltage", "current") if r not in index)
        raise DataError(f"{where}: no {missing} column found in the header "
                        f"[{', '.join(c.strip() for c in header)}]; name it (e.g. V, Current) "
                        f"or pass voltage_column= / current_column=")
    scale = {}
    for role, k in index.items():
        if role in ("device", "cycle"):
            continue
        override = getattr(options, f"{role}_unit")
        scale[role] = _unit_scale(role, override if override is not None else units[role],
                                  f"{where}: column {header[k].strip()!r}")
    return _Layout(index, scale)


def _preference(role: str, column: int, parsed: list[tuple[str, str | None]],
                index: dict[str, int], constant: frozenset[int]) -> tuple[int, int, int]:
    """Sort key among candidate columns: lower is better, ties go to the leftmost. Plain names
    (V, Voltage, I, Current) win over abbreviations such as ID, which may be an identifier."""
    plain = parsed[column][0] not in ("v", "voltage", "i", "current")
    if role == "voltage":
        return (column in constant, plain, column)
    if role == "current" and "voltage" in index:
        channel = parsed[index["voltage"]][0][1:]
        return (parsed[column][0][1:] != channel or not channel.isdigit(), plain, column)
    return (0, plain, column)


def _column_index(chosen: str | int, header: Sequence[str], parsed: list[tuple[str, str | None]],
                  where: str) -> int:
    if isinstance(chosen, int):
        if not -len(header) <= chosen < len(header):
            raise DataError(f"{where}: column {chosen} does not exist ({len(header)} columns)")
        return chosen % len(header)
    for k, cell in enumerate(header):
        if cell.strip().strip('"').lower() == chosen.lower() or parsed[k][0] == chosen.lower():
            return k
    raise DataError(f"{where}: no column named {chosen!r} in [{', '.join(header)}]")


# ----------------------------------------------------------------------------- plain tables

def sniff_delimiter(lines: Sequence[str]) -> str | None:
    """The delimiter that splits the most lines into the same number (>= 2) of fields;
    ``None`` means runs of whitespace."""
    sample = [s for s in lines if s.strip() and not _is_comment(s)][:30]
    best, best_score = None, 0.0
    for delim in ("\t", ";", ","):
        counts = [len(s.split(delim)) for s in sample]
        if not counts:
            break
        mode = max(set(counts), key=counts.count)
        score = counts.count(mode) / len(counts)
        if mode >= 2 and score > best_score + 1e-9:
            best, best_score = delim, score
    return best if best_score >= 0.6 else None


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith(("#", "%", "//", "!"))


_WHITESPACE_CELL = re.compile(r"[^\s(\[]+(?:\s*[(\[][^)\]]*[)\]])?|[(\[][^)\]]*[)\]]")


def _split(line: str, delim: str | None) -> list[str]:
    # Split on whitespace but keep a unit in brackets with its name: 'V (V)  I (A)'.
    cells = (_WHITESPACE_CELL.findall(line) if delim is None
             else [c.strip() for c in line.split(delim)])
    return [c.strip('"').strip("'").strip() for c in cells]


def _trim(cells: list[str], width: int) -> list[str]:
    """Drop empty cells past ``width``: a trailing delimiter is not a column."""
    while len(cells) > width and cells[-1] == "":
        cells = cells[:-1]
    return cells


def _number(cell: str, decimal_comma: bool) -> float | None:
    text = cell.replace(",", ".") if decimal_comma else cell
    return float(text) if _NUMBER.fullmatch(text) else None


def read_table_lines(lines: Sequence[str], source: str,
                     options: ReadOptions | None = None) -> list[MeasuredSweep]:
    """A plain table: one sweep, or a long table split by device / cycle / compliance."""
    options = options or ReadOptions()
    delim = options.delimiter if options.delimiter is not None else sniff_delimiter(lines)
    decimal_comma = delim == ";"
    rows = [(n, s) for n, s in enumerate(lines, 1) if s.strip() and not _is_comment(s)]
    if not rows:
        raise DataError(f"{source}: line 1: expected a header and data rows, found only comments")
    first_no, header, start = _find_header(rows, delim, options, decimal_comma)
    headerless = all(_number(c, decimal_comma) is not None for c in header)
    if headerless:
        if len(header) != 2 and (options.voltage_column is None or options.current_column is None):
            raise DataError(f"{source}: line {first_no}: expected a header naming the voltage and "
                            f"current columns (a file without one may only have two columns)")
        header = [f"column {k}" for k in range(len(header))]
        names = {"voltage_column": 0, "current_column": 1}
        options = ReadOptions(**{**options.__dict__,
                                 **{k: v for k, v in names.items() if getattr(options, k) is None}})
        data = rows[start:]
    else:
        data = rows[start + 1:]
    layout = guess_layout(header, options, f"{source}: line {first_no}")
    if not data:
        raise DataError(f"{source}: line {first_no + 1}: expected data rows after the header")
    table = _parse_rows([(n, _split(s, delim)) for n, s in data], header, layout, source,
                        decimal_comma)
    return _split_sweeps(table, layout, source)


def _find_header(rows: Sequence[tuple[int, str]], delim: str | None, options: ReadOptions,
                 decimal_comma: bool) -> tuple[int, list[str], int]:
    """The header line: the first (within a preamble of notes) that names a voltage and a
    current column, or else the first line; returns (line number, cells, position in rows)."""
    for pos, (line_no, line) in enumerate(rows[:50]):
        cells = _trim(_split(line, delim), 1)
        if all(_number(c, decimal_comma) is not None for c in cells):
            break  # data start: whatever came before was not a header either
        try:
            guess_layout(cells, options, "")
        except DataError:
            continue
        return line_no, cells, pos
    return rows[0][0], _trim(_split(rows[0][1], delim), 1), 0


def _parse_rows(data: Sequence[tuple[int, list[str]]], header: Sequence[str], layout: _Layout,
                source: str, decimal_comma: bool) -> dict[str, list]:
    numeric = [r for r in ("voltage", "current", "time", "compliance") if r in layout.index]
    table: dict[str, list] = {r: [] for r in layout.index}
    table["_where"] = []  # where each row came from, for messages about whole sweeps
    for line_no, row in data:
        table["_where"].append(f"line {line_no}")
        cells = _trim(row, len(header))
        if len(cells) != len(header):
            raise DataError(f"{source}: line {line_no}: expected {len(header)} columns like the "
                            f"header, found {len(cells)}")
        for role, k in layout.index.items():
            cell = cells[k]
            if role not in numeric:
                table[role].append(cell)
                continue
            value = _number(cell, decimal_comma)
            if role == "compliance" and cell == "":
                table[role].append(None)  # not recorded for this row: the sweep has none
                continue
            if value is None:
                raise DataError(f"{source}: line {line_no}: expected a number in column "
                                f"{header[k]!r}, got {cell!r}{mixed_units_hint(cell)}")
            table[role].append(value * layout.scale[role])
    return table


def mixed_units_hint(cell: str) -> str:
    """What to add to a bad-number message when the cell carries its own unit."""
    match = _NUMBER_WITH_UNIT.fullmatch(cell)
    if match is None:
        return ""
    return (f" (a unit inside a cell: the table mixes units; give the unit once in the header, "
            f"e.g. 'I ({match['unit']})', and plain numbers below)")


def check_sweep(voltage: np.ndarray, time: np.ndarray | None, where: Sequence[str],
                source: str, label: str = "") -> None:
    """A sweep has at least two points, and its time stamps (if any) never run backwards."""
    if voltage.size < 2:
        raise DataError(f"{source}: {where[0]}: expected at least 2 points in a sweep{label}, "
                        f"found {voltage.size}")
    if time is not None:
        back = np.flatnonzero(np.diff(time) < 0)
        if back.size:
            k = int(back[0]) + 1
            raise DataError(f"{source}: {where[k]}: expected time to increase within a "
                            f"sweep{label} (rows in measurement order), got {time[k]:g} s after "
                            f"{time[k - 1]:g} s")


def _split_sweeps(table: dict[str, list], layout: _Layout, source: str,
                  compliance_a: float | None = None, cycle: int | None = None,
                  device: str | None = None) -> list[MeasuredSweep]:
    keys = [r for r in ("device", "cycle", "compliance") if r in layout.index]
    n = len(table["voltage"])
    groups: dict[tuple, list[int]] = {}
    for row in range(n):
        groups.setdefault(tuple(table[r][row] for r in keys), []).append(row)
    sweeps = []
    for group_key, rows in groups.items():
        meta = dict(zip(keys, group_key))
        idx = np.asarray(rows)
        time = np.asarray(table["time"], dtype=np.float64)[idx] if "time" in table else None
        comp = meta.get("compliance", compliance_a)
        label = "".join(f", {k} {v}" for k, v in meta.items() if v not in ("", None))
        check_sweep(np.asarray(table["voltage"], dtype=np.float64)[idx], time,
                    [table["_where"][r] for r in rows] if "_where" in table else
                    [f"row {r + 1}" for r in rows], source, label and f" ({label[2:]})")
        sweeps.append(MeasuredSweep(
            voltage_v=np.asarray(table["voltage"], dtype=np.float64)[idx],
            current_a=np.asarray(table["current"], dtype=np.float64)[idx], time_s=time,
            source=source, device=meta.get("device", device) or None,
            cycle=_cycle_value(meta["cycle"]) if "cycle" in meta else cycle,
            compliance_a=None if comp is None else float(comp)))
    return sweeps


def _cycle_value(cell: str) -> int | str | None:
    if cell == "":
        return None
    try:
        value = float(cell)
    except ValueError:
        return cell
    return int(value) if value.is_integer() else cell


# ----------------------------------------------------------------------------- EasyEXPERT

def _is_easyexpert_key(line: str) -> bool:
    return line.split(",", 1)[0].strip() in ("SetupTitle", "PrimitiveTest", "DataName",
                                                "DataValue")


def read_easyexpert_lines(lines: Sequence[str], source: str,
                          options: ReadOptions | None = None) -> list[MeasuredSweep]:
    """Keysight EasyEXPERT CSV: setup lines, then ``DataName`` and ``DataValue`` rows; every
    ``DataName`` line starts a new sweep (numbered 1, 2, ... as its cycle)."""
    options = options or ReadOptions()
    blocks: list[tuple[int, list[str], list[tuple[int, list[str]]], dict[str, list[str]]]] = []
    params: dict[str, list[str]] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cells = _trim([c.strip() for c in line.split(",")], 1)
        key = cells[0]
        if key == "DataName":
            blocks.append((n, cells[1:], [], dict(params)))  # later blocks inherit the setup
        elif key == "DataValue":
            if not blocks:
                raise DataError(f"{source}: line {n}: expected a DataName line before DataValue")
            blocks[-1][2].append((n, cells[1:]))
        elif len(cells) > 2:  # setup lines (TestParameter, MetaData, ...): kept by name
            params[cells[1]] = cells[2:]
    if not blocks:
        raise DataError(f"{source}: line {len(lines)}: expected a DataName line, found none")
    sweeps = []
    for number, (line_no, header, rows, setup) in enumerate(blocks, 1):
        constant = frozenset(k for k in range(len(header))
                             if len({cells[k] for _, cells in rows if k < len(cells)}) == 1)
        layout = guess_layout(header, options, f"{source}: line {line_no}", constant)
        if not rows:
            raise DataError(f"{source}: line {line_no}: expected DataValue rows after DataName")
        table = _parse_rows(rows, header, layout, source, False)
        compliance = _setup_compliance(setup, header[layout.index["voltage"]])
        sweeps += _split_sweeps(table, layout, source, compliance_a=compliance, cycle=number,
                                device=_setup_device(setup))
    return sweeps


def _setup_compliance(setup: dict[str, list[str]], voltage_name: str) -> float | None:
    values = next((v for k, v in setup.items() if k.lower().endswith("compliance")), None)
    if not values:
        return None
    names = next((v for k, v in setup.items() if k.lower().endswith("vname")), [])
    pick = names.index(voltage_name) if voltage_name in names else 0
    number = _number(values[pick], False) if pick < len(values) else None
    return None if number is None else abs(number)  # a negative sweep states it as negative


def _setup_device(setup: dict[str, list[str]]) -> str | None:
    for key, values in setup.items():
        if key.lower().endswith(("deviceid", "device")) and values and values[0]:
            return values[0]
    return None
