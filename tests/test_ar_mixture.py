"""The autoregressive mixture: its probability (against closed forms and brute force), the
simulator, EM, and the estimator's contract."""

import itertools
import math

import numpy as np
import pytest
import torch
from pyro.infer import TraceEnum_ELBO, infer_discrete
from pyro.poutine import trace
from scipy.stats import multivariate_normal

from pyro_gmvae.timeseries import ARMixture, ARParameters, fit_em, simulate_ar_mixture
from pyro_gmvae.timeseries.evaluate import (
    match_regimes,
    oracle_accuracy,
    parameter_errors,
    regime_accuracy,
)
from pyro_gmvae.timeseries.model import ARMixtureModule
from pyro_gmvae.timeseries.regimes import (
    forward_backward,
    one_step_predictions,
    sample_paths,
    viterbi,
)
from pyro_gmvae.timeseries.series import as_series


def _params(markov=False):
    return ARParameters(
        np.array([0.3, 0.7]),
        np.array([[[0.8, 0.1], [0.0, 0.5]], [[-0.6, 0.2], [0.3, -0.4]]]),
        np.array([[0.5, 0.1], [0.1, 0.3]]),
        np.array([[0.9, 0.1], [0.2, 0.8]]) if markov else None,
    )


def _emission(P, a, b, k):
    return multivariate_normal(P.transition_matrices[k] @ a, P.covariance).pdf(b)


def _module(P, discrete="marginal", markov=False, n_data=1):
    module = ARMixtureModule(2, 2, P, "full", discrete, markov, (8,))
    module.n_data = n_data
    return module


def test_marginal_elbo_is_the_closed_form_mixture_log_likelihood():
    P = _params()
    sim = simulate_ar_mixture(30, 2, 2, seed=1, parameters=P)
    prev, nxt = as_series(sim.series).transitions()
    module = _module(P, n_data=len(prev))
    elbo = -module.elbo().differentiable_loss(module.model, module.guide, prev, nxt).item()
    exact = sum(
        math.log(sum(P.weights[k] * _emission(P, a, b, k) for k in range(2)))
        for a, b in zip(prev.numpy(), nxt.numpy(), strict=True)
    )
    assert elbo == pytest.approx(exact, rel=1e-10)


def test_enumerated_guide_elbo_is_the_brute_force_expectation():
    """ELBO = sum_t sum_k q(k | x) [log p_k + log N(x_t | Pi_k x_{t-1}, Sigma) - log q(k | x)]."""
    P = _params()
    sim = simulate_ar_mixture(12, 2, 2, seed=2, parameters=P)
    prev, nxt = as_series(sim.series).transitions()
    module = _module(P, "enumerate", n_data=len(prev))
    elbo = -module.elbo().differentiable_loss(module.model, module.guide, prev, nxt).item()
    with torch.no_grad():
        q = torch.softmax(module.encoder(torch.cat([prev, nxt], -1)), -1).numpy()
    brute = 0.0
    for t, (a, b) in enumerate(zip(prev.numpy(), nxt.numpy(), strict=True)):
        for k in range(2):
            log_p = math.log(P.weights[k]) + math.log(_emission(P, a, b, k))
            brute += q[t, k] * (log_p - math.log(q[t, k]))
    assert elbo == pytest.approx(brute, rel=1e-10)


def _forward(P, series):
    """A plain forward algorithm: z_0 ~ p (no observation), z_t ~ A[z_{t-1}]."""
    alpha = P.weights.copy()
    for t in range(1, len(series)):
        e = np.array([_emission(P, series[t - 1], series[t], k) for k in range(2)])
        alpha = (alpha @ P.switching_matrix) * e
    return math.log(alpha.sum())


