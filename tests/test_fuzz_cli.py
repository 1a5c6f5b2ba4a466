"""Generated bad inputs and damaged run directories against the command line.

Each case must end as a completed run with finite, strictly valid results (equal to the clean
run's where one exists), or as one error line with a non-zero exit code: no traceback, no NaN,
no partial or stale result. Derandomised, so every run of the suite tries the same cases.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from birram import io
from birram.cli import app
from tests.test_reliability import TINY, assert_clean_outcome

runner = CliRunner()
FUZZ = settings(max_examples=70, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# Values a careless or hostile user might give each option; a few are valid on purpose.
OPTION_VALUES: dict[str, list[str]] = {
    "--iters": ["0", "-1", "1e9", "abc", "", "2", "1000001", "2.5"],
    "--seeds": ["1,1", "", ",", "-1", str(2**64), "1,x", "2", "1,2", " 3 "],
    "--lr": ["0", "-1", "inf", "nan", "1e-3", "11", "x", "1e-300"],
    "--methods": ["", "none,none", "bogus", "none", "../x", "lwf,ewc", "NONE"],
    "--batch-size": ["0", "-5", "7", "1e10", "1"],
    "--hidden": ["", "0", "-1", "8,x", "8", "4,4,4", "100001"],
    "--preset": ["../../etc/passwd", "nope", "/dev/null", "x.toml", ""],
    "--set": ["train.lr=NaN", "train.lr=1e999", "name=../x", "train.hidden=[]",
              "method.z_dim=-1", "seeds=[]", "x", "train.iters=2", "data.rram.n_levels=1e9",
              "train=5", "method.si_c=\"a\"", "data.class_order=[1,1]", "scenario=task"],
    "--class-order": ["1,1", "x", "9,8,7,6,5,4,3,2,1,0", "99", "0,1", "-1,0,1,2,3,4,5,6,7,8"],
    "--n-tasks": ["0", "2", "3", "100000", "-2"],
    "--scenario": ["sideways", "task", "domain", ""],
    "--device": ["cuda", "tpu", "cpu", "cuda:-1", ""],
    "--threads": ["0", "1", "-3", "100000"],
}


@given(st.lists(st.sampled_from(sorted(OPTION_VALUES)), min_size=1, max_size=3, unique=True),
       st.data())
@FUZZ
def test_generated_bad_inputs(tmp_path, options, data):
    args = list(TINY) + ["--methods", "none", "--seeds", "1"]
    for option in options:
        args += [option, data.draw(st.sampled_from(OPTION_VALUES[option]), label=option)]
    out = tmp_path / f"case-{abs(hash(tuple(args))) % 10**12}"
    shutil.rmtree(out, ignore_errors=True)
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert_clean_outcome(result, out, fresh=True)


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory):
    """A finished run and an interrupted one (with a checkpoint), and the clean accuracies."""
    import birram.run as run_module

    root = tmp_path_factory.mktemp("ref")
    args = [*TINY, "--methods", "none,lwf", "--seeds", "1"]
    finished = root / "finished"
    assert runner.invoke(app, [*args, "--out", str(finished)]).exit_code == 0
    clean = io.read_json_strict(finished / "summary.json")["methods"]
    original = run_module.save_checkpoint
    calls = {"n": 0}

    def save_then_stop(*a, **k):
        original(*a, **k)
        calls["n"] += 1
        if calls["n"] == 6:  # none saved after each of its 5 tasks; lwf after its first
            raise KeyboardInterrupt

    run_module.save_checkpoint = save_then_stop
    try:
        cut = root / "cut"
        assert runner.invoke(app, [*args, "--out", str(cut)]).exit_code == 130
    finally:
        run_module.save_checkpoint = original
    assert (cut / "lwf" / "seed-1" / "checkpoint.safetensors").exists()
    return args, {"finished": finished, "cut": cut}, clean


DAMAGES = ["truncate", "flip", "empty", "nan", "wrong-shape", "delete", "garbage"]


def damage(path: Path, how: str, fraction: float, draw_bytes: bytes) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: int(fraction * len(data))])
    elif how == "flip":
        buf = bytearray(data)
        for k, b in enumerate(draw_bytes or b"\x01"):
            if buf:
                buf[int((fraction + k / 7) % 1 * len(buf))] ^= b or 1
        path.write_bytes(bytes(buf))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "nan":
        path.write_text('{"accuracy_matrix": [[NaN]], "average_accuracy": NaN}')
    elif how == "wrong-shape":
        path.write_text('{"accuracy_matrix": [[0.5, 0.5]], "random_init_accuracies": [0.1]}')
    elif how == "delete":
        path.unlink()
    else:
        path.write_bytes(draw_bytes * 50)


@given(which=st.sampled_from(["finished", "cut"]), pick=st.integers(0, 10**6),
       how=st.sampled_from(DAMAGES), fraction=st.floats(0.0, 0.999),
       draw_bytes=st.binary(min_size=1, max_size=4))
@FUZZ
def test_damaged_run_directories(tmp_path, reference_runs, which, pick, how, fraction,
                                 draw_bytes):
    args, dirs, clean = reference_runs
    out = tmp_path / f"d-{which}-{pick}-{how}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(dirs[which], out)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    target = files[pick % len(files)]
    damage(target, how, fraction, draw_bytes)
    result = runner.invoke(app, [*args, "--out", str(out), "--resume"])
    assert_clean_outcome(result, out)
    if result.exit_code == 0:  # a completed run must give the clean results, nothing stale
        summary = io.read_json_strict(out / "summary.json")["methods"]
        for method, m in clean.items():
            assert summary[method]["per_seed"] == m["per_seed"], (target, how)
