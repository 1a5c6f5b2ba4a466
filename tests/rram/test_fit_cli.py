"""``birram fit`` and ``birram fit-example`` on a throwaway app; the example generator."""

from __future__ import annotations

import json

import numpy as np
import typer
from typer.testing import CliRunner

from birram.rram.example_data import InstrumentModel, simulate_campaign, write_campaign
from birram.rram.fit_cli import register
from birram.rram.measured import read_sweeps
from birram.rram.param_file import load_param_set


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_example_then_fit_writes_params_report_and_plot(tmp_path):
    runner = CliRunner()
    data = tmp_path / "measured"
    result = runner.invoke(_app(), ["fit-example", "--out", str(data), "--devices", "1",
                                    "--cycles", "1", "--icc", "1e-4"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in data.iterdir()] == ["D01_icc100uA.csv"]
    out = tmp_path / "fit"
    result = runner.invoke(_app(), ["fit", str(data), "--out", str(out), "--rounds", "1"])
    assert result.exit_code == 0, result.output
    for name in ("params.json", "fit.json", "report.md", "fit.png"):
        assert (out / name).stat().st_size > 0
    summary = json.loads((out / "fit.json").read_text())
    assert list(summary["devices"]) == ["D01"] and len(summary["cycles"]) == 1
    assert summary["median_residual_rms_log10"] < 0.1
    assert load_param_set(out / "params.json").params.name == "fitted"
    assert "D01" in (out / "report.md").read_text()


def test_bad_inputs_are_one_line_with_exit_code_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.csv").write_text("# only a comment\n")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [([str(empty)], "no sweep files"),
             ([str(notes)], "found only comments"),
             ([str(tmp_path / "missing")], "no such file"),
             ([str(notes), "--out", str(a_file)], "is a file"),
             ([str(notes), "--base", "nope"], "unknown RRAM parameter set"),
             ([str(notes), "--current-floor", "-1"], "current_floor_a")]
    for args, message in cases:
        result = CliRunner().invoke(_app(), ["fit", *args] + ([] if "--out" in args else
                                                             ["--out", str(tmp_path / "o")]))
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and result.output.count("\n") <= 2, result.output


def test_generator_adds_noise_floor_quantisation_and_clipping(tmp_path):
    instrument = InstrumentModel(relative_sigma=0.02, noise_floor_a=2e-11, digits=4,
                                 min_range_a=1e-9)
    campaign = simulate_campaign(1, (1e-4,), 2, seed=5, instrument=instrument)
    clean, read = campaign.current_a[0, 0], campaign.reading_a[0, 0]
    v = campaign.volts
    mid = (np.abs(clean) > 1e-8) & (np.abs(clean) < 0.9e-4)
    rel = read[mid] / clean[mid] - 1
    assert 0.01 < rel.std() < 0.03  # the 2 % reading noise is there
    assert read.max() <= 1e-4 and (read[:, v > 0] == 1e-4).sum() > 10  # held at compliance
    assert np.abs(read[:, v == 0]).max() < 1e-10  # no signal at 0 V: only the floor
    assert np.abs(read[:, v == 0]).max() > 0
    step = 10.0 ** np.ceil(np.log10(np.maximum(np.abs(read), 1e-9))) * 1e-4
    assert np.allclose(read / step, np.round(read / step))  # finite resolution
    paths = write_campaign(campaign, tmp_path)
    sweeps = read_sweeps(paths[0])
    assert len(sweeps) == 2 and [s.cycle for s in sweeps] == [1, 2]
    assert all(s.device == "D01" and s.compliance_a == 1e-4 for s in sweeps)
    assert np.allclose(sweeps[1].current_a, read[1], rtol=1e-4, atol=1e-15)
    assert sum(p.stat().st_size for p in paths) < 60_000


def test_shipped_examples_are_what_the_generator_writes(tmp_path):
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "examples" / "measured"
    result = CliRunner().invoke(_app(), ["fit-example", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in shipped.glob("*.csv"))
    assert names == sorted(p.name for p in tmp_path.glob("*.csv")) and len(names) == 12
    for name in names:
        assert (shipped / name).read_bytes() == (tmp_path / name).read_bytes(), name
    assert sum((shipped / n).stat().st_size for n in names) < 1_000_000