def test_markov_marginal_equals_the_forward_algorithm_and_the_step_by_step_model():
    P = _params(markov=True)
    sim = simulate_ar_mixture(9, 2, 2, seed=3, parameters=P, markov=True, n_series=2)
    data = [sim.series[0], sim.series[1][:5]]  # lengths differ: padding must change nothing
    series = as_series(data)
    module = _module(P, markov=True, n_data=2)
    loss = module.elbo().differentiable_loss(
        module.model, module.guide, series.values, series.lengths
    )
    hmm = -loss.item()
    step_by_step = (
        -TraceEnum_ELBO(max_plate_nesting=1)
        .differentiable_loss(module.markov_model, lambda *args: None, series.values, series.lengths)
        .item()
    )
    forward = _forward(P, data[0]) + _forward(P, data[1])
    assert hmm == pytest.approx(forward, rel=1e-10)
    assert step_by_step == pytest.approx(forward, rel=1e-10)


def _paths(P, x):
    """Every regime path of a short series and its log joint with the data."""
    T = len(x) - 1
    log_e = np.log([[_emission(P, x[t], x[t + 1], k) for k in range(2)] for t in range(T)])
    out = {}
    for path in itertools.product(range(2), repeat=T):
        first = np.log(P.weights @ P.switching_matrix[:, path[0]])
        steps = sum(np.log(P.switching_matrix[path[t - 1], path[t]]) for t in range(1, T))
        out[path] = first + steps + sum(log_e[t, path[t]] for t in range(T))
    return out, torch.tensor(log_e).unsqueeze(0)


def test_smoothing_and_viterbi_against_every_path():
    P = _params(markov=True)
    x = simulate_ar_mixture(7, 2, 2, seed=4, parameters=P, markov=True).series[0]
    paths, log_e = _paths(P, x)
    log_A = torch.tensor(np.log(P.switching_matrix))
    log_p = torch.tensor(np.log(P.weights))
    smoothed, log_lik = forward_backward(log_p, log_A, log_e)
    joint = np.array(list(paths.values()))
    assert float(log_lik) == pytest.approx(np.logaddexp.reduce(joint), rel=1e-10)
    probs = np.exp(joint - np.logaddexp.reduce(joint))
    keys = np.array(list(paths))
    for t in range(keys.shape[1]):
        brute = [probs[keys[:, t] == k].sum() for k in range(2)]
        np.testing.assert_allclose(smoothed[0, t].exp().numpy(), brute, rtol=1e-9)
    best = max(paths, key=paths.get)
    assert tuple(viterbi(log_p, log_A, log_e)[0].tolist()) == best


def test_path_draws_and_one_step_predictions_against_every_path():
    P = _params(markov=True)
    x = simulate_ar_mixture(7, 2, 2, seed=4, parameters=P, markov=True).series[0]
    paths, log_e = _paths(P, x)  # 64 paths of 6 transitions
    log_A = torch.tensor(np.log(P.switching_matrix))
    log_p = torch.tensor(np.log(P.weights))
    joint = np.array(list(paths.values()))
    exact = np.exp(joint - np.logaddexp.reduce(joint))
    torch.manual_seed(0)
    n = 40_000
    draws = sample_paths(log_p, log_A, log_e, n)  # (n, 1, 6)
    assert draws.shape == (n, 1, 6)
    torch.manual_seed(0)  # one switching matrix per series gives the same draws
    assert torch.equal(sample_paths(log_p[None], log_A[None], log_e, n), draws)
    index = {path: i for i, path in enumerate(paths)}
    counts = np.bincount([index[tuple(d)] for d in draws[:, 0].tolist()], minlength=len(paths))
    # every path's frequency within 4.5 binomial standard errors of its exact probability
    se = np.sqrt(exact * (1 - exact) / n)
    assert np.all(np.abs(counts / n - exact) <= 4.5 * se + 1e-4)
    # one-step predictions: log p(x_t | x_<t) sums to the series' log-likelihood, and
    # p(z_1 | nothing seen) = p A
    predicted, step, smoothed = one_step_predictions(log_p, log_A, log_e)
    assert float(step.sum()) == pytest.approx(np.logaddexp.reduce(joint), rel=1e-10)
    np.testing.assert_allclose(predicted[0, 0].exp().numpy(), P.weights @ P.switching_matrix)
    # and the first step's density is the brute-force marginal over its regime
    first = np.logaddexp.reduce(np.log(P.weights @ P.switching_matrix) + log_e[0, 0].numpy())
    assert float(step[0, 0]) == pytest.approx(first, rel=1e-10)
    # the smoothed posterior of the same pass is forward-backward's
    torch.testing.assert_close(smoothed, forward_backward(log_p, log_A, log_e)[0])


