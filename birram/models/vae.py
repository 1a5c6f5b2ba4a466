"""A VAE whose encoder can carry the classifier (replay-through-feedback) and whose decoder can
be gated by context; the prior is the standard normal or a Gaussian mixture with a mode per class.

Shapes: the encoder reads ``n_in`` features (the flattened input, or the output of a frozen
extractor); the decoder writes ``n_out`` features (the flattened input, or the extractor's output
for internal replay). Training logic (losses, replay) lives in :mod:`birram.methods.generative`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from birram.models.gates import GatedLinear
from birram.models.mlp import mlp
from birram.models.prior import GaussianMixturePrior

Output = Literal["sigmoid", "linear"]


class ReplayVAE(nn.Module):
    """Encoder MLP -> (mu, logvar) [-> classifier head on the encoder's top hidden layer];
    decoder z -> mirrored hidden layers (gated if ``n_contexts``) -> ``n_out``.

    - ``n_classes`` > 0 adds the classifier head (the main model of BI-R); 0 gives a generator.
    - ``n_modes`` > 0 uses a :class:`GaussianMixturePrior`; 0 the standard normal prior.
    - ``n_contexts`` > 0 gates every decoder layer but the output one (as in the reference).
    - ``extractor`` (frozen) maps raw inputs to the encoder's input in :meth:`forward`.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        hidden: list[int],
        z_dim: int,
        generator: torch.Generator,
        n_classes: int = 0,
        n_modes: int = 0,
        n_contexts: int = 0,
        gate_prop: float = 0.0,
        output: Output = "sigmoid",
        extractor: nn.Module | None = None,
        independent_gates: bool = False,
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("ReplayVAE needs at least one hidden layer")
        self.extractor = extractor
        self.z_dim, self.output = z_dim, output
        self.body = mlp([n_in, *hidden])
        self.to_mu = nn.Linear(hidden[-1], z_dim)
        self.to_logvar = nn.Linear(hidden[-1], z_dim, bias=False)  # as the reference
        self.head = nn.Linear(hidden[-1], n_classes) if n_classes > 0 else None
        self.prior = GaussianMixturePrior(n_modes, z_dim, generator) if n_modes > 0 else None
        sizes = [z_dim, *reversed(hidden)]
        self.gated = n_contexts > 0
        self.decoder_hidden = nn.ModuleList(
            GatedLinear(a, b, n_contexts, gate_prop, generator, independent_gates) if self.gated
            else nn.Linear(a, b)
            for a, b in zip(sizes[:-1], sizes[1:]))
        self.decoder_out = nn.Linear(hidden[0], n_out)

    @property
    def n_contexts(self) -> int:
        return self.decoder_hidden[0].n_contexts if self.gated else 0

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        return (self.extractor(x) if self.extractor is not None else x).flatten(1)

    def encode(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mu, logvar, top hidden layer)`` for encoder inputs ``h``."""
        top = self.body(h)
        return self.to_mu(top), self.to_logvar(top), top

    def classify_encoded(self, h: torch.Tensor) -> torch.Tensor:
        assert self.head is not None, "this VAE has no classifier head"
        return self.head(self.body(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for raw inputs (what the training loop evaluates)."""
        return self.classify_encoded(self.encoder_input(x))

    def decode_logits(self, z: torch.Tensor,
                      context_weights: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's pre-activation output (BCE-with-logits wants it un-squashed)."""
        h = z
        for layer in self.decoder_hidden:
            h = torch.relu(layer(h, context_weights) if self.gated else layer(h))
        return self.decoder_out(h)

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.output == "sigmoid" else logits

    def decode(self, z: torch.Tensor, context_weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.activate(self.decode_logits(z, context_weights))
