"""The Gibbs-sampled Bayesian GMM: each conditional against its closed form, the sampler against
exact enumeration and against Pyro's infer_discrete, recovery of known parameters, relabelling,
reproducibility and bad input."""

import itertools
import math
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.special import gammaln, multigammaln

from pyro_gmvae import GibbsGMM, NotFittedError
from pyro_gmvae.gmm import conjugate as cj
from pyro_gmvae.gmm import sampler
from pyro_gmvae.gmm.sampler import assignment_log_probs, gibbs_sweeps, match_labels

f64 = torch.float64


def _prior(D, covariance_type="full", alpha=1.0, beta=0.7, nu=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(D, D, generator=g, dtype=f64)
    psi = A @ A.T + D * torch.eye(D, dtype=f64)
    nu = nu if nu is not None else (D + 2.0 if covariance_type == "full" else 3.0)
    scale = psi if covariance_type == "full" else psi.diagonal().clone()
    return cj.MixturePrior(
        covariance_type, alpha, torch.randn(D, generator=g, dtype=f64), beta, nu, scale
    )


def _stats(z, assignments, K, covariance_type):
    return cj.statistics(z, assignments, K, covariance_type == "full")


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_posterior_matches_textbook_normal_wishart(covariance_type):
    """For fixed assignments: beta_n = beta0 + n, m_n = (beta0 m0 + n xbar) / beta_n,
    nu_n = nu0 + n, Psi_n = Psi0 + S + beta0 n / beta_n (xbar - m0)(xbar - m0)^T, with S the
    centred scatter; alpha_n = alpha0 + n. An empty cluster keeps the prior."""
    D, K = 3, 3
    prior = _prior(D, covariance_type)
    z = torch.randn(40, D, dtype=f64) * 2 + 1
    assignments = torch.tensor([[0] * 25 + [1] * 15])  # cluster 2 is empty
    post = cj.posterior(prior, *_stats(z, assignments, K, covariance_type))
    for k, members in enumerate([z[:25], z[25:], z[:0]]):
        n = len(members)
        beta0, m0, nu0 = prior.mean_precision, prior.mean, prior.degrees_of_freedom
        xbar = members.mean(0) if n else torch.zeros(D, dtype=f64)
        centred = members - xbar
        S = centred.T @ centred
        d = (xbar - m0).unsqueeze(1)
        psi = prior.covariance if covariance_type == "full" else torch.diag(prior.covariance)
        psi_n = psi + S + beta0 * n / (beta0 + n) * (d @ d.T)
        expected_scale = psi_n if covariance_type == "full" else psi_n.diagonal()
        assert torch.allclose(post.scale[0, k], expected_scale, atol=1e-9)
        assert torch.allclose(post.mean[0, k], (beta0 * m0 + n * xbar) / (beta0 + n))
        assert float(post.mean_precision[0, k]) == pytest.approx(beta0 + n)
        assert float(post.degrees_of_freedom[0, k]) == pytest.approx(nu0 + n)
        assert float(post.concentration[0, k]) == pytest.approx(prior.weight_concentration + n)


@pytest.mark.parametrize("N", [50, 700])  # 700: clusters span several blocks of GRAM_BLOCK rows
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_statistics_of_several_chains_match_a_loop_over_clusters(covariance_type, N):
    """Each chain's counts, sums and sums of squares (full: outer products; diag: squares)
    equal a plain loop over its clusters, empty clusters (first, middle, last) included, and the
    feature sums against the clusters' coefficients give the log-likelihood of the points."""
    assert 700 > 2 * cj.GRAM_BLOCK
    torch.manual_seed(0)
    D, K = 3, 5
    z = torch.randn(N, D, dtype=f64) * 2 + 1
    assignments = torch.stack(
        [torch.randint(1, 4, (N,)), torch.randint(0, 3, (N,)), torch.full((N,), 4)]
    )
    counts, sums, squares = cj.statistics(z, assignments, K, covariance_type == "full")
    for chain, labels in enumerate(assignments):
        for k in range(K):
            members = z[labels == k]
            outer = members.T @ members
            assert counts[chain, k] == len(members)
            assert torch.allclose(sums[chain, k], members.sum(0), atol=1e-12)
            expected = outer if covariance_type == "full" else outer.diagonal()
            assert torch.allclose(squares[chain, k], expected, atol=1e-12)
    params = cj.draw(cj.posterior(_prior(D, covariance_type), counts, sums, squares))
    per_point = cj.log_joint_terms(cj.features(z, covariance_type).T, params)  # (C, K, N)
    expected = per_point.gather(-2, assignments.unsqueeze(-2)).sum((-1, -2))
    coefficients = cj.coefficients(params)
    ours = (coefficients * cj.feature_sums(counts, sums, squares)).sum((-1, -2))
    assert torch.allclose(ours, expected, rtol=1e-12)


def test_moved_grams_equal_fresh_sums():
    """Moving the points whose cluster changed gives each (chain, cluster)'s Gram matrix of a
    fresh sum: counts exactly, sums to float64 rounding; a cluster emptied by the move and one
    filled from empty included, and chains moving different points."""
    torch.manual_seed(0)
    N, D, K = 300, 4, 5
    z = torch.randn(N, D, dtype=f64) * 3 + 2
    points = cj.gram_points(z)
    before = torch.stack([torch.randint(0, 4, (N,)), torch.randint(0, K, (N,))])  # 4 empty
    after = before.clone()
    after[0, before[0] == 0] = 4  # chain 0: cluster 0 empties into the empty cluster 4
    after[1, :40] = (before[1, :40] + 1) % K  # chain 1: 40 points move one cluster on
    gram = cj.grams(points, before, K)
    kept = gram.clone()
    moved = cj.moved_grams(gram, points, before, after)
    assert torch.equal(gram, kept)  # the last sweep's statistics stay as they were
    fresh = cj.grams(points, after, K)
    assert torch.equal(moved[..., 0, 0], fresh[..., 0, 0])
    assert float(moved[0, 0, 0, 0]) == 0 and float(moved[0, 4, 0, 0]) > 0
    assert torch.allclose(moved, fresh, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_sweeps_moving_points_draw_what_fresh_sums_draw(covariance_type, monkeypatch):
    """Sweeps that update the statistics by moving points (always) draw the same assignments,
    and parameters within rounding, as sweeps that sum them afresh (never), from one seed."""
    torch.manual_seed(1)
    D, K = 2, 3
    z = torch.cat([torch.randn(60, D, dtype=f64) + 4 * k for k in range(K)])
    prior = _prior(D, covariance_type)
    start = torch.randint(0, K, (2, len(z)))
    params = cj.draw(cj.posterior(prior, *_stats(z, start, K, covariance_type)))
    runs, calls, moved_grams = [], [], cj.moved_grams

    def counted(*args):
        calls.append(int(args[-1].sum()))  # the points moved
        return moved_grams(*args)

    monkeypatch.setattr(sampler.cj, "moved_grams", counted)
    for share in (1.0, 0.0):
        monkeypatch.setattr(sampler, "MOVED_SHARE", share)
        torch.manual_seed(2)
        runs.append(list(gibbs_sweeps(z, prior, params, 30)))
    moving, fresh = runs
    assert len(calls) == 29 and sum(calls) > 0  # every sweep but the first moved points
    for a, b in zip(moving, fresh, strict=True):
        assert torch.equal(a.assignments, b.assignments)
        assert torch.allclose(a.params.means, b.params.means, rtol=1e-9)
        assert torch.allclose(a.log_joint, b.log_joint, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_draws_have_the_posterior_moments(covariance_type):
    """Many draws (one 'chain' each) from one posterior: E[Lambda] = nu Psi^-1 (full) or
    nu / psi (diag), E[mu] = m, Cov[mu] = Psi / (beta (nu - D - 1)) (full), E[pi] = alpha / sum."""
    torch.manual_seed(0)
    D, K, S = 2, 2, 40000
    psi = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=f64)
    scale = psi if covariance_type == "full" else psi.diagonal()
    mean = torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=f64)
    post = cj.Posterior(
        torch.tensor([[3.0, 7.0]], dtype=f64).expand(S, K),
        mean.expand(S, K, D),
        torch.tensor([[2.0, 5.0]], dtype=f64).expand(S, K),
        torch.tensor([[6.0, 9.0]], dtype=f64).expand(S, K),
        scale.expand(S, K, *scale.shape),
    )
    params = cj.draw(post)
    assert torch.allclose(
        params.log_weights.exp().mean(0), torch.tensor([0.3, 0.7], dtype=f64), atol=0.01
    )
    assert torch.allclose(params.means.mean(0), mean, atol=0.03)
    nu = torch.tensor([6.0, 9.0], dtype=f64)
    if covariance_type == "full":
        expected = nu[:, None, None] * torch.linalg.inv(psi)
        assert torch.allclose(params.precisions.mean(0), expected, rtol=0.03, atol=0.03)
        cov_mu = torch.stack([torch.cov(params.means[:, k].T) for k in range(K)])
        beta = torch.tensor([2.0, 5.0], dtype=f64)
        expected_cov = psi / (beta * (nu - D - 1))[:, None, None]
        assert torch.allclose(cov_mu, expected_cov, rtol=0.06, atol=0.005)
        log_det = torch.linalg.slogdet(params.precisions)[1]
        assert torch.allclose(params.log_det, log_det, atol=1e-8)
    else:
        expected = nu[:, None] / psi.diagonal()
        assert torch.allclose(params.precisions.mean(0), expected, rtol=0.03)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_log_densities_match_torch_distributions(covariance_type):
    D, K = 3, 4
    prior = _prior(D, covariance_type)
    z = torch.randn(30, D, dtype=f64)
    post = cj.posterior(prior, *_stats(z, torch.randint(K, (2, 30)), K, covariance_type))
    params = cj.draw(post)
    cov = params.covariances()
    weights = params.log_weights.exp()
    if covariance_type == "full":
        components = dist.MultivariateNormal(params.means, cov)
    else:
        components = dist.Normal(params.means, cov.sqrt()).to_event(1)
    expected = (
        components.log_prob(z[:, None, None]).permute(1, 2, 0) + params.log_weights[..., None]
    )
    feats_t = cj.features(z, covariance_type).T.contiguous()
    assert torch.allclose(cj.log_joint_terms(feats_t, params), expected, atol=1e-8)

    lp = dist.Dirichlet(torch.full((K,), prior.weight_concentration, dtype=f64)).log_prob(
        weights / weights.sum(-1, keepdim=True)
    )
    beta0, nu0 = prior.mean_precision, prior.degrees_of_freedom
    if covariance_type == "full":
        wishart = dist.Wishart(
            torch.tensor(nu0, dtype=f64), covariance_matrix=torch.linalg.inv(prior.covariance)
        )
        normal = dist.MultivariateNormal(prior.mean, precision_matrix=beta0 * params.precisions)
        lp = lp + (wishart.log_prob(params.precisions) + normal.log_prob(params.means)).sum(-1)
    else:
        gamma = dist.Gamma(0.5 * nu0, 0.5 * prior.covariance)
        normal = dist.Normal(prior.mean, (beta0 * params.precisions).rsqrt())
        lp = lp + (gamma.log_prob(params.precisions) + normal.log_prob(params.means)).sum((-1, -2))
    assert torch.allclose(cj.log_prior(prior, params), lp, atol=1e-8)


def _log_marginal(z, prior):
    """log p(Z) of one cluster's points with (mu, Sigma) integrated out (Normal-inverse-Wishart),
    written independently of the library; a diagonal prior is a product of 1-D ones."""
    if prior.covariance_type == "diag":
        return sum(
            _log_marginal(
                z[:, d : d + 1],
                cj.MixturePrior(
                    "full",
                    prior.weight_concentration,
                    prior.mean[d : d + 1],
                    prior.mean_precision,
                    prior.degrees_of_freedom,
                    prior.covariance[d : d + 1].reshape(1, 1),
                ),
            )
            for d in range(z.shape[1])
        )
    n, D = z.shape
    z, m0, psi0 = z.numpy(), prior.mean.numpy(), prior.covariance.numpy()
    beta0, nu0 = prior.mean_precision, prior.degrees_of_freedom
    xbar = z.mean(0) if n else np.zeros(D)
    S = (z - xbar).T @ (z - xbar)
    d = (xbar - m0)[:, None]
    psi_n = psi0 + S + beta0 * n / (beta0 + n) * (d @ d.T)
    nu_n = nu0 + n
    return (
        -0.5 * n * D * math.log(math.pi)
        + multigammaln(nu_n / 2, D)
        - multigammaln(nu0 / 2, D)
        + 0.5 * nu0 * np.linalg.slogdet(psi0)[1]
        - 0.5 * nu_n * np.linalg.slogdet(psi_n)[1]
        + 0.5 * D * math.log(beta0 / (beta0 + n))
    )


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_assignment_densities_use_float32_only_within_their_error_bound(covariance_type):
    """The bound holds for every density and is not vacuous: codes of a typical scale get
    float32, within the bound of the float64 densities; a narrow cluster far from the centre
    (where the expanded form cancels) gets float64."""
    rng = np.random.default_rng(0)
    z = torch.from_numpy(rng.normal(size=(2000, 4)) * 2)
    feats = cj.features(z, covariance_type)
    prior = _prior(4, covariance_type)
    stats = _stats(z, torch.randint(3, (1, 2000)), 3, covariance_type)
    params = cj.draw(cj.posterior(prior, *stats))
    radius = float(z.norm(dim=1).max())
    args = (feats.T, feats.T.float(), radius)
    exact = cj.coefficients(params) @ feats.T
    fast = assignment_log_probs(params, cj.coefficients(params), *args)
    bound = sampler.density_error_bound(params, cj.coefficients(params), radius)
    assert fast.dtype == torch.float32 and bound <= sampler.DENSITY_TOLERANCE
    assert 0 < (fast.double() - exact).abs().max() <= bound
    # the bound covers the worst case: the sum of |term| at every point is within it
    F = feats.shape[1]
    terms = cj.coefficients(params).abs() @ feats.abs().T
    assert (F + 2) * 2.0**-24 * terms.max() <= bound
    # precision="float64" is the exact sampler; the default takes float32 where it may
    Z = z.numpy()
    for precision, expected_flag in (("auto", 1), ("float64", 0)):
        gmm = GibbsGMM(3, covariance_type=covariance_type, n_sweeps=3, burn_in=1, n_chains=1,
                       precision=precision, progress_bar=False).fit(Z)  # fmt: skip
        assert [row["float32"] for row in gmm.history_] == [expected_flag] * 3
    # float32 products that may run in TF32 or bfloat16 void the bound: float64 then
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        assert next(gibbs_sweeps(z, prior, params, 1)).log_probs.dtype == torch.float64
    finally:
        torch.set_float32_matmul_precision(before)
    # the sweep's log joint stays exact (float64) while its densities are float32
    sweep = next(gibbs_sweeps(z, prior, params, 1))
    assert sweep.log_probs.dtype == torch.float32
    chosen = exact.gather(-2, sweep.assignments.unsqueeze(-2)).sum((-1, -2))
    expected = chosen + cj.log_prior(prior, params)
    assert torch.allclose(sweep.log_joint, expected, rtol=1e-12)
    narrow = cj.Parameters(params.log_weights, params.means + 300.0, params.precisions * 1e4)
    slow = assignment_log_probs(narrow, cj.coefficients(narrow), *args)
    assert slow.dtype == torch.float64
    assert torch.equal(slow, cj.coefficients(narrow) @ feats.T)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_sampler_matches_exact_enumeration_of_assignments(covariance_type):
    """N=5 points, K=2: the exact posterior over the 2^5 assignments (weights and parameters
    integrated out) against the sampler's draws, compared on partitions (label-free)."""
    torch.manual_seed(0)
    z = torch.tensor([[-1.4, 0.2], [-0.9, -0.3], [0.1, 0.4], [0.8, 1.1], [1.5, 0.6]], dtype=f64)
    N, K = z.shape[0], 2
    prior = _prior(
        2, covariance_type, alpha=1.0, beta=0.5, nu=4.0 if covariance_type == "full" else 3.0
    )
    prior = cj.MixturePrior(
        covariance_type,
        1.0,
        torch.zeros(2, dtype=f64),
        0.5,
        prior.degrees_of_freedom,
        0.5 * (torch.eye(2, dtype=f64) if covariance_type == "full" else torch.ones(2, dtype=f64)),
    )
    exact = {}
    for c in itertools.product(range(K), repeat=N):
        c = np.array(c)
        counts = np.bincount(c, minlength=K)
        log_p = gammaln(K * 1.0) - gammaln(N + K * 1.0) + sum(gammaln(n + 1.0) for n in counts)
        log_p += sum(_log_marginal(z[torch.from_numpy(c == k)], prior) for k in range(K))
        key = tuple(c if c[0] == 0 else 1 - c)
        exact[key] = exact.get(key, 0.0) + math.exp(log_p)
    total = sum(exact.values())
    exact = {k: v / total for k, v in exact.items()}

    chains = 400
    start = cj.draw(
        cj.posterior(prior, *_stats(z, torch.randint(K, (chains, N)), K, covariance_type))
    )
    counts: dict[tuple, int] = {}
    for t, sweep in enumerate(gibbs_sweeps(z, prior, start, 150)):
        if t < 30:
            continue
        for c in sweep.assignments.numpy():
            key = tuple(c if c[0] == 0 else 1 - c)
            counts[key] = counts.get(key, 0) + 1
    n = sum(counts.values())
    tv = 0.5 * sum(abs(counts.get(k, 0) / n - p) for k, p in exact.items())
    assert tv < 0.02, tv


def test_assignment_step_matches_pyro_infer_discrete():
    """p(c_n | z_n, params) from the sampler against Pyro's infer_discrete (temperature 1) on
    the same GMM with the parameters fixed."""
    torch.manual_seed(1)
    D, K = 2, 3
    prior = _prior(D)
    z = torch.randn(6, D, dtype=f64) * 2
    params = cj.draw(cj.posterior(prior, *_stats(z, torch.randint(K, (1, 6)), K, "full")))
    sweep = next(gibbs_sweeps(z, prior, params, 1))
    ours = sweep.log_probs.double().softmax(-2)[0].T  # p(c_n = k | z_n, params), (N, K)

    weights, means, cov = params.log_weights[0].exp(), params.means[0], params.covariances()[0]

    @pyro.infer.config_enumerate
    def gmm(data):
        with pyro.plate("data", len(data)):
            c = pyro.sample("c", dist.Categorical(weights))
            pyro.sample("z", dist.MultivariateNormal(means[c], cov[c]), obs=data)

    sampler = pyro.infer.infer_discrete(gmm, first_available_dim=-2, temperature=1)
    draws = torch.stack(
        [pyro.poutine.trace(sampler).get_trace(z).nodes["c"]["value"] for _ in range(3000)]
    )
    freq = torch.stack([(draws == k).double().mean(0) for k in range(K)], 1)
    assert torch.allclose(freq, ours, atol=0.03)


def _plain_draws(log_probs, uniform):
    """The inverse-CDF draw without the floor, from the same uniforms."""
    cumulative = (log_probs - log_probs.amax(-2, keepdim=True)).exp().cumsum(-2)
    return (cumulative < (1.0 - uniform) * cumulative[:, -1:]).sum(-2)


@pytest.mark.parametrize("dtype", [torch.float32, f64])
def test_assignment_draws_follow_their_probabilities(dtype):
    """sample_assignments draws each cluster with its probability."""
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3], dtype=dtype)
    log_probs = probs.log().reshape(1, 4, 1).expand(1, 4, 40000).contiguous()
    torch.manual_seed(0)
    freq = torch.bincount(sampler.sample_assignments(log_probs)[0], minlength=4) / 40000
    assert torch.allclose(freq.to(dtype), probs, atol=0.01)