def test_path_draws_with_a_switching_matrix_per_series():
    """Three short series, each with its own p and A, one of them padded: every path's
    frequency against its exact posterior, z_0 summed out by enumeration."""
    gen = torch.Generator().manual_seed(1)
    K, T, S, n = 2, 4, 3, 100_000
    log_e = 1.5 * torch.randn(S, T, K, generator=gen, dtype=torch.float64)
    log_e[2, 2:] = 0.0  # the third series ends after two transitions
    log_A = torch.randn(S, K, K, generator=gen, dtype=torch.float64).log_softmax(-1)
    log_p = torch.randn(S, K, generator=gen, dtype=torch.float64).log_softmax(-1)
    torch.manual_seed(0)
    draws = sample_paths(log_p, log_A, log_e, n)  # (n, S, T)
    for s in range(S):
        exact = {}
        for path in itertools.product(range(K), repeat=T + 1):  # z_0 .. z_T
            log_joint = log_p[s, path[0]] + sum(
                log_A[s, path[t - 1], path[t]] + log_e[s, t - 1, path[t]] for t in range(1, T + 1)
            )
            exact[path[1:]] = exact.get(path[1:], 0.0) + float(log_joint.exp())
        total = sum(exact.values())
        index = {path: i for i, path in enumerate(exact)}
        probs = np.array([exact[path] / total for path in index])
        counts = np.bincount([index[tuple(d)] for d in draws[:, s].tolist()], minlength=len(index))
        se = np.sqrt(probs * (1 - probs) / n)
        assert np.all(np.abs(counts / n - probs) <= 4.5 * se + 1e-4), s


def test_viterbi_agrees_with_infer_discrete_and_ignores_padding():
    P = _params(markov=True)
    sim = simulate_ar_mixture(25, 2, 2, seed=5, parameters=P, markov=True, n_series=2)
    series = as_series(sim.series)
    module = _module(P, markov=True, n_data=2)
    MAP = infer_discrete(module.markov_model, first_available_dim=-2, temperature=0)
    with torch.no_grad():
        tr = trace(MAP).get_trace(series.values, series.lengths)
    expected = torch.stack([tr.nodes[f"z_{t}"]["value"] for t in range(1, 25)], 1)
    est = _fitted(P)
    assert est.most_probable_path(sim.series).tolist() == expected.tolist()
    # in a batch with a longer series, a short one's path is that of the series alone
    paths = est.most_probable_path([sim.series[0], sim.series[1][:10]])
    assert paths[1].tolist() == est.most_probable_path(sim.series[1][:10]).tolist()
    assert paths[0].tolist() == expected[0].tolist()


def _fitted(P):
    """An estimator holding the parameters ``P`` (no training)."""
    return ARMixture.from_parameters(P, progress_bar=False)


def test_simulator_statistics_match_its_parameters():
    sim = simulate_ar_mixture(40000, 2, 2, seed=6, parameters=_params(markov=True), markov=True)
    P, x, z = sim.parameters, sim.series[0], sim.regimes[0]
    counts = np.zeros((2, 2))
    np.add.at(counts, (z[:-1], z[1:]), 1)
    np.testing.assert_allclose(counts / counts.sum(1, keepdims=True), P.switching_matrix, atol=0.01)
    for k in range(2):  # least squares within each regime recovers Pi_k and Sigma
        prev, nxt = x[:-1][z == k], x[1:][z == k]
        Pi = np.linalg.lstsq(prev, nxt, rcond=None)[0].T
        np.testing.assert_allclose(Pi, P.transition_matrices[k], atol=0.03)
        np.testing.assert_allclose(np.cov((nxt - prev @ Pi.T).T), P.covariance, atol=0.02)
    iid = simulate_ar_mixture(40000, 2, 2, seed=7, parameters=_params())
    np.testing.assert_allclose(np.bincount(iid.regimes[0]) / 39999, [0.3, 0.7], atol=0.01)
    again = simulate_ar_mixture(40000, 2, 2, seed=7, parameters=_params())
    np.testing.assert_array_equal(iid.series, again.series)


