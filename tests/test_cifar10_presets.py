"""The split CIFAR-10 presets: the reference code's settings, and a tiny run through each."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from birram.cli import app
from birram.config import resolve
from birram.models.conv import ConvExtractor
from birram.pretrain import save_extractor

runner = CliRunner()


def fake_cifar10(root: Path, per_class: int = 3) -> Path:
    """Every class in every batch, each image a flat colour that depends on its class."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    labels = np.repeat(np.arange(10), per_class)
    rng = np.random.default_rng(0)

    def batch() -> dict[bytes, object]:
        data = (labels[:, None] * 20 + rng.integers(0, 20, (labels.size, 3072))).astype(np.uint8)
        return {b"data": data, b"labels": labels.tolist()}

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with (folder / name).open("wb") as f:
            pickle.dump(batch(), f, protocol=2)
    names = [f"class{i}".encode() for i in range(10)]
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": names}, f, protocol=2)
    return root


@pytest.mark.parametrize(("scenario", "si_c", "gate_prop"), [("class", 5.0, 0.7),
                                                             ("task", 10.0, 0.0)])
def test_presets_hold_the_reference_settings(scenario, si_c, gate_prop):
    cfg = resolve(f"split-cifar10-{scenario}", {})
    assert cfg.scenario == scenario and cfg.data.protocol == "split-cifar10"
    assert cfg.data.n_tasks == 5 and cfg.data.class_order == "seeded"
    assert (cfg.train.iters, cfg.train.batch_size, cfg.train.lr) == (5000, 256, 1e-4)
    assert cfg.train.hidden == [2000, 2000] and cfg.method.recon_loss == "mse"
    assert cfg.method.si_c == si_c and cfg.method.ewc_lambda == 100.0
    assert cfg.method.gate_prop == gate_prop and cfg.method.xdg_prop == 0.6


@pytest.mark.parametrize(("scenario", "methods"), [("class", "bir,gen-classifier"),
                                                   ("task", "xdg,si")])
def test_presets_run_on_cifar10_files(tmp_path, scenario, methods):
    data_dir = fake_cifar10(tmp_path / "data")
    extractor = save_extractor(ConvExtractor(layers=5, channels=2), tmp_path / "conv.pt",
                               {"dataset": "cifar100", "layers": 5, "channels": 2})
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "compare", "--preset", f"split-cifar10-{scenario}", "--methods", methods,
        "--data-dir", str(data_dir), "--extractor", str(extractor), "--iters", "2",
        "--batch-size", "8", "--hidden", "16", "--threads", "1", "--set", "method.z_dim=4",
        "--set", "method.gc_importance_samples=2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == set(methods.split(","))
