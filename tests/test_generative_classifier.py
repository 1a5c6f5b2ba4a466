from dataclasses import replace

import numpy as np
import pytest
import torch

from birram.config import MethodConfig, build_config
from birram.data.protocols import split_protocol
from birram.data.stream import StreamSpec
from birram.errors import ConfigError
from birram.methods.base import Batch, StreamProgress, TrainSettings
from birram.methods.generative_classifier import GenerativeClassifier
from birram.methods.registry import build_method
from birram.models.generative_classifier import ClassVAEs, importance_log_likelihood
from birram.train import LoopHooks, make_context, prepare, train_continual
from tests.conftest import blobs, interrupted_then_resumed

SETTINGS = TrainSettings(iters=150, batch_size=32, lr=1e-2)


def gen_classifier(samples: int = 20) -> GenerativeClassifier:
    return GenerativeClassifier(hidden=[16], z_dim=2, importance_samples=samples)


def fit(method: GenerativeClassifier, scenario: str = "class", n_tasks: int = 2,
        settings: TrainSettings = SETTINGS) -> tuple[np.ndarray, object]:
    protocol = split_protocol(blobs(n_classes=4, per_class=40), scenario, n_tasks)
    ctx = prepare(method, make_context(protocol, settings, 0))
    state = train_continual(method, ctx)
    return np.array([r.accuracies for r in state.records]), ctx


def test_training_a_later_task_leaves_earlier_classes_vaes_bit_for_bit_unchanged():
    method = gen_classifier()
    protocol = split_protocol(blobs(n_classes=4, per_class=40), "class", 2)
    ctx = prepare(method, make_context(protocol, TrainSettings(iters=30, batch_size=16), 0))
    snapshots: list[list[dict[str, torch.Tensor]]] = []
    original_after_task = method.after_task

    def snapshot_then_continue(ctx, data):  # type: ignore[no-untyped-def]
        snapshots.append([{**{k: v.clone() for k, v in vae.state_dict().items()},
                           "log_scale": ctx.model.log_scale(c).detach().clone()}
                          for c, vae in enumerate(ctx.model.vaes)])
        original_after_task(ctx, data)

    method.after_task = snapshot_then_continue  # type: ignore[method-assign]
    train_continual(method, ctx)
    after_first, after_second = snapshots
    for c in protocol.tasks[0].outputs:  # task 1's classes: untouched by task 2
        for name, value in after_first[c].items():
            assert torch.equal(value, after_second[c][name]), (c, name)
    for c in protocol.tasks[1].outputs:  # task 2's classes did learn
        assert any(not torch.equal(v, after_second[c][k]) for k, v in after_first[c].items())


def test_importance_sampled_estimate_tightens_the_elbo_and_shrinks_its_variance():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = ClassVAEs(1, 4, [8], 3, 1, "gaussian", gen)
    vae = model.vaes[0]
    x = torch.randn(16, 4, generator=gen)
    repeats = 400

    def estimates(samples: int) -> torch.Tensor:  # [repeats, N]
        with torch.no_grad():
            return torch.stack([
                importance_log_likelihood(vae, x, torch.randn(samples, 16, 3, generator=gen),
                                          "gaussian") for _ in range(repeats)])

    one, many = estimates(1), estimates(64)
    elbo = one.mean(0)  # the one-sample estimate is unbiased for the ELBO
    # IWAE bound: E[S-sample estimate] >= ELBO for every input (up to sampling error), and
    # strictly on average here (the untrained encoder is not the posterior).
    stderr = one.std(0) / repeats ** 0.5
    assert (many.mean(0) > elbo - 2 * stderr).all()
    assert (many.mean(0) - elbo).mean() > 3 * stderr.mean()
    assert (many.var(0) < one.var(0)).all()
    # Fixed-noise evaluation (forward) agrees with the function it wraps.
    torch.testing.assert_close(model(x)[:, 0],
                               importance_log_likelihood(vae, x, model.importance_noise,
                                                         "gaussian"))


def test_class_il_on_separated_blobs_remembers_every_class():
    method = gen_classifier()
    r, ctx = fit(method)
    assert r[0, 0] >= 0.9
    assert r[-1].min() >= 0.9  # after the last task, every task (old ones included)
    scores = method.predict(ctx, ctx.protocol.tasks[0].x_test)
    assert scores.shape == (ctx.protocol.tasks[0].x_test.shape[0], 4)
    assert torch.isfinite(scores).all()


def test_task_il_runs_with_the_tasks_own_classes():
    r, _ = fit(gen_classifier(), scenario="task")
    assert r[-1].min() >= 0.9


def test_predict_splits_large_batches_without_changing_scores(monkeypatch):
    import birram.methods.generative_classifier as module

    method = gen_classifier(samples=8)
    _, ctx = fit(method, settings=TrainSettings(iters=5, batch_size=16))
    x = ctx.protocol.tasks[0].x_test
    whole = method.predict(ctx, x)
    monkeypatch.setattr(module, "ROWS_PER_PASS", 8 * 7)  # passes of 7 inputs
    torch.testing.assert_close(method.predict(ctx, x), whole)


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path):
    cfg = build_config({"methods": ["gen-classifier"], "seeds": [1], "scenario": "class",
                        "data": {"n_tasks": 2},
                        "train": {"iters": 30, "batch_size": 16, "lr": 0.01, "hidden": [8]},
                        "method": {"gc_hidden": [16], "gc_z_dim": 2,
                                   "gc_importance_samples": 10}})
    full, resumed = interrupted_then_resumed(cfg, tmp_path,
                                             lambda: blobs(n_classes=4))
    for a, b in zip(full.results, resumed.results):
        np.testing.assert_array_equal(a.accuracy_matrix, b.accuracy_matrix)


