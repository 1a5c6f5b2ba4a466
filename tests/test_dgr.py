"""Deep generative replay: a classifier plus a separately optimised VAE generator."""

import numpy as np
import pytest
import torch

from birram.data.protocols import split_protocol
from birram.methods.generative import DGR
from birram.models.mlp import Classifier
from birram.models.vae import ReplayVAE
from birram.train import make_context, prepare, train_continual
from tests.test_bir import SETTINGS, blobs, fit


@pytest.mark.parametrize("distill", [False, True])
def test_dgr_runs_and_trains_its_generator(distill):
    method = DGR(distill=distill, z_dim=4, generator_hidden=[24])
    protocol = split_protocol(blobs(n_classes=4), "class", 2)
    ctx = prepare(method, make_context(protocol, SETTINGS, 0))
    assert isinstance(ctx.model, Classifier) and isinstance(method.generator, ReplayVAE)
    assert method.generator.prior is None and not method.generator.gated
    before = [p.clone() for p in method.generator.parameters()]
    state = train_continual(method, ctx)
    r = np.array([rec.accuracies for rec in state.records])
    assert np.isfinite(r).all() and r[1, 1] > 0.8
    assert all(not torch.equal(a, b) for a, b in zip(before, method.generator.parameters()))
    assert method.generator.body[0].out_features == 24
    logs = state.records[1].final_losses
    assert {"loss_generator", "loss_replay", "loss_replay_pred"} <= set(logs)
    assert method.name == ("dgr-distill" if distill else "dgr")


def test_dgr_generator_parameters_stay_out_of_the_main_optimiser():
    method = DGR(z_dim=4)
    _, ctx, _ = fit(method)
    main = {id(p) for group in ctx.optimizer.param_groups for p in group["params"]}
    assert not main & {id(p) for p in method.generator.parameters()}
    assert all(p.grad is None for p in method.generator.parameters())  # zeroed after stepping


def test_dgr_state_dict_round_trip():
    method = DGR(z_dim=4)
    _, ctx, _ = fit(method)
    fresh = DGR(z_dim=4)
    protocol = split_protocol(blobs(n_classes=4), "class", 2)
    ctx2 = prepare(fresh, make_context(protocol, SETTINGS, 0))
    fresh.load_state_dict(method.state_dict(), ctx2)
    for a, b in zip(method.previous_generator.parameters(),
                    fresh.previous_generator.parameters()):
        assert torch.equal(a, b)
    assert fresh.gen_optimizer.state_dict()["state"]
