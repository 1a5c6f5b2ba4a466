import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from birram.data.protocols import split_protocol
from birram.methods.base import Method, TrainingSet, TrainSettings, masked
from birram.methods.regularisers import EWC, SI, OnlineEWC, diagonal_fisher, flat, trainable
from birram.models.mlp import Classifier
from birram.run import load_checkpoint, save_checkpoint
from birram.train import RunState, make_context, prepare, train_continual
from tests.conftest import blobs

SETTINGS = TrainSettings(iters=30, batch_size=16, lr=1e-2, hidden=(8,))


def context(scenario="class", n_tasks=2, seed=0):
    protocol = split_protocol(blobs(n_classes=4, per_class=12, dim=5), scenario, n_tasks)
    ctx = make_context(protocol, SETTINGS, seed)
    torch.manual_seed(seed)
    ctx.model = Classifier(protocol.input_shape, protocol.n_outputs, [6])
    return ctx


def task_data(ctx, t):
    task = ctx.protocol.tasks[t]
    return TrainingSet(task.x_train, task.y_train, torch.full_like(task.y_train, t))


def fisher_by_loop(model, x, mask, labels, y=None):
    """Reference: one backward pass per sample (and per label), the squares summed by hand."""
    params = trainable(model)
    total = torch.zeros(sum(p.numel() for p in params))
    for i in range(x.shape[0]):
        logits = masked(model(x[i : i + 1]), mask[i : i + 1])[0]
        probs = F.softmax(logits, 0).detach()
        if labels == "all":
            pairs = [(c, probs[c]) for c in range(logits.numel()) if mask[i, c]]
        elif labels == "pred":
            pairs = [(int(probs.argmax()), 1.0)]
        else:
            pairs = [(int(y[i]), 1.0)]
        for c, w in pairs:
            g = torch.autograd.grad(-F.log_softmax(logits, 0)[c], params, retain_graph=True)
            total += w * torch.cat([gi.reshape(-1) for gi in g]) ** 2
    return total / x.shape[0]


@pytest.mark.parametrize("labels", ["all", "pred", "true"])
@pytest.mark.parametrize("backend", ["linear", "vmap"])
def test_fisher_matches_a_per_sample_loop(labels, backend):
    torch.manual_seed(0)
    model = Classifier((5,), 4, [6])
    x, y = torch.randn(9, 5), torch.randint(0, 3, (9,))
    mask = torch.zeros(9, 4, dtype=torch.bool)
    mask[:, :3] = True  # one output inactive, as for a class not seen yet
    fast = diagonal_fisher(model, x, mask, labels, y, backend=backend, chunk=4)
    slow = fisher_by_loop(model, x, mask, labels, y)
    assert (fast >= 0).all()
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-8)


def test_fisher_backends_agree_on_sampled_labels_and_skip_frozen_parameters():
    torch.manual_seed(0)
    model = Classifier((5,), 3, [6])
    model.body[0].weight.requires_grad_(False)  # frozen parameters carry no Fisher
    x, mask = torch.randn(10, 5), torch.ones(10, 3, dtype=torch.bool)
    a = diagonal_fisher(model, x, mask, "sample", generator=torch.Generator().manual_seed(3),
                        backend="linear")
    b = diagonal_fisher(model, x, mask, "sample", generator=torch.Generator().manual_seed(3),
                        backend="vmap")
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-8)
    assert a.numel() == sum(p.numel() for p in trainable(model))


def test_ewc_penalty_zero_at_anchor_and_positive_away():
    ctx = context()
    reg = EWC(strength=10.0)
    reg.setup(ctx)
    assert reg.penalty(ctx) is None
    reg.after_task(ctx, task_data(ctx, 0))
    assert abs(float(reg.penalty(ctx).detach())) < 1e-6
    with torch.no_grad():
        for p in ctx.model.parameters():
            p.add_(0.1)
    assert float(reg.penalty(ctx).detach()) > 0


def test_ewc_merged_penalty_equals_the_sum_over_tasks():
    ctx = context()
    reg = EWC(strength=3.0)
    reg.setup(ctx)
    reg.after_task(ctx, task_data(ctx, 0))
    with torch.no_grad():
        for p in ctx.model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    ctx.task = 1
    reg.after_task(ctx, task_data(ctx, 1))
    with torch.no_grad():
        for p in ctx.model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    theta = flat(trainable(ctx.model))
    expected = sum(0.5 * 3.0 * (f * (theta - a) ** 2).sum()
                   for f, a in zip(reg.fishers, reg.anchors))
    torch.testing.assert_close(reg.penalty(ctx), expected, rtol=1e-4, atol=1e-6)
    grad = torch.autograd.grad(reg.penalty(ctx), trainable(ctx.model))
    grad_expected = torch.autograd.grad(expected, trainable(ctx.model))
    for g, e in zip(grad, grad_expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)