def test_domain_il_is_refused_with_a_config_error():
    method = build_method("gen-classifier", MethodConfig())
    protocol = split_protocol(blobs(n_classes=4), "domain", 2)
    with pytest.raises(ConfigError, match="domain"):
        prepare(method, make_context(protocol, SETTINGS, 0))


@pytest.mark.parametrize("field,value", [("gc_z_dim", 0), ("gc_importance_samples", 0),
                                         ("gc_hidden", []), ("gc_hidden", [0])])
def test_config_bounds(field, value):
    with pytest.raises(ConfigError, match=field):
        build_config({"method": {field: value}})


def test_exported_program_scores_like_the_method(tmp_path):
    from birram.export import export_model, load_exported

    method = gen_classifier(samples=8)
    _, ctx = fit(method, settings=TrainSettings(iters=5, batch_size=16))
    module = load_exported(export_model(method, ctx, tmp_path / "model.pt2"))
    for batch in (1, 7, 40):  # the batch dimension stays dynamic
        x = ctx.protocol.tasks[1].x_test[:batch]
        torch.testing.assert_close(module(x), method.predict(ctx, x), atol=1e-4, rtol=1e-4)


def class_parameters(model: ClassVAEs, c: int) -> list[torch.Tensor]:
    """Everything class ``c`` learns: its VAE's parameters and its output scale."""
    scale = model.log_scale(c)
    return [p.detach().clone() for p in model.vaes[c].parameters()] + \
        ([scale.detach().clone()] if scale is not None else [])


class ClassSnapshots(LoopHooks):
    """Each class's parameters, and the classes the stream has shown, after every share."""

    def __init__(self) -> None:
        self.params: list[list[list[torch.Tensor]]] = []
        self.seen: list[list[bool]] = []

    def task_done(self, method, ctx, accuracies):  # type: ignore[no-untyped-def]
        self.params.append([class_parameters(ctx.model, c)
                            for c in range(ctx.protocol.n_outputs)])
        self.seen.append(ctx.stream.seen_outputs.tolist())


def stream_run(transition: int) -> tuple[np.ndarray, list[list[torch.Tensor]], ClassSnapshots,
                                         object]:
    """The generative classifier on a task-free stream of 3 contexts x 2 blob classes."""
    protocol = split_protocol(blobs(n_classes=6, per_class=40), "class", 3)
    protocol = replace(protocol, stream=StreamSpec(transition, "fuzzy"))  # type: ignore[arg-type]
    method = build_method("gen-classifier", MethodConfig(gc_hidden=[16], gc_z_dim=2,
                                                         gc_importance_samples=20))
    ctx = prepare(method, make_context(protocol, TrainSettings(iters=40, batch_size=32,
                                                               lr=1e-2), 0))
    initial = [class_parameters(ctx.model, c) for c in range(6)]
    hooks = ClassSnapshots()
    state = train_continual(method, ctx, hooks=hooks)
    return np.array([r.accuracies for r in state.records]), initial, hooks, ctx


def unchanged(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_on_a_fuzzy_stream_only_the_classes_seen_so_far_learn_and_all_are_kept():
    r, initial, hooks, _ = stream_run(transition=20)
    for share, (params, seen) in enumerate(zip(hooks.params, hooks.seen)):
        assert seen[: 2 * share + 2] == [True] * (2 * share + 2)  # the share's own classes
        for c in range(6):
            assert unchanged(params[c], initial[c]) != seen[c], (share, c)
    assert r[-1].min() >= 0.9  # told no boundary, it still remembers every context


def test_on_a_sharp_untold_stream_a_context_no_longer_shown_is_left_bit_for_bit():
    _, _, hooks, _ = stream_run(transition=0)
    for share in (1, 2):
        for c in range(2 * share):  # the classes of earlier contexts
            assert unchanged(hooks.params[share][c], hooks.params[share - 1][c]), (share, c)


def test_each_vae_learns_from_its_own_class_samples_only():
    """On a stream, class c's gradient reads class c's samples only; absent classes get none."""
    protocol = split_protocol(blobs(n_classes=4, per_class=40), "class", 2)
    protocol = replace(protocol, stream=StreamSpec(0, "fuzzy"))  # type: ignore[arg-type]
    method = gen_classifier()
    ctx = prepare(method, make_context(protocol, SETTINGS, 0))
    ctx.stream = StreamProgress(torch.ones(4, dtype=torch.bool), torch.ones(2, dtype=torch.bool))
    y = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
    x = protocol.tasks[0].x_train[:8].clone()

    def gradients(inputs: torch.Tensor) -> list[list[torch.Tensor | None]]:
        ctx.model.zero_grad(set_to_none=True)
        ctx.generator.manual_seed(5)  # the same reparameterisation noise for both batches
        batch = Batch(inputs, y, torch.zeros_like(y), ctx.sample_mask(torch.zeros_like(y)))
        method.current_loss(ctx, batch)[0].backward()
        return [[p.grad for p in ctx.model.vaes[c].parameters()] for c in range(4)]

    before = gradients(x)
    moved = x.clone()
    moved[y == 1] += 5.0  # only class 1's samples change
    after = gradients(moved)
    assert all(g is not None and torch.equal(g, h) for g, h in zip(before[0], after[0]))
    assert any(not torch.equal(g, h) for g, h in zip(before[1], after[1]))
    assert all(g is None for c in (2, 3) for g in before[c] + after[c])