def _easy(T=1500, seed=0):
    P = ARParameters(
        np.array([0.4, 0.6]),
        np.array([[[0.9, 0.0], [0.0, 0.9]], [[-0.8, 0.0], [0.0, -0.8]]]),
        0.1 * np.eye(2),
    )
    return simulate_ar_mixture(T, 2, 2, seed=seed, parameters=P)


def _matched_error(fitted, true):
    errors = [
        np.abs(fitted[list(order)] - true).max() for order in itertools.permutations(range(2))
    ]
    return min(errors)


def test_em_recovers_known_parameters():
    sim = _easy()
    prev, nxt = as_series(sim.series).transitions()
    result = fit_em(prev, nxt, 2, n_init=3, seed=0)
    assert _matched_error(result.parameters.transition_matrices,
                          sim.parameters.transition_matrices) < 0.05  # fmt: skip
    assert result.converged
    assert max(result.restart_log_likelihoods) == result.log_likelihood


@pytest.mark.parametrize(
    "discrete, init",
    [("marginal", "em"), ("marginal", "random"), ("enumerate", "em"), ("relaxed", "em")],
)
def test_estimator_recovers_an_easy_mixture(discrete, init):
    sim = _easy()
    epochs = 150 if init == "random" else 60  # from a random start Adam needs longer
    est = ARMixture(2, discrete=discrete, init=init, epochs=epochs, n_init=2, progress_bar=False)
    est.fit(sim.series[0])
    P = sim.parameters
    # the exact likelihood's maximum is within 0.05 here (EM's test); the guides' ELBOs are
    # biased away from it
    tolerance = 0.05 if discrete == "marginal" else 0.1
    assert _matched_error(est.transition_matrices_, P.transition_matrices) < tolerance
    predicted = est.predict(sim.series[0])
    accuracy = max((predicted == (sim.regimes[0] ^ flip)).mean() for flip in (0, 1))
    assert accuracy > 0.8
    assert est.history_[-1]["log_likelihood"] == pytest.approx(est.log_likelihood_)
    if discrete == "relaxed":
        temperatures = [row["temperature"] for row in est.history_]
        assert temperatures[-1] < temperatures[0]


def test_marginal_fit_reaches_the_em_likelihood():
    sim = simulate_ar_mixture(800, 2, 2, seed=8)
    prev, nxt = as_series(sim.series).transitions()
    em = fit_em(prev, nxt, 2, n_init=5, seed=0)
    est = ARMixture(2, epochs=150, progress_bar=False).fit(sim.series[0])
    assert est.log_likelihood_ == pytest.approx(em.log_likelihood / len(prev), abs=2e-3)


