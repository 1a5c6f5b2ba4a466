"""Measured word-line sweeps as tables: word-line voltage against resistance after SET.

CSV, TSV, semicolon or whitespace tables with a header such as ``V_WL (V), R (kOhm)``; the
delimiter, comments and decimal commas are handled as for I-V tables (``measured.py``). Rows
with the same word-line voltage (several cells per voltage) are combined by the median of
log R. The whole file is checked before anything is returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birram.errors import DataError
from birram.rram.measured import (
    _UNIT_SUFFIX,
    _is_comment,
    _number,
    _read_lines,
    _split,
    _trim,
    _unit_scale,
    sniff_delimiter,
)

WORDLINE_NAMES = re.compile(r"(v?wl|vwl\w*|wordline\w*|vword\w*|vg|vgs|vgate|gate\w*)")
RESISTANCE_NAMES = re.compile(r"(r|res|resistance\w*|r(lrs|read|set|afterset|cell)\w*|lrs)")
# Case matters: M is mega, m is milli.
RESISTANCE_UNITS = {"ohm": 1.0, "ohms": 1.0, "Ω": 1.0, "kohm": 1e3, "kOhm": 1e3, "kΩ": 1e3,
                    "Kohm": 1e3, "KOhm": 1e3, "MOhm": 1e6, "Mohm": 1e6, "MΩ": 1e6,
                    "GOhm": 1e9, "Gohm": 1e9, "GΩ": 1e9, "mOhm": 1e-3, "mohm": 1e-3,
                    "mΩ": 1e-3, "Ohm": 1.0, "Ohms": 1.0}


@dataclass(frozen=True)
class WordlineTable:
    v_wl_v: np.ndarray
    r_ohm: np.ndarray
    source: str
    rows: int  # data rows read (before combining repeats)


def _column(cell: str) -> tuple[str, str | None, str]:
    """(role key, unit as written, cell) of a header cell."""
    text = cell.strip().strip('"').strip("'")
    match = _UNIT_SUFFIX.match(text)
    name, unit = (match["name"], match["unit"].strip()) if match else (text, None)
    key = re.sub(r"[\s_.\-#]", "", name.lower())
    return key, unit, text


def read_wordline_table(path: Path | str) -> WordlineTable:
    """Word-line voltages (V, increasing) and resistances (ohm) from a table file."""
    path = Path(path)
    source = path.name
    lines = _read_lines(path)
    delim = sniff_delimiter(lines)
    decimal_comma = delim == ";"
    rows = [(n, s) for n, s in enumerate(lines, 1) if s.strip() and not _is_comment(s)]
    if not rows:
        raise DataError(f"{source}: line 1: expected a header and data rows, found only comments")
    header_no, header_line = rows[0]
    header = _trim(_split(header_line, delim), 1)
    parsed = [_column(c) for c in header]
    v_col = next((k for k, (key, _, _) in enumerate(parsed) if WORDLINE_NAMES.fullmatch(key)),
                 None)
    r_col = next((k for k, (key, _, _) in enumerate(parsed)
                  if k != v_col and RESISTANCE_NAMES.fullmatch(key)), None)
    if v_col is None or r_col is None:
        missing = " and ".join(name for name, col in (("word-line voltage", v_col),
                                                      ("resistance", r_col)) if col is None)
        raise DataError(f"{source}: line {header_no}: no {missing} column in the header "
                        f"[{', '.join(header)}]; expected e.g. 'V_WL (V), R (ohm)'")
    where = f"{source}: line {header_no}: column {parsed[v_col][2]!r}"
    v_scale = _unit_scale("voltage", parsed[v_col][1], where)
    r_unit = parsed[r_col][1]
    if r_unit is not None and r_unit not in RESISTANCE_UNITS:
        raise DataError(f"{source}: line {header_no}: column {parsed[r_col][2]!r}: expected a "
                        f"resistance unit (ohm, kOhm, MOhm, GOhm), got {r_unit!r}")
    r_scale = 1.0 if r_unit is None else RESISTANCE_UNITS[r_unit]
    data = rows[1:]
    if not data:
        raise DataError(f"{source}: line {header_no + 1}: expected data rows after the header")
    v_wl, r = [], []
    for line_no, line in data:
        cells = _trim(_split(line, delim), len(header))
        if len(cells) != len(header):
            raise DataError(f"{source}: line {line_no}: expected {len(header)} columns like the "
                            f"header, found {len(cells)}")
        values = []
        for col, scale in ((v_col, v_scale), (r_col, r_scale)):
            value = _number(cells[col], decimal_comma)
            if value is None:
                raise DataError(f"{source}: line {line_no}: expected a number in column "
                                f"{parsed[col][2]!r}, got {cells[col]!r}")
            values.append(value * scale)
        if v_wl and values[0] < v_wl[-1]:
            raise DataError(f"{source}: line {line_no}: expected word-line voltages in "
                            f"increasing order, got {cells[v_col]} after a larger one; sort the "
                            "table by V_WL")
        if not (np.isfinite(values[1]) and values[1] > 0):
            raise DataError(f"{source}: line {line_no}: expected a resistance > 0 in column "
                            f"{parsed[r_col][2]!r}, got {cells[r_col]!r}")
        v_wl.append(values[0])
        r.append(values[1])
    levels, inverse = np.unique(np.asarray(v_wl), return_inverse=True)
    if levels.size < 2:
        raise DataError(f"{source}: line {data[-1][0]}: expected at least 2 different word-line "
                        f"voltages, found {levels.size}")
    log_r = np.log(np.asarray(r))
    combined = np.exp([np.median(log_r[inverse == k]) for k in range(levels.size)])
    return WordlineTable(levels, combined, source, len(data))
