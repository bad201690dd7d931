"""Dilokthanakul et al.'s GMVAE: the paper's bound against a hand-written computation, the
threshold, the closed-form posterior of y, and the exact ELBO with y enumerated."""

import math

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine

from pyro_gmvae.models.dilokthanakul import PRIOR_HEAD_INIT_SCALE, DilokthanakulModule


def _module(**kw):
    """A tiny module whose K components are made clearly distinct (Xavier-scale weights and
    random biases in the prior heads, instead of the almost-equal start), so that a check that
    mixes them up, or forgets to sum over y, fails."""
    torch.manual_seed(0)
    options = dict(n_clusters=3, latent_dim=2, w_dim=2, hidden_dims=(8,), n_samples=2)
    module = DilokthanakulModule(5, **{**options, **kw}).double()
    with torch.no_grad():
        for layer in (module.prior_head.loc, module.prior_head.var):
            layer.weight.div_(PRIOR_HEAD_INIT_SCALE)
            layer.bias.normal_()
    return module


def _x():
    """Four points (N = 4 differs from K = 3, so mixing the two axes up cannot broadcast)."""
    rows = [[1, 0, 1, 1, 0], [0, 0, 1, 0, 1], [1, 1, 1, 0, 0], [0, 1, 0, 0, 1]]
    return torch.tensor(rows, dtype=torch.float64)


def _normal_log_pdf(v, loc, scale):
    log_pdf = -0.5 * ((v - loc) / scale) ** 2 - np.log(scale) - 0.5 * math.log(2 * math.pi)
    return float(np.sum(log_pdf))


def _gauss_kl(m1, s1, m2, s2):
    return float(np.sum(np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5))


def test_the_papers_bound_equals_a_hand_written_computation():
    module, x = _module(), _x()
    torch.manual_seed(1)
    terms = {k: v.detach().numpy() for k, v in module.elbo_terms(x).items()}
    torch.manual_seed(1)  # the same draws, in the same order: w, then z
    with torch.no_grad():
        q_w, q_z = module.q(x)
        w, z = q_w.rsample((2,)).numpy(), q_z.rsample((2,)).numpy()
        logits = module.decoder(torch.from_numpy(z)).numpy()
        p_z = module.prior_z(torch.from_numpy(w))
        mu_p, sd_p = p_z.base_dist.loc.numpy(), p_z.base_dist.scale.numpy()  # (M, N, K, D)
    mu_q, sd_q = q_z.base_dist.loc.numpy(), q_z.base_dist.scale.numpy()
    mu_w, sd_w = q_w.base_dist.loc.numpy(), q_w.base_dist.scale.numpy()
    K, X = 3, x.numpy()
    assert mu_p.shape == (2, 4, K, 2)  # (M, N, K, latent): the K heads unpacked per point
    for n in range(4):
        rec = cond = y_prior = 0.0
        for m in range(2):
            p = 1 / (1 + np.exp(-logits[m, n]))
            rec -= np.sum(X[n] * np.log(p) + (1 - X[n]) * np.log(1 - p)) / 2
            log_lik = [_normal_log_pdf(z[m, n], mu_p[m, n, k], sd_p[m, n, k]) for k in range(K)]
            r = np.exp(log_lik - np.logaddexp.reduce(log_lik))  # p(y | w, z), p(y) uniform
            kls = [_gauss_kl(mu_q[n], sd_q[n], mu_p[m, n, k], sd_p[m, n, k]) for k in range(K)]
            cond += float(r @ kls) / 2
            y_prior += float(np.sum(r * (np.log(r) + math.log(K)))) / 2
        kl_w = _gauss_kl(mu_w[n], sd_w[n], np.zeros(2), np.ones(2))
        expected = {"reconstruction": rec, "conditional_prior": cond, "kl_w": kl_w,
                    "y_prior": y_prior}  # fmt: skip
        for name, value in expected.items():
            assert terms[name][n] == pytest.approx(value, rel=1e-9), name


