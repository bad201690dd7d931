"""The VAE and AE baselines, the importance-weighted log-likelihood, and a user-defined prior."""

import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_gmvae import AE, GMVAE, VAE
from pyro_gmvae.components import GaussianLikelihood
from pyro_gmvae.models import GMVAEModule, VAEModule, importance_log_likelihood

FAST = dict(latent_dim=4, hidden_dims=(32,), epochs=3, seed=0, progress_bar=False)


def linear_gaussian_vae(x_dim=5, z_dim=2, noise=0.5):
    """A VAE whose marginal likelihood is known: z ~ N(0, I), x = W z + b + N(0, noise^2 I)."""
    torch.manual_seed(0)
    module = VAEModule(x_dim, z_dim, (16,), likelihood=GaussianLikelihood())
    module.decoder = nn.Linear(z_dim, x_dim)
    with torch.no_grad():
        module.likelihood.raw_scale.fill_(float(np.log(np.expm1(noise - 1e-3))))
    W, b = module.decoder.weight.detach(), module.decoder.bias.detach()
    marginal = dist.MultivariateNormal(b, W @ W.T + noise**2 * torch.eye(x_dim))
    return module, marginal


def fit_guide(module, x, steps=400):
    """Fit only q(z|x) (the decoder stays the known linear map), so the proposal is sensible."""
    opt = torch.optim.Adam(module.z_encoder.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        sum(module.elbo_terms(x).values()).mean().backward()
        opt.step()


def test_importance_weighted_estimate_approaches_the_true_marginal():
    module, marginal = linear_gaussian_vae()
    x = marginal.sample((50,))
    truth = marginal.log_prob(x).mean().item()
    pyro.set_rng_seed(0)
    fit_guide(module, x, steps=40)  # a fair but imperfect proposal

    def repeated(fn, n):
        return torch.stack([fn().mean() for _ in range(n)]).mean().item()

    with torch.no_grad():
        elbo = repeated(lambda: -sum(module.elbo_terms(x).values()), 2000)
        one = repeated(lambda: importance_log_likelihood(module, x, 1), 2000)
        ten = repeated(lambda: importance_log_likelihood(module, x, 10), 100)
        many = importance_log_likelihood(module, x, 4000).mean().item()
    assert one == pytest.approx(elbo, abs=0.02)  # S=1 is the ELBO's estimate
    assert elbo + 0.02 < ten < many <= truth + 0.01  # tighter as S grows, never above log p(x)
    assert truth - many < 0.01


def test_gmvae_importance_weights_sum_out_y():
    torch.manual_seed(0)
    module = GMVAEModule(6, 3, 2, (8,))
    x = torch.rand(4, 6)
    z, log_q = module.sample_posterior(x, 5)
    assert z.shape == (5, 4, 2) and log_q.shape == (5, 4)
    # log q(z|x) = log sum_k q(k|x) q(z|x,k), written out one cluster at a time
    q_y = module.cluster_probs(x)
    by_hand = torch.zeros(5, 4)
    for k in range(3):
        loc, var = module.z_encoder(x, torch.eye(3)[k])
        by_hand += q_y[:, k] * dist.Normal(loc, var.sqrt()).to_event(1).log_prob(z).exp()
    torch.testing.assert_close(log_q, by_hand.log())


def test_vae_fits_samples_and_scores(digits_small):
    X = digits_small.X
    vae = VAE(**FAST).fit(X)
    losses = [h["loss"] for h in vae.history_]
    assert losses[-1] < losses[0]
    assert vae.transform(X).shape == (len(X), 4)
    assert vae.sample(6, seed=0).shape == (6, 64)
    with pytest.warns(UserWarning, match="not binary: a Bernoulli likelihood on grey levels"):
        ll = vae.log_likelihood(X[:20], n_samples=50)
    elbo = vae.score_samples(X[:20])
    binary = torch.bernoulli(X[:20], generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # binary data: a true log-probability, no warning
        assert np.isfinite(vae.log_likelihood(binary, n_samples=5)).all()
    assert np.all(np.isfinite(ll)) and ll.mean() > elbo.mean()
    with pytest.raises(ValueError, match="n_samples must be positive"):
        vae.log_likelihood(X[:3], n_samples=0)
    with pytest.raises(TypeError, match="n_samples must be an integer"):
        vae.log_likelihood(X[:3], n_samples=2.5)


def test_ae_fits_and_has_no_likelihood(digits_small, tmp_path):
    X = digits_small.X
    ae = AE(**FAST).fit(X)
    assert [h["loss"] for h in ae.history_][-1] < ae.history_[0]["loss"]
    assert ae.reconstruct(X[:3]).shape == (3, 64)
    assert "train_kl_z" not in ae.history_[-1]
    with pytest.raises(ValueError, match="no log-likelihood"):
        ae.log_likelihood(X[:3])
    loaded = AE.load(ae.save(tmp_path / "ae.pt"))
    np.testing.assert_allclose(loaded.transform(X), ae.transform(X))
    with pytest.raises(ValueError, match="holds a AE, not a VAE"):
        VAE.load(tmp_path / "ae.pt")


def test_gaussian_and_continuous_bernoulli_likelihoods(digits_small):
    X = digits_small.X
    for likelihood in ("gaussian", "continuous-bernoulli"):
        vae = VAE(**FAST, likelihood=likelihood).fit(X)
        assert np.isfinite(vae.score(X))
    real = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    assert np.isfinite(VAE(**FAST, likelihood="gaussian").fit(real).score(real))
    with pytest.raises(
        ValueError, match=r"continuous Bernoulli likelihood needs values in \[0, 1\]"
    ):
        VAE(**FAST, likelihood="continuous-bernoulli").fit(real)


class StudentTPrior(nn.Module):
    """A user-defined prior: heavy-tailed p(z) = prod_i StudentT(nu, 0, 1), nu learned."""

    n_clusters = None

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.log_df = nn.Parameter(torch.tensor(1.0))

    def forward(self, y=None):
        df = self.log_df.exp().expand(self.latent_dim)
        return dist.StudentT(df, torch.zeros(self.latent_dim), 1.0).to_event(1)

    def marginal(self):
        return self()


def test_user_defined_prior_needs_no_library_change(digits_small):
    X = digits_small.X
    vae = VAE(**FAST, prior=StudentTPrior(4)).fit(X)
    assert vae.module_.prior.log_df.item() != 1.0  # its parameter was trained
    binary = (X[:5] > 0.5).float()
    assert np.isfinite(vae.score(X)) and np.isfinite(vae.log_likelihood(binary, 20)).all()
    assert vae.sample(3, seed=0).shape == (3, 64)


def test_priors_with_y_belong_to_gmvae():
    from pyro_gmvae.components import LearnedMixturePrior

    with pytest.raises(ValueError, match="use GMVAE"):
        VAE(**FAST, prior=LearnedMixturePrior(3, 4)).fit(np.random.rand(10, 64))
    with pytest.raises(ValueError, match="use VAE for priors without y"):
        GMVAE(n_clusters=3, **FAST, prior=StudentTPrior(4)).fit(np.random.rand(10, 64))


def test_a_model_with_a_component_object_loads_when_it_is_passed_again(digits_small, tmp_path):
    from pyro_gmvae.components import VampPrior

    X = digits_small.X
    vae = VAE(prior=VampPrior(5, 64, 4), **{**FAST, "epochs": 1}).fit(X)
    path = vae.save(tmp_path / "vamp.pt")
    with pytest.raises(ValueError, match=r"pass them again: VAE.load\(path, prior=...\)"):
        VAE.load(path)
    loaded = VAE.load(path, prior=VampPrior(5, 64, 4))
    np.testing.assert_allclose(loaded.transform(X), vae.transform(X))
    assert loaded.hidden_dims == vae.hidden_dims and loaded.latent_dim == 4