@pytest.mark.parametrize("dtype", [torch.float32, f64])
def test_zero_probability_clusters_are_never_drawn_at_the_uniforms_ends(dtype):
    """With u in (0, total], a zero-probability cluster first or last is not drawn even at the
    extreme uniforms (u = 0 would draw the first, `<=` the last)."""
    eps = torch.finfo(dtype).eps / 2  # torch.rand's grid: 2^-24 (float32), 2^-53 (float64)
    log_probs = torch.tensor([-math.inf, -1.0, 0.0, -math.inf], dtype=dtype).reshape(1, 4, 1)
    log_probs = log_probs.expand(1, 4, 2).contiguous()
    uniform = torch.tensor([0.0, 1.0 - eps], dtype=dtype).reshape(1, 1, 2)
    assert sampler.sample_assignments(log_probs, uniform).tolist() == [[2, 1]]


@pytest.mark.parametrize("dtype", [torch.float32, f64])
def test_the_floor_changes_no_probability_a_uniform_can_resolve(dtype):
    """Clusters ahead of the largest whose probabilities are just above and below the uniform's
    resolution are drawn at the smallest uniforms exactly as without the floor (a floor high
    enough to change a resolvable probability fails), and a far-below-the-floor column draws as
    without it too."""
    eps = torch.finfo(dtype).eps / 2
    resolution = math.log(eps)  # about -16.6 (float32), -36.7 (float64)
    offsets = torch.tensor([-3.0, -1.0, -0.3, 0.3, 1.0, 3.0], dtype=dtype)
    ahead = resolution + offsets  # one cluster each, ahead of the largest
    log_probs = torch.cat([ahead, torch.tensor([-500.0, 0.0, -0.5], dtype=dtype)])
    K = len(log_probs)
    steps = torch.arange(1, 4000, dtype=dtype)  # u = k * eps * total: the smallest uniforms
    columns = len(steps)
    lp = log_probs.reshape(1, K, 1).expand(1, K, columns).contiguous()
    uniform = (1.0 - steps * eps).reshape(1, 1, columns)
    ours = sampler.sample_assignments(lp, uniform)
    assert torch.equal(ours, _plain_draws(lp, uniform))
    assert len(ours.unique()) >= 4  # the small clusters are really drawn at these uniforms

    g = torch.Generator().manual_seed(1)  # separated clusters: most far below the floor
    lp = torch.randn(2, 6, 5000, generator=g, dtype=dtype) * 300
    lp[:, 3] = lp.amax(1) + torch.randn(2, 5000, generator=g, dtype=dtype)
    uniform = torch.rand(2, 1, 5000, generator=g, dtype=dtype)
    assert torch.equal(sampler.sample_assignments(lp, uniform), _plain_draws(lp, uniform))


