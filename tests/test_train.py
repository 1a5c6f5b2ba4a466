import numpy as np
import torch

from birram.config import build_config
from birram.data.protocols import split_protocol
from birram.methods.base import Method, TrainSettings, distillation_loss
from birram.methods.er import ExperienceReplay
from birram.methods.joint import Joint
from birram.run import run_experiment
from birram.train import EpochSampler, make_context, prepare, train_continual
from tests.conftest import blobs, interrupted_then_resumed

SETTINGS = TrainSettings(iters=60, batch_size=16, lr=1e-2, hidden=(32,))


def fit(method, scenario="class", seed=0, settings=SETTINGS):
    protocol = split_protocol(blobs(n_classes=4), scenario, 2)
    ctx = prepare(method, make_context(protocol, settings, seed))
    state = train_continual(method, ctx)
    return np.array([r.accuracies for r in state.records]), ctx


def test_fine_tuning_forgets_in_class_il_and_joint_does_not():
    r_none, _ = fit(Method())
    r_joint, _ = fit(Joint())
    assert r_none[0, 0] > 0.9 and r_none[1, 0] < 0.2  # catastrophic forgetting
    assert r_joint[1].min() > 0.9


def test_task_il_masks_protect_the_first_task_head():
    r, _ = fit(Method(), scenario="task")
    assert r[1, 0] > 0.6  # with the task's own outputs only, blobs stay separable


def test_experience_replay_remembers():
    r, _ = fit(ExperienceReplay(samples_per_class=10))
    assert r[1, 0] > 0.7


def test_same_seed_same_result_and_different_seed_differs():
    a, _ = fit(Method(), seed=3)
    b, _ = fit(Method(), seed=3)
    np.testing.assert_array_equal(a, b)
    _, ctx1 = fit(Method(), seed=3)
    _, ctx2 = fit(Method(), seed=4)
    w1 = next(ctx1.model.parameters())
    w2 = next(ctx2.model.parameters())
    assert not torch.equal(w1, w2)


def test_sampler_visits_every_sample_once_per_epoch():
    sampler = EpochSampler(10, 3, torch.Generator().manual_seed(0), torch.device("cpu"))
    idx = torch.cat([sampler.next_indices() for _ in range(3)])
    assert idx.unique().numel() == 9  # 3 full batches of an epoch of 10, last one dropped


def test_distillation_is_zero_when_student_equals_teacher():
    logits = torch.randn(5, 4)
    assert distillation_loss(logits, logits).abs().item() < 1e-6
    assert distillation_loss(logits, torch.randn(5, 4)).item() > 0


def test_loss_decreases_for_fine_tuning():
    protocol = split_protocol(blobs(n_classes=2), "class", 1)
    method = Method()
    ctx = prepare(method, make_context(protocol, SETTINGS, 0))
    first = None
    state = train_continual(method, ctx)
    x, y = protocol.tasks[0].x_train, protocol.tasks[0].y_train
    first = torch.nn.functional.cross_entropy(
        prepare(Method(), make_context(protocol, SETTINGS, 0)).model(x), y)
    final = torch.nn.functional.cross_entropy(ctx.model(x), y)
    assert final < first and state.records[0].accuracies[0] > 0.9


def experiment_config(methods, tmp_iters=40):
    return build_config({"methods": methods, "seeds": [1, 2], "scenario": "class",
                         "data": {"n_tasks": 2},
                         "train": {"iters": tmp_iters, "batch_size": 16, "lr": 0.01,
                                   "hidden": [32]}})


def test_experiment_writes_every_file(tmp_path):
    cfg = experiment_config(["none", "joint"])
    result = run_experiment(cfg, tmp_path, data=blobs(n_classes=4))
    for name in ["config.json", "summary.json", "results.md", "results.csv",
                 "accuracy_curve.png"]:
        assert (tmp_path / name).exists(), name
    assert (tmp_path / "accuracy_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    seed_dir = tmp_path / "none" / "seed-1"
    for name in ["metrics.json", "accuracy_matrix.csv", "confusion.csv", "accuracy_matrix.png"]:
        assert (seed_dir / name).exists(), name
    assert not (seed_dir / "checkpoint.safetensors").exists()
    methods = result.summary["methods"]
    assert methods["joint"]["average_accuracy_mean"] > methods["none"]["average_accuracy_mean"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path):
    cfg = experiment_config(["er"])

    def checkpoint_written(cut):  # type: ignore[no-untyped-def]
        assert (cut / "er" / "seed-1" / "checkpoint.safetensors").exists()

    full, resumed = interrupted_then_resumed(cfg, tmp_path, lambda: blobs(n_classes=4),
                                             before_resume=checkpoint_written)
    for a, b in zip(full.results, resumed.results):
        np.testing.assert_allclose(a.accuracy_matrix, b.accuracy_matrix)


def test_finished_runs_are_loaded_not_retrained(tmp_path):
    cfg = experiment_config(["none"])
    first = run_experiment(cfg, tmp_path, data=blobs(n_classes=4))
    again = run_experiment(cfg, tmp_path, data=blobs(n_classes=4))
    for a, b in zip(first.results, again.results):
        np.testing.assert_array_equal(a.accuracy_matrix, b.accuracy_matrix)
        np.testing.assert_array_equal(a.confusion, b.confusion)
        assert a.wall_seconds == b.wall_seconds  # read back, not measured again
