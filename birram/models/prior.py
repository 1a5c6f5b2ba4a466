"""Latent priors of the VAE: the standard normal and a Gaussian mixture with a mode per class.

Only densities and sampling live here; the losses that use them are the method's business.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LOG_2PI = math.log(2 * math.pi)


def log_normal_diag(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar)).sum(-1)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Analytic KL(N(mu, exp(logvar)) || N(0, I)) per row (Kingma & Welling 2014, app. B)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)


class GaussianMixturePrior(nn.Module):
    """``n_modes`` diagonal Gaussians with learnable means and log-variances (initialised N(0, 1)).

    The mixture weights are not parameters: the caller passes them per sample (a one-hot label
    for a sample of known class, a teacher's soft prediction for a replayed one).
    """

    def __init__(self, n_modes: int, z_dim: int, generator: torch.Generator) -> None:
        super().__init__()
        self.means = nn.Parameter(torch.randn(n_modes, z_dim, generator=generator))
        self.logvars = nn.Parameter(torch.randn(n_modes, z_dim, generator=generator))

    @property
    def n_modes(self) -> int:
        return self.means.shape[0]

    def log_prob(self, z: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
        """log sum_k w_k N(z; mean_k, var_k) for ``z [B, D]`` and ``log_weights [B, K]``."""
        inv_var = torch.exp(-self.logvars)  # [K, D]
        # sum_d (z - m)^2 / v expanded into three matrix products: no [B, K, D] temporary.
        sq = (z * z) @ inv_var.T - 2 * z @ (self.means * inv_var).T \
            + (self.means.pow(2) * inv_var).sum(1)
        log_comp = -0.5 * (z.shape[1] * LOG_2PI + self.logvars.sum(1) + sq)  # [B, K]
        return torch.logsumexp(log_weights + log_comp, dim=1)

    def sample(self, modes: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """z from the modes ``modes [B]``, given standard-normal ``noise [B, D]``."""
        return self.means[modes] + torch.exp(0.5 * self.logvars[modes]) * noise