def test_assignment_step_refuses_non_finite_log_probabilities():
    log_probs = torch.zeros(1, 3, 4, dtype=f64)
    for bad in (math.nan, math.inf):
        lp = log_probs.clone()
        lp[0, 1, 2] = bad
        with pytest.raises(FloatingPointError, match="non-finite"):
            sampler.sample_assignments(lp)
    lp = log_probs.clone()
    lp[0, :, 0] = -math.inf
    with pytest.raises(FloatingPointError, match="non-finite"):
        sampler.sample_assignments(lp)


def _synthetic(seed=0, n=900):
    rng = np.random.default_rng(seed)
    means = np.array([[-4.0, 0.0], [3.0, 3.0], [3.0, -3.0]])
    covs = np.array(
        [[[1.0, 0.5], [0.5, 0.8]], [[0.5, 0.0], [0.0, 0.5]], [[1.2, -0.4], [-0.4, 0.6]]]
    )
    weights = np.array([0.5, 0.3, 0.2])
    labels = rng.choice(3, size=n, p=weights)
    Z = np.stack([rng.multivariate_normal(means[k], covs[k]) for k in labels])
    return Z, labels, means, covs, weights


def test_recovers_known_mixture_and_fits_sklearn_shape():
    """The posterior means match the exact posterior means given the true assignments (the
    best any fit can do from these points, under the same prior), which sit near the truth."""
    Z, labels, means, covs, weights = _synthetic()
    gmm = GibbsGMM(3, n_sweeps=120, burn_in=40, n_chains=2, progress_bar=False).fit(Z, labels)
    order = linear_sum_assignment(((gmm.means_[:, None] - means[None]) ** 2).sum(-1))[1]
    truth = torch.from_numpy(np.argsort(order)[labels]).unsqueeze(0)  # true labels, fitted order
    post = cj.posterior(gmm.prior_, *_stats(torch.from_numpy(Z), truth, 3, "full"))
    exact_cov = post.scale[0] / (post.degrees_of_freedom[0] - 2 - 1)[:, None, None]
    assert np.abs(gmm.means_ - post.mean[0].numpy()).max() < 0.03
    assert np.abs(gmm.covariances_ - exact_cov.numpy()).max() < 0.05
    assert np.abs(gmm.weights_ - [(labels == k).mean() for k in order]).max() < 0.01
    assert np.abs(gmm.means_ - means[order]).max() < 0.2
    assert gmm.history_[-1]["acc"] > 0.98
    proba = gmm.predict_proba(Z)
    assert proba.shape == (len(Z), 3) and np.allclose(proba.sum(1), 1)
    assert (gmm.predict(Z) == gmm.labels_).all()
    assert gmm.draws_["means"].shape == (2, 80, 3, 2)
    # the predictive density is a density: close to the true mixture's on average
    true = sum(
        w
        * dist.MultivariateNormal(torch.tensor(m), torch.tensor(c)).log_prob(torch.tensor(Z)).exp()
        for w, m, c in zip(weights, means, covs, strict=True)
    ).log()
    assert abs(gmm.score(Z) - float(true.mean())) < 0.05
    points, clusters = gmm.sample(500, seed=3)
    assert points.shape == (500, 2) and set(clusters) <= {0, 1, 2}


