"""Pre-train a conv feature extractor for internal replay, save it, load it for a run.

The extractor is trained with a small MLP classifier on top (dropped afterwards), as the
reference pre-trains its conv layers on CIFAR-10 before the CIFAR-100 protocol. Saved files
hold the architecture, the weights (batch-norm statistics included) and free-form metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from birram.data.protocols import to_float
from birram.data.types import ArrayDataset
from birram.errors import ConfigError
from birram.io import write_with
from birram.models.conv import ConvExtractor, FrozenExtractor
from birram.models.mlp import mlp

FORMAT = "birram-extractor-v1"


def pretrain_extractor(
    data: ArrayDataset,
    layers: int = 5,
    channels: int = 16,
    iters: int = 5000,
    batch_size: int = 256,
    lr: float = 1e-4,
    seed: int = 0,
    device: str | torch.device = "cpu",
    head_hidden: tuple[int, ...] = (2000, 2000),
    last_block: Literal["bn-relu", "linear"] = "bn-relu",
) -> tuple[ConvExtractor, float]:
    """Train ``ConvExtractor(layers, channels, last_block=...)`` + an MLP head on ``data``.

    Returns the extractor (in eval mode) and the test accuracy of the whole classifier.
    """
    if data.x_train.dim() != 4:
        raise ConfigError(f"{data.name}: pre-training a conv extractor needs images "
                          f"[N, C, H, W], got inputs of shape {tuple(data.x_train.shape[1:])}")
    device = torch.device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    extractor = ConvExtractor(data.x_train.shape[1], layers, channels, last_block=last_block)
    with torch.no_grad():
        n_feat = extractor(torch.zeros(2, *data.input_shape))[0].numel()
    net = nn.Sequential(extractor, nn.Flatten(), mlp([n_feat, *head_hidden]),
                        nn.Linear(head_hidden[-1] if head_hidden else n_feat, data.n_classes))
    net.to(device)
    x_train, y_train = to_float(data.x_train).to(device), data.y_train.to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999))
    n = x_train.shape[0]
    batch_size = min(batch_size, n)
    order, pos = torch.randperm(n, generator=gen), 0
    net.train()
    for _ in range(iters):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos : pos + batch_size].to(device)
        pos += batch_size
        loss = F.cross_entropy(net(x_train[idx]), y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    net.eval()
    correct = torch.zeros((), device=device)
    with torch.no_grad():
        x_test, y_test = to_float(data.x_test), data.y_test
        for start in range(0, x_test.shape[0], 1024):
            xb = x_test[start : start + 1024].to(device)
            correct += (net(xb).argmax(1) == y_test[start : start + 1024].to(device)).sum()
    accuracy = float(correct) / max(x_test.shape[0], 1)
    return extractor.cpu().eval(), accuracy


def save_extractor(module: nn.Module, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write the extractor (a :class:`ConvExtractor`, frozen or not) atomically to ``path``."""
    if isinstance(module, FrozenExtractor):
        module = module.module
    if not isinstance(module, ConvExtractor):
        raise TypeError(f"can only save a ConvExtractor, got {type(module).__name__}")
    payload = {"format": FORMAT, "config": dict(module.config),
               "state": {k: v.detach().cpu() for k, v in module.state_dict().items()},
               "meta": dict(meta or {})}
    path = Path(path)
    write_with(path, lambda f: torch.save(payload, f))
    return path


def load_extractor(path: str | Path) -> FrozenExtractor:
    """The saved extractor, frozen (no gradients, batch norm in eval mode), on the CPU."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"extractor file {path} does not exist (make one with birram pretrain)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which, not how pickle failed
        raise ConfigError(f"{path} is not an extractor written by birram pretrain") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"{path} is not an extractor written by birram pretrain")
    module = ConvExtractor(**payload["config"])
    module.load_state_dict(payload["state"])
    return FrozenExtractor(module)


def extractor_meta(path: str | Path) -> dict[str, Any]:
    """The metadata stored with a saved extractor."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    return dict(payload.get("meta", {}))


__all__ = ["extractor_meta", "load_extractor", "pretrain_extractor", "save_extractor"]
