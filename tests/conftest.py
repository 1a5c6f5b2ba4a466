"""Shared fixtures: small datasets made on the fly, so tests never need files or network."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from birram.data.types import ArrayDataset

# Test problems are tiny: one thread is faster than two, and immune to busy neighbours.
torch.set_num_threads(1)


def blobs(n_classes: int = 4, per_class: int = 40, dim: int = 6, seed: int = 0,
          spread: float = 0.3) -> ArrayDataset:
    """Well separated Gaussian blobs: a problem any learner solves quickly."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=gen) * 3

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n_classes).repeat_interleave(n)
        x = centres[y] + spread * torch.randn(y.numel(), dim, generator=gen)
        return x.float(), y

    x_tr, y_tr = draw(per_class)
    x_te, y_te = draw(per_class // 2)
    return ArrayDataset("blobs", x_tr, y_tr, x_te, y_te, tuple(f"c{i}" for i in range(n_classes)))


def tiny_images(n_classes: int = 4, per_class: int = 30, side: int = 6,
                seed: int = 0) -> ArrayDataset:
    """uint8 images whose class decides which block of pixels is bright."""
    gen = torch.Generator().manual_seed(seed)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n_classes).repeat_interleave(n)
        x = torch.randint(0, 60, (y.numel(), 1, side, side), generator=gen)
        rows = side // n_classes or 1
        for c in range(n_classes):
            x[y == c, :, (c * rows) % side : (c * rows) % side + rows, :] += 180
        return x.clamp(0, 255).to(torch.uint8), y

    x_tr, y_tr = draw(per_class)
    x_te, y_te = draw(per_class // 3)
    return ArrayDataset("tiny-images", x_tr, y_tr, x_te, y_te,
                        tuple(f"k{i}" for i in range(n_classes)))


@pytest.fixture
def blob_data() -> ArrayDataset:
    return blobs()


@pytest.fixture
def image_data() -> ArrayDataset:
    return tiny_images()


class StopRun(Exception):
    """Raised to cut a run short right after a checkpoint was written."""


def interrupted_then_resumed(cfg, tmp_path, data_factory=blobs,  # type: ignore[no-untyped-def]
                             before_resume=None):
    """``(uninterrupted, resumed)`` results of ``cfg``: one run straight through, and one
    stopped right after its first checkpoint and then resumed from it (in ``tmp_path/cut``);
    ``before_resume(cut_dir)`` may inspect the interrupted directory."""
    import birram.run as run_module
    from birram.run import run_experiment

    full = run_experiment(cfg, tmp_path / "full", data=data_factory())
    original = run_module.save_checkpoint

    def save_then_stop(*args, **kwargs):  # type: ignore[no-untyped-def]
        original(*args, **kwargs)
        raise StopRun

    run_module.save_checkpoint = save_then_stop
    try:
        with pytest.raises(StopRun):
            run_experiment(cfg, tmp_path / "cut", data=data_factory())
    finally:
        run_module.save_checkpoint = original
    if before_resume is not None:
        before_resume(tmp_path / "cut")
    resumed = run_experiment(cfg, tmp_path / "cut", data=data_factory())
    return full, resumed


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """A script of ``benchmarks/`` (not a package) imported as a module."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def blob_experiments(monkeypatch):
    """Every experiment reads 10-class blobs instead of its preset's dataset."""
    import birram.run

    real = birram.run.prepare_experiment
    monkeypatch.setattr(birram.run, "prepare_experiment",
                        lambda cfg, data=None: real(cfg, blobs(n_classes=10, per_class=20)))
