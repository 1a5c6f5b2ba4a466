"""train.precision: the training step's forward pass in bfloat16 under autocast."""

import dataclasses

import numpy as np
import torch
from typer.testing import CliRunner

from birram.cli import app
from birram.config import MethodConfig
from birram.data.protocols import split_protocol
from birram.methods.base import TrainSettings
from birram.methods.registry import build_method
from birram.train import make_context, prepare, step_precision, train_continual
from tests.conftest import blobs
from tests.test_compiled_step import bir  # the same small BI-R

SETTINGS = TrainSettings(iters=40, batch_size=16, lr=1e-2, hidden=(16,))


def trained(method, precision: str) -> tuple[np.ndarray, list[dict[str, float]], torch.nn.Module]:
    settings = dataclasses.replace(SETTINGS, precision=precision)
    ctx = prepare(method, make_context(split_protocol(blobs(n_classes=4), "class", 2),
                                       settings, seed=3))
    state = train_continual(method, ctx)
    return (np.array([r.accuracies for r in state.records]),
            [r.final_losses for r in state.records], ctx.model)


def test_bfloat16_trains_as_float32_does_up_to_rounding():
    acc32, losses32, _ = trained(bir(), "float32")
    acc16, losses16, model = trained(bir(), "bfloat16")
    assert not np.array_equal(acc32, acc16) or losses32 != losses16  # another arithmetic ran
    assert np.abs(acc32 - acc16).max() <= 0.1
    for a, b in zip(losses32, losses16):  # one batch's losses: finite, the same terms
        assert a.keys() == b.keys() and np.isfinite(list(b.values())).all()
    # What is kept stays float32: parameters (and so the optimiser's moments and checkpoints).
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_the_forward_pass_runs_its_products_in_bfloat16():
    ctx = make_context(split_protocol(blobs(n_classes=4), "class", 2),
                       dataclasses.replace(SETTINGS, precision="bfloat16"), seed=1)
    layer = torch.nn.Linear(6, 3)
    with step_precision(ctx):
        assert layer(torch.randn(2, 6)).dtype == torch.bfloat16
    with step_precision(dataclasses.replace(ctx, settings=SETTINGS)):
        assert layer(torch.randn(2, 6)).dtype == torch.float32


def test_a_regulariser_trains_in_bfloat16():
    method = build_method("si", MethodConfig())
    acc, losses, _ = trained(method, "bfloat16")
    assert np.isfinite(acc).all() and all(np.isfinite(list(d.values())).all() for d in losses)


def test_the_cli_takes_precision_and_refuses_an_unknown_one(tmp_path):
    result = CliRunner().invoke(app, ["compare", "--preset", "rram-demo-quick", "--methods", "bir",
                                      "--precision", "half", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "train.precision" in result.output and "bfloat16" in result.output
