"""The switches that reproduce the reference code where birram differs (docs/reference_parity.md):
each one's defining property, and defaults that keep birram's own choices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from birram.config import MethodConfig, build_config
from birram.data.protocols import split_protocol
from birram.methods.base import Batch, TrainSettings, distillation_loss, masked
from birram.methods.registry import build_method
from birram.metrics import summarise
from birram.models.conv import ConvExtractor
from birram.models.gates import fixed_gate_masks
from birram.run import run_experiment
from birram.train import make_context, prepare, train_continual
from tests.conftest import blobs

TINY = TrainSettings(iters=20, batch_size=16, lr=1e-2, hidden=(16,))


def test_defaults_are_birrams_choices():
    cfg = MethodConfig()
    assert cfg.distill_t_squared and cfg.gate_draw == "exact"
    assert cfg.bir_si_params == "all" and cfg.bir_si_c is None and cfg.bir_si_gate_prop is None
    assert cfg.task_replay_heads == "one"


def test_distillation_t_squared_scales_the_loss_by_t_squared():
    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    for t in (1.0, 2.0, 4.0):
        scaled = distillation_loss(student, teacher, t)
        plain = distillation_loss(student, teacher, t, t_squared=False)
        assert float(plain) > 0
        assert float(scaled) == pytest.approx(t * t * float(plain), rel=1e-6)


def test_independent_gates_switch_off_a_binomial_number_of_units():
    units, contexts, p = 400, 200, 0.8
    gen = torch.Generator().manual_seed(0)
    exact = fixed_gate_masks(contexts, units, p, gen)
    assert ((exact == 0).sum(1) == round(p * units)).all()
    independent = fixed_gate_masks(contexts, units, p, gen, independent=True)
    off = (independent == 0).sum(1).float()
    assert off.unique().numel() > 5  # the count varies from context to context
    sd = (units * p * (1 - p)) ** 0.5
    assert abs(float(off.mean()) - p * units) < 4 * sd / contexts ** 0.5
    assert abs(float(off.std()) - sd) < 0.25 * sd  # the binomial spread


def test_gate_draw_reaches_bir_decoder_and_xdg():
    cfg = MethodConfig(gate_draw="independent", z_dim=4)
    protocol = split_protocol(blobs(n_classes=4), "task", 2)
    bir = build_method("bir", cfg)
    ctx = prepare(bir, make_context(protocol, TrainSettings(hidden=(300,)), 0))
    masks = ctx.model.decoder_hidden[0].masks
    assert (masks == 0).sum(1).unique().numel() > 1
    xdg = build_method("xdg", cfg)
    ctx = prepare(xdg, make_context(protocol, TrainSettings(hidden=(300,)), 0))
    assert (ctx.model.gates(0) == 0).sum(1).unique().numel() > 1


def trained_bir_si(cfg: MethodConfig):
    method = build_method("bir-si", cfg)
    protocol = split_protocol(blobs(n_classes=4), "class", 2)
    ctx = prepare(method, make_context(protocol, TINY, 0))
    train_continual(method, ctx)
    return method, ctx


def test_bir_si_on_encoder_and_classifier_leaves_the_decoder_unpenalised():
    cfg = MethodConfig(bir_si_params="encoder-classifier", bir_si_c=1e3, bir_si_gate_prop=0.6,
                       z_dim=4)
    method, ctx = trained_bir_si(cfg)
    si = method.regularisers[0]
    assert si.strength == 1e3 and method.gate_prop == 0.6
    model = ctx.model
    with torch.no_grad():  # move every parameter away from its anchor
        for p in model.parameters():
            p.add_(0.1)
    model.zero_grad()
    penalty = si.penalty(ctx)
    assert penalty is not None and float(penalty.detach()) > 0
    penalty.backward()
    covered = {id(p) for p in [*model.body.parameters(), *model.head.parameters()]}
    for name, p in model.named_parameters():
        grad = p.grad
        if id(p) in covered:
            continue
        assert grad is None or float(grad.abs().sum()) == 0, name  # decoder, prior, mu/logvar
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0
               for p in model.body.parameters())


def test_bir_si_by_default_penalises_every_vae_parameter_with_si_c():
    method, ctx = trained_bir_si(MethodConfig(si_c=0.5, gate_prop=0.8, z_dim=4))
    si = method.regularisers[0]
    assert si.strength == 0.5 and method.gate_prop == 0.8
    n_trainable = sum(p.numel() for p in ctx.model.parameters() if p.requires_grad)
    assert si.anchor is not None and si.anchor.numel() == n_trainable


def previous_heads_setup(name: str, heads: str):
    """A method after two of three task-IL tasks, and a batch of the third."""
    cfg = MethodConfig(task_replay_heads=heads, z_dim=4)
    method = build_method(name, cfg)
    protocol = split_protocol(blobs(n_classes=6), "task", 3)
    ctx = prepare(method, make_context(protocol, TINY, 0))
    for t in range(2):
        ctx.task = t
        method.before_task(ctx)
        method.after_task(ctx, method.training_set(ctx))
    ctx.task = 2
    task = protocol.tasks[2]
    ids = torch.full((8,), 2)
    batch = Batch(task.x_train[:8], task.y_train[:8], ids, ctx.sample_mask(ids))
    return method, ctx, batch


def test_lwf_every_head_averages_the_distillation_over_previous_heads():
    method, ctx, batch = previous_heads_setup("lwf", "all")
    loss, _ = method.replay_loss(ctx, batch)
    with torch.no_grad():
        teacher, student = method.previous(batch.x), ctx.model(batch.x)
    expected = np.mean([float(distillation_loss(masked(student, ctx.masks[h]),
                                                masked(teacher, ctx.masks[h]), 2.0))
                        for h in (0, 1)])
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)


def test_rtf_every_head_scores_each_replayed_sample_with_every_previous_head():
    method, ctx, _ = previous_heads_setup("rtf", "all")
    replay = method._replay(ctx, 8)
    student = torch.randn(replay.x.shape[0], ctx.protocol.n_outputs,
                          generator=torch.Generator().manual_seed(1))
    loss = method._prediction_loss(ctx, student, replay)
    expected = np.mean([float(distillation_loss(masked(student, ctx.masks[h]),
                                                masked(replay.logits, ctx.masks[h]), 2.0))
                        for h in (0, 1)])
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    one, ctx_one, _ = previous_heads_setup("rtf", "one")
    assert not one._scores_every_head(ctx_one)
    conditional, ctx_c, _ = previous_heads_setup("bir", "all")
    assert not conditional._scores_every_head(ctx_c)  # a conditional generator: own head


def test_linear_last_block_ends_in_a_plain_convolution():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    default = ConvExtractor(3, layers=3, channels=4)
    assert isinstance(default.layers[-1], torch.nn.ReLU) and bool((default(x) >= 0).all())
    linear = ConvExtractor(3, layers=3, channels=4, last_block="linear")
    last = linear.layers[-1]
    assert isinstance(last, torch.nn.Conv2d) and last.bias is not None
    assert bool((linear(x) < 0).any())
    assert linear.config["last_block"] == "linear"
    # The rest is the default architecture: the same parameters but the last batch norm.
    torch.manual_seed(0)
    a = ConvExtractor(3, layers=3, channels=4)
    torch.manual_seed(0)
    b = ConvExtractor(3, layers=3, channels=4, last_block="linear")
    torch.testing.assert_close(a.layers[0].weight, b.layers[0].weight)


def test_linear_last_block_survives_save_and_load(tmp_path):
    from birram.pretrain import load_extractor, save_extractor

    module = ConvExtractor(3, layers=2, channels=4, last_block="linear")
    save_extractor(module, tmp_path / "e.pt")
    loaded = load_extractor(tmp_path / "e.pt")
    assert isinstance(loaded.module.layers[-1], torch.nn.Conv2d)


def test_forward_transfer_is_reported_only_outside_class_il(tmp_path):
    r, b = np.array([[0.9, 0.0], [0.5, 0.9]]), np.array([0.5, 0.25])
    assert summarise(r, b, fwt_defined=False).fwt is None
    assert summarise(r, b).fwt == pytest.approx(-0.25)
    for scenario in ("class", "task"):
        cfg = build_config({"methods": ["none"], "seeds": [1], "scenario": scenario,
                            "data": {"n_tasks": 2},
                            "train": {"iters": 10, "batch_size": 16, "hidden": [16]}})
        out = run_experiment(cfg, tmp_path / scenario, data=blobs(n_classes=4))
        fwt = out.results[0].metrics["fwt"]
        fwt_mean = out.summary["methods"]["none"]["fwt_mean"]
        if scenario == "class":
            assert fwt is None and fwt_mean is None
            assert (tmp_path / scenario / "results.csv").read_text().splitlines()[1] \
                .split(",")[5] == ""
        else:
            assert isinstance(fwt, float) and fwt_mean == pytest.approx(fwt)
