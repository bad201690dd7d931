"""VAE + GMM mutual learning: the per-point prior follows the data index, the KL term is the same
quantity in both prior modes, both halves are warm-started, and the estimator round-trips."""

import itertools

import numpy as np
import pyro
import pytest
import torch
from torch.distributions import MultivariateNormal, kl_divergence

from pyro_gmvae import VAEGMM
from pyro_gmvae.components import GaussianMixturePrior
from pyro_gmvae.gmm import estimator as gmm_estimator
from pyro_gmvae.models import VAEGMMModule
from pyro_gmvae.pretrain import component_moments


def tiny(**overrides):
    kw = dict(
        n_clusters=3,
        latent_dim=3,
        hidden_dims=(32,),
        n_rounds=2,
        epochs=2,
        gibbs_sweeps=12,
        gibbs_burn_in=4,
        pretrain_epochs=2,
        progress_bar=False,
        seed=0,
    )
    kw.update(overrides)
    return VAEGMM(**kw)


def _module(prior_mode="assigned"):
    torch.manual_seed(0)
    module = VAEGMMModule(8, 3, prior_mode, latent_dim=2, hidden_dims=(16,))
    means = torch.tensor([[-3.0, 0.0], [0.0, 3.0], [3.0, 0.0]])
    covs = torch.stack([torch.eye(2) * s for s in (0.5, 1.0, 2.0)])
    module.prior.set_mixture(means, covs, [0.2, 0.3, 0.5], assignments=[2, 0, 1, 1, 0])
    return module


def test_per_point_prior_is_looked_up_by_data_index():
    module = _module()
    x = torch.rand(3, 8).round()
    index = torch.tensor([4, 0, 2])  # a shuffled batch: points 4, 0 and 2 of the data
    trace = pyro.poutine.trace(module.model).get_trace(x, index)
    prior = trace.nodes["z"]["fn"]
    expected = module.prior.means[torch.tensor([0, 2, 1])]  # their clusters 0, 2, 1
    assert torch.allclose(prior.mean, expected)
    # each point's KL term is KL(q(z | x_n) || N(mu_{c_n}, Sigma_{c_n})), analytic
    terms = module.elbo_terms(x, index)
    q = module.q_z(x)
    for n, c in enumerate([0, 2, 1]):
        p = MultivariateNormal(module.prior.means[c], scale_tril=module.prior.scale_tril[c])
        q_n = MultivariateNormal(q.mean[n], torch.diag(q.variance[n]))
        assert torch.allclose(terms["kl_z"][n], kl_divergence(q_n, p), atol=1e-5)


def test_kl_is_the_same_quantity_in_both_prior_modes():
    """With one distinct Gaussian (K equal components) the mixture mode's one-sample KL estimate
    averages to the assigned mode's analytic KL: per point, summed over dimensions."""
    assigned, mixture = _module("assigned"), _module("mixture")
    mixture.load_state_dict(assigned.state_dict())
    same = torch.tensor([[1.0, -1.0]]).expand(3, 2)
    cov = torch.tensor([[1.5, 0.3], [0.3, 0.8]]).expand(3, 2, 2)
    for m in (assigned, mixture):
        m.prior.set_mixture(same, cov, assignments=[0, 1, 2, 0, 1])
    x = torch.rand(5, 8).round()
    index = torch.arange(5)
    with torch.no_grad():
        exact = assigned.elbo_terms(x, index)["kl_z"]
        torch.manual_seed(0)
        estimate = torch.stack([mixture.elbo_terms(x, index)["kl_z"] for _ in range(4000)])
    assert exact.shape == estimate.shape[1:] == (5,)
    standard_error = estimate.std(0) / len(estimate) ** 0.5
    assert ((estimate.mean(0) - exact).abs() < 4 * standard_error).all()
    assert (standard_error < 0.1).all()


