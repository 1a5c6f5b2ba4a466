import numpy as np
import pytest
import torch
import torch.nn.functional as F

from birram.data.protocols import split_protocol
from birram.methods.base import TrainSettings
from birram.methods.icarl import ICaRL, herding
from birram.models.mlp import Classifier
from birram.train import evaluate, make_context, prepare, train_continual
from tests.conftest import blobs


def test_herding_picks_the_sample_closest_to_the_mean_first_and_never_twice():
    gen = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(50, 8, generator=gen), dim=1)
    mean = F.normalize(feats.mean(0, keepdim=True), dim=1)
    chosen = herding(feats, 20)
    assert chosen[0] == (feats - mean).norm(dim=1).argmin()
    assert chosen.unique().numel() == 20
    assert herding(feats, 80).numel() == 50  # capped at the class size


def test_herding_mean_tracks_the_class_mean_better_than_chance():
    gen = torch.Generator().manual_seed(1)
    feats = F.normalize(torch.randn(200, 6, generator=gen) + 1.0, dim=1)
    mean = F.normalize(feats.mean(0, keepdim=True), dim=1)
    herd = (feats[herding(feats, 10)].mean(0) - mean).norm()
    rand = (feats[torch.randperm(200, generator=gen)[:10]].mean(0) - mean).norm()
    assert herd < rand


def fit(method, scenario="class", n_classes=4, n_tasks=2, hidden=(16,)):
    protocol = split_protocol(blobs(n_classes=n_classes, per_class=20), scenario, n_tasks)
    settings = TrainSettings(iters=40, batch_size=16, lr=1e-2, hidden=hidden)
    ctx = prepare(method, make_context(protocol, settings, 0))
    state = train_continual(method, ctx)
    return np.array([r.accuracies for r in state.records]), ctx


def test_nearest_mean_of_exemplars_classifies_separable_data():
    # No hidden layer: the features are the inputs, so NME alone must separate the blobs.
    method = ICaRL(samples_per_class=5)
    method.build_model = lambda ctx: Classifier(ctx.protocol.input_shape,
                                                ctx.protocol.n_outputs, [])
    r, ctx = fit(method)
    assert r[-1].min() > 0.9
    assert torch.bincount(method.buffer.y).tolist() == [5, 5, 5, 5]
    scores = method.predict(ctx, ctx.protocol.tasks[0].x_test)
    assert scores.shape == (ctx.protocol.tasks[0].x_test.shape[0], 4)


def test_icarl_remembers_in_class_il():
    r, _ = fit(ICaRL(samples_per_class=5))
    assert r[1, 0] > 0.7


def test_memory_budget_is_shared_over_the_classes_seen():
    method = ICaRL(samples_per_class=None, memory_budget=12)
    fit(method, n_classes=6, n_tasks=3)
    assert torch.bincount(method.buffer.y).tolist() == [2] * 6
    with pytest.raises(ValueError):
        ICaRL(samples_per_class=3, memory_budget=10)


@pytest.mark.parametrize("scenario", ["task", "domain"])
def test_other_scenarios_run(scenario):
    r, _ = fit(ICaRL(samples_per_class=4), scenario=scenario)
    assert r.shape == (2, 2) and np.isfinite(r).all() and r[-1, -1] > 0.5


def test_state_round_trip_gives_identical_predictions():
    method = ICaRL(samples_per_class=4)
    _, ctx = fit(method)
    other = ICaRL(samples_per_class=4)
    other.load_state_dict(method.state_dict(), ctx)
    x = ctx.protocol.tasks[0].x_test
    torch.testing.assert_close(other.predict(ctx, x), method.predict(ctx, x))
    assert evaluate(other, ctx, 1) == evaluate(method, ctx, 1)
    assert other.previous is not None and len(other.buffer) == len(method.buffer)
