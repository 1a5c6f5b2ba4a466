"""Seeds trained together as one stacked model give what each seed's own run gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from birram.config import MethodConfig
from birram.data.protocols import split_protocol
from birram.methods.base import TrainSettings
from birram.methods.registry import build_method
from birram.models.gates import GatedLinear
from birram.models.prior import GaussianMixturePrior
from birram.models.stacked import NotStackable, copy_seed, stack_models
from birram.seeds import SeedRows
from birram.train import make_context, prepare, train_continual
from birram.train_seeds import stack_group, train_stacked, why_not_stacked
from tests.conftest import blobs

SETTINGS = TrainSettings(iters=25, batch_size=16, lr=1e-2, hidden=(24, 24))
SEEDS = (1, 2, 3)


def T_SETTINGS():
    return SETTINGS


CFG = MethodConfig(ewc_lambda=100.0, ewc_fisher_samples=30, si_c=1.0, z_dim=4,
                   er_samples_per_class=5)


def protocol(scenario: str = "class", n_tasks: int = 3):
    return split_protocol(blobs(n_classes=6, per_class=20), scenario, n_tasks)


def separate(name: str, scenario: str, seed: int):
    method = build_method(name, CFG)
    ctx = prepare(method, make_context(protocol(scenario), T_SETTINGS(), seed))
    state = train_continual(method, ctx)
    return np.array([r.accuracies for r in state.records]), ctx.model.state_dict()


def together(name: str, scenario: str):
    group = stack_group(lambda: build_method(name, CFG),
                        {s: protocol(scenario) for s in SEEDS}, T_SETTINGS())
    train_stacked(group)
    return [(np.array([r.accuracies for r in run.state.records]), run.ctx.model.state_dict())
            for run in group.runs]


@pytest.mark.parametrize("name,scenario", [
    ("none", "class"), ("joint", "class"), ("ewc", "class"), ("online-ewc", "task"),
    ("si", "domain"), ("lwf", "task"), ("dgr", "class"), ("bir", "class"), ("bir-si", "class"),
    ("rtf", "task"), ("bir", "domain"),
])
def test_stacked_seeds_follow_their_own_runs(name, scenario):
    stacked = together(name, scenario)
    for seed, (acc, params) in zip(SEEDS, stacked):
        own_acc, own_params = separate(name, scenario, seed)
        # Batched and single matrix products round differently, and Adam magnifies that on
        # gradients near zero (a step of lr * g / (|g| + eps)): a stray weight may differ by a
        # fraction of the learning rate and drift from there, but wrong draws or a mixed-up seed
        # would move every weight by its own size. Test sets hold 20 samples per task:
        # at most one prediction may flip.
        np.testing.assert_allclose(acc, own_acc, atol=1.01 / 20)
        assert np.abs(acc - own_acc).mean() < 0.01
        for key, value in own_params.items():
            diff = float((params[key] - value).norm())
            assert diff <= 1e-2 * max(float(value.norm()), 1.0), (key, diff)


def test_different_seeds_in_one_stack_stay_different():
    (a, pa), (b, pb), _ = together("bir", "class")
    key = next(iter(pa))
    assert not torch.equal(pa[key], pb[key])


def test_stacked_layers_compute_each_seed_with_its_own_weights():
    gen = torch.Generator().manual_seed(0)
    gated = [GatedLinear(3, 5, 4, 0.5, gen) for _ in range(2)]
    priors = [GaussianMixturePrior(4, 3, gen) for _ in range(2)]
    stacked_gate, stacked_prior = stack_models(gated), stack_models(priors)
    x, w = torch.randn(2 * 7, 3), torch.softmax(torch.randn(2 * 7, 4), 1)
    modes = torch.randint(4, (14,))
    out, logp = stacked_gate(x, w), stacked_prior.log_prob(x, torch.log(w))
    z = stacked_prior.sample(modes, x)
    for s in range(2):
        rows = slice(7 * s, 7 * s + 7)
        torch.testing.assert_close(out[rows], gated[s](x[rows], w[rows]))
        torch.testing.assert_close(logp[rows], priors[s].log_prob(x[rows], torch.log(w[rows])))
        torch.testing.assert_close(z[rows], priors[s].sample(modes[rows], x[rows]))
    plain = GatedLinear(3, 5, 4, 0.5, gen)
    copy_seed(stacked_gate, plain, 1)
    assert torch.equal(plain.masks, gated[1].masks)
    assert torch.equal(plain.linear.weight, gated[1].linear.weight)


def test_seed_rows_keep_each_seed_in_its_block():
    rows = SeedRows([torch.Generator().manual_seed(s) for s in (1, 2)])
    a = torch.arange(6).view(6, 1)  # seed 0: 0, 1, 2; seed 1: 3, 4, 5
    b = torch.arange(10, 14).view(4, 1)
    joined = rows.cat([a, b])
    assert joined.squeeze(1).tolist() == [0, 1, 2, 10, 11, 3, 4, 5, 12, 13]
    assert rows.head(joined, 3).squeeze(1).tolist() == [0, 1, 2, 3, 4, 5]
    assert rows.tail(joined, 3).squeeze(1).tolist() == [10, 11, 12, 13]
    drawn = rows.randn(3, 2)
    assert torch.equal(drawn[3:], torch.randn(3, 2, generator=torch.Generator().manual_seed(2)))
    picked = rows.subset(10, 4)
    assert (picked[:4] < 10).all() and (picked[4:] >= 10).all()


def test_methods_without_a_stacked_form_say_why():
    reason = why_not_stacked(build_method("er", CFG), protocol(), 3)
    assert reason is not None and "er" in reason
    assert why_not_stacked(build_method("bir", CFG), protocol(), 3) is None
    with pytest.raises(NotStackable, match="er"):
        stack_group(lambda: build_method("er", CFG), {s: protocol() for s in SEEDS}, SETTINGS)


def experiment(methods, n_tasks=2, **train):
    from birram.config import build_config

    return build_config({"methods": methods, "seeds": [1, 2], "scenario": "class",
                         "data": {"n_tasks": n_tasks},
                         "train": {"iters": 20, "batch_size": 16, "lr": 0.01, "hidden": [16],
                                   **train}})


def test_an_experiment_stacks_what_it_can_and_says_so(tmp_path):
    from birram.run import run_experiment

    result = run_experiment(experiment(["bir", "er"]), tmp_path, data=blobs(n_classes=4))
    how = result.summary["seed_batching"]
    assert how["bir"] == "trained together: seeds 1, 2"
    assert how["er"].startswith("one seed at a time") and "er" in how["er"]
    for seed in (1, 2):
        metrics = (tmp_path / "bir" / f"seed-{seed}" / "metrics.json").read_text()
        assert '"trained_with_seeds": [\n    1,\n    2\n  ]' in metrics
        assert (tmp_path / "bir" / f"seed-{seed}" / "model.safetensors").exists()
    separate_run = run_experiment(experiment(["bir"], batch_seeds=False), tmp_path / "sep",
                                  data=blobs(n_classes=4))
    assert "seed_batching" not in separate_run.summary
    stacked = [r for r in result.results if r.method == "bir"]
    for a, b in zip(stacked, separate_run.results):
        np.testing.assert_allclose(a.accuracy_matrix, b.accuracy_matrix, atol=0.05)


def test_methods_in_parallel_processes_give_what_one_process_gives(tmp_path):
    from birram.run import run_experiment

    cfg = experiment(["none", "si", "lwf"])
    one = run_experiment(cfg, tmp_path / "one", data=blobs(n_classes=4))
    two = run_experiment(experiment(["none", "si", "lwf"], workers=2), tmp_path / "two",
                         data=blobs(n_classes=4))
    assert [(r.method, r.seed) for r in one.results] == [(r.method, r.seed) for r in two.results]
    for a, b in zip(one.results, two.results):
        np.testing.assert_array_equal(a.accuracy_matrix, b.accuracy_matrix)
    assert one.summary["seed_batching"] == two.summary["seed_batching"]


def _interrupt_after_checkpoints(monkeypatch, n: int) -> None:
    """Stop a stacked group right after its ``n``-th task-end checkpoint."""
    import birram.train_seeds as train_seeds

    original, calls = train_seeds.save_group_checkpoint, []

    def save_then_stop(*args, **kwargs):
        original(*args, **kwargs)
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_seeds, "save_group_checkpoint", save_then_stop)


@pytest.mark.parametrize("name", ["bir", "si"])
def test_an_interrupted_group_resumes_after_its_last_task(tmp_path, monkeypatch, name):
    from birram.checkpoint import load_state
    from birram.run import run_experiment

    cfg = experiment([name], n_tasks=3)
    _interrupt_after_checkpoints(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path / "cut", data=blobs(n_classes=6))
    monkeypatch.undo()
    ckpt = tmp_path / "cut" / name / "checkpoint-seeds-1-2.safetensors"
    saved = load_state(ckpt)
    assert [len(run["records"]) for run in saved["runs"]] == [1, 1]
    resumed = run_experiment(cfg, tmp_path / "cut", data=blobs(n_classes=6))
    assert not ckpt.exists()  # every seed is sealed: nothing left to resume
    whole = run_experiment(cfg, tmp_path / "whole", data=blobs(n_classes=6))
    for seed, a, b in zip((1, 2), resumed.results, whole.results):
        np.testing.assert_array_equal(a.accuracy_matrix, b.accuracy_matrix)
        # The first task came from the checkpoint, not from training it again.
        metrics = (tmp_path / "cut" / name / f"seed-{seed}" / "metrics.json").read_text()
        assert repr(saved["runs"][seed - 1]["records"][0]["seconds"]) in metrics


def test_a_group_checkpoint_for_other_seeds_or_damaged_is_refused(tmp_path, monkeypatch):
    from birram.errors import DataError
    from birram.train_seeds import load_group_checkpoint, save_group_checkpoint

    group = stack_group(lambda: build_method("bir", CFG), {s: protocol() for s in SEEDS},
                        SETTINGS)
    train_stacked(group, checkpoint=tmp_path / "g.safetensors")
    other = stack_group(lambda: build_method("bir", CFG), {s: protocol() for s in (1, 2)},
                        SETTINGS)
    with pytest.raises(DataError, match=r"written for seeds \[1, 2, 3\], not \[1, 2\]"):
        load_group_checkpoint(tmp_path / "g.safetensors", other)
    data = bytearray((tmp_path / "g.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x10
    (tmp_path / "g.safetensors").write_bytes(bytes(data))
    fresh = stack_group(lambda: build_method("bir", CFG), {s: protocol() for s in SEEDS},
                        SETTINGS)
    with pytest.raises(DataError, match="damaged"):
        load_group_checkpoint(tmp_path / "g.safetensors", fresh)
    save_group_checkpoint(tmp_path / "h.safetensors", group)
    load_group_checkpoint(tmp_path / "h.safetensors", fresh)  # a sound one loads
    assert [len(r.state.records) for r in fresh.runs] == [3, 3, 3]


def test_every_preset_trains_its_seeds_together_unless_told_not_to():
    # Measured on split Fashion-MNIST's full protocol (README): stacked seeds differ from
    # their separate runs by rounding chaos only, as much as a rounding-only change does.
    from birram.config import available_presets, resolve

    names = available_presets()
    assert "split-fashion-class" in names and "rram-demo" in names
    for preset in names:
        assert resolve(preset, {}).train.batch_seeds is True, preset
    assert resolve("split-fashion-class", {"train": {"batch_seeds": False}}) \
        .train.batch_seeds is False