def test_the_threshold_counts_the_y_prior_term_only_above_lambda():
    module, x = _module(), _x()
    torch.manual_seed(2)
    terms = module.elbo_terms(x)
    y_prior = terms["y_prior"].mean().item()
    rest = (terms["reconstruction"] + terms["conditional_prior"] + terms["kl_w"]).mean().item()
    for threshold, counted in ((y_prior + 1.0, y_prior + 1.0), (y_prior / 2, y_prior)):
        module.threshold = threshold
        torch.manual_seed(2)
        loss = module.loss(x)
        assert loss.item() == pytest.approx(rest + counted, rel=1e-12)
        module.zero_grad()
        loss.backward()
        grad = module.prior_head.loc.weight.grad
        # below lambda the term has no gradient; the prior's heads still get the KL's
        torch.manual_seed(2)
        module.zero_grad()
        t = module.elbo_terms(x)
        (t["reconstruction"] + t["conditional_prior"] + t["kl_w"]).mean().backward()
        without = module.prior_head.loc.weight.grad
        assert torch.allclose(grad, without) == (threshold > y_prior)


def test_the_posterior_of_y_is_the_normalised_prior_density():
    module = _module()
    w, z = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    with torch.no_grad():
        p_z = module.prior_z(w)
        log_r = module.cluster_log_posterior(p_z, z)
        dens = torch.stack([
            torch.distributions.Normal(p_z.base_dist.loc[:, k], p_z.base_dist.scale[:, k])
            .log_prob(z).sum(-1).exp()
            for k in range(3)
        ], -1)  # fmt: skip
    np.testing.assert_allclose(log_r.exp(), dens / dens.sum(-1, keepdim=True), rtol=1e-10)


def test_the_exact_elbo_sums_y_out_in_the_model():
    """TraceEnum_ELBO's value: log p(x|z) + log sum_k p(k) p(z|w,k) + log p(w) - log q(w|x)
    - log q(z|x) at the guide's draws."""
    module, x = _module(), _x()
    pyro.set_rng_seed(3)
    loss = module.elbo().differentiable_loss(module.model, module.guide, x).item()
    pyro.set_rng_seed(3)
    guide = poutine.trace(module.guide).get_trace(x)
    w, z = guide.nodes["w"]["value"], guide.nodes["z"]["value"]
    with torch.no_grad():
        log_mix = (module.prior_z(w).log_prob(z.unsqueeze(-2)) - math.log(3)).logsumexp(-1)
        log_px = module.likelihood(module.decoder(z)).log_prob(x)
        log_pw = torch.distributions.Normal(0.0, 1.0).log_prob(w).sum(-1)
        q_w, q_z = module.q(x)
        log_q = q_w.log_prob(w) + q_z.log_prob(z)
    assert -loss == pytest.approx(float((log_px + log_mix + log_pw - log_q).sum()), rel=1e-10)


def _tiny(**kw):
    from pyro_gmvae import DilokthanakulGMVAE

    options = dict(n_clusters=3, latent_dim=4, w_dim=2, hidden_dims=(32,), epochs=2,
                   batch_size=64, lr=1e-3, progress_bar=False)  # fmt: skip
    return DilokthanakulGMVAE(**{**options, **kw})


