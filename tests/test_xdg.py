"""XdG: fixed per-task gates on the hidden units, applied in training and at test time."""

import numpy as np
import pytest
import torch

from birram.config import build_config
from birram.data.protocols import split_protocol
from birram.errors import ConfigError
from birram.methods.base import Batch, TrainSettings
from birram.methods.xdg import XdG
from birram.run import run_experiment
from birram.train import make_context, prepare, train_continual
from tests.conftest import blobs, interrupted_then_resumed

SETTINGS = TrainSettings(iters=30, batch_size=16, lr=1e-2, hidden=(20, 10))


def fitted(seed=0, gate_prop=0.6, train=True):
    method = XdG(gate_prop=gate_prop)
    protocol = split_protocol(blobs(n_classes=6, per_class=20), "task", 3)
    ctx = prepare(method, make_context(protocol, SETTINGS, seed))
    if train:
        train_continual(method, ctx)
    return method, ctx


def all_gates(model):
    return [model.gates(i).clone() for i in range(len(model.hidden))]


def test_gates_have_the_configured_share_of_zeros_and_differ_between_tasks():
    _, ctx = fitted(gate_prop=0.6, train=False)
    for gates, units in zip(all_gates(ctx.model), SETTINGS.hidden):
        assert gates.shape == (3, units)
        assert set(gates.unique().tolist()) <= {0.0, 1.0}
        assert (gates == 0).sum(1).tolist() == [round(0.6 * units)] * 3
        assert len({tuple(row.tolist()) for row in gates}) == 3  # every task its own gate


def test_gates_stay_fixed_through_training_and_come_back_with_the_model():
    _, untrained = fitted(train=False)
    _, ctx = fitted()
    for a, b in zip(all_gates(untrained.model), all_gates(ctx.model)):
        assert torch.equal(a, b)  # drawn once from the seed, never trained
    _, other_seed = fitted(seed=1, train=False)
    assert not torch.equal(all_gates(other_seed.model)[0], all_gates(ctx.model)[0])
    state = ctx.model.state_dict()
    assert all(f"gates{i}" in state for i in range(len(SETTINGS.hidden)))
    other_seed.model.load_state_dict(state)
    for a, b in zip(all_gates(other_seed.model), all_gates(ctx.model)):
        assert torch.equal(a, b)


def test_gated_off_units_get_no_gradient_from_their_task():
    method, ctx = fitted(train=False)
    model = ctx.model
    for t, task in enumerate(ctx.protocol.tasks):
        model.zero_grad()
        ids = torch.full_like(task.y_train, t)
        method.loss(ctx, Batch(task.x_train, task.y_train, ids, ctx.sample_mask(ids)))[0]\
            .backward()
        for i, layer in enumerate(model.hidden):
            off = model.gates(i)[t] == 0
            assert (layer.weight.grad[off] == 0).all()  # weights into a silent unit
            assert (layer.bias.grad[off] == 0).all()
            after = model.hidden[i + 1] if i + 1 < len(model.hidden) else model.head
            assert (after.weight.grad[:, off] == 0).all()  # and out of it
            assert layer.weight.grad[~off].abs().sum() > 0  # open units do learn


def test_each_task_is_tested_through_its_own_gates():
    method, ctx = fitted()
    x = ctx.protocol.tasks[0].x_test
    scores = method.predict(ctx, x)
    for task in ctx.protocol.tasks:
        ids = torch.full((x.shape[0],), task.index, dtype=torch.long)
        outputs = list(task.outputs)
        assert torch.equal(scores[:, outputs], ctx.model(x, ids)[:, outputs])


@pytest.mark.parametrize("scenario", ["class", "domain"])
def test_scenarios_without_task_identity_are_refused(scenario, tmp_path):
    protocol = split_protocol(blobs(n_classes=4, per_class=20), scenario, 2)
    with pytest.raises(ConfigError, match="needs the task identity") as err:
        prepare(XdG(), make_context(protocol, SETTINGS, 0))
    assert "\n" not in str(err.value)
    cfg = build_config({"methods": ["xdg"], "scenario": scenario, "data": {"n_tasks": 2}})
    with pytest.raises(ConfigError, match="needs the task identity"):
        run_experiment(cfg, tmp_path / "run", data=blobs(n_classes=4))
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path):
    cfg = build_config({"methods": ["xdg"], "seeds": [1], "scenario": "task",
                        "data": {"n_tasks": 2},
                        "train": {"iters": 20, "batch_size": 16, "lr": 0.01, "hidden": [16]},
                        "method": {"xdg_prop": 0.5}})
    full, resumed = interrupted_then_resumed(cfg, tmp_path,
                                             lambda: blobs(n_classes=4))
    for a, b in zip(full.results, resumed.results):
        np.testing.assert_array_equal(a.accuracy_matrix, b.accuracy_matrix)


def test_runs_on_a_task_incremental_stream_gated_by_each_samples_told_context():
    from dataclasses import replace

    from birram.data.stream import StreamSpec

    method = XdG(gate_prop=0.6)
    protocol = split_protocol(blobs(n_classes=6, per_class=20), "task", 3)
    protocol = replace(protocol, stream=StreamSpec(20, "fuzzy"))  # type: ignore[arg-type]
    ctx = prepare(method, make_context(protocol, SETTINGS, 0))
    gates = all_gates(ctx.model)
    state = train_continual(method, ctx)
    assert np.array([r.accuracies for r in state.records])[-1].min() >= 0.9
    assert all(torch.equal(a, b) for a, b in zip(gates, all_gates(ctx.model)))