def test_same_seed_same_fit_and_outputs_shaped_like_the_input(tmp_path):
    sim = simulate_ar_mixture(120, 2, 2, seed=9, n_series=3)
    kw = dict(epochs=5, n_init=2, progress_bar=False)
    a = ARMixture(2, **kw).fit(sim.series)
    b = ARMixture(2, **kw).fit(sim.series)
    np.testing.assert_array_equal(a.transition_matrices_, b.transition_matrices_)
    torch.manual_seed(123)  # the global random state does not matter
    c = ARMixture(2, init="random", init_epochs=2, **kw).fit(sim.series)
    d = ARMixture(2, init="random", init_epochs=2, **kw).fit(sim.series)
    np.testing.assert_array_equal(c.transition_matrices_, d.transition_matrices_)
    assert a.predict(sim.series).shape == (3, 119)
    assert a.predict(sim.series[0]).shape == (119,)
    ragged = [sim.series[0], sim.series[1][:50]]
    assert [p.shape for p in a.predict_proba(ragged)] == [(119, 2), (49, 2)]
    assert a.score_samples(ragged).shape == (2,)
    forecast = a.forecast(sim.series, steps=4, n_samples=200, seed=1)
    assert forecast.samples.shape == (3, 200, 4, 2)
    assert (forecast.lower <= forecast.mean).all() and (forecast.mean <= forecast.upper).all()
    assert a.sample(50, n_series=2, seed=0).series.shape == (2, 50, 2)
    path = a.save(tmp_path / "ar.pt")
    loaded = ARMixture.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(sim.series), a.predict_proba(sim.series))
    assert loaded.score(sim.series) == a.score(sim.series)
    with pytest.raises(FileExistsError):
        b.save(path)


@pytest.mark.parametrize("global_guide", ["map", "normal"])
def test_priors_on_the_globals_with_an_autoguide(global_guide, tmp_path):
    sim = _easy(T=1000)
    est = ARMixture(2, global_guide=global_guide, epochs=60, progress_bar=False)
    est.fit(sim.series[0])
    P = sim.parameters
    assert _matched_error(est.transition_matrices_, P.transition_matrices) < 0.06
    if global_guide == "normal":  # a posterior interval for every entry, mostly covering the truth
        low, high = (q.detach().numpy() for q in
                     est.module_.global_guide.quantiles([0.05, 0.95])["transition_matrices"]
                     )  # fmt: skip
        order = match_regimes(est.parameters_, P)
        inside = (low[order] <= P.transition_matrices) & (P.transition_matrices <= high[order])
        # and narrower than AutoNormal's start (scale 0.1: a 90% width of 0.33)
        assert inside.mean() >= 0.75 and (high - low).max() < 0.3
    loaded = ARMixture.load(est.save(tmp_path / "m.pt"))  # the priors' settings come back too
    series = as_series(sim.series)
    for model in (est, loaded):
        model.module_.eval()
    with torch.no_grad():
        torch.manual_seed(0)
        module = est.module_
        before = module.elbo().loss(module.model, module.guide, *series.transitions())
        torch.manual_seed(0)
        after = loaded.module_.elbo().loss(
            loaded.module_.model, loaded.module_.guide, *series.transitions()
        )
    assert before == pytest.approx(after)
    np.testing.assert_array_equal(loaded.predict_proba(sim.series), est.predict_proba(sim.series))


def test_forecast_and_sample_follow_the_parameters():
    """One regime: x_{T+h} | x_T ~ N(Pi^h x_T, sum_{i<h} Pi^i Sigma Pi^i^T)."""
    Pi = np.array([[[0.8, 0.2], [-0.1, 0.6]]])
    Sigma = np.array([[0.3, 0.05], [0.05, 0.2]])
    est = ARMixture.from_parameters(ARParameters(np.ones(1), Pi, Sigma), progress_bar=False)
    x = np.array([[0.0, 0.0], [2.0, -1.0]])
    forecast = est.forecast(x, steps=3, n_samples=40000, seed=0)
    mean, cov = x[-1], np.zeros((2, 2))
    for _ in range(3):
        mean, cov = Pi[0] @ mean, Pi[0] @ cov @ Pi[0].T + Sigma
    np.testing.assert_allclose(forecast.mean[0, -1], mean, atol=0.02)
    np.testing.assert_allclose(np.cov(forecast.samples[0, :, -1].T), cov, atol=0.02)
    inside = (forecast.lower <= forecast.samples) & (forecast.samples <= forecast.upper)
    assert inside.mean() == pytest.approx(0.9, abs=0.01)
    two = ARMixture.from_parameters(_params(markov=True))
    drawn = two.sample(20000, seed=3)
    counts = np.zeros((2, 2))
    np.add.at(counts, (drawn.regimes[0, :-1], drawn.regimes[0, 1:]), 1)
    np.testing.assert_allclose(counts / counts.sum(1, keepdims=True),
                               two.switching_matrix_, atol=0.02)  # fmt: skip


