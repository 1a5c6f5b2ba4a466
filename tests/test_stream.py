"""Task-free streams: the mixing schedule, the loop that tells no boundary, the methods that run
on a stream and the refusal of those that cannot."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from birram.config import MethodConfig, build_config
from birram.data.protocols import split_protocol
from birram.data.stream import StreamSampler, StreamSchedule, StreamSpec
from birram.errors import ConfigError
from birram.methods.base import Method, TrainSettings
from birram.methods.buffer import ReservoirBuffer
from birram.methods.registry import METHODS, build_method, check_methods, stream_methods
from birram.methods.regularisers import EWC, SI
from birram.run import run_experiment
from birram.train import LoopHooks, make_context, prepare, train_continual
from tests.conftest import blobs, interrupted_then_resumed

TINY = TrainSettings(iters=24, batch_size=16, lr=1e-2, hidden=(16,))


def stream_protocol(n_classes: int = 4, n_tasks: int = 2, scenario: str = "class",
                    transition: int = 12, mode: str = "fuzzy"):
    protocol = split_protocol(blobs(n_classes=n_classes), scenario, n_tasks)
    from dataclasses import replace

    return replace(protocol, stream=StreamSpec(transition, mode))  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(1, 6), share=st.integers(1, 60), frac=st.floats(0, 1))
def test_schedule_ramps_monotonically_and_mixes_at_most_two_neighbours(n, share, frac):
    window = int(round(frac * share))
    schedule = StreamSchedule(n, share, window)
    probs = torch.stack([schedule.probabilities(it) for it in range(schedule.total_iters)])
    torch.testing.assert_close(probs.sum(1), torch.ones(len(probs)))
    active = probs > 0
    assert int(active.sum(1).max()) <= 2
    for row in active:  # the two that mix are neighbours
        ids = row.nonzero().squeeze(1)
        assert ids.numel() == 1 or int(ids[1] - ids[0]) == 1
    # Each context rises (weakly) to 1 and then falls: one plateau, no second rise.
    for k in range(n):
        p = probs[:, k]
        peak = int(p.argmax())
        assert bool((p[1:peak + 1] >= p[:peak]).all()) and bool((p[peak + 1:] <= p[peak:-1]).all())
    # The ramps are symmetric, so each context keeps exactly one share of the stream.
    torch.testing.assert_close(probs.sum(0), torch.full((n,), float(share)))


def test_schedule_is_sharp_without_a_window_and_uniform_when_random():
    sharp = StreamSchedule(3, 10, 0)
    assert [int(sharp.probabilities(it).argmax()) for it in (0, 9, 10, 29)] == [0, 0, 1, 2]
    assert all(sharp.probabilities(it).max() == 1 for it in range(30))
    uniform = StreamSchedule(4, 10, 5, mode="random")
    torch.testing.assert_close(uniform.probabilities(17), torch.full((4,), 0.25))


def test_transition_window_is_centred_on_the_boundary():
    schedule = StreamSchedule(2, 100, 40)
    assert schedule.probabilities(79)[1] == 0 and schedule.probabilities(80)[1] > 0
    assert schedule.probabilities(99)[1] == pytest.approx(0.4875)
    assert schedule.probabilities(100)[1] == pytest.approx(0.5125)
    assert schedule.probabilities(120)[1] == 1


def test_window_wider_than_a_share_is_refused():
    with pytest.raises(ConfigError, match="transition_iters=30"):
        StreamSchedule(2, 20, 30)


def test_sampler_draws_each_sample_from_its_contexts_rows():
    schedule = StreamSchedule(3, 20, 10)
    sampler = StreamSampler(schedule, [5, 7, 9], 32, torch.Generator().manual_seed(0))
    bounds = [(0, 5), (5, 12), (12, 21)]
    for it in range(schedule.total_iters):
        idx, contexts = sampler.next_indices(it)
        assert idx.numel() == 32
        for i, k in zip(idx.tolist(), contexts.tolist()):
            assert bounds[k][0] <= i < bounds[k][1]
            assert schedule.probabilities(it)[k] > 0


class Spy(Method):
    """Fine-tuning that records which hooks the loop calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def before_task(self, ctx):  # type: ignore[no-untyped-def]
        self._count("before_task")

    def after_task(self, ctx, data):  # type: ignore[no-untyped-def]
        self._count("after_task")

    def training_set(self, ctx):  # type: ignore[no-untyped-def]
        self._count("training_set")
        return super().training_set(ctx)

    def start_stream(self, ctx):  # type: ignore[no-untyped-def]
        self._count("start_stream")

    def observe(self, ctx, batch):  # type: ignore[no-untyped-def]
        self._count("observe")

    def consolidate(self, ctx):  # type: ignore[no-untyped-def]
        self._count("consolidate")


