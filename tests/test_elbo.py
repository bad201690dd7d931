"""The probability: Pyro's objectives against sums written out by hand."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import TraceEnum_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence

from pyro_gmvae.components import GumbelSoftmaxCategorical, Relaxed
from pyro_gmvae.models import GMVAEModule


def tiny_module(discrete="enumerate"):
    torch.manual_seed(1)
    return GMVAEModule(x_dim=6, n_clusters=3, latent_dim=2, hidden_dims=(5,), discrete=discrete)


def brute_force_elbo(net, x, eps):
    """sum_n sum_k q(k|x_n) [log p(x_n|z) + log p(z|k) - log q(z|x_n,k) + log p(k) - log q(k|x_n)]
    with z = m(x_n, k) + sqrt(v(x_n, k)) * eps[k, n], one term at a time."""
    K = net.n_clusters
    total = 0.0
    for n in range(x.shape[0]):
        q_y = torch.softmax(net.y_encoder(x[n]), -1)
        for k in range(K):
            onehot = torch.zeros(K)
            onehot[k] = 1.0
            m, v = net.z_encoder(x[n], onehot)
            z = m + v.sqrt() * eps[k, n]
            p_loc, p_var = net.prior.params(onehot)
            log_p_z = sum(_log_normal(z[d], p_loc[d], p_var[d]) for d in range(len(z)))
            log_q_z = sum(_log_normal(z[d], m[d], v[d]) for d in range(len(z)))
            probs = torch.sigmoid(net.decoder(z))
            log_p_x = sum(
                x[n, i] * torch.log(probs[i]) + (1 - x[n, i]) * torch.log(1 - probs[i])
                for i in range(x.shape[1])
            )
            term = log_p_x + log_p_z - log_q_z + math.log(1 / K) - torch.log(q_y[k])
            total = total + q_y[k] * term
    return total


def _log_normal(z, loc, var):
    return -0.5 * (math.log(2 * math.pi) + torch.log(var) + (z - loc) ** 2 / var)


def test_enumerated_elbo_equals_brute_force_sum():
    net = tiny_module()
    x = torch.rand(4, 6)
    pyro.set_rng_seed(0)
    loss = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(net.model, net.guide, x)
    pyro.set_rng_seed(0)
    eps = torch.empty(3, 4, 2).normal_()  # the guide's only random draw: z for each (k, n)
    expected = -brute_force_elbo(net, x, eps)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


def test_elbo_terms_match_exact_elbo_in_expectation():
    """elbo_terms (analytic KL in z) and the enumerated Pyro ELBO estimate the same quantity."""
    net = tiny_module()
    x = torch.rand(4, 6)
    pyro.set_rng_seed(0)
    elbo = TraceEnum_ELBO(max_plate_nesting=1, num_particles=4000, vectorize_particles=True)
    with torch.no_grad():
        pyro_value = -elbo.loss(net.model, net.guide, x) / 4
        terms = [sum(net.elbo_terms(x).values()).mean() for _ in range(200)]
    assert -torch.stack(terms).mean().item() == pytest.approx(pyro_value, abs=0.05)


def test_relaxed_objective_is_relaxed_reconstruction_minus_kls():
    """TraceMeanField_ELBO with the relaxed guide: E[log p(x|z)] - KL(z) - KL(y), KL(y) exact."""
    net = tiny_module(Relaxed(temperature=0.7))
    x = torch.rand(4, 6)
    pyro.set_rng_seed(0)
    loss = TraceMeanField_ELBO().differentiable_loss(net.model, net.guide, x)
    pyro.set_rng_seed(0)
    logits = net.y_encoder(x)
    y = dist.RelaxedOneHotCategorical(torch.tensor(0.7), logits=logits).rsample()
    m, v = net.z_encoder(x, y)
    q_z = dist.Normal(m, v.sqrt()).to_event(1)
    z = q_z.rsample()
    log_p_x = net.likelihood(net.decoder(z)).log_prob(x)
    kl_z = kl_divergence(q_z, net.prior(y))
    q = torch.softmax(logits, -1)
    kl_y = (q * (q.log() + math.log(3))).sum(-1)
    expected = -(log_p_x - kl_z - kl_y).sum()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-4)


def test_gumbel_softmax_guide_samples_and_kl():
    logits = torch.tensor([[2.0, 0.0, -1.0]] * 5, requires_grad=True)
    soft = GumbelSoftmaxCategorical(logits, torch.tensor(0.5)).rsample()
    assert torch.allclose(soft.sum(-1), torch.ones(5))
    assert ((soft > 0) & (soft < 1)).all()
    # the declared support holds its samples: simplex points, not one-hot vectors
    assert GumbelSoftmaxCategorical(logits, torch.tensor(0.5)).support.check(soft).all()
    hard = GumbelSoftmaxCategorical(logits, torch.tensor(0.5), hard=True).rsample()
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(hard.sum(-1), torch.ones(5))
    hard.pow(2).sum().backward()  # straight-through: gradients reach the logits
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    q = GumbelSoftmaxCategorical(logits, torch.tensor(0.5))
    prior = dist.OneHotCategorical(logits=torch.zeros(3))
    p = torch.softmax(logits, -1)
    assert torch.allclose(kl_divergence(q, prior), (p * (p.log() + math.log(3))).sum(-1))


def test_temperature_schedule():
    r = Relaxed(temperature=1.0, min_temperature=0.5, decay_rate=0.013862944)
    assert r.temperature_at(0) == 1.0
    assert r.temperature_at(10) == pytest.approx(math.exp(-0.13862944))
    assert r.temperature_at(50) == pytest.approx(0.5, abs=1e-6)
    assert r.temperature_at(500) == 0.5
    r.on_epoch_end(10)
    assert float(r.temperature) == pytest.approx(r.temperature_at(10))
    with pytest.raises(ValueError, match="min_temperature"):
        Relaxed(temperature=0.3, min_temperature=0.5)


def _mean_value_and_gradient(module, loss, n):
    """The averages over ``n`` calls of ``loss()`` and of its gradient (all parameters)."""
    total = [torch.zeros_like(p) for p in module.parameters()]
    value = 0.0
    for _ in range(n):
        module.zero_grad()
        draw = loss()
        draw.backward()
        value += draw.item() / n
        for t, p in zip(total, module.parameters(), strict=True):
            t += p.grad
    return value, torch.cat([t.flatten() / n for t in total])


def test_score_function_objective_is_unbiased_for_the_enumerated_elbo():
    """The score-function loss's value is -ELBO and, averaged over draws, its gradient matches
    the exact-in-y (enumerated) gradient: the estimator is unbiased, only noisier.

    (The relaxed objective is another, biased objective: its value is checked term by term
    above, and its gradient is that value's.)"""
    from pyro_gmvae.components import ScoreFunction

    net = tiny_module(ScoreFunction())
    enumerated = tiny_module()  # same weights (same seed), y summed out
    x = torch.rand(4, 6)
    score_function, exact = net.elbo(), enumerated.elbo()
    pyro.set_rng_seed(0)
    # 3000 independent draws per point: 100 copies of the batch, 30 steps (losses are sums)
    copies = x.repeat(100, 1)
    value_sf, grad_sf = _mean_value_and_gradient(
        net, lambda: score_function.differentiable_loss(net.model, net.guide, copies) / 100, 30
    )
    value_exact, grad_exact = _mean_value_and_gradient(
        enumerated,
        lambda: exact.differentiable_loss(enumerated.model, enumerated.guide, copies) / 100,
        30,
    )
    assert value_sf == pytest.approx(value_exact, rel=0.01)
    assert torch.linalg.norm(grad_sf - grad_exact) < 0.05 * torch.linalg.norm(grad_exact)
    # the y-encoder learns only through the score-function term: it must be unbiased too
    first = sum(p.numel() for p in list(net.parameters())[: _index_of(net, net.y_encoder)])
    size = sum(p.numel() for p in net.y_encoder.parameters())
    y_sf, y_exact = (g[first : first + size] for g in (grad_sf, grad_exact))
    assert torch.linalg.norm(y_sf - y_exact) < 0.15 * torch.linalg.norm(y_exact)


def _index_of(module, child):
    """How many of ``module``'s parameters come before ``child``'s first one."""
    first = next(child.parameters())
    return next(i for i, p in enumerate(module.parameters()) if p is first)
