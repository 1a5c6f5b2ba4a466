"""One VAE per class, and the importance-sampled likelihood that turns them into a classifier.

The generative classifier (van de Ven, Li & Tolias 2021) scores an input ``x`` for class ``y``
by an estimate of ``log p(x | y)`` under class ``y``'s VAE:

    log (1/S) sum_s p(x | z_s) p(z_s) / q(z_s | x),    z_s ~ q(z | x)

(the IWAE estimate; with S = 1 its expectation is the ELBO, and it tightens as S grows).
Training logic lives in :mod:`birram.methods.generative_classifier`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from birram.models.prior import LOG_2PI, log_normal_diag
from birram.models.vae import ReplayVAE

# "bernoulli": inputs in [0, 1], decoder logits through a sigmoid (the BCE loss);
# "gaussian": real-valued inputs, a Gaussian around the decoder's output (the MSE), with unit
# variance or a learned standard deviation per feature.
Likelihood = Literal["bernoulli", "gaussian"]

# Floor of a learned log standard deviation: keeps the density finite where a class's feature
# barely varies.
MIN_LOG_SCALE = -5.0


def log_p_x_given_z(decoded: torch.Tensor, x: torch.Tensor, likelihood: Likelihood,
                    log_scale: torch.Tensor | None = None) -> torch.Tensor:
    """``log p(x | z)`` summed over features, for decoder outputs ``decoded [..., D]``;
    ``log_scale [D]`` is the Gaussian's log standard deviation (``None``: unit variance)."""
    x = x.expand_as(decoded)
    if likelihood == "bernoulli":
        return -F.binary_cross_entropy_with_logits(decoded, x, reduction="none").sum(-1)
    if log_scale is None:
        return -0.5 * ((decoded - x).pow(2) + LOG_2PI).sum(-1)
    log_scale = log_scale.clamp(min=MIN_LOG_SCALE)
    return -(0.5 * (decoded - x).pow(2) * torch.exp(-2 * log_scale) + log_scale
             + 0.5 * LOG_2PI).sum(-1)


def importance_log_likelihood(vae: ReplayVAE, x: torch.Tensor, noise: torch.Tensor,
                              likelihood: Likelihood, log_scale: torch.Tensor | None = None
                              ) -> torch.Tensor:
    """The S-sample estimate of ``log p(x)`` for each row of ``x [N, D]``.

    ``noise`` is standard normal, ``[S, z_dim]`` (the same S draws for every row) or
    ``[S, N, z_dim]``; it is passed in so evaluation can be deterministic and tests can draw it.
    """
    mu, logvar, _ = vae.encode(x)  # [N, z]
    if noise.dim() == 2:
        noise = noise[:, None, :]
    z = mu + torch.exp(0.5 * logvar) * noise  # [S, N, z]
    samples, n, z_dim = z.shape[0], x.shape[0], mu.shape[1]
    decoded = vae.decode_logits(z.reshape(samples * n, z_dim)).view(samples, n, -1)
    log_prior = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
    log_weights = (log_p_x_given_z(decoded, x, likelihood, log_scale) + log_prior
                   - log_normal_diag(z, mu, logvar))  # [S, N]
    return torch.logsumexp(log_weights, dim=0) - math.log(samples)


class ClassVAEs(nn.Module):
    """``n_classes`` independent VAEs over the (flattened, optionally extracted) input.

    ``forward(x)`` gives ``[N, n_classes]`` estimated log-likelihoods with the fixed importance
    noise kept as a buffer: evaluation is deterministic, draws nothing from the run's random
    stream (so resuming a run reproduces it) and uses the same draws for every class (common
    random numbers, which make the comparison between classes less noisy).
    """

    def __init__(self, n_classes: int, n_in: int, hidden: list[int], z_dim: int,
                 importance_samples: int, likelihood: Likelihood, generator: torch.Generator,
                 extractor: nn.Module | None = None, learned_scale: bool = False) -> None:
        super().__init__()
        self.likelihood: Likelihood = likelihood
        self.extractor = extractor
        output = "sigmoid" if likelihood == "bernoulli" else "linear"
        self.vaes = nn.ModuleList(
            ReplayVAE(n_in, n_in, hidden, z_dim, generator, output=output)
            for _ in range(n_classes))
        # One parameter per class (not one shared tensor), so a class that is not being
        # trained gets no gradient at all and the optimiser leaves it alone.
        self.log_scales = nn.ParameterList(
            nn.Parameter(torch.zeros(n_in))
            for _ in range(n_classes if learned_scale and likelihood == "gaussian" else 0))
        self.register_buffer("importance_noise",
                             torch.randn(importance_samples, z_dim, generator=generator))

    def log_scale(self, c: int) -> torch.Tensor | None:
        return self.log_scales[c] if len(self.log_scales) else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return (self.extractor(x) if self.extractor is not None else x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return torch.stack([importance_log_likelihood(vae, h, self.importance_noise,
                                                      self.likelihood, self.log_scale(c))
                            for c, vae in enumerate(self.vaes)], dim=1)
