"""Brain-inspired replay on tiny problems: components, composition, scenarios, resume."""

import numpy as np
import pytest
import torch

from birram.config import MethodConfig
from birram.data.protocols import split_protocol
from birram.errors import ConfigError
from birram.methods.base import Batch, Regulariser, TrainSettings
from birram.methods.generative import BIR, sample_grid
from birram.methods.registry import BIR_COMPONENTS, build_method
from birram.models.conv import ConvExtractor
from birram.train import make_context, prepare, train_continual
from tests.conftest import blobs, tiny_images

SETTINGS = TrainSettings(iters=60, batch_size=16, lr=1e-2, hidden=(32,))


def bir(**overrides):
    flags = dict(feedback=True, conditional=True, gating=True, internal=False, distill=True,
                 gate_prop=0.5, z_dim=4)
    flags.update(overrides)
    return BIR(**flags)


def fit(method, scenario="class", n_tasks=2, data=None, settings=SETTINGS, seed=0):
    protocol = split_protocol(data or blobs(n_classes=4), scenario, n_tasks)
    ctx = prepare(method, make_context(protocol, settings, seed))
    state = train_continual(method, ctx)
    return np.array([r.accuracies for r in state.records]), ctx, state


def current_batch(ctx, task):
    t = ctx.protocol.tasks[task]
    ids = torch.full_like(t.y_train[:16], task)
    return Batch(t.x_train[:16], t.y_train[:16], ids, ctx.sample_mask(ids))


@pytest.mark.parametrize("scenario", ["class", "task", "domain"])
def test_bir_runs_and_remembers_in_every_scenario(scenario):
    r, _, state = fit(bir(), scenario)
    assert r.shape == (2, 2) and np.isfinite(r).all()
    assert r[1, 1] > 0.8
    assert "loss_replay" in state.records[1].final_losses
    if scenario == "class":
        assert r[1, 0] > 0.5  # fine-tuning scores ~0 here


def test_task_gates_in_domain_incremental():
    r, ctx, _ = fit(bir(gate_by="task"), "domain")
    assert ctx.model.n_contexts == 2 and r[1].min() > 0.5


def test_generated_samples_are_classified_as_their_class():
    settings = TrainSettings(iters=200, batch_size=32, lr=5e-3, hidden=(64,))
    method = bir(z_dim=8)
    _, ctx, _ = fit(method, "class", settings=settings)
    gen = torch.Generator().manual_seed(5)
    classes = torch.arange(4).repeat_interleave(50)
    x = method.generate(ctx, ctx.model, classes, method._output_task[classes], gen)
    predicted = method.classify_replay_space(ctx.model, x).argmax(1)
    assert (predicted == classes).float().mean() > 0.8  # chance is 0.25


def test_replay_and_current_losses_weighted_one_over_t():
    method = bir()
    settings = TrainSettings(iters=5, batch_size=16, lr=1e-2, hidden=(32,))
    _, ctx, _ = fit(method, "class", n_tasks=3, data=blobs(n_classes=6), settings=settings)
    ctx.task = 2  # training the third task: replay weight 2/3, current 1/3
    torch.manual_seed(0)
    loss, logs = method.loss(ctx, current_batch(ctx, 2))
    expected = logs["loss_current"] / 3 + 2 * logs["loss_replay"] / 3
    torch.testing.assert_close(loss.detach(), expected)


@pytest.mark.parametrize("scenario", ["domain", "task"])
def test_distillation_is_zero_while_the_model_equals_its_teacher(scenario):
    method = bir()
    _, ctx, _ = fit(method, scenario)
    ctx.task = 1  # the model right after task 0 is its own teacher
    method.previous.load_state_dict(ctx.model.state_dict())
    _, logs = method.loss(ctx, current_batch(ctx, 1))
    assert logs["loss_replay_pred"].abs() < 1e-5


class CountingPenalty(Regulariser):
    name = "dummy"

    def __init__(self):
        self.calls = {"setup": 0, "before_task": 0, "after_task": 0, "after_step": 0}

    def setup(self, ctx):
        self.calls["setup"] += 1

    def before_task(self, ctx):
        self.calls["before_task"] += 1

    def after_step(self, ctx):
        self.calls["after_step"] += 1

    def after_task(self, ctx, data):
        self.calls["after_task"] += 1

    def penalty(self, ctx):
        return 1e-4 * sum(p.pow(2).sum() for p in ctx.model.parameters() if p.requires_grad)


def test_bir_composes_with_a_regulariser():
    reg = CountingPenalty()
    _, _, state = fit(bir(regularisers=[reg]))
    assert "penalty_dummy" in state.records[1].final_losses
    assert reg.calls == {"setup": 1, "before_task": 2, "after_task": 2, "after_step": 120}


def test_rtf_alone_has_no_mixture_and_no_gates():
    method = BIR.rtf(z_dim=4)
    r, ctx, _ = fit(method)
    assert ctx.model.prior is None and not ctx.model.gated and method.name == "rtf"
    assert r[1, 0] > 0.3


@pytest.mark.parametrize("removed", ["feedback", "conditional", "gating", "distill"])
def test_each_component_can_be_removed(removed):
    method = bir(**{removed: False})
    r, ctx, _ = fit(method)
    assert np.isfinite(r).all() and r[1, 1] > 0.8
    vae = method.current_generator(ctx)
    assert (method.generator is not None) == (removed == "feedback")
    assert (vae.prior is None) == (removed == "conditional")
    assert vae.gated == (removed != "gating")


