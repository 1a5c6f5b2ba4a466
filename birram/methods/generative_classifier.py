"""The generative classifier (van de Ven, Li & Tolias, CVPR-W 2021): a VAE per class.

Each class's VAE learns only from that class's samples, while its task is trained; the other
VAEs get no gradient (``None``, so Adam leaves them bit-for-bit alone) and nothing is
forgotten by construction. An input is classified by the class whose VAE gives it the highest
importance-sampled likelihood (uniform class prior). No data and no replay are kept. Since
each VAE needs only its own class's samples, it learns from a task-free stream as well: each
step trains the VAE of every class the batch holds (as the authors' task-free code does).

Details that follow the authors' code: the per-class architecture (two hidden layers of 85
units and a 5-dimensional latent space for MNIST-like inputs), 50 importance samples, and a
training loss of reconstruction averaged over input elements plus the analytic KL divided by
the number of input elements (the negative ELBO per element). Two differences: the likelihood
used for scoring is the one the VAE was trained with (Bernoulli for BCE, Gaussian for MSE),
where the reference scores with a unit Gaussian in both cases, so the S-sample estimate bounds
the likelihood the training maximised; and for real-valued inputs each class learns its output
standard deviation per feature by default (``learned_scale``). With unit variance on
standardised features a class's spread (far below 1) is invisible to its density, and the
likelihood barely tells the classes apart.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from birram.errors import ConfigError
from birram.methods.base import Batch, Context, CurrentLoss, Method
from birram.models.conv import freeze
from birram.models.generative_classifier import ClassVAEs, Likelihood, log_p_x_given_z
from birram.models.mlp import extractor_output_size
from birram.models.prior import kl_to_standard_normal
from birram.models.vae import ReplayVAE

ReconLoss = Literal["auto", "bce", "mse"]

# Rows (inputs x importance samples) one evaluation pass decodes: bounds the memory of
# predict() for any batch size (10,000 inputs x 50 samples of 784 pixels would take 1.5 GB).
ROWS_PER_PASS = 1 << 16


def negative_elbo_per_element(vae: ReplayVAE, x: torch.Tensor, noise: torch.Tensor,
                              likelihood: Likelihood, log_scale: torch.Tensor | None = None
                              ) -> torch.Tensor:
    """Per-sample ``-ELBO / D``, one reparameterised draw (for the unit Gaussian, up to a
    constant: the reference's "MSE", half the squared error averaged over features)."""
    mu, logvar, _ = vae.encode(x)
    decoded = vae.decode_logits(mu + torch.exp(0.5 * logvar) * noise)
    if likelihood == "bernoulli":
        recon = F.binary_cross_entropy_with_logits(decoded, x, reduction="none").mean(1)
    elif log_scale is None:
        recon = 0.5 * (decoded - x).pow(2).mean(1)
    else:
        recon = -log_p_x_given_z(decoded, x, likelihood, log_scale) / x.shape[1]
    return recon + kl_to_standard_normal(mu, logvar) / x.shape[1]


class GenerativeClassifier(Method):
    """One VAE per output unit, trained on its own class only; argmax of estimated log p(x|y)."""

    name = "gen-classifier"

    def __init__(self, hidden: list[int], z_dim: int, importance_samples: int,
                 recon_loss: ReconLoss = "auto", extractor: nn.Module | None = None,
                 learned_scale: bool = True) -> None:
        super().__init__()
        if not hidden or z_dim < 1 or importance_samples < 1:
            raise ConfigError(f"gen-classifier needs hidden layers (got {hidden}), "
                              f"gc_z_dim >= 1 (got {z_dim}) and gc_importance_samples >= 1 "
                              f"(got {importance_samples})")
        if recon_loss not in ("auto", "bce", "mse"):
            raise ConfigError(f"recon_loss={recon_loss!r}; allowed: auto, bce, mse")
        self.hidden, self.z_dim = list(hidden), z_dim
        self.importance_samples = importance_samples
        self.recon_loss: ReconLoss = recon_loss
        self.extractor = freeze(extractor)
        self.learned_scale = learned_scale
        self.likelihood: Likelihood = "gaussian"

    def _pick_likelihood(self, ctx: Context) -> Likelihood:
        if self.recon_loss != "auto":
            return "bernoulli" if self.recon_loss == "bce" else "gaussian"
        x = ctx.protocol.tasks[0].x_train
        in_unit_range = bool(x.min() >= 0) and bool(x.max() <= 1)
        # Extracted features are not probabilities, whatever range the raw inputs have.
        return "bernoulli" if in_unit_range and self.extractor is None else "gaussian"

    def build_model(self, ctx: Context) -> nn.Module:
        p = ctx.protocol
        if p.scenario == "domain":
            raise ConfigError("gen-classifier does not support the domain scenario (its classes "
                              "recur in every task, so a class's VAE would be retrained); use "
                              "scenario task or class")
        self.likelihood = self._pick_likelihood(ctx)
        return ClassVAEs(p.n_outputs, extractor_output_size(self.extractor, p.input_shape),
                         self.hidden, self.z_dim, self.importance_samples, self.likelihood,
                         ctx.generator, extractor=self.extractor,
                         learned_scale=self.learned_scale)

    def trained_classes(self, ctx: Context, batch: Batch) -> list[int]:
        """The classes whose VAEs this batch trains: the task's, or on a stream (no task is
        told) those the batch holds. The others get no gradient, so Adam leaves them alone."""
        if ctx.stream is None:
            return list(ctx.protocol.tasks[ctx.task].outputs)
        # One device synchronisation per step, on streams only.
        return torch.unique(batch.y).tolist()

    def current(self, ctx: Context, batch: Batch) -> CurrentLoss:
        """Sum over the trained classes of the mean loss of that class's samples under its VAE.

        Each of these VAEs reads the whole batch and weighs it by membership: no
        data-dependent shapes; a batch holds few classes.
        """
        model: ClassVAEs = ctx.model  # type: ignore[assignment]
        x = model.features(batch.x)
        loss = x.new_zeros(())
        for c in self.trained_classes(ctx, batch):
            vae = model.vaes[c]
            member = (batch.y == c).to(x.dtype)
            weight = member / member.sum().clamp(min=1.0)
            noise = torch.randn(x.shape[0], self.z_dim, generator=ctx.generator).to(ctx.device)
            per_sample = negative_elbo_per_element(vae, x, noise, self.likelihood,
                                                   model.log_scale(c))
            loss = loss + (weight * per_sample).sum()
        return CurrentLoss(loss, {"loss_current": loss.detach()})

    @torch.no_grad()
    def predict(self, ctx: Context, x: torch.Tensor) -> torch.Tensor:
        """Estimated ``log p(x | y)`` for every output unit, in passes of bounded memory."""
        rows = max(1, ROWS_PER_PASS // self.importance_samples)
        # An exported program keeps a dynamic batch: no branch on its size (the caller batches).
        if torch.compiler.is_exporting() or x.shape[0] <= rows:
            return ctx.model(x)
        return torch.cat([ctx.model(x[i : i + rows]) for i in range(0, x.shape[0], rows)])


__all__ = ["GenerativeClassifier", "ROWS_PER_PASS", "negative_elbo_per_element"]