def test_the_method_never_hears_of_a_boundary():
    spy = Spy()
    spy.consolidate_every = 5
    ctx = prepare(spy, make_context(stream_protocol(n_tasks=2), TINY, 0))
    state = train_continual(spy, ctx)
    assert spy.calls == {"start_stream": 1, "observe": 48, "consolidate": 9}
    assert len(state.records) == 2 and all(len(r.accuracies) == 2 for r in state.records)


class SeenAfterEachShare(LoopHooks):
    def __init__(self) -> None:
        self.seen: list[list[bool]] = []

    def task_done(self, method, ctx, accuracies):  # type: ignore[no-untyped-def]
        self.seen.append(ctx.stream.seen_outputs.tolist())


def test_class_il_mask_is_the_classes_the_stream_has_shown():
    method, hooks = Method(), SeenAfterEachShare()
    ctx = prepare(method, make_context(stream_protocol(n_tasks=2, transition=0), TINY, 0))
    train_continual(method, ctx, hooks=hooks)
    assert hooks.seen == [[True, True, False, False], [True, True, True, True]]


@pytest.mark.parametrize("name", stream_methods())
def test_every_stream_capable_method_runs_a_tiny_stream(name):
    cfg = MethodConfig(consolidate_every=6, z_dim=4, er_samples_per_class=4,
                       agem_samples_per_class=4, si_c=0.1, gc_hidden=[8], gc_z_dim=2,
                       gc_importance_samples=8, xdg_prop=0.5)
    method = build_method(name, cfg)
    assert method.runs_without_boundaries
    # Methods that need each sample's task (XdG) run where the stream tells it: task-IL.
    scenario = "class" if "class" in METHODS[name].scenarios else "task"
    protocol = stream_protocol(n_classes=4, n_tasks=2, scenario=scenario)
    ctx = prepare(method, make_context(protocol, TINY, 0))
    state = train_continual(method, ctx)
    r = np.array([rec.accuracies for rec in state.records])
    assert r.shape == (2, 2) and np.isfinite(r).all()
    assert r[0, 0] > 0.5  # learned something from the first share


@pytest.mark.parametrize("scenario", ["task", "domain"])
@pytest.mark.parametrize("name", ["bir", "lwf", "er", "rtf"])
def test_replay_methods_run_a_stream_in_task_and_domain_il(name, scenario):
    method = build_method(name, MethodConfig(consolidate_every=6, z_dim=4,
                                             er_samples_per_class=4))
    protocol = stream_protocol(n_classes=6, n_tasks=3, scenario=scenario, transition=8)
    ctx = prepare(method, make_context(protocol, TINY, 0))
    state = train_continual(method, ctx)
    assert np.isfinite(np.array([rec.accuracies for rec in state.records])).all()


def test_methods_that_need_boundaries_are_refused_in_one_line():
    refused = [name for name, spec in METHODS.items() if not spec.stream]
    assert {"ewc", "online-ewc", "icarl", "fromp", "separate-networks"} == set(refused)
    for name in refused:
        with pytest.raises(ConfigError) as err:
            check_methods([name], stream=True)
        message = str(err.value)
        assert "\n" not in message and f"'{name}' needs task boundaries" in message
        assert "bir" in message and "er" in message
    check_methods(stream_methods(), stream=True)