def test_mutual_learning_fit_logs_rounds_and_keeps_the_best_elbo(digits_small, tmp_path):
    model = tiny().fit(digits_small.X, digits_small.y, run_dir=tmp_path / "run")
    assert [r["round"] for r in model.rounds_] == [1, 2]
    elbos = [r["elbo"] for r in model.rounds_]
    assert model.best_round_ == 1 + int(np.argmax(elbos))
    assert {"acc", "nmi", "ari", "log_joint"} <= set(model.rounds_[0])
    assert [row["epoch"] for row in model.history_] == [1, 2, 3, 4]
    assert [row["round"] for row in model.history_] == [1, 1, 2, 2]
    # before the first round's SVI: the ELBO terms under the pre-trained prior (no labels),
    # the same with one round as with two (not a later round's start)
    assert set(model.start_metrics_) == {k for k in model.history_[0] if k.startswith("train_")}
    assert model.start_metrics_["train_elbo"] != model.history_[0]["train_elbo"]
    one_round = tiny(n_rounds=1).fit(digits_small.X, digits_small.y)
    assert one_round.start_metrics_ == model.start_metrics_
    assert len(model.gibbs_history_) == 2 * 12 and "acc" in model.gibbs_history_[0]
    for name in ("metrics.csv", "rounds.csv", "gibbs.csv"):
        assert (tmp_path / "run" / name).exists()
    assert np.array_equal(model.labels_, model.predict(digits_small.X))
    proba = model.predict_proba(digits_small.X)
    assert proba.shape == (len(digits_small.X), 3) and np.allclose(proba.sum(1), 1)
    # the kept GMM was fitted on the kept VAE's latents
    assert np.allclose(model.gmm_.means_, model.module_.prior.means.numpy(), atol=1e-5)
    with pytest.raises(FileExistsError):
        tiny().fit(digits_small.X, run_dir=tmp_path / "run")


def test_both_halves_are_warm_started(digits_small, monkeypatch):
    """Without pre-training, k-means starts the GMM's chains once, in round 1; later rounds
    continue them. Each VAE phase starts from the weights the last one ended with."""
    from pyro_gmvae.estimators import vae_gmm

    calls, weights = [], []
    original_kmeans, original_train = gmm_estimator.KMeans, vae_gmm.train

    def counting(*args, **kwargs):
        calls.append(kwargs.get("random_state"))
        return original_kmeans(*args, **kwargs)

    def recording(plan, *args, **kwargs):
        before = {k: v.clone() for k, v in plan.module.state_dict().items()}
        out = original_train(plan, *args, **kwargs)
        weights.append((before, {k: v.clone() for k, v in plan.module.state_dict().items()}))
        return out

    monkeypatch.setattr(gmm_estimator, "KMeans", counting)
    monkeypatch.setattr(vae_gmm, "train", recording)
    tiny(n_rounds=3, gibbs_chains=2, init="random").fit(digits_small.X)
    assert len(calls) == 2  # one per chain, in round 1 only
    assert len(weights) == 3
    for (_, end), (start, _) in itertools.pairwise(weights):
        networks = [k for k in end if not k.startswith("prior.")]
        assert all(torch.equal(end[k], start[k]) for k in networks)
        # and the prior the next phase trains with is the fitted mixture, not N(0, I)
        assert not torch.equal(start["prior.means"], torch.zeros_like(start["prior.means"]))


def test_pretraining_starts_both_halves_from_its_clustering(digits_small, monkeypatch):
    """init="pretrain": round 1's VAE trains with the mixture of the pre-training clusters'
    codes as its prior (each point's own cluster in the per-point mode), and every Gibbs chain
    starts from those clusters; no k-means."""
    from pyro_gmvae.estimators import vae_gmm

    found, priors = [], []
    original_pretrain, original_train = VAEGMM._pretrain, vae_gmm.train

    def pretraining(module, X, **kwargs):
        resp = original_pretrain(module, X, **kwargs)
        with torch.no_grad():
            codes = module.latent_mean(X)
        found.append((resp, component_moments(torch.as_tensor(resp, dtype=torch.float32), codes)))
        return resp

    def recording(plan, *args, **kwargs):
        prior = plan.module.prior
        priors.append((prior.means.clone(), prior.assignments.clone()))
        return original_train(plan, *args, **kwargs)

    monkeypatch.setattr(VAEGMM, "_pretrain", staticmethod(pretraining))
    monkeypatch.setattr(vae_gmm, "train", recording)
    monkeypatch.setattr(gmm_estimator, "KMeans", None)  # any k-means call would fail
    model = tiny(n_rounds=2, prior_mode="assigned").fit(digits_small.X)
    ((resp, (weights, means, variances)),) = found
    clusters = resp.argmax(1)
    first_means, first_assignments = priors[0]
    assert torch.equal(first_assignments, torch.as_tensor(clusters))
    assert torch.allclose(first_means, means, atol=1e-5)  # the clusters' codes
    assert np.array_equal(model.gmm_.init, clusters)
    assert model.pretrain_seconds_ > 0


