"""Every method on a tiny problem: the loss falls, its memory behaves, its state round-trips."""

import pytest
import torch

from birram.data.protocols import split_protocol
from birram.methods.agem import AGEM
from birram.methods.base import Batch, Method, TrainSettings
from birram.methods.er import ExperienceReplay
from birram.methods.icarl import ICaRL
from birram.methods.joint import Joint
from birram.methods.lwf import LwF
from birram.methods.regularisers import EWC, SI, OnlineEWC
from birram.train import evaluate, make_context, prepare, train_continual
from tests.conftest import blobs

SETTINGS = TrainSettings(iters=40, batch_size=16, lr=1e-2, hidden=(16,))

MAKERS = {
    "none": lambda: Method(),
    "joint": lambda: Joint(),
    "lwf": lambda: LwF(),
    "er": lambda: ExperienceReplay(samples_per_class=5),
    "ewc": lambda: Method([EWC(strength=100.0)]),
    "online-ewc": lambda: Method([OnlineEWC(strength=100.0, gamma=0.9)]),
    "si": lambda: Method([SI(strength=1.0)]),
    "icarl": lambda: ICaRL(samples_per_class=5),
    "agem": lambda: AGEM(samples_per_class=5),
}


def protocol(n_classes=4, n_tasks=2, scenario="class"):
    return split_protocol(blobs(n_classes=n_classes, per_class=20), scenario, n_tasks)


class _Stop(Exception):
    pass


def train_first_task(method, ctx):
    """Train task 0 only; return the run state to resume from."""
    saved = {}

    def stop(ctx, state):
        saved["state"] = state
        raise _Stop

    with pytest.raises(_Stop):
        train_continual(method, ctx, on_task_end=stop)
    return saved["state"]


def full_batch(method, ctx):
    data = method.training_set(ctx)
    return Batch(data.x, data.y, data.task_ids, ctx.sample_mask(data.task_ids))


@pytest.mark.parametrize("name", list(MAKERS))
def test_loss_decreases_on_the_second_task(name):
    method = MAKERS[name]()
    ctx = prepare(method, make_context(protocol(), SETTINGS, 0))
    state = train_first_task(method, ctx)
    ctx.task = 1
    method.before_task(ctx)
    batch = full_batch(method, ctx)
    before = float(method.loss(ctx, batch)[0].detach())
    train_continual(method, ctx, state=state)
    after = float(method.loss(ctx, batch)[0].detach())
    assert after < before


def test_experience_replay_buffer_is_class_balanced_and_capped():
    method = ExperienceReplay(samples_per_class=3)
    ctx = prepare(method, make_context(protocol(n_classes=6, n_tasks=3), SETTINGS, 0))
    train_continual(method, ctx)
    assert torch.bincount(method.buffer.y).tolist() == [3] * 6
    assert len(method.buffer) == 18


def test_joint_training_set_grows_with_tasks():
    method = Joint()
    ctx = prepare(method, make_context(protocol(n_classes=6, n_tasks=3), SETTINGS, 0))
    sizes = []
    for t in range(3):
        ctx.task = t
        sizes.append(method.training_set(ctx).x.shape[0])
    per_task = ctx.protocol.tasks[0].x_train.shape[0]
    assert sizes == [per_task, 2 * per_task, 3 * per_task]


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_round_trips_at_a_task_boundary(name):
    method = MAKERS[name]()
    ctx = prepare(method, make_context(protocol(), SETTINGS, 0))
    train_first_task(method, ctx)
    other = MAKERS[name]()
    other.setup(ctx)
    other.load_state_dict(method.state_dict(), ctx)
    ctx.task = 1
    method.before_task(ctx)
    other.before_task(ctx)
    batch = full_batch(method, ctx)
    torch.testing.assert_close(full_batch(other, ctx).x, batch.x)
    gen_state = ctx.generator.get_state()
    loss = method.loss(ctx, batch)[0]
    ctx.generator.set_state(gen_state)  # replay draws from the generator: same draws for both
    torch.testing.assert_close(other.loss(ctx, batch)[0], loss)
    assert evaluate(other, ctx, 0) == evaluate(method, ctx, 0)