def test_relabelling_undoes_a_permutation():
    torch.manual_seed(0)
    reference = torch.randint(4, (200,))
    perm = torch.tensor([2, 0, 3, 1])  # draw label of each reference label
    draws = torch.stack([perm[reference], reference])
    order = match_labels(draws, reference, 4)
    assert (order[0] == perm).all() and (order[1] == torch.arange(4)).all()
    # and the chains of a fit started from different k-means seeds agree after relabelling
    Z, *_ = _synthetic(1)
    gmm = GibbsGMM(3, n_sweeps=60, burn_in=20, n_chains=3, progress_bar=False).fit(Z)
    chain_means = gmm.draws_["means"].mean(1)  # (chains, K, D)
    assert np.abs(chain_means - chain_means[0]).max() < 0.2


def test_same_seed_same_draws_and_callers_random_state_untouched():
    Z, *_ = _synthetic(2, n=300)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = GibbsGMM(3, n_sweeps=20, burn_in=5, seed=4, progress_bar=False).fit(Z)
    assert torch.equal(torch.rand(1), before)
    b = GibbsGMM(3, n_sweeps=20, burn_in=5, seed=4, progress_bar=False).fit(Z)
    c = GibbsGMM(3, n_sweeps=20, burn_in=5, seed=5, progress_bar=False).fit(Z)
    assert all(np.array_equal(a.draws_[k], b.draws_[k]) for k in a.draws_)
    assert not np.array_equal(a.draws_["means"], c.draws_["means"])