@pytest.mark.parametrize("objective", ["paper", "elbo"])
def test_estimator_fits_logs_its_terms_and_round_trips(objective, digits_small, tmp_path):
    import warnings

    from pyro_gmvae import DilokthanakulGMVAE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a two-epoch fit may collapse clusters
        a = _tiny(objective=objective).fit(digits_small.X, digits_small.y)
        b = _tiny(objective=objective).fit(digits_small.X, digits_small.y)
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]  # same seed
    last = a.history_[-1]
    for term in ("reconstruction", "conditional_prior", "kl_w", "y_prior"):
        assert np.isfinite(last[f"train_{term}"])
    assert {"acc", "nmi", "ari"} <= set(last)
    proba = a.predict_proba(digits_small.X)
    assert proba.shape == (240, 3) and np.allclose(proba.sum(1), 1)
    X, clusters = a.sample(5, cluster=1, w=np.zeros((5, 2)), seed=0)
    assert X.shape == (5, 64) and (clusters == 1).all() and ((X >= 0) & (X <= 1)).all()
    again, _ = a.sample(5, cluster=1, w=np.zeros((5, 2)), seed=0)
    np.testing.assert_array_equal(X, again)
    other, _ = a.sample(5, cluster=1, w=np.full((5, 2), 3.0), seed=0)
    assert not np.allclose(X, other)  # the given w is used
    x = digits_small.X[:20]
    binary = (x > 0.5).float()  # a log-likelihood needs binary data under a Bernoulli
    log_px = a.log_likelihood(binary, n_samples=200)
    assert log_px.shape == (20,) and np.isfinite(log_px).all()
    assert log_px.mean() > a.score(binary)  # the IW bound is tighter than the ELBO
    from pyro_gmvae.training import local_seed

    with local_seed(a.seed), torch.no_grad():  # score: the mean of 10 importance weights
        expected = a.module_.log_importance_weights(binary, 10).mean(0)
    np.testing.assert_allclose(a.score_samples(binary), expected.numpy(), rtol=1e-5)
    loaded = DilokthanakulGMVAE.load(a.save(tmp_path / "m.pt"))
    np.testing.assert_array_equal(loaded.predict_proba(digits_small.X), proba)


