"""The compiled training step (train.compile): the same step as eager, one graph per shape."""

import copy
import dataclasses
import os

import numpy as np
import pytest
import torch

from birram.cache import claim_inductor_cache
from birram.config import resolve
from birram.data.protocols import split_protocol
from birram.errors import ConfigError
from birram.methods.base import TrainSettings
from birram.methods.generative import BIR
from birram.run import check_run
from birram.train import make_context, prepare, train_continual
from birram.train_seeds import stack_group
from tests.conftest import blobs

SETTINGS = TrainSettings(iters=12, batch_size=16, lr=1e-2, hidden=(16,))


def bir() -> BIR:
    return BIR(feedback=True, conditional=True, gating=True, internal=False, distill=True,
               gate_prop=0.5, z_dim=4)


def trained(compile_step: bool) -> tuple[np.ndarray, list[dict[str, float]], BIR]:
    method = bir()
    settings = dataclasses.replace(SETTINGS, compile=compile_step)
    ctx = prepare(method, make_context(split_protocol(blobs(n_classes=4), "class", 2),
                                       settings, seed=3))
    # A copy trains, as stacked seeds train a copy of the lead method: its compiled step must
    # be its own (one bound to the original would replay from the original's empty snapshot).
    method = copy.deepcopy(method)
    state = train_continual(method, ctx)
    return (np.array([r.accuracies for r in state.records]),
            [r.final_losses for r in state.records], method)


def test_the_compiled_step_trains_as_the_eager_one(tmp_path, monkeypatch):
    # A cache of its own: the test compiles from scratch and leaves nothing behind.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch._dynamo.reset()
    eager_acc, eager_losses, _ = trained(False)
    acc, losses, method = trained(True)
    assert method._compiled_loss is not None
    # Same draws, same arithmetic up to the order of float operations fused kernels choose.
    for eager, compiled in zip(eager_losses, losses):
        assert compiled.keys() == eager.keys()
        for key in eager:
            assert compiled[key] == pytest.approx(eager[key], rel=1e-3, abs=1e-5), key
    assert "loss_replay" in losses[1]  # the second task's graph replays
    np.testing.assert_allclose(acc, eager_acc, atol=0.05)


def test_compile_is_refused_for_a_method_without_a_compiled_step():
    cfg = resolve(None, {"methods": ["bir", "ewc"], "train": {"compile": True}})
    with pytest.raises(ConfigError, match="method ewc has no compiled training step"):
        check_run(cfg)
    check_run(resolve(None, {"methods": ["bir", "dgr", "bir-si"], "train": {"compile": True}}))



def test_stacked_seeds_on_a_cpu_train_with_the_eager_step():
    # Measured slower compiled than eager on a CPU (benchmarks/README.md): the group drops it.
    protocols = {s: split_protocol(blobs(n_classes=4), "class", 2) for s in (1, 2)}
    group = stack_group(bir, protocols, dataclasses.replace(SETTINGS, compile=True))
    assert all(run.method._compiled_loss is not None for run in group.runs)
    assert group.method._compiled_loss is None


def test_compile_without_a_cpp_compiler_says_what_to_install(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ConfigError, match="needs a C\\+\\+ compiler"):
        check_run(resolve(None, {"methods": ["bir"], "train": {"compile": True}}))


def test_a_run_says_its_stacked_seeds_kept_the_eager_step(tmp_path):
    from birram.config import build_config
    from birram.run import run_experiment

    cfg = build_config({"methods": ["bir"], "seeds": [1, 2], "scenario": "class",
                        "data": {"n_tasks": 2},
                        "train": {"iters": 5, "batch_size": 16, "hidden": [16],
                                  "compile": True}})
    result = run_experiment(cfg, tmp_path, data=blobs(n_classes=4))
    assert result.summary["seed_batching"]["bir"] == (
        "trained together: seeds 1, 2 (with the eager step: on a CPU a compiled step of "
        "stacked seeds is slower)")


def test_the_compiled_code_is_kept_in_a_private_cache(tmp_path, monkeypatch):
    # torch reads pickled graphs back from its cache: birram's is the user's own, mode 0700.
    # Through prepare(), as a run goes: building the optimiser already makes torch write its
    # own default (under /tmp) into the variable, which must not count as the user's choice.
    monkeypatch.setenv("BIRRAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    prepare(bir(), make_context(split_protocol(blobs(n_classes=4), "class", 2),
                                dataclasses.replace(SETTINGS, compile=True), seed=3))
    cache = tmp_path / "cache" / "inductor"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(cache)
    assert cache.stat().st_mode & 0o777 == 0o700


def test_a_cache_folder_the_user_chose_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("BIRRAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert claim_inductor_cache() is None
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
    assert not (tmp_path / "cache").exists()
