"""The analysis layer: posterior and posterior-predictive draws for every amortized model,
q(y | x) with its entropy, cluster summaries, and choosing K."""

import math
import warnings

import numpy as np
import pytest
import torch

from pyro_gmvae import (
    AE,
    GMVAE,
    VAE,
    VAEGMM,
    ARMixture,
    DilokthanakulGMVAE,
    GibbsGMM,
    analysis,
    simulate_ar_mixture,
)
from pyro_gmvae.timeseries import ARParameters

SMALL = dict(latent_dim=3, hidden_dims=(16,), epochs=2, progress_bar=False, seed=0)
BUILDERS = {
    "gmvae": lambda: GMVAE(n_clusters=4, pretrain_epochs=1, **SMALL),
    "gmvae-relaxed": lambda: GMVAE(n_clusters=4, discrete="relaxed", pretrain_epochs=1, **SMALL),
    "vae": lambda: VAE(**SMALL),
    "ae": lambda: AE(**SMALL),
    "vae-gmm": lambda: VAEGMM(n_clusters=4, n_rounds=1, **SMALL),
    "dilokthanakul": lambda: DilokthanakulGMVAE(n_clusters=4, w_dim=2, **SMALL),
}
WITH_CLUSTERS = {"gmvae", "gmvae-relaxed", "vae-gmm", "dilokthanakul"}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return (rng.random((120, 12)) < 0.3).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: build().fit(data) for name, build in BUILDERS.items()}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_posterior_samples_have_the_documented_shapes(fitted, data, name):
    model = fitted[name]
    draws = analysis.posterior_samples(model, data[:10], n_draws=5, seed=1)
    expected = {"z": (5, 10, 3)}
    if name == "dilokthanakul":
        expected["w"] = (5, 10, 2)
    if name in WITH_CLUSTERS:
        expected["cluster"] = (5, 10)
    assert {k: v.shape for k, v in draws.items()} == expected
    if "cluster" in draws:
        assert draws["cluster"].dtype.kind == "i" and draws["cluster"].max() < 4
    again = analysis.posterior_samples(model, data[:10], n_draws=5, seed=1)
    assert all(np.array_equal(draws[k], again[k]) for k in draws)  # same seed, same draws
    if name == "ae":  # a point-mass guide
        assert np.allclose(draws["z"], draws["z"][0])
    else:
        assert not np.allclose(draws["z"], draws["z"][0])


@pytest.mark.parametrize("name", list(BUILDERS))
def test_posterior_predictive_draws_x_not_means(fitted, data, name):
    state = torch.get_rng_state()
    x_rep = analysis.posterior_predictive(fitted[name], data[:10], n_draws=4, seed=2)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is left alone
    assert x_rep.shape == (4, 10, 12)
    assert set(np.unique(x_rep)) <= {0.0, 1.0}  # Bernoulli draws, not probabilities
    again = analysis.posterior_predictive(fitted[name], data[:10], n_draws=4, seed=2)
    assert np.array_equal(x_rep, again)


def test_posterior_draws_follow_the_guide(fitted, data):
    """The Predictive draws are the guide's: their mean is E_q[z | x] (the estimator's
    ``transform``), and the GMVAE's cluster frequencies are q(y | x)."""
    x = data[:5]
    for name in ("vae", "gmvae"):
        draws = analysis.posterior_samples(fitted[name], x, n_draws=1500, seed=0)
        np.testing.assert_allclose(draws["z"].mean(0), fitted[name].transform(x), atol=0.08)
    freq = np.stack([(draws["cluster"] == k).mean(0) for k in range(4)], 1)  # the GMVAE's
    np.testing.assert_allclose(freq, fitted["gmvae"].predict_proba(x), atol=0.04)
    # relaxed y: the largest entry of a Gumbel-softmax draw is a draw of q(y | x) (Gumbel-max)
    relaxed = analysis.posterior_samples(fitted["gmvae-relaxed"], x, n_draws=1500, seed=0)
    freq = np.stack([(relaxed["cluster"] == k).mean(0) for k in range(4)], 1)
    np.testing.assert_allclose(freq, fitted["gmvae-relaxed"].predict_proba(x), atol=0.04)
    # VAE + GMM: c ~ p(c | z) at each draw of z, so the frequencies are the mean of p(c | z)
    mixed = analysis.posterior_samples(fitted["vae-gmm"], x, n_draws=1500, seed=0)
    prior = fitted["vae-gmm"].module_.prior
    with torch.no_grad():
        expected = prior.responsibilities(torch.as_tensor(mixed["z"])).mean(0).numpy()
    freq = np.stack([(mixed["cluster"] == k).mean(0) for k in range(4)], 1)
    np.testing.assert_allclose(freq, expected, atol=0.04)


