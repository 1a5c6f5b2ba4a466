import pytest
import torch

from birram.config import MethodConfig
from birram.data.protocols import split_protocol
from birram.export import export_model, load_exported
from birram.methods.base import TrainSettings
from birram.methods.registry import build_method
from birram.train import make_context, prepare, train_continual
from tests.conftest import blobs


@pytest.mark.parametrize("name", ["none", "icarl", "bir"])
def test_exported_program_predicts_like_the_method(tmp_path, name):
    protocol = split_protocol(blobs(n_classes=4), "class", 2)
    method = build_method(name, MethodConfig())
    ctx = prepare(method, make_context(protocol, TrainSettings(iters=15, batch_size=16,
                                                               hidden=(16,)), 0))
    train_continual(method, ctx)
    module = load_exported(export_model(method, ctx, tmp_path / "model.pt2"))
    for batch in (1, 7, 40):  # the batch dimension is dynamic
        x = protocol.tasks[1].x_test[:batch]
        torch.testing.assert_close(module(x), method.predict(ctx, x), atol=1e-4, rtol=1e-4)