def test_same_seed_same_fit_and_save_load(digits_small, tmp_path):
    a = tiny(prior_mode="mixture").fit(digits_small.X)
    b = tiny(prior_mode="mixture").fit(digits_small.X)
    assert a.rounds_ == b.rounds_
    path = a.save(tmp_path / "m.pt")
    c = VAEGMM.load(path)
    X = digits_small.X
    assert np.array_equal(c.predict(X), a.predict(X))
    assert c.score(X) == pytest.approx(a.score(X))
    assert np.array_equal(c.sample(4, cluster=1, seed=3)[0], a.sample(4, cluster=1, seed=3)[0])
    assert c.gmm_.draws_["means"].shape == a.gmm_.draws_["means"].shape
    assert len(c.module_.prior.assignments) == len(X)
    assert c.rounds_ == a.rounds_ and isinstance(c.gibbs_history_, list)
    assert c.history_ == a.history_


def test_diagonal_gmm_and_the_round_one_prior(digits_small):
    """A diagonal GMM hands over diagonal covariances; before any mixture (round 1 with
    init="random") the prior is N(0, I) itself, so the KL is the analytic one."""
    model = tiny(covariance_type="diag", n_rounds=2).fit(digits_small.X)
    cov = model.module_.prior.scale_tril @ model.module_.prior.scale_tril.transpose(-1, -2)
    assert torch.allclose(cov, torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1)), atol=1e-6)
    fresh = VAEGMMModule(64, 3, latent_dim=3, hidden_dims=(16,))
    x = digits_small.X[:5]
    q = fresh.q_z(x)
    analytic = 0.5 * (q.variance + q.mean**2 - 1 - q.variance.log()).sum(-1)
    with torch.no_grad():
        assert torch.allclose(fresh.elbo_terms(x, torch.arange(5))["kl_z"], analytic, atol=1e-5)


def test_the_prior_covers_the_codes_not_only_their_means(digits_small):
    """Cluster k's prior covariance is the GMM's plus the mean encoder variance of its points."""
    model = tiny(n_rounds=1).fit(digits_small.X)
    prior = model.module_.prior
    cov = (prior.scale_tril @ prior.scale_tril.transpose(-1, -2)).double().numpy()
    with torch.no_grad():
        variances = model.module_.q_z(digits_small.X).variance.double().numpy()
    labels = model.gmm_.labels_
    for k in np.unique(labels):
        expected = model.gmm_.covariances_[k] + np.diag(variances[labels == k].mean(0))
        assert np.allclose(cov[k], expected, rtol=1e-4, atol=1e-6)


def test_bad_settings_are_refused(digits_small, tmp_path):
    with pytest.raises(ValueError, match="prior_mode"):
        tiny(prior_mode="hard")
    with pytest.raises(ValueError, match="init must be 'pretrain' or 'random'"):
        tiny(init="auto").fit(digits_small.X)
    with pytest.raises(ValueError, match="pretrain_epochs"):
        tiny(pretrain_epochs=0).fit(digits_small.X)
    with pytest.raises(ValueError, match="burn_in"):
        tiny(gibbs_sweeps=5, gibbs_burn_in=5)
    with pytest.raises(ValueError, match="larger than the number of samples"):
        tiny(n_clusters=3).fit(digits_small.X[:2])
    with pytest.raises(ValueError, match="does not resume"):
        tiny().fit(digits_small.X, ckpt_path=tmp_path / "x.ckpt")
    with pytest.raises(ValueError, match="monitor_size must be positive"):
        tiny(monitor_size=0).fit(digits_small.X)
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixturePrior(torch.zeros(2, 2), -torch.eye(2).expand(2, 2, 2))