def test_dilokthanakul_clusters_are_drawn_from_r_at_the_drawn_w_z(fitted, data):
    """The cluster draws follow p(y | w, z) at each draw of (w, z): their frequencies match the
    average of r over the draws, with components made clearly distinct (a fit of two epochs
    leaves r almost uniform, where a uniform draw would pass too); r itself is checked against
    Pyro's ``infer_discrete`` on the model conditioned on one draw."""
    import copy

    from pyro import poutine
    from pyro.infer import infer_discrete

    from pyro_gmvae.models.dilokthanakul import PRIOR_HEAD_INIT_SCALE

    model = copy.deepcopy(fitted["dilokthanakul"])
    module = model.module_
    torch.manual_seed(0)
    with torch.no_grad():
        for layer in (module.prior_head.loc, module.prior_head.var):
            layer.weight.div_(PRIOR_HEAD_INIT_SCALE)
            layer.bias.normal_(0, 2)
    draws = analysis.posterior_samples(model, data[:1], n_draws=2000, seed=0)
    w, z = torch.as_tensor(draws["w"][:, 0]), torch.as_tensor(draws["z"][:, 0])
    with torch.no_grad():
        r = module.cluster_log_posterior(module.prior_z(w), z).exp().numpy()  # (2000, 4)
    assert r.mean(0).max() > 0.4  # far from uniform: the check has power
    freq = np.bincount(draws["cluster"][:, 0], minlength=4) / 2000
    np.testing.assert_allclose(freq, r.mean(0), atol=0.035)  # 3 standard errors
    x = torch.as_tensor(data[:1])
    conditioned = poutine.condition(module.model, data={"w": w[:1], "z": z[:1]})
    sampler = infer_discrete(conditioned, first_available_dim=-2, temperature=1)
    with torch.no_grad():
        ys = [int(poutine.trace(sampler).get_trace(x).nodes["y"]["value"]) for _ in range(1000)]
    np.testing.assert_allclose(np.bincount(ys, minlength=4) / 1000, r[0], atol=0.05)


def test_analysis_refuses_what_it_cannot_use(fitted, data):
    with pytest.raises(TypeError, match="models with a guide"):
        analysis.posterior_samples(GibbsGMM(2), data)
    with pytest.raises(ValueError, match="n_draws"):
        analysis.posterior_samples(fitted["vae"], data, n_draws=0)
    with pytest.raises(ValueError, match="fitted on 12 features per sample, this data has 5"):
        analysis.posterior_predictive(fitted["vae"], data[:, :5])
    from pyro_gmvae.checks import NotFittedError

    with pytest.raises(NotFittedError):
        analysis.posterior_samples(ARMixture(), np.zeros((10, 2)))
    with pytest.raises(TypeError, match="ks must be a sequence"):
        analysis.choose_k(GibbsGMM(2), data, ks=5)


class FixedProbabilities:
    """A stand-in clustering with known q(y | x)."""

    def __init__(self, probs):
        self.probs = np.asarray(probs, dtype=np.float64)

    def predict_proba(self, X):
        return self.probs

    def log_likelihood(self, X):
        return -np.arange(len(self.probs), dtype=np.float64)


def test_entropy_of_q_y_against_hand_values():
    probs = [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0], [0.8, 0.1, 0.1]]
    u = analysis.cluster_uncertainty(FixedProbabilities(probs), np.zeros((4, 2)))
    hand = [0.0, math.log(3), math.log(2), -(0.8 * math.log(0.8) + 0.2 * math.log(0.1))]
    np.testing.assert_allclose(u.entropy, hand, atol=1e-12)
    assert u.labels.tolist() == [0, 0, 0, 0] and u.confidence.tolist()[0] == 1.0
    assert u.most_uncertain(2).tolist() == [1, 2]


def test_cluster_summaries_rank_members():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3], [0.45, 0.55]])
    X = np.arange(10, dtype=np.float64).reshape(5, 2)
    fake = FixedProbabilities(probs)
    first, second = analysis.cluster_summaries(fake, X, n_members=2)
    assert (first.size, second.size) == (3, 2) and first.share == pytest.approx(0.6)
    assert first.typical.tolist() == [0, 3] and first.atypical.tolist() == [1, 3]
    assert second.typical.tolist() == [2, 4]
    np.testing.assert_allclose(first.mean, X[[0, 1, 3]].mean(0))
    by_fit = analysis.cluster_summaries(fake, X, by="log_likelihood")  # -0, -1, ..., -4
    assert by_fit[0].typical.tolist() == [0, 1, 3] and by_fit[1].atypical.tolist() == [4, 2]
    with pytest.raises(ValueError, match="by must be"):
        analysis.cluster_summaries(fake, X, by="entropy")
    with pytest.raises(ValueError, match="one value per row"):
        analysis.cluster_summaries(fake, X, by="log_likelihood", log_likelihood=[1.0])


