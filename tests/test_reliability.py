"""What a hostile or careless user can do to birram: nothing runs code, nothing is silently wrong.

Every outcome of the command line is either a completed run with finite, strictly valid results
or a one-line error with a non-zero exit code; never a traceback, a NaN, or a stale result.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from birram import checkpoint, io
from birram.cli import app, resume_command
from birram.config import available_presets
from birram.errors import DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

runner = CliRunner()
# A complete run in a few seconds: sklearn's bundled digits, a tiny network, 3 steps per task.
TINY = ["compare", "--protocol", "split-digits", "--iters", "3", "--hidden", "8"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def strict_json(path: Path):
    return io.read_json_strict(path)


def assert_clean_outcome(result, out: Path | None = None, fresh: bool = False) -> None:
    """Either success with finite, strict results, or one error line and a non-zero code."""
    text = result.output
    assert "Traceback" not in text, text
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception)
    if result.exit_code == 0:
        if out is not None and (out / "summary.json").exists():
            for path in out.rglob("*.json"):
                strict_json(path)  # raises on NaN / Infinity / truncation
            summary = strict_json(out / "summary.json")
            for m in summary["methods"].values():
                assert all(np.isfinite(v) for v in m["per_seed"].values())
        return
    assert result.exit_code in (2, 3), (result.exit_code, text)
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    if fresh and out is not None and result.exit_code == 2:
        # validation happens before anything is written
        assert not out.exists() or not [p for p in out.iterdir()
                                        if not p.name.startswith(".")], text


# -- checkpoints and caches -------------------------------------------------------------------

class Planted:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def interrupted_run(tmp_path, monkeypatch):
    """A run stopped right after its first checkpoint: the directory --resume continues."""
    import birram.run as run_module

    original = run_module.save_checkpoint

    def save_then_stop(*args, **kwargs):
        original(*args, **kwargs)
        raise KeyboardInterrupt

    out = tmp_path / "cut"
    monkeypatch.setattr(run_module, "save_checkpoint", save_then_stop)
    result = invoke(*TINY, "--methods", "none", "--seeds", "1", "--out", str(out))
    monkeypatch.setattr(run_module, "save_checkpoint", original)
    assert result.exit_code == 130
    assert "--resume" in result.output and str(out) in result.output
    ckpt = out / "none" / "seed-1" / "checkpoint.safetensors"
    assert ckpt.exists()
    return out, ckpt


def test_planted_pickle_checkpoint_is_refused_without_running_code(interrupted_run, tmp_path):
    out, ckpt = interrupted_run
    marker = tmp_path / "code-ran"
    # A pickle in place of the checkpoint, and a legacy checkpoint.pt beside it.
    ckpt.write_bytes(pickle.dumps({"model": Planted(marker)}))
    torch.save({"model": Planted(marker)}, ckpt.parent / "checkpoint.pt")
    result = invoke(*TINY, "--methods", "none", "--seeds", "1", "--out", str(out), "--resume")
    assert result.exit_code == 2
    assert "checkpoint" in result.output and "damaged" in result.output
    assert not marker.exists()
    assert_clean_outcome(result)


def test_resume_after_interrupt_gives_the_uninterrupted_result(interrupted_run, tmp_path):
    out, _ = interrupted_run
    assert invoke(*TINY, "--methods", "none", "--seeds", "1", "--out", str(out),
                  "--resume").exit_code == 0
    whole = tmp_path / "whole"
    assert invoke(*TINY, "--methods", "none", "--seeds", "1", "--out", str(whole)).exit_code == 0
    a = strict_json(out / "none" / "seed-1" / "metrics.json")["accuracy_matrix"]
    b = strict_json(whole / "none" / "seed-1" / "metrics.json")["accuracy_matrix"]
    assert a == b


@pytest.mark.parametrize("where", [0.5, 0.999, 20])  # data, end of data, inside the header
def test_flipped_byte_in_a_checkpoint_is_detected(tmp_path, where):
    path = tmp_path / "c.safetensors"
    checkpoint.save_state(path, {"w": torch.arange(1000.0), "opt": {0: {"step": 3}},
                                 "betas": (0.9, 0.999), "note": None})
    data = bytearray(path.read_bytes())
    i = int(where * len(data)) if where < 1 else where
    data[i] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="damaged"):
        checkpoint.load_state(path)


def test_checkpoint_round_trip_keeps_types(tmp_path):
    state = {"t": torch.ones(2, 3), "k": {0: [1, 2.5, None], "s": "x"}, "tup": (1, 2),
             "u8": torch.ByteTensor([1, 2]), "inf": float("inf"), "empty": torch.empty(0)}
    checkpoint.save_state(tmp_path / "c", state)
    back = checkpoint.load_state(tmp_path / "c")
    assert back["k"] == {0: [1, 2.5, None], "s": "x"} and back["tup"] == (1, 2)
    assert torch.equal(back["t"], state["t"]) and back["u8"].dtype == torch.uint8
    assert back["inf"] == float("inf") and back["empty"].numel() == 0


def test_nan_in_a_checkpoint_is_refused(interrupted_run):
    out, ckpt = interrupted_run
    state = checkpoint.load_state(ckpt)
    first = next(iter(state["model"]))
    state["model"][first] = torch.full_like(state["model"][first], float("nan"))
    checkpoint.save_state(ckpt, state)  # a valid digest over NaN contents
    result = invoke(*TINY, "--methods", "none", "--seeds", "1", "--out", str(out), "--resume")
    assert result.exit_code == 2 and "NaN" in result.output
    assert_clean_outcome(result)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "nan"])
def test_damaged_rram_cache_is_regenerated_identically(tmp_path, damage):
    from birram.rram.dataset import RRAMDatasetConfig, load_rram_samples

    cfg = RRAMDatasetConfig.small(n_train_devices=3, n_test_devices=2, n_levels=2)
    clean = load_rram_samples(cfg, tmp_path)
    path = next(tmp_path.glob("rram-*.npz"))
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "flip":
        data[len(data) // 3] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        arrays = dict(np.load(path))
        arrays["features"] = np.full_like(arrays["features"], np.nan)
        np.savez(path, **arrays)
    with pytest.warns(UserWarning, match="damaged"):
        again = load_rram_samples(cfg, tmp_path)
    np.testing.assert_array_equal(again.features, clean.features)


# -- numerical guard --------------------------------------------------------------------------

def test_divergence_stops_with_a_message_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "nan"
    result = invoke(*TINY[:-4], "--iters", "60", "--methods", "bir", "--seeds", "1",
                    "--lr", "10", "--out", str(out))
    assert result.exit_code == 3, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("error:"))
    assert "bir, seed 1" in line and "NaN or infinite" in line and "--lr" in line
    assert_clean_outcome(result)


def test_non_finite_settings_are_refused():
    for args in (["--lr", "inf"], ["--lr", "nan"], ["--set", "train.lr=NaN"],
                 ["--set", "method.si_c=1e999"]):
        result = invoke(*TINY, "--methods", "si", *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, args


# -- strict JSON, inputs, directories ---------------------------------------------------------

def test_one_seed_run_writes_strict_json_everywhere(tmp_path):
    out = tmp_path / "one"
    result = invoke(*TINY, "--methods", "none,si", "--seeds", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    files = list(out.rglob("*.json"))
    assert len(files) >= 6
    for path in files:
        text = path.read_text()
        assert "NaN" not in text and "Infinity" not in text, path
        json.loads(text)
    assert strict_json(out / "summary.json")["methods"]["none"]["average_accuracy_se"] is None


@pytest.mark.parametrize("args, needle", [
    (["--seeds", "1,1"], "distinct"),
    (["--methods", "none,none"], "distinct"),
    (["--seeds", ""], "seeds"),
    (["--methods", ""], "methods"),
    (["--seeds", str(2**64)], "seeds"),
    (["--iters", "100000000"], "iters"),
    (["--preset", "../../etc/passwd"], "unknown preset"),
    (["--set", "name=../../x"], "name"),
])
def test_bad_inputs_get_one_line(tmp_path, args, needle):
    out = tmp_path / "o"
    result = invoke(*TINY, "--methods", "none", *args, "--out", str(out))
    assert result.exit_code == 2 and needle in result.output, result.output
    assert_clean_outcome(result, out, fresh=True)


def test_broken_preset_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\niters = 3\n")
    result = invoke(*TINY, "--preset", str(bad))
    assert result.exit_code == 2 and "not valid TOML" in result.output


def test_out_that_is_a_file_or_under_a_file_is_refused(tmp_path):
    file = tmp_path / "f"
    file.write_text("x")
    for out in (file, file / "sub"):
        result = invoke(*TINY, "--methods", "none", "--out", str(out))
        assert result.exit_code == 2 and "is a file" in result.output
        assert_clean_outcome(result)


def test_failed_validation_writes_nothing(tmp_path):
    out = tmp_path / "never"
    result = invoke("compare", "--protocol", "split-mnist", "--no-download", "--data-dir",
                    str(tmp_path / "nothing-here"), "--iters", "2", "--out", str(out))
    assert result.exit_code == 2
    assert not out.exists()


def test_directory_reused_only_to_resume_the_same_configuration(tmp_path):
    out = tmp_path / "r"
    assert invoke(*TINY, "--methods", "none", "--out", str(out)).exit_code == 0
    again = invoke(*TINY, "--methods", "none", "--out", str(out))
    assert again.exit_code == 2 and "already holds a run" in again.output
    other = invoke(*TINY, "--methods", "none", "--iters", "4", "--out", str(out), "--resume")
    assert other.exit_code == 2 and "train.iters: 3 -> 4" in other.output
    (out / ".config.json.abc.tmp").write_text("half")  # a write killed half-way
    same = invoke(*TINY, "--methods", "none", "--out", str(out), "--resume")
    assert same.exit_code == 0 and not (out / ".config.json.abc.tmp").exists()
    foreign = tmp_path / "foreign"
    (foreign / "none" / "seed-1").mkdir(parents=True)
    result = invoke(*TINY, "--methods", "none", "--out", str(foreign), "--resume")
    assert result.exit_code == 2 and "not a birram run directory" in result.output


def test_changed_result_file_is_detected(tmp_path):
    out = tmp_path / "r"
    assert invoke(*TINY, "--methods", "none", "--out", str(out)).exit_code == 0
    metrics = out / "none" / "seed-1" / "metrics.json"
    data = strict_json(metrics)
    data["average_accuracy"] = 0.99
    metrics.write_text(json.dumps(data))
    result = invoke(*TINY, "--methods", "none", "--out", str(out), "--resume")
    assert result.exit_code == 2 and "changed or damaged" in result.output


@pytest.mark.parametrize("name", available_presets())
def test_printed_preset_is_the_file_and_valid_toml(name):
    from birram.config import PRESET_DIR

    result = invoke("presets", name)
    assert result.exit_code == 0
    assert result.output == (PRESET_DIR / f"{name}.toml").read_text()
    tomllib.loads(result.output)


def test_resume_command_adds_out_and_resume():
    cmd = resume_command(Path("runs/x y"), ["compare", "--methods", "bir"])
    assert cmd == "birram compare --methods bir --out 'runs/x y' --resume"
    assert resume_command(Path("o"), ["run", "--out", "o", "--resume"]) == \
        "birram run --out o --resume"


@pytest.mark.parametrize("args, needle", [
    (["simulate", "--devices", "0"], "--devices"),
    (["simulate", "--cycles", "100000"], "--cycles"),
    (["simulate", "--seed", "-1"], "--seed"),
    (["simulate", "--step", "1e-9"], "--step"),
    (["simulate", "--icc", "5"], "compliance current"),
    (["simulate", "--devices", "1000000", "--cycles", "1000"], "50 million"),
    (["pretrain", "--out", "."], "is a directory"),
    (["pretrain", "--out", "x.pt", "--iters", "0"], "--iters"),
    (["pretrain", "--out", "x.pt", "--lr", "nan"], "--lr"),
])
def test_simulator_and_pretrain_inputs_get_one_line(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args, *(["--out", str(tmp_path / "sim")] if args[0] == "simulate" else []))
    assert result.exit_code == 2 and needle in result.output, result.output
    assert_clean_outcome(result)
    assert not (tmp_path / "sim").exists() and not (tmp_path / "x.pt").exists()


def test_simulate_out_that_is_a_file_is_refused(tmp_path):
    file = tmp_path / "f"
    file.write_text("x")
    result = invoke("simulate", "--devices", "2", "--cycles", "1", "--out", str(file))
    assert result.exit_code == 2 and "is a file" in result.output