def test_online_ewc_decays_the_running_fisher_with_gamma():
    ctx = context()
    gamma = 0.5
    reg = OnlineEWC(strength=2.0, gamma=gamma)
    reg.setup(ctx)
    reg.after_task(ctx, task_data(ctx, 0))
    f1 = reg.fisher.clone()
    with torch.no_grad():
        for p in ctx.model.parameters():
            p.add_(0.1)
    ctx.task = 1
    f2 = diagonal_fisher(ctx.model, task_data(ctx, 1).x,
                         ctx.sample_mask(task_data(ctx, 1).task_ids))
    reg.after_task(ctx, task_data(ctx, 1))
    torch.testing.assert_close(reg.fisher, f2 + gamma * f1)
    torch.testing.assert_close(reg.anchor, flat(trainable(ctx.model)).detach())
    assert abs(float(reg.penalty(ctx).detach())) < 1e-8
    with torch.no_grad():
        for p in ctx.model.parameters():
            p.add_(0.1)
    theta = flat(trainable(ctx.model))
    expected = 0.5 * 2.0 * gamma * (reg.fisher * (theta - reg.anchor) ** 2).sum()
    torch.testing.assert_close(reg.penalty(ctx), expected)


class Quadratic(nn.Module):
    def __init__(self, start):
        super().__init__()
        self.theta = nn.Parameter(start.clone())


def test_si_path_integral_on_a_quadratic():
    """Gradient descent on L = sum a_i (theta_i - t_i)^2 / 2: the path integral W_i equals the
    drop in the i-th term of the loss (exactly in the small-step limit)."""
    ctx = context()
    a = torch.tensor([1.0, 4.0, 0.0, 2.0])
    target = torch.tensor([1.0, -1.0, 3.0, 0.5])
    start = torch.zeros(4)
    ctx.model = Quadratic(start)
    ctx.optimizer = torch.optim.SGD(ctx.model.parameters(), lr=1e-3)
    reg = SI(strength=1.0, epsilon=0.1)
    reg.setup(ctx)
    reg.before_task(ctx)
    for _ in range(3000):
        loss = 0.5 * (a * (ctx.model.theta - target) ** 2).sum()
        ctx.optimizer.zero_grad()
        loss.backward()
        ctx.optimizer.step()
        reg.after_step(ctx)
    end = ctx.model.theta.detach()
    drop = 0.5 * a * ((start - target) ** 2 - (end - target) ** 2)
    torch.testing.assert_close(reg.path, drop, rtol=1e-2, atol=1e-6)
    reg.after_task(ctx, None)
    change = end - start
    torch.testing.assert_close(reg.omega, reg.path / (change**2 + 0.1))
    assert (reg.omega >= 0).all() and reg.omega[2] == 0  # a flat direction is unimportant
    assert abs(float(reg.penalty(ctx).detach())) < 1e-12
    with torch.no_grad():
        ctx.model.theta.add_(0.5)
    assert float(reg.penalty(ctx).detach()) > 0


@pytest.mark.parametrize("make", [lambda: EWC(strength=5.0), lambda: OnlineEWC(5.0, gamma=0.7),
                                  lambda: SI(strength=2.0)])
def test_regulariser_state_round_trips(make):
    ctx = context()
    reg = make()
    reg.setup(ctx)
    reg.before_task(ctx)
    reg.after_step(ctx)
    reg.after_task(ctx, task_data(ctx, 0))
    with torch.no_grad():
        for p in ctx.model.parameters():
            p.add_(0.05)
    other = make()
    other.setup(ctx)
    other.load_state_dict(reg.state_dict())
    torch.testing.assert_close(other.penalty(ctx), reg.penalty(ctx))


def test_default_strength_follows_the_scenario():
    for scenario, ewc, si in [("task", 1e5, 10.0), ("class", 1e9, 5e3)]:
        ctx = context(scenario)
        e, s = EWC(), SI()
        e.setup(ctx)
        s.setup(ctx)
        assert (e.strength, s.strength) == (ewc, si)


class Stop(Exception):
    pass


def test_ewc_resumed_at_a_task_boundary_matches_an_uninterrupted_run(tmp_path):
    protocol = split_protocol(blobs(n_classes=6, per_class=12, dim=5), "task", 3)

    def fresh():
        method = Method([EWC(strength=100.0, fisher_labels="sample")])
        return method, prepare(method, make_context(protocol, SETTINGS, 7))

    method, ctx = fresh()
    full = train_continual(method, ctx)

    def stop_after_first(ctx, state: RunState):
        save_checkpoint(tmp_path / "ckpt.pt", method_b, ctx, state)
        raise Stop

    method_b, ctx_b = fresh()
    with pytest.raises(Stop):
        train_continual(method_b, ctx_b, on_task_end=stop_after_first)
    method_c, ctx_c = fresh()
    state = load_checkpoint(tmp_path / "ckpt.pt", method_c, ctx_c)
    resumed = train_continual(method_c, ctx_c, state=state)
    np.testing.assert_array_equal([r.accuracies for r in full.records],
                                  [r.accuracies for r in resumed.records])
    for p, q in zip(ctx.model.parameters(), ctx_c.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