def test_warm_start_continues_from_the_last_parameters():
    """The next fit's first sweep starts from the last fit's parameters, where they were in the
    data's space, even when new data moves the mean (the sampler centres each data set)."""
    Z, labels, *_ = _synthetic(3, n=300)
    gmm = GibbsGMM(3, n_sweeps=30, burn_in=10, n_chains=2, warm_start=True, progress_bar=False)
    gmm.fit(Z)
    state = gmm.state_
    more = np.r_[Z, Z[labels == 0] + 0.01]  # moves the data's mean
    gmm.set_params(n_sweeps=1, burn_in=0, init="random")  # init is ignored: the chains continue
    gmm.fit(more)
    first = gmm.draws_["means"][:, 0]  # (chains, K, D), relabelled
    for chain in range(2):
        expected = np.sort(state.means[chain].numpy(), axis=0)
        assert np.allclose(np.sort(first[chain], axis=0), expected)
    with pytest.raises(ValueError, match="warm_start"):
        gmm.set_params(n_chains=3).fit(Z)


def test_chains_start_from_given_assignments(monkeypatch):
    """init as assignments: every chain's first parameters are drawn given them (no k-means), so
    on separated clusters the fit keeps their clusters and their numbering."""
    from pyro_gmvae.gmm import estimator

    Z, labels, *_ = _synthetic(4, n=300)
    start = np.array([2, 0, 1])[labels]  # the true clusters, renumbered
    monkeypatch.setattr(estimator, "KMeans", None)  # any k-means call would fail
    gmm = GibbsGMM(3, n_sweeps=3, burn_in=0, n_chains=2, init=start, progress_bar=False)
    given = start.copy()
    gmm.fit(Z)
    assert gmm.init is start and np.array_equal(start, given)  # the user's array, untouched
    assert (gmm.labels_ == start).mean() > 0.99  # the same clusters under the same numbers
    assert len(gmm.chains_) == 2
    with pytest.raises(ValueError, match="300 assignments for 299 points"):
        gmm.fit(Z[:-1])
    with pytest.raises(ValueError, match=r"cluster indices in \[0, 3\)"):
        GibbsGMM(3, init=np.r_[start[:-1], 3])
    with pytest.raises(TypeError, match="1-D array of integers"):
        GibbsGMM(3, init=start.astype(float))