def test_cluster_summaries_of_a_fitted_model_cover_every_point(fitted, data):
    summaries = analysis.cluster_summaries(fitted["gmvae"], data, n_members=3)
    assert sum(s.size for s in summaries) == len(data) and len(summaries) == 4
    labels = fitted["gmvae"].predict(data)
    for s in summaries:
        assert all(labels[i] == s.cluster for i in s.typical)


def three_blobs(seed: int, n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    return centres[rng.integers(0, 3, n)] + rng.normal(0, 0.6, (n, 2))


def test_choose_k_finds_three_gaussians():
    template = GibbsGMM(2, n_sweeps=60, burn_in=20, n_chains=2, progress_bar=False)
    before = template.get_params()
    selection = analysis.choose_k(template, three_blobs(0), ks=range(1, 6), seeds=(0, 1))
    assert selection.best_k == 3
    assert selection.scores.shape == (5, 2) and np.isfinite(selection.scores).all()
    assert template.get_params() == before and not hasattr(template, "draws_")  # untouched
    rows = selection.table()
    assert [r["k"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["k"] for r in rows if r["chosen"]] == [3]
    # the criterion rises to K = 3 and is flat after it
    assert selection.means[2] > selection.means[1] + 0.1
    assert abs(selection.means[3] - selection.means[2]) < 0.05
    # a model with global parameters is also scored by PSIS-LOO on its draws: the same pick
    assert selection.loo.shape == (5, 2) and selection.best_k_loo == 3
    # the LOO pick uses LOO's own paired standard error over the training points
    from pyro_gmvae.analysis.choosing_k import one_standard_error_pick

    assert selection.loo_pointwise.shape == (5, 2, 240)  # the 80% fitted
    assert selection.best_k_loo == one_standard_error_pick(selection.ks, selection.loo_pointwise)
    assert "loo_mean" in rows[0]
    selection.plot()


def test_selections_over_disjoint_seeds_combine_into_the_joint_selection():
    template = GibbsGMM(2, n_sweeps=30, burn_in=10, n_chains=2, progress_bar=False)
    X, ks = three_blobs(2, n=120), [2, 3, 4]
    joint = analysis.choose_k(template, X, ks, seeds=(0, 1), keep_models=True)
    parts = [analysis.choose_k(template, X, ks, seeds=[s], keep_models=True) for s in (0, 1)]
    combined = analysis.combine_selections(parts)
    np.testing.assert_array_equal(combined.pointwise, joint.pointwise)
    np.testing.assert_array_equal(combined.loo, joint.loo)
    assert (combined.seeds, combined.best_k, combined.best_k_loo) == (
        [0, 1],
        joint.best_k,
        joint.best_k_loo,
    )
    assert set(combined.models) == set(joint.models)
    with pytest.raises(ValueError, match="share seeds"):
        analysis.combine_selections([parts[0], parts[0]])
    other_ks = analysis.choose_k(template, X, [2, 3], seeds=[2])
    with pytest.raises(ValueError, match="different K"):
        analysis.combine_selections([parts[0], other_ks])
    other_points = analysis.choose_k(template, X[:100], ks, seeds=[2])
    with pytest.raises(ValueError, match="different held-out points"):
        analysis.combine_selections([parts[0], other_points])
    with pytest.raises(ValueError, match="at least one"):
        analysis.combine_selections([])


def test_choose_k_with_an_amortized_model_scores_held_out_points():
    X = three_blobs(1, n=120).astype(np.float32)
    template = GMVAE(likelihood="gaussian", latent_dim=2, hidden_dims=(8,), epochs=1,
                     pretrain_epochs=1, progress_bar=False)  # fmt: skip
    selection = analysis.choose_k(template, X, ks=[2, 3], seeds=[0], n_samples=5,
                                  keep_models=True, progress_bar=False)  # fmt: skip
    assert selection.loo is None and selection.best_k_loo is None  # no global parameters
    fit = selection.models[3, 0]
    assert fit.n_clusters == 3 and fit.seed == 0 and template.n_clusters == 10
    # the score is the held-out IW log-likelihood: the 20% split with split_seed 0
    from sklearn.model_selection import train_test_split

    _, X_test = train_test_split(X, test_size=0.2, random_state=0)
    expected = fit.log_likelihood(X_test, n_samples=5, seed=0).mean()
    assert selection.scores[1, 0] == pytest.approx(expected)


def test_one_standard_error_rule():
    from pyro_gmvae.analysis.choosing_k import difference_standard_errors, one_standard_error_pick

    rng = np.random.default_rng(0)
    base = rng.normal(-2.0, 1.0, 400)  # one held-out point's log-likelihood per column
    # K=1 far worse; K=2 worse than K=3 by 0.05 at every point; K=4 differs from K=3 by
    # noise (+-0.5 per point) and 0.01 on average
    noise = rng.choice([-0.5, 0.5], 400)
    rows = [base - 1.0, base - 0.05, base, base + noise - noise.mean() + 0.01]
    pointwise = np.stack([np.stack([r, r]) for r in rows])  # two identical seeds
    se = difference_standard_errors(pointwise)
    # K=4 is the best by 0.01: K=3 is within its paired standard error (0.5 / sqrt(400)),
    # K=2 (0.06 below) is not
    assert se[3] == 0 and se[2] == pytest.approx(0.5 / np.sqrt(400), rel=0.01)
    assert se[1] == pytest.approx(0.5 / np.sqrt(400), rel=0.01)
    assert one_standard_error_pick([1, 2, 3, 4], pointwise) == 3
    # the spread over seeds counts too: K=2 seeds that disagree by much make it acceptable
    spread = pointwise.copy()
    spread[1, 0] += 0.4
    spread[1, 1] -= 0.4
    assert one_standard_error_pick([1, 2, 3, 4], spread) == 2
    # a fit left out (NaN) does not stop the others
    spread[0, 0] = np.nan
    assert one_standard_error_pick([1, 2, 3, 4], spread) == 2
    # serially dependent points (runs of 20 equal differences): batch means over blocks of 20
    # see the runs' spread, single points a spread 20 times too many
    runs = np.repeat(rng.choice([-0.5, 0.5], 20), 20)  # 400 points, 20 runs
    pair = np.stack([np.stack([base, base]), np.stack([base + runs - runs.mean() + 0.01] * 2)])
    naive, blocked = (difference_standard_errors(pair, b)[0] for b in (1, 20))
    assert blocked == pytest.approx(0.5 / np.sqrt(20), rel=0.05)  # 20 independent runs
    assert naive == pytest.approx(0.5 / np.sqrt(400), rel=0.05) and blocked > 4 * naive


def test_choose_k_scores_an_ar_mixture_with_sampled_globals_by_loo_too():
    import arviz as az

    series = simulate_ar_mixture(500, 2, 3, seed=0, min_separation=1.0).series[0]
    train, test = series[:400], series[400:]
    template = ARMixture(global_guide="normal", epochs=20, n_init=2, progress_bar=False)
    selection = analysis.choose_k(template, train, [1, 3], seeds=[0], X_test=test,
                                  keep_models=True, progress_bar=False)  # fmt: skip
    assert selection.pointwise.shape == (2, 1, 99)  # one score per held-out transition
    assert selection.loo.shape == (2, 1)
    assert selection.loo_pointwise.shape == (2, 1, 399)  # per training transition
    assert selection.block_size == 10  # batch means over about sqrt(99) held-out steps
    # the score is PSIS-LOO per training transition on the fit's variational draws
    idata = analysis.to_inference_data(selection.models[3, 0], train, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = az.loo(idata).elpd_loo / 399
    assert selection.loo[1, 0] == pytest.approx(expected)
    # three regimes explain the series far better than one
    assert selection.loo[1, 0] > selection.loo[0, 0] + 0.2
    assert selection.best_k_loo == 3
    # point estimates of the globals have no draws to score by LOO
    plain = analysis.choose_k(ARMixture(epochs=2, n_init=1, progress_bar=False), train, [1],
                              seeds=[0], X_test=test, progress_bar=False)  # fmt: skip
    assert plain.loo is None


def test_log_likelihood_per_point_for_every_kind_of_model(fitted, data):
    iw = analysis.log_likelihood(fitted["vae"], data, n_samples=10, seed=3)
    np.testing.assert_array_equal(iw, fitted["vae"].log_likelihood(data, n_samples=10, seed=3))
    Z = three_blobs(0, n=60)
    gmm = GibbsGMM(2, n_sweeps=20, burn_in=10, n_chains=1, progress_bar=False).fit(Z)
    np.testing.assert_array_equal(analysis.log_likelihood(gmm, Z), gmm.score_samples(Z))
    sim = simulate_ar_mixture(60, 2, 2, seed=1, markov=True, n_series=2)
    X = [sim.series[0][:40], sim.series[1]]  # 39 + 59 transitions
    for markov in (False, True):
        ar = ARMixture(2, markov=markov, epochs=2, n_init=1, progress_bar=False).fit(X)
        per_step = analysis.log_likelihood(ar, X)
        assert per_step.shape == (98,)
        # the terms of each series add up to its exact log-likelihood
        totals = [per_step[:39].sum(), per_step[39:].sum()]
        np.testing.assert_allclose(totals, ar.score_samples(X) * [39, 59], rtol=1e-10)
    with pytest.raises(TypeError, match="no per-point log-likelihood"):
        analysis.log_likelihood(object(), data)


def test_choose_k_scores_markov_regimes_per_held_out_transition():
    series = simulate_ar_mixture(300, 2, 2, seed=2, markov=True).series[0]
    template = ARMixture(markov=True, epochs=2, n_init=1, progress_bar=False)
    selection = analysis.choose_k(template, series[:240], [1, 2], seeds=[0],
                                  X_test=series[240:], progress_bar=False)  # fmt: skip
    assert selection.pointwise.shape == (2, 1, 59)  # one-step log p(x_t | x_<t) per transition
    assert selection.standard_errors[np.argmin(selection.means)] > 0


def test_choose_k_refuses_bad_ranges():
    template = GibbsGMM(2, progress_bar=False)
    X = three_blobs(0, n=20)
    with pytest.raises(ValueError, match="empty"):
        analysis.choose_k(template, X, ks=[])
    with pytest.raises(ValueError, match="cannot exceed N"):
        analysis.choose_k(template, X, ks=range(2, 40))
    with pytest.raises(ValueError, match="at least 1"):
        analysis.choose_k(template, X, ks=[0, 1])
    with pytest.raises(TypeError, match="number of clusters"):
        analysis.choose_k(AE(), X, ks=[2])
    with pytest.raises(TypeError, match="integer"):
        analysis.choose_k(template, X, ks=[2.5])
    with pytest.raises(ValueError, match="repeat"):
        analysis.choose_k(template, X, ks=[2], seeds=[0, 0])
    with pytest.raises(ValueError, match="shape"):
        analysis.choose_k(template, X, ks=[2], X_test=np.zeros((5, 3)))

    series = _ar_data()
    with pytest.raises(ValueError, match="held-out stretch"):
        analysis.choose_k(ARMixture(), series, ks=[2])
    three = [series[:50], series[50:100], series[100:]]  # 147 transitions in 3 series
    with pytest.raises(ValueError, match="only 147 transitions"):
        analysis.choose_k(ARMixture(), three, ks=[148], X_test=series)


def _quiet_arviz():
    """Every warning is an error, except ArviZ's notice of its coming refactor and the
    Pareto-k diagnostic (a statement about influential points with few draws, not about the
    data's structure)."""
    context = warnings.catch_warnings()
    context.__enter__()
    warnings.simplefilter("error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
    return context


def test_inference_data_of_an_amortized_model_ranks_held_out_fits(fitted, data):
    import arviz as az

    held_out = data[100:]
    idata = analysis.to_inference_data(fitted["vae"], held_out, n_draws=3, n_samples=20)
    assert set(idata.groups()) == {
        "posterior",
        "log_likelihood",
        "posterior_predictive",
        "observed_data",
    }
    assert idata.posterior["z"].shape == (1, 3, 20, 3)  # draws of each point's z
    assert idata.log_likelihood["x"].shape == (1, 3, 20)
    iw = fitted["vae"].log_likelihood(held_out, n_samples=20, seed=0)
    for draw in range(3):  # point-estimated networks: the same likelihood in every draw
        np.testing.assert_allclose(idata.log_likelihood["x"].values[0, draw], iw)
    context = _quiet_arviz()
    try:  # LOO and WAIC are the held-out log-likelihood itself, with no effective parameters
        loo, waic = az.loo(idata, pointwise=True), az.waic(idata)
    finally:
        context.__exit__(None, None, None)
    other = analysis.to_inference_data(fitted["gmvae"], held_out, n_draws=3, n_samples=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Pareto-k note and pandas' deprecations inside ArviZ
        ranking = az.compare({"vae": idata, "gmvae": other})  # ic="loo"
    np.testing.assert_allclose(loo.loo_i.values, iw, rtol=1e-6)
    assert loo.elpd_loo == pytest.approx(iw.sum()) and loo.p_loo == pytest.approx(0, abs=1e-6)
    assert waic.elpd_waic == pytest.approx(iw.sum()) and waic.p_waic == pytest.approx(0, abs=1e-6)
    totals = {"vae": iw.sum(), "gmvae": other.log_likelihood["x"].values[0, 0].sum()}
    assert list(ranking.index) == sorted(totals, key=lambda k: -totals[k])
    assert ranking["elpd_loo"].to_dict() == pytest.approx(totals)


def _ar_data():
    return simulate_ar_mixture(150, 2, 2, seed=3).series[0]  # one series (T, d)


def test_inference_data_of_the_ar_mixture_from_its_variational_posterior():
    import arviz as az

    X = _ar_data()
    ar = ARMixture(2, global_guide="normal", epochs=10, progress_bar=False).fit(X)
    idata = analysis.to_inference_data(ar, X, n_draws=50)
    assert idata.posterior["weights"].shape == (2, 50, 2)
    assert idata.posterior["transition_matrices"].shape == (2, 50, 2, 2, 2)
    assert idata.log_likelihood["x"].shape == (2, 50, 149)
    assert idata.posterior_predictive["x"].shape == (2, 50, 149, 2)
    np.testing.assert_array_equal(idata.observed_data["x"], X[1:])
    # one draw by hand: log sum_k p_k N(x_t | Pi_k x_{t-1}, Sigma)
    from scipy.stats import multivariate_normal

    post = idata.posterior
    w, Pi, cov = (post[k].values[1, 7] for k in ("weights", "transition_matrices", "covariance"))
    hand = np.log(sum(
        w[k] * multivariate_normal(np.zeros(2), cov).pdf(X[1:] - X[:-1] @ Pi[k].T) for k in range(2)
    ))  # fmt: skip
    np.testing.assert_allclose(idata.log_likelihood["x"].values[1, 7], hand, rtol=1e-8)
    context = _quiet_arviz()
    try:
        az.summary(idata, var_names=["weights"])
        loo = az.loo(idata)
    finally:
        context.__exit__(None, None, None)
    assert np.isfinite(loo.elpd_loo)
    with pytest.raises(ValueError, match="ar_nuts"):
        analysis.to_inference_data(ARMixture(2, epochs=2, progress_bar=False).fit(X), X)


def test_nuts_on_the_ar_mixtures_globals_leaves_the_fit_alone():
    import arviz as az

    X = _ar_data()
    ar = ARMixture(2, epochs=10, progress_bar=False).fit(X)
    before = {k: v.detach().clone() for k, v in ar.module_.state_dict().items()}
    idata = analysis.ar_nuts(ar, X, num_samples=20, warmup_steps=20, num_chains=2)
    assert idata.posterior["weights"].shape == (2, 20, 2)
    assert idata.log_likelihood["x"].shape == (2, 20, 149)
    after = ar.module_.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the user's fit is unchanged
    assert ar.module_.global_guide is None
    # the posterior sits around the maximum-likelihood fit (149 transitions)
    np.testing.assert_allclose(
        idata.posterior["weights"].values.mean((0, 1)), ar.weights_, atol=0.1
    )
    assert idata.sample_stats["diverging"].shape == (2, 20)
    context = _quiet_arviz()
    try:
        assert np.isfinite(az.loo(idata).elpd_loo)
        az.summary(idata, var_names=["weights", "transition_matrices"])
    finally:
        context.__exit__(None, None, None)
    with pytest.raises(ValueError, match="marginal"):
        analysis.ar_nuts(ARMixture(2, discrete="relaxed", epochs=2, progress_bar=False).fit(X), X)


@pytest.mark.parametrize("global_guide", [None, "normal"])
def test_posterior_draws_of_the_ar_mixture(global_guide):

    X = _ar_data()
    ar = ARMixture(2, global_guide=global_guide, epochs=5, progress_bar=False).fit(X)
    draws = analysis.posterior_samples(ar, X, n_draws=4000, seed=0)
    expected = {"regime": (4000, 149)}
    if global_guide == "normal":
        expected.update(weights=(4000, 2), transition_matrices=(4000, 2, 2, 2),
                        noise_scale=(4000, 2), noise_correlation=(4000, 2, 2))  # fmt: skip
    assert {k: v.shape for k, v in draws.items()} == expected
    # the regimes follow the exact posterior p(z_t | x_{t-1}, x_t)
    freq = (draws["regime"][:, :5, None] == np.arange(2)).mean(0)
    np.testing.assert_allclose(freq, ar.predict_proba(X)[:5], atol=0.03)
    x_rep = analysis.posterior_predictive(ar, X, n_draws=3, seed=0)
    assert x_rep.shape == (3, 149, 2) and np.isfinite(x_rep).all()
    u = analysis.cluster_uncertainty(ar, X)  # one row per transition
    assert u.probs.shape == (149, 2) and (u.entropy <= np.log(2) + 1e-12).all()
    summaries = analysis.cluster_summaries(ar, X, n_members=3)
    labels = ar.predict(X)
    for s in summaries:
        np.testing.assert_allclose(s.mean, X[1:][labels == s.cluster].mean(0))  # mean x_t
    # one-step replicates: x_t - E[x_t | x_{t-1}] has the fitted noise's spread
    mean = np.einsum("k,kij,tj->ti", ar.weights_, ar.transition_matrices_, X[:-1])
    assert 0.5 < (x_rep - mean).std() / np.sqrt(np.diag(ar.covariance_)).mean() < 2


@pytest.mark.parametrize("markov", [False, True])
def test_ar_regime_draws_go_with_the_globals_of_their_row(markov):
    """With a guide on the globals, row i of ``regime`` is drawn given row i's globals: where
    the globals favour regime 0 more, so do the regimes (draws at the point estimates, or at
    another row's globals, would not correlate with them)."""
    X = simulate_ar_mixture(40, 2, 2, seed=0, markov=markov, min_separation=0.3).series[0]
    ar = ARMixture(2, global_guide="normal", markov=markov, epochs=20, progress_bar=False)
    draws = analysis.posterior_samples(ar.fit(X), X, n_draws=2000, seed=0)
    share = (draws["regime"] == 0).mean(1)
    if markov:  # the chain's stationary probability of regime 0
        A = draws["switching"]
        favour = A[:, 1, 0] / (A[:, 0, 1] + A[:, 1, 0])
    else:
        favour = draws["weights"][:, 0]
    assert np.corrcoef(favour, share)[0, 1] > 0.1  # about 0.2; unpaired: 0 +- 0.022


def _smoothed_at_draw(draws, i, X):
    """p(z_t | the series) of every transition under the globals of draw ``i``."""
    scale, corr = draws["noise_scale"][i], draws["noise_correlation"][i]
    tril = scale[:, None] * corr
    params = ARParameters(draws["weights"][i], draws["transition_matrices"][i], tril @ tril.T,
                          draws["switching"][i])  # fmt: skip
    return np.concatenate(ARMixture.from_parameters(params).predict_proba(X))


@pytest.mark.parametrize("global_guide", [None, "normal"])
def test_posterior_draws_of_a_markov_switching_ar_mixture(global_guide):
    sim = simulate_ar_mixture(90, 2, 2, seed=5, markov=True, n_series=2, stay_probability=0.95,
                              min_separation=1.0)  # fmt: skip
    X = [sim.series[0][:60], sim.series[1]]  # two series of different lengths: 59 + 89 steps
    ar = ARMixture(2, markov=True, global_guide=global_guide, epochs=30, progress_bar=False)
    ar.fit(X)
    draws = analysis.posterior_samples(ar, X, n_draws=4000, seed=0)
    assert draws["regime"].shape == (4000, 148)
    if global_guide == "normal":
        assert draws["switching"].shape == (4000, 2, 2)
    # each transition's draws follow its smoothed posterior, series in order
    smoothed = np.concatenate(ar.predict_proba(X))
    freq = (draws["regime"][..., None] == np.arange(2)).mean(0)
    if global_guide == "normal":  # row i's regimes are drawn given row i's globals
        every = np.stack([_smoothed_at_draw(draws, i, X) for i in range(0, 4000, 20)])
        np.testing.assert_allclose(freq, every.mean(0), atol=0.035)
    else:
        np.testing.assert_allclose(freq, smoothed, atol=0.035)
    # whole paths: consecutive regimes agree as often as the pairwise posterior says, which
    # independent draws from the marginals would not reproduce
    paths = draws["regime"][:, :59]
    same = (paths[:, 1:] == paths[:, :-1]).mean()
    independent = (smoothed[1:59] * smoothed[:58]).sum(-1).mean()
    stay = np.diag(ar.switching_matrix_).mean()
    assert stay > 0.7 and same > independent + 0.02
    x_rep = analysis.posterior_predictive(ar, X, n_draws=2000, seed=0)
    assert x_rep.shape == (2000, 148, 2) and np.isfinite(x_rep).all()
    # replicates of x_t average to E[Pi_z x_{t-1}] under the paths' posterior
    prev = np.concatenate([x[:-1] for x in X])
    expected = np.einsum("tk,kij,tj->ti", smoothed, ar.transition_matrices_, prev)
    sd = np.sqrt(np.diag(ar.covariance_)).max()
    np.testing.assert_allclose(x_rep.mean(0), expected, atol=4 * sd / np.sqrt(2000) + 0.02)
    again = analysis.posterior_predictive(ar, X, n_draws=2000, seed=0)
    np.testing.assert_array_equal(x_rep, again)  # seeded


def test_inference_data_of_a_markov_switching_ar_mixture():
    import arviz as az

    sim = simulate_ar_mixture(80, 2, 2, seed=6, markov=True, n_series=2, stay_probability=0.95,
                              min_separation=1.0)  # fmt: skip
    X = [sim.series[0][:50], sim.series[1]]  # 49 + 79 transitions
    ar = ARMixture(2, markov=True, global_guide="normal", epochs=20, progress_bar=False).fit(X)
    idata = analysis.to_inference_data(ar, X, n_draws=30)
    assert idata.posterior["switching"].shape == (2, 30, 2, 2)
    assert idata.log_likelihood["x"].shape == (2, 30, 128)
    assert idata.posterior_predictive["x"].shape == (2, 30, 128, 2)
    # a draw's one-step log-likelihoods add up to the exact log-likelihood of each series
    post = idata.posterior
    draw = {k: post[k].values[1, 4] for k in ("weights", "transition_matrices", "covariance",
                                               "switching")}  # fmt: skip
    params = ARParameters(draw["weights"], draw["transition_matrices"], draw["covariance"],
                          draw["switching"])  # fmt: skip
    exact = ARMixture.from_parameters(params).score_samples(X) * np.array([49, 79])
    steps = idata.log_likelihood["x"].values[1, 4]
    np.testing.assert_allclose([steps[:49].sum(), steps[49:].sum()], exact, rtol=1e-8)
    context = _quiet_arviz()
    try:
        az.summary(idata, var_names=["weights", "switching"])
        assert np.isfinite(az.loo(idata).elpd_loo)
    finally:
        context.__exit__(None, None, None)
    nuts = analysis.ar_nuts(ar, X, num_samples=10, warmup_steps=10, num_chains=2)
    assert nuts.posterior["switching"].shape == (2, 10, 2, 2)
    assert np.isfinite(nuts.log_likelihood["x"].values).all()
    # label switching is undone: draws with their regimes renamed give the same posterior
    from pyro.infer import Predictive

    from pyro_gmvae.analysis.inference_data import _ar_groups
    from pyro_gmvae.analysis.posterior import module_local_params
    from pyro_gmvae.timeseries.series import as_series

    series, module = as_series(X, 2), ar.module_
    with torch.no_grad(), module_local_params():
        raw = Predictive(module.global_guide, num_samples=20)(series.values, series.lengths, None)
    draws = {k: raw[k].reshape(2, 10, *raw[k].shape[1:]) for k in module._global_names()}
    swapped = dict(draws)
    swapped["weights"] = draws["weights"][..., [1, 0]]
    swapped["transition_matrices"] = draws["transition_matrices"][..., [1, 0], :, :]
    swapped["switching"] = draws["switching"][..., [1, 0], :][..., [1, 0]]
    plain, renamed = _ar_groups(draws, module, series, 0), _ar_groups(swapped, module, series, 0)
    for name in ("weights", "transition_matrices", "covariance", "switching"):
        np.testing.assert_allclose(renamed.posterior[name], plain.posterior[name], rtol=1e-12)
    np.testing.assert_allclose(renamed.log_likelihood["x"], plain.log_likelihood["x"], rtol=1e-10)


def test_analysing_one_ar_fit_leaves_another_alone():
    """Two fits with guides on their globals share parameter names: drawing from one must not
    hand its parameters to the other through Pyro's global parameter store."""
    import copy

    XA = _ar_data()
    XB = 3 * simulate_ar_mixture(150, 2, 2, seed=4).series[0]  # another scale
    fits = [ARMixture(2, global_guide="normal", epochs=5, progress_bar=False).fit(X)
            for X in (XA, XB)]  # fmt: skip
    states = [copy.deepcopy(f.module_.state_dict()) for f in fits]
    scores = [f.score(X) for f, X in zip(fits, (XA, XB), strict=True)]
    for fit, X in zip(fits, (XA, XB), strict=True):
        analysis.to_inference_data(fit, X, n_draws=20)
        draws = analysis.posterior_samples(fit, X, n_draws=200)
        np.testing.assert_allclose(draws["noise_scale"].mean(0), fit.covariance_.diagonal() ** 0.5,
                                   rtol=0.25)  # fmt: skip
    for fit, state, score, X in zip(fits, states, scores, (XA, XB), strict=True):
        assert all(torch.equal(state[k], fit.module_.state_dict()[k]) for k in state)
        assert fit.score(X) == score


def test_inference_data_replicates_are_decoded_from_the_draws_of_z():
    """Replicate i of the posterior_predictive group comes from draw i of the posterior group:
    with a Gaussian likelihood, x_rep - decoder mean(z) is the likelihood's noise for the
    paired draw, and much larger for another draw of z."""
    rng = np.random.default_rng(1)  # two-dimensional structure in six dimensions
    data = rng.normal(size=(80, 2)) @ rng.normal(size=(2, 6)) + 0.05 * rng.normal(size=(80, 6))
    vae = VAE(latent_dim=2, hidden_dims=(16,), likelihood="gaussian", epochs=40, lr=1e-2,
              progress_bar=False).fit(data.astype(np.float32))  # fmt: skip
    idata = analysis.to_inference_data(vae, data.astype(np.float32), n_draws=50, n_samples=5)
    z = torch.as_tensor(idata.posterior["z"].values[0])  # (draws, points, latent)
    module = vae.module_
    with torch.no_grad():
        means = module.likelihood.mean(module.decoder(z.float())).numpy()
    x_rep = idata.posterior_predictive["x"].values[0]
    paired = ((x_rep - means) ** 2).mean()
    shuffled = ((x_rep - means[::-1]) ** 2).mean()  # draw i against draw 49 - i
    assert paired < 0.8 * shuffled


def test_posterior_predictive_replicates_depend_on_the_point():
    """Replicates come from z ~ q(z | x), not from the prior: for a VAE trained on two kinds of
    points (the first six pixels on, or mostly off), a point's replicates resemble it."""
    rng = np.random.default_rng(0)
    data = (rng.random((120, 12)) < 0.3).astype(np.float32)
    data[:60, :6] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae = VAE(latent_dim=3, hidden_dims=(16,), epochs=60, lr=1e-2, progress_bar=False)
        vae.fit(data)
    replicates = analysis.posterior_predictive(vae, data[[0, 100]], n_draws=400, seed=0)
    on = replicates[:, :, :6].mean((0, 2))  # share of the six pixels on, per point
    assert on[0] > 0.8 and on[1] < 0.4
