"""A directory of measured sweeps as the compliance dataset: reading, exclusion, the device split,
the protocol built on it, and one-line errors for bad directories (files simulated on the fly)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from birram.cli import app
from birram.config import DataConfig
from birram.data.registry import build_protocol, load_dataset
from birram.errors import BirramError, ConfigError, DataError
from birram.rram.measured import MeasuredSweep
from birram.rram.measured_dataset import (
    MeasuredDatasetConfig,
    join_branches,
    load_measured_dataset,
    measured_samples,
)
from birram.rram.measured_features import measured_features
from tests.measured_files import LEVELS_A, simulate, write_easyexpert_dir, write_table_dir

runner = CliRunner()


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_table_dir(tmp_path_factory.mktemp("measured") / "table", resistor=True)


@pytest.fixture(scope="module")
def easy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_easyexpert_dir(tmp_path_factory.mktemp("measured") / "easy")


def test_table_directory_becomes_the_compliance_dataset(table_dir: Path) -> None:
    data = load_measured_dataset(table_dir)
    assert data.class_names == ("10uA", "46.4uA", "215uA", "1mA")
    assert data.class_values == pytest.approx(LEVELS_A)
    # 3 devices per level, 2 cycles each: one device per level held out for testing
    assert torch.bincount(data.y_train).tolist() == [4, 4, 4, 4]
    assert torch.bincount(data.y_test).tolist() == [2, 2, 2, 2]
    assert data.x_train.shape == (16, 5) and torch.isfinite(data.x_train).all()
    # standardised with train statistics, as the simulated dataset is
    assert data.x_train.mean(0).abs().max() < 1e-5
    [note] = data.notes
    assert "24 cycles from 12 devices (8 train, 4 test) at 4 levels" in note
    assert "1 cycle(s) that did not switch" in note  # the resistor: counted, not used


def test_the_split_is_by_device_and_seeded(table_dir: Path) -> None:
    samples, _ = measured_samples(table_dir, MeasuredDatasetConfig())
    train_devices = set(samples.device_ids[samples.train].tolist())
    test_devices = set(samples.device_ids[~samples.train].tolist())
    assert not train_devices & test_devices
    again, _ = measured_samples(table_dir, MeasuredDatasetConfig())
    np.testing.assert_array_equal(again.train, samples.train)
    splits = {tuple(measured_samples(table_dir, MeasuredDatasetConfig(split_seed=s))[0].train)
              for s in range(6)}
    assert len(splits) > 1


def test_easyexpert_exports_give_the_same_dataset_as_the_table(table_dir: Path,
                                                               easy_dir: Path) -> None:
    table = measured_samples(table_dir, MeasuredDatasetConfig())[0]
    easy = measured_samples(easy_dir, MeasuredDatasetConfig())[0]
    # same simulated devices, so the same feature values (order differs: sort rows)
    np.testing.assert_allclose(np.sort(easy.features, 0), np.sort(table.features, 0),
                               rtol=1e-3, atol=1e-3)


def test_trace_view_and_protocol_match_the_simulated_layout(easy_dir: Path) -> None:
    cfg = DataConfig(protocol="rram-compliance", n_tasks=2, view="trace", measured=easy_dir,
                     measured_options={"trace_points": 16})
    protocol = build_protocol(cfg, "class", load_dataset(cfg))
    assert protocol.input_shape == (16,) and protocol.n_tasks == 2
    assert [t.class_names for t in protocol.tasks] == [("10uA", "46.4uA"), ("215uA", "1mA")]
    assert protocol.tasks[1].outputs == (2, 3)


def test_set_and_reset_in_separate_sweeps_are_joined() -> None:
    volts, current, icc = simulate(LEVELS_A, 3, 2)
    v, i = volts, current[0, :, 0]
    full = MeasuredSweep(v, i, device="d", compliance_a=float(icc[0]))
    set_part = MeasuredSweep(v[v >= 0], i[v >= 0], device="d", compliance_a=float(icc[0]))
    reset_part = MeasuredSweep(v[v < 0], i[v < 0], device="d", compliance_a=float(icc[0]))
    [joined] = join_branches([set_part, reset_part], 1)
    np.testing.assert_allclose(measured_features(joined).feature_row(),
                               measured_features(full).feature_row())
    # a RESET of another device is not joined to this SET
    other = MeasuredSweep(reset_part.voltage_v, reset_part.current_a, device="e",
                          compliance_a=float(icc[0]))
    assert len(join_branches([set_part, other], 1)) == 2


def test_compare_runs_on_a_measured_directory(table_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "compare", "--data", str(table_dir), "--n-tasks", "2", "--methods", "none,bir",
        "--seeds", "1", "--iters", "20", "--hidden", "16", "--threads", "1",
        "--set", "method.z_dim=3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 cycle(s) that did not switch" in " ".join(result.output.split())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == "rram-compliance" and "data_notes" in summary
    saved = json.loads((out / "config.json").read_text())
    assert saved["data"]["measured"] == str(table_dir)
    # the report speaks of the measured devices and shows no simulated ones
    report = (out / "report.md").read_text()
    assert f"on the measured sweeps in `{table_dir}`" in report
    assert "simulated devices" not in report and not (out / "devices_iv.png").exists()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(("make", "pattern"), [
    (lambda d: d / "missing", r"measured data directory .*missing does not exist"),
    (lambda d: write(d / "file.csv", "V,I\n"), r"is not a directory"),
    (lambda d: write(d / "x" / "notes.md", "hello").parent, r"no sweep files \(.csv"),
    (lambda d: write(d / "y" / "a.csv", "V,I\n0.1,1e-6\n-0.1,-1e-6\n").parent,
     r"a\.csv: a sweep .* states no compliance current"),
])
def test_bad_directories_are_one_line_data_errors(tmp_path: Path, make, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern) as err:
        load_measured_dataset(make(tmp_path))
    assert "\n" not in str(err.value)


def test_a_level_measured_on_one_device_cannot_be_split(table_dir: Path, tmp_path: Path) -> None:
    volts, current, _ = simulate(LEVELS_A, 3, 2)
    lines = ["device,cycle,Icc (A),V (V),I (A)"]
    for level, d in ((0, 0), (0, 1), (1, 3)):
        lines += [f"dev{d},1,{LEVELS_A[level]:g},{v:.4g},{i:.6g}"
                  for v, i in zip(volts, current[0, :, d])]
    write(tmp_path / "few" / "all.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"level 46.4uA was measured on 1 device \(dev3\)"):
        load_measured_dataset(tmp_path / "few")


@pytest.mark.parametrize(("options", "pattern"), [
    ({"test_fraction": 1.5}, r"test_fraction must lie in \(0, 1\)"),
    ({"trace_points": 1}, r"trace_points must be an integer"),
    ({"colour": 1}, r"unknown data.measured_options setting 'colour'"),
    ({"set_polarity": 2}, r"set_polarity must be \+1 or -1"),
])
def test_bad_options_are_refused(table_dir: Path, options: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_dataset(DataConfig(protocol="rram-compliance", measured=table_dir,
                                measured_options=options))


@pytest.mark.parametrize(("args", "pattern"), [
    (["--protocol", "split-digits"], r"replaces the simulated RRAM devices.*rram-compliance"),
    (["--n-tasks", "3"], r"n_tasks=3 must divide the 4 classes"),
])
def test_cli_refuses_before_writing(table_dir: Path, tmp_path: Path, args: list[str],
                                    pattern: str) -> None:
    out = tmp_path / "never"
    result = runner.invoke(app, ["compare", "--data", str(table_dir), "--methods", "none",
                                 "--iters", "1", "--out", str(out), *args])
    assert result.exit_code == 2
    assert any(__import__("re").search(pattern, line) for line in result.output.splitlines()), \
        result.output
    assert not out.exists()


def test_errors_are_birram_errors() -> None:
    assert issubclass(DataError, BirramError)