def test_bad_input_and_settings_are_refused(digits_small):
    with pytest.raises(ValueError, match="objective"):
        _tiny(objective="free-bits")
    for bad in (-1, float("nan"), float("inf"), True, "0.5"):
        with pytest.raises(ValueError, match="threshold"):
            _tiny(threshold=bad)._check_params()
    _tiny(threshold=np.float32(0.5))._check_params()  # NumPy numbers are numbers
    with pytest.raises(ValueError, match="n_clusters"):
        _tiny(n_clusters=500).fit(digits_small.X)
    with pytest.raises(ValueError, match="NaN"):
        _tiny().fit(torch.full((10, 64), float("nan")))
    est = _tiny()
    est.module_ = est._build(64)
    with pytest.raises(ValueError, match="w must have shape"):
        est.sample(2, w=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        est.sample(2, w=np.full((2, 2), np.nan))


def test_the_components_start_almost_equal_so_the_y_prior_term_starts_below_lambda():
    """At the paper's sizes (z 200, w 150) the K components start so close that r is nearly
    uniform: the y-prior term starts under the threshold, as in the paper's account, rather
    than at log K with one component taking every point."""
    torch.manual_seed(0)
    module = DilokthanakulModule(784, n_clusters=10)
    x = torch.bernoulli(torch.full((64, 784), 0.2))
    with torch.no_grad():
        y_prior = module.elbo_terms(x)["y_prior"].mean()
    assert y_prior < module.threshold < math.log(10) - 0.5


def test_cluster_probabilities_average_r_over_draws_of_z():
    """q(y | x) = E_q(z | x)[r(E[w], z)]: against 20,000 independent draws, and measurably
    not r at z's mean (components made distinct by undoing the small start)."""
    module, x = _module(), _x()
    module.eval()
    with torch.no_grad():
        q_w, q_z = module.q(x)
        p_z = module.prior_z(q_w.mean)
        r = module.cluster_log_posterior(p_z, q_z.sample((20000,))).exp()
        at_mean = module.cluster_log_posterior(p_z, q_z.mean).exp()
        probs = module.cluster_probs(x, n_draws=20000, seed=1)
    error, gap = (probs - r.mean(0)).abs().max(), (at_mean - r.mean(0)).abs().max()
    assert error < 0.01 < gap, (error, gap)
    state = torch.get_rng_state()
    alone = torch.cat([module.cluster_probs(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(module.cluster_probs(x), alone)  # each point on its own
    assert torch.equal(torch.get_rng_state(), state)  # its own generator


def test_importance_weighted_log_likelihood_equals_numerical_integration():
    """With one-dimensional w and z, p(x) = int int p(w) sum_k p(k) p(z | w, k) p(x | z) dw dz
    on a grid; the importance-weighted estimate with many draws must agree, and its weights'
    mean (the ELBO) must stay below it."""
    module = _module(latent_dim=1, w_dim=1).eval()
    x = _x()
    with torch.no_grad():  # a broad guide, N(0, 3^2) for w and z, so that 50,000 draws suffice
        for head in (module.q_w_head, module.q_z_head):
            head.loc.weight.zero_(), head.var.weight.zero_(), head.var.bias.fill_(9.0)
    with torch.no_grad():  # the mixture differs from each of its components
        p_z = module.prior_z(torch.zeros(1, 1, dtype=torch.float64)).base_dist
    assert (p_z.loc[0, :, 0] - p_z.loc[0, 0, 0]).abs().max() > 0.3
    w = torch.linspace(-8, 8, 801, dtype=torch.float64)
    z = torch.linspace(-12, 12, 1201, dtype=torch.float64)
    with torch.no_grad():
        p_z = module.prior_z(w[:, None])  # batch (W, K), event (1,)
        log_p_z = torch.logsumexp(p_z.log_prob(z[:, None, None, None]), -1) - math.log(3)  # (Z, W)
        log_p_w = -0.5 * w**2 - 0.5 * math.log(2 * math.pi)
        log_p_x = module.likelihood(module.decoder(z[:, None])).log_prob(x[:, None, :])  # (N, Z)
        log_joint = log_p_x[:, :, None] + log_p_z[None] + log_p_w[None, None]
        cell = (w[1] - w[0]) * (z[1] - z[0])
        exact = torch.logsumexp(log_joint.flatten(1), 1) + cell.log()
        torch.manual_seed(0)
        log_w = module.log_importance_weights(x, 50000)
    estimate = torch.logsumexp(log_w, 0) - math.log(50000)
    np.testing.assert_allclose(estimate.numpy(), exact.numpy(), atol=0.02)
    assert (log_w.mean(0) < exact).all()


def test_a_last_batch_of_one_point_joins_the_one_before():
    """Batch norm cannot train on one point: 51 points in batches of 50 give one batch of 51
    (every point seen once), and the fit goes through."""
    from pyro_gmvae import make_mixture_1d
    from pyro_gmvae.training import make_loader

    for n, sizes in ((101, [50, 51]), (100, [50, 50]), (1, [1]), (52, [50, 2])):
        loader = make_loader(torch.arange(n), 50, seed=0)
        batches = [b[0] for b in loader]
        assert [len(b) for b in batches] == sizes and len(loader) == len(sizes)
        assert sorted(torch.cat(batches).tolist()) == list(range(n))
    data = make_mixture_1d(51, n_components=3, seed=0)
    _tiny(batch_size=50, epochs=1, likelihood="gaussian", n_clusters=2).fit(data.X)


def test_binarizing_data_outside_the_unit_interval_is_refused():
    from pyro_gmvae import make_mixture_1d

    with pytest.raises(ValueError, match="binarize=True"):
        _tiny(binarize=True, likelihood="gaussian").fit(make_mixture_1d(100, 3).X)


def test_the_estimator_builds_and_trains_what_its_settings_say():
    """M and lambda reach the module, the objective picks the loss, and a cluster decides what
    is generated from the same w."""
    est = _tiny(n_samples=3, threshold=0.25, objective="paper")
    module = est._build(5).double()
    assert (module.n_samples, module.threshold) == (3, 0.25)
    assert est._loss(module) == module.loss  # the paper's thresholded objective
    elbo_loss = _tiny(objective="elbo")._loss(module)
    assert elbo_loss != module.loss
    x = _x()
    torch.manual_seed(0)
    exact = elbo_loss(x)  # the exact ELBO, y enumerated: the hand-checked TraceEnum_ELBO
    torch.manual_seed(0)
    loss = module.loss(x)
    assert not torch.isclose(exact, loss)
    distinct = _module()
    w = torch.zeros(2, 2, dtype=torch.float64)
    torch.manual_seed(1)
    first = distinct.generate(torch.tensor([0, 0]), w)
    torch.manual_seed(1)
    second = distinct.generate(torch.tensor([1, 1]), w)
    assert not torch.allclose(first, second)  # the same w and noise, another cluster