@pytest.mark.parametrize("name", ["bir", "bir-si", "rtf", "dgr", "dgr-distill",
                                  *[f"bir-no-{c}" for c in BIR_COMPONENTS],
                                  *[f"gr-plus-{c}" for c in BIR_COMPONENTS]])
def test_every_generative_registry_entry_runs(name):
    method = build_method(name, MethodConfig(z_dim=4))
    settings = TrainSettings(iters=4, batch_size=8, hidden=(8,))
    r, _, _ = fit(method, settings=settings)
    assert np.isfinite(r).all()


def test_internal_replay_leaves_the_frozen_extractor_unchanged():
    data = tiny_images(n_classes=4, side=8)
    conv = ConvExtractor(1, layers=2, channels=4)
    before = {k: v.clone() for k, v in conv.state_dict().items()}
    method = bir(internal=True, extractor=conv)
    settings = TrainSettings(iters=30, batch_size=16, lr=1e-2, hidden=(32,))
    r, ctx, _ = fit(method, data=data, settings=settings)
    after = conv.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics too
    assert method._recon == "mse" and ctx.model.decoder_out.out_features == 128


def test_internal_without_extractor_is_an_error():
    with pytest.raises(ConfigError, match="extractor"):
        bir(internal=True)
    with pytest.raises(ConfigError, match="gate_prop"):
        bir(gate_prop=1.0)


def test_reconstruction_loss_follows_the_input_range():
    m_img, m_tab = bir(), bir()
    fit(m_img, data=tiny_images(), settings=TrainSettings(iters=2, batch_size=8, hidden=(8,)))
    fit(m_tab, settings=TrainSettings(iters=2, batch_size=8, hidden=(8,)))
    assert m_img._recon == "bce" and m_tab._recon == "mse"


def test_state_dict_round_trip_restores_the_teacher():
    method = bir()
    _, ctx, _ = fit(method)
    state = method.state_dict()
    fresh = bir()
    protocol = split_protocol(blobs(n_classes=4), "class", 2)
    ctx2 = prepare(fresh, make_context(protocol, SETTINGS, 0))
    ctx2.model.load_state_dict(ctx.model.state_dict())
    fresh.load_state_dict(state, ctx2)
    for a, b in zip(method.previous.parameters(), fresh.previous.parameters()):
        assert torch.equal(a, b) and not b.requires_grad


def test_same_seed_same_result():
    a, _, _ = fit(bir(), seed=2)
    b, _, _ = fit(bir(), seed=2)
    np.testing.assert_array_equal(a, b)


def test_sample_grid_writes_images_and_feature_maps(tmp_path):
    method = bir()
    settings = TrainSettings(iters=5, batch_size=8, hidden=(16,))
    _, ctx, _ = fit(method, data=tiny_images(), settings=settings)
    path = sample_grid(method, ctx, tmp_path / "grid.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    internal = bir(internal=True, extractor=ConvExtractor(1, layers=1, channels=2),
                   conditional=False, gating=False)
    _, ctx, _ = fit(internal, data=tiny_images(), settings=settings)
    assert sample_grid(internal, ctx, tmp_path / "features.png").stat().st_size > 0


@pytest.mark.parametrize("component", BIR_COMPONENTS)
def test_each_ablation_entry_switches_exactly_its_component(component):
    # Without an extractor internal replay is off in every entry (there is nothing to replay).
    cfg = MethodConfig(z_dim=4)
    removed = build_method(f"bir-no-{component}", cfg)
    added = build_method(f"gr-plus-{component}", cfg)
    for other in BIR_COMPONENTS:
        expected_removed = other != component and other != "internal"
        expected_added = other == component and other != "internal"
        assert getattr(removed, other) is expected_removed, (component, other)
        assert getattr(added, other) is expected_added, (component, other)


def test_image_mosaic_places_each_sample_in_its_tile_with_white_gaps():
    from birram.methods.replay_pictures import MOSAIC_GAP, image_mosaic

    shape = (1, 3, 2)  # channels, height, width
    first = torch.full((2, 6), 0.25)  # two samples of class 0
    second = torch.full((1, 6), 0.75)  # one sample of class 1: its second tile stays empty
    mosaic = image_mosaic([first, second], shape, per_class=2)
    tile_h, tile_w = 3 + MOSAIC_GAP, 2 + MOSAIC_GAP
    assert mosaic.shape == (2 * tile_h - MOSAIC_GAP, 2 * tile_w - MOSAIC_GAP)
    assert (mosaic[0:3, 0:2] == 0.25).all() and (mosaic[0:3, tile_w : tile_w + 2] == 0.25).all()
    assert (mosaic[tile_h : tile_h + 3, 0:2] == 0.75).all()
    assert (mosaic[tile_h : tile_h + 3, tile_w : tile_w + 2] == 1.0).all()  # no sample
    assert (mosaic[3:tile_h, :] == 1.0).all()  # the gap between the rows
    rgb = image_mosaic([torch.rand(1, 3 * 3 * 2) * 3], (3, 3, 2), per_class=1)
    assert rgb.shape == (3, 2, 3) and rgb.max() <= 1.0  # clamped to [0, 1]