def test_chains_in_other_clusterings_are_left_out_of_the_estimates():
    """Four blobs, three clusters, random starts: chains that merge different blobs cannot be
    relabelled onto each other; the estimates pool only the chains that agree with the most
    probable one, and a warning names the others."""
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [0, 8], [8, 0], [8, 8]])
    Z = np.concatenate([c + rng.normal(size=(100, 2)) * 0.5 for c in centres])
    from pyro_gmvae.gmm import ChainDisagreementWarning

    with pytest.warns(ChainDisagreementWarning, match="settled in other clusterings"):
        gmm = GibbsGMM(3, init="random", n_sweeps=100, burn_in=60, n_chains=6, seed=0,
                       progress_bar=False).fit(Z)  # fmt: skip
    assert 0 < len(gmm.chains_) < 6
    # the pooled chains agree with each other; the left-out ones did not
    per_chain = gmm.draws_["means"].mean(1)  # (chains, K, D), relabelled
    assert np.abs(per_chain[gmm.chains_] - gmm.means_).max() < 0.3
    others = np.setdiff1d(np.arange(6), gmm.chains_)
    assert all(np.abs(per_chain[c] - gmm.means_).max() > 1 for c in others)


@pytest.mark.parametrize("seed", [3, 13])
def test_pooled_draws_are_lined_up_with_the_most_probable_chain(seed):
    """Overlapping blobs, random starts: chain 0 may sit in another clustering than the most
    probable chain. Every pooled draw must then carry the same labels as the estimates (no
    draw-to-draw permutation from near-ties with a left-out chain's clusters)."""
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [0, 5], [5, 0], [5, 5]])
    Z = np.concatenate([c + rng.normal(size=(150, 2)) * 0.8 for c in centres])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gmm = GibbsGMM(3, init="random", n_sweeps=120, burn_in=60, n_chains=4, seed=seed,
                       progress_bar=False).fit(Z)  # fmt: skip
    best = int(gmm.draws_["log_joint"].mean(1).argmax())
    assert best in gmm.chains_
    pooled = gmm.draws_["means"][gmm.chains_]  # (chains, draws, K, D)
    assert np.abs(pooled - gmm.means_).max() < 1.0


