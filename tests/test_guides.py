"""The z-guides: correlated guides start as the diagonal one, and their KL term is exact."""

import pyro.distributions as dist
import pytest
import torch
from torch.distributions import kl_divergence

from pyro_gmvae.models import GMVAEModule, VAEModule


@pytest.mark.parametrize("guide", ["low-rank", "full"])
@pytest.mark.parametrize("module", [VAEModule, GMVAEModule])
def test_correlated_guides_start_as_the_diagonal_guide(guide, module):
    """Their extra covariance terms start at zero inside a model, after the model's own
    weight initialisation (which once overwrote them with random values)."""
    torch.manual_seed(0)
    net = module(12, 4, hidden_dims=(16,), z_guide=guide)
    x = torch.rand(5, 12)
    y = torch.eye(4)[:, None, :] if module is GMVAEModule else None
    q = net.z_encoder.distribution(x, y)
    loc, var = net.z_encoder(x, y)
    torch.testing.assert_close(q.covariance_matrix, torch.diag_embed(var))
    torch.testing.assert_close(q.loc, loc)


def test_correlated_guides_learn_correlations_through_their_extra_head():
    torch.manual_seed(0)
    net = VAEModule(12, 4, hidden_dims=(16,), z_guide="full")
    torch.nn.init.normal_(net.z_encoder.off_diagonal.weight)
    q = net.z_encoder.distribution(torch.rand(5, 12))
    off_diagonal = q.covariance_matrix - torch.diag_embed(q.covariance_matrix.diagonal(0, -2, -1))
    assert off_diagonal.abs().max() > 1e-3


def test_closed_form_kl_of_correlated_normals_to_a_diagonal_normal():
    torch.manual_seed(0)
    a = torch.randn(3, 5, 5)
    full = dist.MultivariateNormal(
        torch.randn(3, 5), scale_tril=torch.linalg.cholesky(a @ a.mT + torch.eye(5))
    )
    low_rank = dist.LowRankMultivariateNormal(
        torch.randn(3, 5), torch.randn(3, 5, 2), torch.rand(3, 5) + 0.1
    )
    mean, sd = torch.randn(3, 5), torch.rand(3, 5) + 0.5
    diagonal = dist.Normal(mean, sd).to_event(1)
    as_full = dist.MultivariateNormal(mean, scale_tril=torch.diag_embed(sd))
    for q in (full, low_rank):
        exact = kl_divergence(dist.MultivariateNormal(q.loc, q.covariance_matrix), as_full)
        torch.testing.assert_close(kl_divergence(q, diagonal), exact, rtol=1e-5, atol=1e-5)


def test_closed_form_kl_leaves_other_diagonal_priors_alone():
    q = dist.MultivariateNormal(torch.zeros(2), torch.eye(2))
    with pytest.raises(NotImplementedError):
        kl_divergence(q, dist.Laplace(torch.zeros(2), 1.0).to_event(1))
