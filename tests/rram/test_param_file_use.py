"""A parameter-set file drives ``birram simulate``, the RRAM dataset and the hardware cells."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from birram.errors import ConfigError
from birram.rram.cli import register
from birram.rram.dataset import RRAMDatasetConfig, generate_rram_samples
from birram.rram.param_file import ParamSet, write_param_set
from birram.rram.params import FILAMENT
from birram.rram.variability import Variability


@pytest.fixture
def param_file(tmp_path):
    path = tmp_path / "params.json"
    params = FILAMENT.with_(name="fitted", f_min_v_per_m=FILAMENT.f_min_v_per_m * 1.2)
    write_param_set(path, ParamSet(params, Variability(d2d=(("i0_a", 0.1),), c2c=())))
    return path


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_simulate_takes_a_parameter_file(tmp_path, param_file):
    out = tmp_path / "sim"
    result = CliRunner().invoke(_app(), ["simulate", "--params", str(param_file), "--icc",
                                         "1e-4", "--devices", "2", "--cycles", "1", "--out",
                                         str(out), "--step", "0.02", "--keep-iv", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["params"] == "fitted"
    v_set = np.load(out / "rram_simulation.npz")["v_set_v"]
    assert v_set.min() > 0.78  # the raised threshold of the file, not filament's ~0.71 V


def test_bad_parameter_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"params": {"i0_a": -1}}')
    for arg in (str(bad), str(tmp_path / "missing.json")):
        result = CliRunner().invoke(_app(), ["simulate", "--params", arg, "--out",
                                             str(tmp_path / "o")])
        assert result.exit_code == 2 and result.output.count("\n") <= 2, result.output
        assert "parameter file" in result.output


def test_dataset_config_uses_the_file_and_keys_on_its_content(tmp_path, param_file):
    small = {"n_levels": 2, "n_train_devices": 2, "n_test_devices": 1, "cycles": 1,
             "trace_points": 8, "sweep_step_v": 0.02}
    plain = RRAMDatasetConfig.small(**small)
    fitted = RRAMDatasetConfig.small(**small, params_file=str(param_file))
    assert plain.key() != fitted.key()
    assert fitted.param_set().params.name == "fitted"
    v_set_plain = generate_rram_samples(plain).features[:, 2]
    v_set_fitted = generate_rram_samples(fitted).features[:, 2]
    assert v_set_fitted.mean() > v_set_plain.mean() + 0.05
    copy = tmp_path / "copy.json"
    copy.write_bytes(param_file.read_bytes())
    assert RRAMDatasetConfig.small(**small, params_file=str(copy)).key() == fitted.key()
    with pytest.raises(ConfigError, match="missing.json"):
        RRAMDatasetConfig(params_file=str(tmp_path / "missing.json"))


def test_hardware_config_reads_the_file(tmp_path, param_file, monkeypatch):
    from birram import onchip
    from birram.config import HardwareConfig
    from birram.hardware import rram_cells as cells_module

    with pytest.raises(ConfigError, match="missing.json"):
        try:
            HardwareConfig(params_file=str(tmp_path / "missing.json"))
        except Exception as err:  # pydantic's error, as the config loader reports it
            raise ConfigError(str(err)) from None
    seen = {}
    monkeypatch.setattr(cells_module, "rram_cells", lambda **kw: seen.update(kw) or "cells")
    onchip._cells.cache_clear()
    hw = HardwareConfig(params_file=str(param_file))
    chip = onchip.chip_config(hw, 0)
    assert onchip.cells_for(chip, 1.0, hw.params_file) == "cells"
    assert seen["params"].name == "fitted" and dict(seen["variability"].d2d) == {"i0_a": 0.1}
    onchip._cells.cache_clear()
