"""A-GEM: the projected update never raises the memory loss to first order."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from birram.config import build_config
from birram.data.protocols import split_protocol
from birram.methods.agem import AGEM, project_gradient
from birram.methods.base import Batch, Method, TrainSettings
from birram.train import make_context, prepare, train_continual
from tests.conftest import blobs, interrupted_then_resumed

SETTINGS = TrainSettings(iters=30, batch_size=16, lr=1e-2, hidden=(16,))
# Gradient entries: zero or of a magnitude whose squares do not underflow (the all-zero memory
# gradient has its own test below).
finite = st.one_of(st.just(0.0), st.floats(1e-6, 1e3), st.floats(-1e3, -1e-6))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.lists(finite, min_size=n, max_size=n),
                                                      st.lists(finite, min_size=n, max_size=n))))
def test_projection_never_opposes_the_reference_gradient(pair):
    g, g_ref = (torch.tensor(v, dtype=torch.float64) for v in pair)
    projected = project_gradient(g, g_ref)
    scale = float(g.norm() * g_ref.norm())
    assert float(projected @ g_ref) >= -1e-9 * scale
    if float(g @ g_ref) >= 0:
        assert torch.equal(projected, g)  # an agreeing gradient is left exactly as it was
    else:  # a conflicting one loses exactly its component along g_ref
        assert abs(float(projected @ g_ref)) <= 1e-9 * scale
        removed = g - projected
        assert torch.allclose(removed, (g @ g_ref) / (g_ref @ g_ref) * g_ref)


def test_zero_reference_gradient_leaves_the_gradient_unchanged():
    g = torch.tensor([1.0, -2.0, 3.0])
    assert torch.equal(project_gradient(g, torch.zeros(3)), g)


def protocol(n_classes=6, n_tasks=3):
    return split_protocol(blobs(n_classes=n_classes, per_class=20), "class", n_tasks)


def memory_gradient(method, ctx):
    """The gradient of the memory loss on the batch ``before_step`` will draw next."""
    saved = ctx.generator.get_state()
    x, y, task_ids = method.buffer.sample(SETTINGS.batch_size, ctx.generator)
    ctx.generator.set_state(saved)
    logits = ctx.model(x).masked_fill(~ctx.sample_mask(task_ids), -1e9)
    ref = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y),
                              list(ctx.model.parameters()))
    return torch.cat([g.reshape(-1) for g in ref])


def set_gradient(model, flat):
    offset = 0
    for p in model.parameters():
        p.grad = flat[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()


def test_the_step_taken_never_opposes_the_memory_gradient():
    method = AGEM(samples_per_class=5)
    ctx = prepare(method, make_context(protocol(), SETTINGS, 0))
    train_continual(method, ctx)  # the memory now holds samples of all three tasks
    task = ctx.protocol.tasks[0]
    ids = torch.zeros_like(task.y_train)
    ctx.model.zero_grad()
    method.loss(ctx, Batch(task.x_train, task.y_train, ids, ctx.sample_mask(ids)))[0].backward()
    agreeing = torch.cat([p.grad.reshape(-1) for p in ctx.model.parameters()]).clone()
    g_ref = memory_gradient(method, ctx)
    noise = torch.randn(g_ref.shape, generator=torch.Generator().manual_seed(0))
    cases = {"current task": agreeing, "against memory": -g_ref + 0.1 * g_ref.norm() * noise}
    for name, g in cases.items():
        g_ref = memory_gradient(method, ctx)
        set_gradient(ctx.model, g)
        method.before_step(ctx)
        after = torch.cat([p.grad.reshape(-1) for p in ctx.model.parameters()])
        assert float(after @ g_ref) >= -1e-5 * float(after.norm() * g_ref.norm()), name
        if float(g @ g_ref) >= 0:
            assert torch.equal(after, g), name
        else:
            assert abs(float(after @ g_ref)) <= 1e-5 * float(after.norm() * g_ref.norm()), name
    assert float(cases["current task"] @ g_ref) >= 0 > float(cases["against memory"] @ g_ref)


def test_memory_is_class_balanced_and_the_first_task_is_plain_fine_tuning():
    method = AGEM(samples_per_class=3)
    ctx = prepare(method, make_context(protocol(), SETTINGS, 0))
    state = train_continual(method, ctx)
    assert torch.bincount(method.buffer.y).tolist() == [3] * 6
    plain = Method()
    plain_ctx = prepare(plain, make_context(protocol(), SETTINGS, 0))
    plain_state = train_continual(plain, plain_ctx)
    # With an empty memory nothing is projected: the first task trains exactly as fine-tuning.
    assert state.records[0].accuracies == plain_state.records[0].accuracies


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path):
    cfg = build_config({"methods": ["agem"], "seeds": [1], "scenario": "class",
                        "data": {"n_tasks": 2},
                        "train": {"iters": 30, "batch_size": 16, "lr": 0.01, "hidden": [16]},
                        "method": {"agem_samples_per_class": 5}})
    full, resumed = interrupted_then_resumed(cfg, tmp_path,
                                             lambda: blobs(n_classes=4))
    for a, b in zip(full.results, resumed.results):
        np.testing.assert_array_equal(a.accuracy_matrix, b.accuracy_matrix)
