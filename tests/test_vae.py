"""The VAE's building blocks: mixture prior densities, fixed gates, the extractor wrapper."""

import math

import torch
from torch import distributions as D

from birram.models.conv import ConvExtractor, FrozenExtractor
from birram.models.gates import GatedLinear, fixed_gate_masks
from birram.models.prior import GaussianMixturePrior, kl_to_standard_normal, log_normal_diag
from birram.models.vae import ReplayVAE


def mixture(prior: GaussianMixturePrior, weights: torch.Tensor) -> D.Distribution:
    comps = D.Independent(D.Normal(prior.means, torch.exp(0.5 * prior.logvars)), 1)
    return D.MixtureSameFamily(D.Categorical(probs=weights), comps)


def test_mixture_log_density_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    prior = GaussianMixturePrior(4, 3, gen)
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4])
    z = torch.randn(50, 3, generator=gen) * 2
    ours = prior.log_prob(z, weights.log().expand(50, -1))
    torch.testing.assert_close(ours, mixture(prior, weights).log_prob(z), atol=1e-4, rtol=1e-4)


def test_one_sample_kl_estimate_agrees_with_monte_carlo_kl():
    gen = torch.Generator().manual_seed(1)
    prior = GaussianMixturePrior(3, 2, gen)
    weights = torch.tensor([0.5, 0.3, 0.2])
    mu, logvar = torch.tensor([[0.3, -0.2]]), torch.tensor([[-0.5, 0.2]])
    # Our term, averaged over many reparameterised draws (what training sees in expectation)
    n = 200_000
    z = mu + torch.exp(0.5 * logvar) * torch.randn(n, 2, generator=gen)
    ours = (log_normal_diag(z, mu, logvar) - prior.log_prob(z, weights.log().expand(n, -1)))
    # An independent Monte-Carlo estimate of KL(q || p) with torch.distributions
    q = D.Independent(D.Normal(mu[0], torch.exp(0.5 * logvar[0])), 1)
    z2 = q.sample((n,))
    reference = (q.log_prob(z2) - mixture(prior, weights).log_prob(z2)).mean()
    assert abs(ours.mean().item() - reference.item()) < 0.02
    # With all weight on one mode the KL is between two Gaussians: check against the formula
    one = torch.tensor([0.0, 1.0, 0.0])
    log_one = torch.where(one > 0, 0.0, -1e9).expand(n, -1)
    est = (log_normal_diag(z, mu, logvar) - prior.log_prob(z, log_one)).mean()
    m, lv = prior.means[1].detach(), prior.logvars[1].detach()
    exact = 0.5 * (lv - logvar + (logvar.exp() + (mu - m) ** 2) / lv.exp() - 1).sum()
    assert abs(est.item() - exact.item()) < 0.02


def test_standard_normal_kl_is_zero_at_the_prior():
    assert kl_to_standard_normal(torch.zeros(2, 5), torch.zeros(2, 5)).abs().max() == 0


def test_gates_switch_off_exactly_the_proportion_and_are_fixed():
    gen = torch.Generator().manual_seed(0)
    masks = fixed_gate_masks(10, 400, 0.8, gen)
    assert torch.all((masks == 0).sum(1) == 320)
    assert len({tuple(m.tolist()) for m in masks}) == 10  # a different mask per context
    layer = GatedLinear(5, 400, 10, 0.8, gen)
    before = layer.masks.clone()
    x = torch.randn(7, 5)
    c = torch.nn.functional.one_hot(torch.full((7,), 3), 10).float()
    out = layer(x, c)
    assert torch.all(out[:, layer.masks[3] == 0] == 0)
    assert (out[:, layer.masks[3] == 1] != 0).float().mean() > 0.99
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    layer(x, c).pow(2).sum().backward()
    opt.step()
    assert torch.equal(layer.masks, before)  # masks are buffers, never trained
    assert "masks" in layer.state_dict()


def test_vae_shapes_and_gated_decoder():
    gen = torch.Generator().manual_seed(0)
    vae = ReplayVAE(12, 12, [16, 8], 4, gen, n_classes=3, n_modes=3, n_contexts=3,
                    gate_prop=0.5)
    x = torch.rand(5, 12)
    mu, logvar, top = vae.encode(x)
    assert mu.shape == (5, 4) and logvar.shape == (5, 4) and top.shape == (5, 8)
    assert vae(x).shape == (5, 3)
    ctx = torch.eye(3)[[0, 1, 2, 0, 1]]
    out = vae.decode(mu, ctx)
    assert out.shape == (5, 12) and out.min() >= 0 and out.max() <= 1
    assert len(vae.decoder_hidden) == 2 and vae.n_contexts == 3
    assert vae.prior.means.shape == (3, 4)


def test_frozen_extractor_stays_in_eval_mode_without_gradients():
    conv = ConvExtractor(1, layers=2, channels=4)
    frozen = FrozenExtractor(conv)
    frozen.train()
    assert not frozen.training and not conv.training
    assert all(not p.requires_grad for p in frozen.parameters())
    out = frozen(torch.rand(3, 1, 8, 8))
    assert out.shape == (3, 8, 4, 4) and not out.requires_grad
    assert math.prod(out.shape[1:]) == 128
