"""S copies of a network, one per seed, as one network with a leading seed dimension.

:func:`stack_models` takes S models of the same architecture (each built and initialised by
its own seed) and returns one whose trainable layers hold the S parameter sets stacked:
``weight [S, out, in]`` instead of ``[out, in]``. Its inputs are seed-major rows (S equal
blocks, see :mod:`birram.seeds`); each layer multiplies block s by seed s's weights in one
batched matrix product, so S seeds cost one call per layer instead of S. Nothing couples the
seeds: the gradient of a sum of per-seed losses reaches each seed's parameters exactly as in
its own run, and Adam, elementwise, steps each seed as its own optimiser would.

Trainable layers that can be stacked: ``nn.Linear``, :class:`GatedLinear` and
:class:`GaussianMixturePrior`. Frozen modules (a pre-trained extractor) are shared and must be
identical in every seed. Anything else raises :class:`NotStackable`. The approach is the
"model ensembling" of ``torch.func.stack_module_state``, with the layers written out so that
every entry point a method calls (encoder, decoder, prior, head) keeps working.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from birram.models.gates import GatedLinear
from birram.models.prior import LOG_2PI, GaussianMixturePrior


class NotStackable(Exception):
    """The model holds something that cannot be trained as stacked seeds."""


def _stacked(tensors: list[torch.Tensor], requires_grad: bool) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]).clone(),
                        requires_grad=requires_grad)


class SeedLinear(nn.Module):
    """``nn.Linear`` for S seeds: ``weight [S, out, in]``, ``bias [S, out]``."""

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None) -> None:
        super().__init__()
        self.weight = weight
        self.bias = bias

    @classmethod
    def stack(cls, layers: list[nn.Linear]) -> SeedLinear:
        first = layers[0]
        bias = None if first.bias is None else _stacked([m.bias for m in layers],
                                                        first.bias.requires_grad)
        return cls(_stacked([m.weight for m in layers], first.weight.requires_grad), bias)

    @property
    def seeds(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x3 = x.reshape(self.seeds, -1, x.shape[-1])
        w = self.weight.transpose(1, 2)
        out = torch.bmm(x3, w) if self.bias is None else torch.baddbmm(self.bias[:, None], x3, w)
        return out.reshape(-1, out.shape[-1])


class SeedGatedLinear(nn.Module):
    """:class:`GatedLinear` for S seeds: each seed keeps its own gate masks ``[S, C, units]``."""

    def __init__(self, linear: SeedLinear, masks: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("masks", masks)

    @classmethod
    def stack(cls, layers: list[GatedLinear]) -> SeedGatedLinear:
        return cls(SeedLinear.stack([m.linear for m in layers]),
                   torch.stack([m.masks for m in layers]).clone())

    @property
    def n_contexts(self) -> int:
        return self.masks.shape[1]

    def forward(self, x: torch.Tensor, context_weights: torch.Tensor) -> torch.Tensor:
        s = self.masks.shape[0]
        gates = torch.bmm(context_weights.reshape(s, -1, context_weights.shape[-1]), self.masks)
        return self.linear(x) * gates.reshape(-1, gates.shape[-1])


class SeedMixturePrior(nn.Module):
    """:class:`GaussianMixturePrior` for S seeds: ``means`` and ``logvars`` ``[S, K, D]``."""

    def __init__(self, means: nn.Parameter, logvars: nn.Parameter) -> None:
        super().__init__()
        self.means, self.logvars = means, logvars

    @classmethod
    def stack(cls, priors: list[GaussianMixturePrior]) -> SeedMixturePrior:
        first = priors[0]
        return cls(_stacked([p.means for p in priors], first.means.requires_grad),
                   _stacked([p.logvars for p in priors], first.logvars.requires_grad))

    @property
    def n_modes(self) -> int:
        return self.means.shape[1]

    def log_prob(self, z: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
        s, d = self.means.shape[0], z.shape[-1]
        z3 = z.reshape(s, -1, d)
        inv_var = torch.exp(-self.logvars)  # [S, K, D]
        sq = torch.bmm(z3 * z3, inv_var.transpose(1, 2)) \
            - 2 * torch.bmm(z3, (self.means * inv_var).transpose(1, 2)) \
            + (self.means.pow(2) * inv_var).sum(2)[:, None]
        log_comp = -0.5 * (d * LOG_2PI + self.logvars.sum(2)[:, None] + sq)  # [S, B, K]
        return torch.logsumexp(log_weights + log_comp.reshape(-1, log_comp.shape[-1]), dim=1)

    def sample(self, modes: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        s = self.means.shape[0]
        seed = torch.arange(s, device=modes.device).repeat_interleave(modes.shape[0] // s)
        return self.means[seed, modes] + torch.exp(0.5 * self.logvars[seed, modes]) * noise


def _trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def _same(modules: list[nn.Module]) -> bool:
    ref = modules[0].state_dict()
    return all(m is modules[0] or all(torch.equal(ref[k], v) for k, v in m.state_dict().items())
               for m in modules[1:])


def _stack(modules: list[nn.Module], path: str) -> nn.Module:
    first = modules[0]
    if isinstance(first, nn.Linear) and _trainable(first):
        return SeedLinear.stack(modules)  # type: ignore[arg-type]
    if isinstance(first, GatedLinear):
        return SeedGatedLinear.stack(modules)  # type: ignore[arg-type]
    if isinstance(first, GaussianMixturePrior):
        return SeedMixturePrior.stack(modules)  # type: ignore[arg-type]
    if not _trainable(first):
        if not _same(modules):
            raise NotStackable(f"the frozen module {path or type(first).__name__} differs "
                               "between seeds")
        return first  # shared by every seed
    if any(True for _ in first.parameters(recurse=False)) or \
            any(True for _ in first.buffers(recurse=False)):
        raise NotStackable(f"{type(first).__name__} ({path or 'the model'}) holds its own "
                           "parameters; only Linear, GatedLinear and GaussianMixturePrior stack")
    out = copy.copy(first)  # a container: same attributes, stacked children
    out._modules = {name: None if child is None else
                    _stack([m._modules[name] for m in modules], f"{path}.{name}".lstrip("."))
                    for name, child in first._modules.items()}
    return out


def stack_models(models: list[nn.Module]) -> nn.Module:
    """One model holding ``models``' parameters stacked along a leading seed dimension."""
    if not models:
        raise ValueError("stack_models needs at least one model")
    kinds = {type(m) for m in models}
    if len(kinds) > 1:
        raise NotStackable("the seeds' models differ in type")
    return _stack(models, "")


@torch.no_grad()
def copy_seed(stacked: nn.Module, plain: nn.Module, seed_index: int) -> None:
    """Write seed ``seed_index``'s parameters and buffers from ``stacked`` into ``plain`` (a
    model of the architecture that was stacked), so the single-seed code can use it."""
    source = dict(stacked.named_parameters())
    source.update(dict(stacked.named_buffers()))
    for name, target in [*plain.named_parameters(), *plain.named_buffers()]:
        value = source[name]
        if value.shape == target.shape:  # shared between seeds
            target.copy_(value)
        else:
            target.copy_(value[seed_index])