def test_markov_fit_recovers_the_switching_matrix():
    P = ARParameters(
        np.array([0.5, 0.5]),
        np.array([[[0.9, 0.0], [0.0, 0.9]], [[-0.8, 0.0], [0.0, -0.8]]]),
        0.1 * np.eye(2),
        np.array([[0.95, 0.05], [0.1, 0.9]]),
    )
    sim = simulate_ar_mixture(1500, 2, 2, seed=10, parameters=P, markov=True)
    est = ARMixture(2, markov=True, epochs=80, progress_bar=False).fit(sim.series[0])
    errors = parameter_errors(est.parameters_, P)  # A's rows and columns both permuted
    assert errors["switching_matrix"] < 0.05 and errors["transition_matrices"] < 0.05


@pytest.mark.parametrize(
    "data, kwargs, error, match",
    [
        (np.full((10, 2), np.nan), {}, ValueError, "NaN"),
        (np.array([[0.0, 1.0], [np.inf, 0.0], [1.0, 1.0]]), {}, ValueError, "infinite"),
        (np.zeros((1, 2)), {}, ValueError, "at least 2"),
        ([np.zeros((5, 2)), np.zeros((5, 3))], {}, ValueError, "same dimension"),
        (np.arange(10.0).reshape(5, 2) ** 2, {"n_components": 5}, ValueError, "transitions"),
        (np.ones((5, 2)), {}, ValueError, "constant"),
        ([[1.0, 2.0], [2.0, 3.5], [0.5, 1.0]], {"n_components": 3}, ValueError, "transitions"),
        ([["a", "b"]], {}, TypeError, "numbers"),
    ],
)
def test_bad_input_is_refused(data, kwargs, error, match):
    with pytest.raises(error, match=match):
        ARMixture(progress_bar=False, **{"n_components": 2, **kwargs}).fit(data)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="n_components"):
        ARMixture(0)
    with pytest.raises(ValueError, match="marginal"):
        ARMixture(2, discrete="relaxed", markov=True)
    with pytest.raises(ValueError, match="global_guide"):
        ARMixture(2, global_guide="laplace")
    est = _fitted(_params())
    with pytest.raises(ValueError, match="dimension 2"):
        est.predict(np.zeros((5, 3)))


def test_evaluation_undoes_a_permutation_of_the_regimes():
    P = _params(markov=True)
    sim = simulate_ar_mixture(2000, 2, 2, seed=11, parameters=P, markov=True)
    swapped = P.permute(np.array([1, 0]))
    order = match_regimes(swapped, P)
    assert order.tolist() == [1, 0]
    assert all(v == 0 for v in parameter_errors(swapped, P).values())
    oracle = oracle_accuracy(P, sim.series, sim.regimes)
    relabelled = [1 - r for r in sim.regimes]  # the truth under the swapped labels
    assert regime_accuracy(relabelled, sim.regimes, order) == 1.0
    assert 0.5 < oracle < 1.0


def test_viterbi_sums_out_the_unobserved_first_regime():
    """p(z_1) = p A = (0.25, 0.75); with emissions (2.5, 1) regime 1 is the more probable
    (0.625 against 0.75); maximising jointly over z_0 would pick regime 0."""
    log_p = torch.tensor([0.5, 0.5]).double().log()
    log_A = torch.tensor([[0.5, 0.5], [0.0, 1.0]]).double().log()
    log_e = torch.tensor([[[math.log(2.5), 0.0]]]).double()
    assert viterbi(log_p, log_A, log_e).tolist() == [[1]]
    assert forward_backward(log_p, log_A, log_e)[0].argmax(-1).tolist() == [[1]]