def test_a_stream_that_tells_no_task_refuses_xdg_for_want_of_the_task_identity():
    for scenario in ("class", "domain"):
        with pytest.raises(ConfigError, match="'xdg' needs the task identity: use scenario "
                                              "'task'"):
            check_methods(["xdg"], scenario, stream=True)
    check_methods(["xdg", "gen-classifier"], "task", stream=True)


def test_the_loop_refuses_a_boundary_method_on_a_stream():
    method = Method([EWC(strength=1.0)])
    ctx = prepare(method, make_context(stream_protocol(), TINY, 0))
    with pytest.raises(ConfigError, match="'ewc' needs task boundaries"):
        train_continual(method, ctx)


def test_registry_and_methods_agree_on_streams():
    for name, spec in METHODS.items():
        assert build_method(name, MethodConfig()).runs_without_boundaries == spec.stream, name


def test_reservoir_keeps_every_sample_with_equal_probability():
    n, budget, trials = 40, 10, 300
    counts = torch.zeros(n)
    gen = torch.Generator().manual_seed(0)
    for _ in range(trials):
        buffer = ReservoirBuffer(budget)
        for start in range(0, n, 8):  # batches of 8, as a stream offers them
            ids = torch.arange(start, start + 8)
            buffer.add(ids[:, None].float(), ids, ids, gen)
        assert len(buffer) == budget
        held = buffer.y.tolist()
        assert len(set(held)) == budget  # never the same sample twice
        counts[held] += 1
    expected = trials * budget / n
    # Each sample held in about budget / n of the trials (binomial, 4.5 standard deviations).
    sd = (trials * (budget / n) * (1 - budget / n)) ** 0.5
    assert float((counts - expected).abs().max()) < 4.5 * sd


def test_si_on_a_stream_consolidates_every_n_steps():
    si = SI(strength=1.0)
    method = Method([si])
    method.consolidate_every = 8
    ctx = prepare(method, make_context(stream_protocol(), TINY, 0))
    train_continual(method, ctx)
    assert si.omega is not None and float(si.omega.abs().sum()) > 0
    assert si.path is not None  # open again after the last consolidation


def test_current_weight_on_a_class_il_stream_is_the_share_of_seen_classes():
    from birram.methods.base import Batch, StreamProgress

    method = Method()
    ctx = make_context(stream_protocol(n_classes=4, n_tasks=2), TINY, 0)
    ctx.stream = StreamProgress(torch.tensor([True, True, True, False]),
                                torch.tensor([True, True]))
    y = torch.tensor([2, 2, 1])
    batch = Batch(torch.zeros(3, 6), y, torch.zeros(3, dtype=torch.long), torch.ones(3, 4) > 0)
    assert float(method.current_weight(ctx, batch)) == pytest.approx(2 / 3)
    method.stream_current_weight = 0.5
    assert method.current_weight(ctx, batch) == 0.5


def stream_config(methods, iters=24):
    return build_config({"methods": methods, "seeds": [1], "scenario": "class",
                         "data": {"n_tasks": 2, "stream": {"transition_iters": 12}},
                         "train": {"iters": iters, "batch_size": 16, "lr": 0.01, "hidden": [16]},
                         "method": {"consolidate_every": 10, "z_dim": 4,
                                    "er_samples_per_class": 4}})


def test_a_resumed_stream_matches_the_uninterrupted_one(tmp_path):
    full, resumed = interrupted_then_resumed(stream_config(["bir", "er"]), tmp_path,
                                             lambda: blobs(n_classes=4))
    for a, b in zip(full.results, resumed.results):
        np.testing.assert_allclose(a.accuracy_matrix, b.accuracy_matrix)


def test_experiment_on_a_stream_refuses_bad_settings_before_writing(tmp_path):
    with pytest.raises(ConfigError, match="needs task boundaries"):
        run_experiment(stream_config(["ewc"]), tmp_path / "a", data=blobs(n_classes=4))
    with pytest.raises(ConfigError, match="transition_iters=12"):
        run_experiment(stream_config(["none"], iters=8), tmp_path / "b", data=blobs(n_classes=4))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