def test_predictions_average_the_draws_and_ignore_later_set_params():
    Z, *_ = _synthetic(5, n=200)
    gmm = GibbsGMM(3, n_sweeps=12, burn_in=6, n_chains=2, progress_bar=False).fit(Z)
    d = gmm.draws_
    dens = []  # brute force over every kept draw of every (agreeing) chain
    for c in gmm.chains_:
        for s in range(d["weights"].shape[1]):
            comp = dist.MultivariateNormal(
                torch.tensor(d["means"][c, s]), torch.tensor(d["covariances"][c, s])
            )
            dens.append(
                comp.log_prob(torch.tensor(Z)[:, None]) + torch.tensor(d["weights"][c, s]).log()
            )
    dens = torch.stack(dens)  # (draws, N, K)
    proba = dens.softmax(-1).mean(0).numpy()
    log_p = (dens.logsumexp(-1).logsumexp(0) - math.log(len(dens))).numpy()
    assert np.allclose(gmm.predict_proba(Z), proba, atol=1e-8)
    assert np.allclose(gmm.score_samples(Z), log_p, atol=1e-8)
    gmm.set_params(n_chains=4, covariance_type="diag")  # the fit is what predictions read
    assert np.allclose(gmm.predict_proba(Z), proba, atol=1e-8)


def test_inference_data_for_arviz():
    Z, *_ = _synthetic(4, n=300)
    gmm = GibbsGMM(3, n_sweeps=110, burn_in=10, n_chains=2, progress_bar=False).fit(Z)
    idata = gmm.to_inference_data()
    post = idata.posterior
    assert dict(post.sizes) == {"chain": 2, "draw": 100, "component": 3, "dim": 2}
    assert set(post.data_vars) == {"weights", "means", "variances", "log_joint"}
    import arviz as az

    summary = az.summary(idata, var_names=["weights"])
    assert {"r_hat", "ess_bulk"} <= set(summary.columns) and len(summary) == 3
    assert summary["r_hat"].max() < 1.1  # one mode, well separated: the chains agree


@pytest.mark.filterwarnings("ignore::pyro_gmvae.gmm.ChainDisagreementWarning")
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_hard_inputs_give_finite_draws(covariance_type):
    rng = np.random.default_rng(0)
    kw = dict(covariance_type=covariance_type, n_sweeps=15, burn_in=5, progress_bar=False)
    # a degenerate direction (a constant feature) and D = 1
    Z = np.c_[rng.normal(size=(100, 2)), np.full(100, 3.0)]
    for data in (Z, Z[:, :1]):
        gmm = GibbsGMM(2, **kw).fit(data)
        assert all(np.isfinite(v).all() for v in gmm.draws_.values())
    # a single point, one cluster
    gmm = GibbsGMM(1, **kw).fit([[0.5, -1.0]])
    assert np.isfinite(gmm.means_).all() and np.allclose(gmm.weights_, 1)
    # more clusters than the data fill: empty ones are drawn from the prior, never NaN
    tight = np.r_[rng.normal(size=(30, 2)) * 0.01, rng.normal(size=(30, 2)) * 0.01 + 5]
    gmm = GibbsGMM(6, init="random", **kw).fit(tight)
    counts = np.bincount(gmm.labels_, minlength=6)
    assert (counts == 0).any() and all(np.isfinite(v).all() for v in gmm.draws_.values())


