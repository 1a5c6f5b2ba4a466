"""Sweeps: grid parsing and validation, and a small grid run on a local Ray instance."""

import json
import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from birram.cli import app
from birram.errors import ConfigError
from birram.sweep import SweepSpec, expand, load_sweep_file, parse_grid_option

runner = CliRunner()
TINY_RRAM = json.dumps({"n_levels": 4, "n_train_devices": 6, "n_test_devices": 2, "cycles": 1,
                        "trace_points": 16, "sweep_step_v": 0.01})


def tiny_sweep(iters: int = 20) -> list[str]:
    """2 methods x 2 seeds x 2 KL weights on a tiny version of the rram-demo-quick preset."""
    return ["sweep", "--preset", "rram-demo-quick", "--methods", "none,bir", "--seeds", "1,2",
            "--grid", "method.kl_weight=0.5,1", "--iters", str(iters),
            "--set", f"data.rram={TINY_RRAM}", "--set", "data.n_tasks=2",
            "--set", "train.hidden=[16]", "--set", "method.z_dim=4"]


TINY_SWEEP = tiny_sweep()


def test_grid_option_parses_values_as_json():
    axis = parse_grid_option("method.kl_weight=0.25, 0.5,1")
    assert axis.setting == "method.kl_weight" and axis.values == (0.25, 0.5, 1)
    assert parse_grid_option("method.gate_by=class,task").values == ("class", "task")


@pytest.mark.parametrize("text, words", [
    ("method.kl_wieght=1,2", ["kl_wieght", "did you mean 'method.kl_weight'"]),
    ("methd.kl_weight=1", ["methd"]),
    ("train=1,2", ["whole section"]),
    ("seeds=1,2", ["--seeds"]),
    ("method.kl_weight", ["SECTION.FIELD=V1,V2"]),
    ("method.kl_weight=1,1", ["repeat"]),
    ("method.kl_weight=", ["at least one value"]),
])
def test_bad_grid_options_are_named(text, words):
    with pytest.raises(ConfigError) as err:
        parse_grid_option(text)
    for word in words:
        assert word in str(err.value)


def test_bad_value_names_the_point_and_the_field():
    spec = SweepSpec(preset="rram-demo-quick", axes=[parse_grid_option("method.kl_weight=1,-1")])
    with pytest.raises(ConfigError, match=r"sweep point kl_weight=-1: bad value for "
                                          r"method.kl_weight"):
        expand(spec)


