"""Deploying birram's models on a chip, and the chip helpers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from birram.errors import ConfigError
from birram.hardware import (
    CrossbarLinear,
    age_model,
    chip_preset,
    chip_summary,
    crossbar_layers,
    deploy,
    ledger_of,
    program_model,
    set_mode,
)
from birram.hardware.ideal_cells import IdealCells
from birram.methods.base import frozen_copy
from birram.models.conv import FrozenExtractor
from birram.models.mlp import Classifier
from birram.models.vae import ReplayVAE


def plain_linears(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if type(m) is nn.Linear]


def vae() -> ReplayVAE:
    return ReplayVAE(30, 30, [24, 16], 6, torch.Generator().manual_seed(0), n_classes=5,
                     n_modes=5, n_contexts=5, gate_prop=0.5)


def test_deploy_replaces_every_linear_of_the_classifier_and_keeps_its_output() -> None:
    torch.manual_seed(0)
    model = Classifier((1, 6, 6), 4, [20, 12])
    reference = copy.deepcopy(model)
    params = [id(p) for p in model.parameters()]
    deploy(model, "ideal")
    assert not plain_linears(model) and len(crossbar_layers(model)) == 3
    assert [id(p) for p in model.parameters()] == params  # same Parameter objects
    assert set(reference.state_dict()) <= set(model.state_dict())
    x = torch.rand(8, 1, 6, 6)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), rtol=1e-5, atol=1e-6)


def test_deploy_reaches_every_linear_of_the_gated_vae() -> None:
    model = vae()
    reference = copy.deepcopy(model)
    n_linear = len(plain_linears(model))
    deploy(model, "ideal")
    assert not plain_linears(model) and len(crossbar_layers(model)) == n_linear == 8
    assert all(isinstance(g.linear, CrossbarLinear) for g in model.decoder_hidden)
    x, z = torch.rand(4, 30), torch.randn(4, 6)
    context = torch.softmax(torch.randn(4, 5), 1)
    with torch.no_grad():
        for ours, theirs in zip(model.encode(x), reference.encode(x)):
            assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6)
        assert torch.allclose(model(x), reference(x), rtol=1e-5, atol=1e-6)
        assert torch.allclose(model.decode(z, context), reference.decode(z, context),
                              rtol=1e-5, atol=1e-6)


def test_frozen_extractors_stay_digital() -> None:
    extractor = FrozenExtractor(nn.Sequential(nn.Flatten(), nn.Linear(36, 10)))
    model = Classifier((1, 6, 6), 3, [8], extractor=extractor)
    deploy(model, "ideal")
    assert len(plain_linears(model)) == 1 and len(crossbar_layers(model)) == 2


def test_helpers_program_switch_age_and_summarise() -> None:
    model = Classifier((12,), 3, [10])
    cfg = chip_preset("rram-4bit", cells="ideal", read_noise=False)
    deploy(model, cfg, IdealCells(n_levels=16), mode="digital")
    assert all(layer.mode == "digital" for layer in crossbar_layers(model))
    assert program_model(model) == 0  # deploy programmed already
    set_mode(model, "analog")
    with torch.no_grad():
        model(torch.rand(5, 12))
    age_model(model, 3600.0, temp_k=350.0)
    assert all(float(layer.clock_s) == 3600.0 for layer in crossbar_layers(model))
    summary = chip_summary(model)
    assert summary["devices"] == 2 * (12 * 10 + 10 * 3)
    assert summary["tiles"] == 2 and summary["layers"] == 2
    assert summary["writes_total"] == ledger_of(model).totals()["writes"] > 0
    assert summary["writes_max_per_device"] == 1
    assert summary["energy"]["vectors"] == 10
    assert summary["analog_energy_per_inference_j"] > 0
    assert summary["config"]["n_levels"] == 16


def test_deployed_copies_share_the_chip_ledger() -> None:
    model = deploy(Classifier((12,), 3, [10]), "ideal")
    previous = frozen_copy(model)
    assert ledger_of(previous) is ledger_of(model)
    with torch.no_grad():
        previous(torch.rand(4, 12))
    assert ledger_of(model).totals()["vectors"] == 8  # 4 vectors through 2 layers


def test_deploy_checks_its_inputs() -> None:
    model = deploy(Classifier((12,), 3, [10]), "ideal")
    with pytest.raises(ConfigError, match="already deployed"):
        deploy(model, "ideal")
    with pytest.raises(ConfigError, match="deploy it first"):
        set_mode(Classifier((12,), 3, [10]), "analog")
    with pytest.raises(ConfigError, match="preset"):
        deploy(Classifier((12,), 3, [10]), "rram-8bit")
    with pytest.raises(ConfigError, match="n_levels"):
        deploy(Classifier((12,), 3, [10]), chip_preset("ideal", n_levels=32),
               IdealCells(n_levels=16))


def test_deploy_copy_leaves_the_original_alone() -> None:
    model = Classifier((12,), 3, [10])
    deployed = deploy(model, "ideal", copy=True)
    assert plain_linears(model) and not plain_linears(deployed)


def test_same_seed_same_deployed_chip() -> None:
    torch.manual_seed(0)
    model = Classifier((12,), 3, [10])
    cfg = chip_preset("rram-noisy", cells="ideal", seed=5)
    a = deploy(model, cfg, IdealCells(n_levels=8, read_noise_sigma=0.1), copy=True)
    b = deploy(model, cfg, IdealCells(n_levels=8, read_noise_sigma=0.1), copy=True)
    x = torch.rand(6, 12)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    for la, lb in zip(crossbar_layers(a), crossbar_layers(b)):
        assert torch.equal(la.stuck, lb.stuck) and torch.equal(la.g, lb.g)


def test_state_dict_carries_the_chip_state() -> None:
    cfg = chip_preset("rram-noisy", cells="ideal")
    a = deploy(Classifier((12,), 3, [10]), cfg.replace(seed=1), IdealCells(n_levels=8))
    b = deploy(Classifier((12,), 3, [10]), cfg.replace(seed=2), IdealCells(n_levels=8))
    b.load_state_dict(a.state_dict())
    for la, lb in zip(crossbar_layers(a), crossbar_layers(b)):
        assert torch.equal(la.g, lb.g) and torch.equal(la.stuck, lb.stuck)
        assert torch.equal(la.effective_weight(), lb.effective_weight())


def test_hardware_aware_training_step_then_reprogramming() -> None:
    torch.manual_seed(0)
    model = deploy(Classifier((12,), 3, [10]), chip_preset("rram-4bit", cells="ideal"),
                   IdealCells(n_levels=16, read_noise_sigma=0.05))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    before = [p.detach().clone() for p in model.parameters()]
    loss = nn.functional.cross_entropy(model(torch.rand(16, 12)), torch.randint(0, 3, (16,)))
    loss.backward()
    optimiser.step()
    assert all(not torch.equal(p, q) for p, q in zip(model.parameters(), before))
    writes = program_model(model)
    assert 0 < writes < sum(layer.n_devices for layer in crossbar_layers(model))
