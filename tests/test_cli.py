"""The command line: bad input gives one line on stderr and exit code 2, never a traceback."""

import json

import pytest
from typer.testing import CliRunner

from birram.cli import app, parse_assignments
from birram.config import available_presets, resolve

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("args, needle", [
    (["run", "--method", "nonsense"], "unknown method 'nonsense'; allowed: none, joint"),
    (["run", "--preset", "nope"], "unknown preset 'nope'"),
    (["run", "--protocol", "split-nothing"], "unknown protocol 'split-nothing'; allowed:"),
    (["run", "--scenario", "sideways"], "scenario"),
    (["compare", "--seeds", "1,x"], "--seeds expects a comma-separated list of int"),
    (["run", "--set", "train.iters=-5"], "bad value for train.iters"),
    (["run", "--set", "train.itres=5"], "unknown setting 'train.itres'"),
    (["run", "--set", "nonsense"], "--set expects SECTION.FIELD=VALUE"),
    (["run", "--device", "cuda:7"], "device"),
    (["presets", "nope"], "unknown preset"),
    (["run", "--preset", "split-fashion-class"], "run trains one method; pass --method"),
])
def test_bad_input_is_one_line_with_exit_code_2(args, needle):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert needle in result.output


def test_negative_iterations_rejected_by_option_parser():
    result = invoke("run", "--iters", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_parse_assignments_nests_and_parses_json():
    assert parse_assignments(["method.si_c=0.5", "train.hidden=[10,20]", "name=x"]) == {
        "method": {"si_c": 0.5}, "train": {"hidden": [10, 20]}, "name": "x"}


def test_lists_methods_protocols_presets():
    assert "bir-no-gating" in invoke("methods").output
    assert "rram-compliance" in invoke("protocols").output
    assert invoke("presets").exit_code == 0


def test_refuses_to_mix_configurations_in_one_directory(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"name": "other"}))
    result = invoke("run", "--method", "none", "--out", str(tmp_path), "--resume")
    assert result.exit_code == 2 and "different configuration" in result.output
    result = invoke("run", "--method", "none", "--out", str(tmp_path))
    assert result.exit_code == 2 and "already holds a run" in result.output


@pytest.mark.parametrize("name", available_presets())
def test_every_preset_validates(name):
    cfg = resolve(name, {})
    assert cfg.name == name and cfg.methods


def test_tuned_fashion_preset_changes_only_the_bir_settings_it_names():
    base, tuned = resolve("split-fashion-class", {}), resolve("split-fashion-class-tuned", {})
    assert tuned.data == base.data and tuned.train == base.train
    changed = {k for k, v in tuned.method.model_dump().items()
               if v != base.method.model_dump()[k]}
    assert changed == {"kl_weight", "z_dim", "gate_prop"}