def test_sweep_file_grid_and_list(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('preset = "rram-demo-quick"\nmethods = ["none", "bir"]\nseeds = [1, 2]\n'
                    '[set]\n"train.iters" = 7\n'
                    '[grid]\n"method.kl_weight" = [0.5, 1]\n[grid.train]\nlr = [0.001, 0.002]\n')
    points = expand(load_sweep_file(path))
    assert [p.label for p in points] == ["kl_weight=0.5__lr=0.001", "kl_weight=0.5__lr=0.002",
                                         "kl_weight=1__lr=0.001", "kl_weight=1__lr=0.002"]
    assert all(p.config.train.iters == 7 and p.config.seeds == [1, 2] for p in points)
    assert points[3].config.method.kl_weight == 1 and points[3].config.train.lr == 0.002
    listed = tmp_path / "list.toml"
    listed.write_text('[[configs]]\n"method.kl_weight" = 0.5\n'
                      '[[configs]]\n"train.hidden" = [8, 8]\n')
    points = expand(load_sweep_file(listed))
    assert [p.label for p in points] == ["kl_weight=0.5", "hidden=8-8"]
    assert points[1].config.train.hidden == [8, 8]


@pytest.mark.parametrize("text, words", [
    ('colour = "red"\n', ["unknown key 'colour'"]),
    ('[grid]\n"method.kl_weight" = 0.5\n', ["needs a list"]),
    ('[grid]\n"method.nope" = [1]\n', ["method.nope"]),
    ('[set]\n"train.nope" = 1\n', ["train.nope"]),
    ('[grid]\n"method.kl_weight" = [1]\n[[configs]]\n"train.lr" = 0.1\n', ["not both"]),
    ('methods = "bir"\n', ["list of str"]),
    ("[grid\n", ["not valid TOML"]),
])
def test_bad_sweep_files_are_one_line(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = runner.invoke(app, ["sweep", "--config", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(1, 64), min_size=1, max_size=3, unique=True),
                min_size=1, max_size=3))
def test_grid_has_every_combination_once(value_lists):
    fields = ["method.z_dim", "method.gc_z_dim", "train.batch_size"]
    spec = SweepSpec(axes=[parse_grid_option(f"{f}={','.join(map(str, v))}")
                           for f, v in zip(fields, value_lists)])
    points = expand(spec)
    assert len(points) == math.prod(len(v) for v in value_lists)
    assert len({p.label for p in points}) == len(points)
    assert len({json.dumps(p.settings, sort_keys=True) for p in points}) == len(points)


def test_missing_ray_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    monkeypatch.setenv("BIRRAM_CACHE", str(tmp_path / "cache"))
    result = runner.invoke(app, [*TINY_SWEEP, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "pip install birram[sweep]" in result.output
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _mtimes(out):
    return {p.relative_to(out): p.stat().st_mtime_ns for p in out.glob("*/*/seed-*/metrics.json")}


def test_sweep_runs_on_ray_and_resumes_only_unfinished_cells(tmp_path, monkeypatch, local_ray):
    monkeypatch.setenv("BIRRAM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sweep"
    first = runner.invoke(app, [*TINY_SWEEP, "--out", str(out)])
    assert first.exit_code == 0, first.output
    table = json.loads((out / "sweep_results.json").read_text())
    assert table["cells"] == {"total": 8, "reused": 0, "ran": 8, "failed": 0}
    rows = {(r["method.kl_weight"], r["method"]): r for r in table["rows"]}
    assert set(rows) == {(0.5, "none"), (0.5, "bir"), (1, "none"), (1, "bir")}
    assert all(r["status"] == "ok" and len(r["per_seed"]) == 2 for r in rows.values())
    assert (out / "sweep_method.kl_weight.png").stat().st_size > 0
    assert "kl_weight" in (out / "sweep_results.csv").read_text().splitlines()[0]
    # Each point is an ordinary experiment directory; each cell an ordinary run directory.
    point = out / "kl_weight=1"
    assert json.loads((point / "config.json").read_text())["method"]["kl_weight"] == 1
    cell = point / "bir" / "seed-2"
    saved = json.loads((cell / "config.json").read_text())
    assert saved["method"]["kl_weight"] == 1 and saved["seed"] == 2
    # Without --resume the directory is refused; with it only the unsealed cell runs again.
    again = runner.invoke(app, [*TINY_SWEEP, "--out", str(out)])
    assert again.exit_code == 2 and "--resume" in again.output
    (cell / "manifest.json").unlink()
    before = _mtimes(out)
    resumed = runner.invoke(app, [*TINY_SWEEP, "--out", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    after = _mtimes(out)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {cell.relative_to(out) / "metrics.json"}
    assert (cell / "manifest.json").is_file()
    table2 = json.loads((out / "sweep_results.json").read_text())
    assert table2["cells"] == {"total": 8, "reused": 7, "ran": 1, "failed": 0}
    # The re-run cell gives the same result: seeded, deterministic.
    assert [r["per_seed"] for r in table2["rows"]] == [r["per_seed"] for r in table["rows"]]
    # A point whose configuration changed is refused, naming what changed.
    refused = runner.invoke(app, [*tiny_sweep(iters=21), "--out", str(out), "--resume"])
    assert refused.exit_code == 2 and "train.iters: 20 -> 21" in refused.output