@pytest.mark.filterwarnings("ignore::pyro_gmvae.gmm.ChainDisagreementWarning")
def test_bad_input_is_refused_clearly():
    Z = np.random.default_rng(0).normal(size=(20, 3))
    gmm = GibbsGMM(3, n_sweeps=10, burn_in=2, progress_bar=False)
    with pytest.raises(ValueError, match="more than the number of points"):
        GibbsGMM(30, progress_bar=False).fit(Z)
    for bad in (np.nan, np.inf):
        Zb = Z.copy()
        Zb[4, 1] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            gmm.fit(Zb)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        gmm.fit(Z[:, 0])
    with pytest.raises(TypeError, match="numeric"):
        gmm.fit([["a", "b"]])
    with pytest.raises(NotFittedError):
        gmm.predict(Z)
    gmm.fit(Z)
    with pytest.raises(ValueError, match="fitted on 3 features"):
        gmm.predict(Z[:, :2])
    with pytest.raises(ValueError, match="burn_in"):
        GibbsGMM(3, n_sweeps=10, burn_in=10)
    with pytest.raises(ValueError, match="covariance_type"):
        GibbsGMM(3, covariance_type="spherical")
    with pytest.raises(ValueError, match="precision must be 'auto' or 'float64'"):
        GibbsGMM(3, precision="half")
    with pytest.raises(TypeError, match="n_components"):
        GibbsGMM(2.5)
    with pytest.raises(ValueError, match="covariance_prior must have shape"):
        GibbsGMM(2, covariance_prior=np.eye(2), progress_bar=False).fit(Z)
    with pytest.raises(ValueError, match="positive definite"):
        GibbsGMM(2, covariance_prior=-np.eye(3), progress_bar=False).fit(Z)


def test_inference_data_with_the_data_for_loo_and_ppc():
    """With the points, the InferenceData has the groups az.loo, az.waic and az.plot_ppc read;
    its log-likelihood is the mixture density of each draw (checked by hand for one draw)."""
    import arviz as az

    Z, *_ = _synthetic(3, n=240)
    gmm = GibbsGMM(3, n_sweeps=150, burn_in=50, n_chains=2, progress_bar=False).fit(Z)
    idata = gmm.to_inference_data(Z, seed=1)
    assert set(idata.groups()) == {"posterior", "log_likelihood", "observed_data",
                                   "posterior_predictive"}  # fmt: skip
    assert idata.log_likelihood["z"].shape == (2, 100, 240)
    assert idata.posterior_predictive["z"].shape == (2, 100, 240, Z.shape[1])
    np.testing.assert_array_equal(idata.observed_data["z"], Z)
    c, s = 1, 7  # one draw by hand: log sum_k pi_k N(z | mu_k, Sigma_k)
    d = {k: torch.from_numpy(v[c, s]) for k, v in gmm.draws_.items() if k != "log_joint"}
    normal = torch.distributions.MultivariateNormal(d["means"], d["covariances"])
    hand = (normal.log_prob(torch.from_numpy(Z)[:, None]) + d["weights"].log()).logsumexp(-1)
    np.testing.assert_allclose(idata.log_likelihood["z"][c, s], hand.numpy(), atol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing about the structure (or anything else)
        loo = az.loo(idata)
        az.summary(idata, var_names=["weights", "means"])
    # LOO's in-sample term is the posterior predictive density of the fitted points, and its
    # effective number of parameters stays under the model's 17 (2 weights, 6 means, 9 in
    # the covariances)
    assert len(gmm.chains_) == 2  # both chains agree, so score_samples averages every draw
    lppd = loo.elpd_loo + loo.p_loo
    np.testing.assert_allclose(lppd, gmm.score_samples(Z).sum(), rtol=1e-9)
    assert 3 < loo.p_loo < 17
    # the replicates look like the data: same mean and spread to within sampling error
    rep = idata.posterior_predictive["z"].values.reshape(-1, Z.shape[1])
    np.testing.assert_allclose(rep.mean(0), Z.mean(0), atol=0.1)
    np.testing.assert_allclose(rep.std(0), Z.std(0), rtol=0.05)
    again = gmm.to_inference_data(Z, seed=1).posterior_predictive["z"].values
    np.testing.assert_array_equal(again, idata.posterior_predictive["z"].values)
    gmm_diag = GibbsGMM(3, covariance_type="diag", n_sweeps=30, burn_in=10, n_chains=2,
                        progress_bar=False).fit(Z)  # fmt: skip
    assert gmm_diag.to_inference_data(Z).posterior_predictive["z"].shape == (2, 20, 240, 2)
    assert "posterior_predictive" not in gmm_diag.to_inference_data(Z, predictive=False).groups()
