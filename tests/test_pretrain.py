"""Pre-training: the mixture prior takes the given components, q(y|x) learns the clustering,
and a VAE's mixture prior (VaDE) starts at the clusters of the codes."""

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from conftest import tiny_kwargs

import pyro_gmvae.pretrain as pretrain_module
from pyro_gmvae import GMVAE, VAE, VAEGMM, clustering_scores, load_digits
from pyro_gmvae.components import (
    DiagonalNormalGuide,
    LearnedFullMixturePrior,
    LearnedMixturePrior,
    MixturePrior,
    VampPrior,
)
from pyro_gmvae.pretrain import cluster_codes, component_moments, embed_codes


def test_set_components_gives_back_the_means_and_variances():
    prior = LearnedMixturePrior(3, 2)
    means = torch.tensor([[0.0, 1.0], [2.0, -1.0], [5.0, 5.0]])
    variances = torch.tensor([[0.5, 1.0], [2.0, 0.1], [1e-3, 4.0]])
    prior.set_components(means, variances)
    loc, var = prior.params(torch.eye(3))
    torch.testing.assert_close(loc, means)
    torch.testing.assert_close(var, variances, rtol=1e-4, atol=1e-6)


def test_full_mixture_prior_takes_full_and_diagonal_covariances():
    prior = LearnedFullMixturePrior(3, 4)
    g = torch.Generator().manual_seed(0)
    A = torch.randn(3, 4, 4, generator=g)
    covariances = A @ A.transpose(1, 2) + 0.1 * torch.eye(4)
    means = torch.randn(3, 4, generator=g)
    prior.set_components(means, covariances)
    p = prior(torch.eye(3))
    torch.testing.assert_close(p.loc, means)
    torch.testing.assert_close(p.covariance_matrix, covariances, rtol=1e-4, atol=1e-4)
    variances = torch.rand(3, 4, generator=g) + 0.01
    prior.set_components(means, variances)
    torch.testing.assert_close(
        prior(torch.eye(3)).covariance_matrix, torch.diag_embed(variances), rtol=1e-4, atol=1e-4
    )


def test_full_mixture_prior_refuses_bad_components():
    prior = LearnedFullMixturePrior(2, 3)
    with pytest.raises(ValueError, match="expected means"):
        prior.set_components(torch.zeros(3, 3), torch.ones(3, 3))
    with pytest.raises(ValueError, match="positive definite"):
        prior.set_components(torch.zeros(2, 3), -torch.eye(3).expand(2, 3, 3))


def test_full_mixture_prior_densities_for_enumerated_and_relaxed_y():
    """Enumerated y (K, 1, K) gives each cluster's Gaussian against the batch; a relaxed y mixes
    the means and factors into a valid Gaussian; the marginal sums the clusters out."""
    prior = LearnedFullMixturePrior(3, 2)
    with torch.no_grad():
        prior.raw_tril.add_(torch.randn(3, 2, 2))
    z = torch.randn(5, 2)
    scale_trils = prior.scale_trils()
    assert (scale_trils.diagonal(dim1=-2, dim2=-1) > 0).all()
    expected = torch.stack(
        [
            dist.MultivariateNormal(prior.loc.weight[:, k] + prior.loc.bias, scale_tril=L).log_prob(
                z
            )
            for k, L in enumerate(scale_trils)
        ]
    )
    torch.testing.assert_close(prior(torch.eye(3).unsqueeze(1)).log_prob(z), expected)
    soft = torch.softmax(torch.randn(5, 3), -1)
    mixed = prior(soft)
    torch.testing.assert_close(mixed.loc, soft @ prior.loc.weight.T + prior.loc.bias)
    torch.testing.assert_close(mixed.scale_tril, torch.einsum("nk,kij->nij", soft, scale_trils))
    assert torch.isfinite(mixed.log_prob(z)).all()
    torch.testing.assert_close(
        prior.marginal().log_prob(z), expected.logsumexp(0) - torch.tensor(3.0).log()
    )


@pytest.mark.parametrize("rows", [16384, 7])  # one sum, or sums of 7 rows at a time
def test_component_moments_full_covariances(rows, monkeypatch):
    monkeypatch.setattr(pretrain_module, "MOMENT_ROWS", rows)
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(50, 3, generator=g)
    resp = torch.softmax(torch.randn(50, 2, generator=g), -1)
    _, means, covariances = component_moments(resp, codes, full=True)
    for k in range(2):
        centred = codes - means[k]
        expected = (resp[:, k, None] * centred).T @ centred / resp[:, k].sum()
        torch.testing.assert_close(covariances[k], expected + 1e-4 * torch.eye(3))
    _, _, variances = component_moments(resp, codes)
    torch.testing.assert_close(covariances.diagonal(dim1=-2, dim2=-1), variances + 1e-4)


@pytest.mark.parametrize("embedding", ["umap", "tsne"])
def test_cluster_codes_recovers_well_separated_groups(embedding):
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, 5))
    labels = np.repeat(np.arange(3), 60)
    codes = centres[labels] + rng.normal(0, 0.5, (180, 5))
    resp = cluster_codes(codes, 3, seed=0, embedding=embedding)
    np.testing.assert_allclose(resp.sum(1), 1.0, atol=1e-6)
    assert clustering_scores(labels, resp.argmax(1))["acc"] == 1.0
    # above max_points, the rest take the responsibilities of their nearest embedded neighbour
    resp_sub = cluster_codes(codes, 3, seed=0, embedding=embedding, max_points=40)  # 4 parts
    assert clustering_scores(labels, resp_sub.argmax(1))["acc"] == 1.0


def test_umap_clustering_is_seeded():
    """The same seed gives the same embedding and responsibilities; another seed another
    embedding."""
    rng = np.random.default_rng(1)
    codes = rng.normal(size=(150, 4)) + np.repeat(rng.normal(0, 4, (3, 4)), 50, axis=0)
    embedded = embed_codes(codes, "umap", seed=3)
    np.testing.assert_array_equal(embedded, embed_codes(codes, "umap", seed=3))
    assert not np.allclose(embedded, embed_codes(codes, "umap", seed=4))
    np.testing.assert_array_equal(cluster_codes(codes, 3, seed=3), cluster_codes(codes, 3, seed=3))


def test_umap_is_given_the_exact_neighbours_and_its_layout_epochs(monkeypatch):
    """UMAP embeds from scikit-learn's exact neighbours (each point its own first) with
    UMAP_EPOCHS layout epochs, whatever the number of points."""
    import umap
    from sklearn.neighbors import NearestNeighbors

    from pyro_gmvae.pretrain import UMAP_EPOCHS

    made = []
    real = umap.UMAP

    def recording(**kwargs):
        made.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(umap, "UMAP", recording)
    codes = np.random.default_rng(2).normal(size=(80, 3))
    embed_codes(codes, "umap", seed=0)
    indices, distances, _ = made[0]["precomputed_knn"]
    exact_d, exact_i = NearestNeighbors(n_neighbors=20).fit(codes).kneighbors(codes)
    np.testing.assert_array_equal(indices, exact_i)
    np.testing.assert_allclose(distances, exact_d, rtol=1e-6)
    np.testing.assert_array_equal(indices[:, 0], np.arange(80))
    assert made[0]["n_neighbors"] == 20 and made[0]["n_epochs"] == UMAP_EPOCHS == 200


def test_auto_embedding_is_tsne_below_the_threshold_and_umap_from_there(monkeypatch):
    from pyro_gmvae.pretrain import TSNE_BELOW, resolve_embedding

    assert resolve_embedding("auto", TSNE_BELOW - 1) == "tsne"
    assert resolve_embedding("auto", TSNE_BELOW) == "umap"
    assert resolve_embedding("umap", 10) == "umap" and resolve_embedding("tsne", 10**6) == "tsne"
    assert GMVAE().get_params()["pretrain_embedding"] == "auto"
    # the clustering follows the resolved embedding: UMAP's 20 mixture starts, t-SNE's 3
    starts = []
    real = pretrain_module.GaussianMixture

    def recording(*args, **kwargs):
        starts.append(kwargs["n_init"])
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "GaussianMixture", recording)
    codes = np.random.default_rng(0).normal(size=(60, 3))
    cluster_codes(codes, 2, seed=0)
    monkeypatch.setattr(pretrain_module, "TSNE_BELOW", 50)
    cluster_codes(codes, 2, seed=0)
    assert starts == [3, 20]


def test_unknown_embedding_is_refused():
    with pytest.raises(ValueError, match="pretrain_embedding must be one of"):
        GMVAE(pretrain_embedding="pca").fit(np.random.default_rng(0).random((30, 4)))
    with pytest.raises(ValueError, match="pretrain_embedding must be one of"):
        cluster_codes(np.zeros((10, 2)), 2, seed=0, embedding="PCA")


def test_pretrained_fit_beats_a_random_start_on_digits():
    data = load_digits()
    kw = tiny_kwargs(n_clusters=10, latent_dim=10, hidden_dims=(128,), epochs=1)
    random = GMVAE(**kw).fit(data.X)
    pretrained = GMVAE(**{**kw, "init": "pretrain", "pretrain_epochs": 20}).fit(data.X)
    acc_random = clustering_scores(data.y, random.predict(data.X))["acc"]
    acc_pretrained = clustering_scores(data.y, pretrained.predict(data.X))["acc"]
    assert acc_pretrained > acc_random + 0.1
    assert acc_pretrained > 0.75


def test_mixture_prior_takes_the_given_components():
    prior = MixturePrior(2, 3)
    means, variances = torch.randn(2, 3), torch.rand(2, 3) + 0.1
    prior.set_components(means, variances, torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(prior.components().mean, means)
    torch.testing.assert_close(prior.components().variance, variances)
    torch.testing.assert_close(prior().mixture_distribution.probs, torch.tensor([0.25, 0.75]))


def test_mixture_prior_variances_have_a_floor():
    prior = MixturePrior(2, 3, min_var=1e-4)
    with torch.no_grad():
        prior.log_scales.fill_(-100.0)  # a component shrunk onto one code
    torch.testing.assert_close(prior.components().variance, torch.full((2, 3), 1e-4))
    prior.set_components(torch.zeros(2, 3), torch.full((2, 3), 1e-6))  # below the floor
    assert (prior.components().variance >= 1e-4).all()


def test_component_moments_are_the_weighted_moments():
    codes = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [10.0, 10.0]])
    resp = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.0, 1.0]])
    weights, means, variances = component_moments(resp, codes)
    torch.testing.assert_close(weights, torch.tensor([1.5, 2.5]) / 4)
    first = torch.tensor([1.0, 0.5])  # weights of codes 0 and 1 in component 0
    mean0 = (first[:, None] * codes[:2]).sum(0) / 1.5
    torch.testing.assert_close(means[0], mean0)
    torch.testing.assert_close(
        variances[0], (first[:, None] * (codes[:2] - mean0) ** 2).sum(0) / 1.5
    )


def test_a_pretrained_mixture_prior_clusters_digits_far_better_than_a_random_one():
    data = load_digits()
    kw = dict(latent_dim=10, hidden_dims=(128,), epochs=1, seed=0, progress_bar=False)
    torch.manual_seed(0)
    random = VAE(prior=MixturePrior(10, 10), init="random", **kw).fit(data.X)
    torch.manual_seed(0)
    pretrained = VAE(prior=MixturePrior(10, 10), init="pretrain", pretrain_epochs=20, **kw)
    pretrained.fit(data.X)
    acc_random = clustering_scores(data.y, random.predict(data.X))["acc"]
    acc_pretrained = clustering_scores(data.y, pretrained.predict(data.X))["acc"]
    assert acc_pretrained > acc_random + 0.1 and acc_pretrained > 0.75, (acc_random, acc_pretrained)


def test_pretraining_a_prior_without_components_is_refused():
    with pytest.raises(ValueError, match="the VampPrior prior has none: pass init='random'"):
        VAE(prior=VampPrior(5, 64, 3), init="pretrain")
    with pytest.raises(ValueError, match="the 'standard-normal' prior has none"):
        VAE(init="pretrain")
    with pytest.raises(ValueError, match="the 'vamp' prior has none"):
        VAE(prior="vamp", init="pretrain")


def test_a_mixture_prior_with_more_components_than_samples_is_refused(digits_small):
    with pytest.raises(ValueError, match="12 components are more than the number of samples"):
        VAE(prior=MixturePrior(12, 3), latent_dim=3, epochs=1).fit(digits_small.X[:10])


def test_pretraining_places_the_prior_in_the_space_the_decoder_reads(digits_small):
    """With a flow guide, the codes that pre-training clusters are the guide's point estimates
    after the flow, and q(z | x, y) then starts at that code for every y."""
    from pyro_gmvae.models import GMVAEModule
    from pyro_gmvae.pretrain import pretrain

    X = digits_small.X
    torch.manual_seed(0)
    module = GMVAEModule(64, 3, 4, (32,), z_guide="flow")
    resp = pretrain(
        module, X, seed=0, batch_size=64, lr=1e-3, autoencoder_epochs=2, progress_bar=False
    )
    with torch.no_grad():
        codes = module.z_encoder.point(X, torch.zeros(len(X), 3))
        base = module.z_encoder.distribution(X, torch.zeros(len(X), 3)).base_dist.mean
        _, means, variances = component_moments(torch.as_tensor(resp, dtype=torch.float32), codes)
        loc, var = module.prior.params(torch.eye(3))
        for k in range(3):
            y = torch.eye(3)[k].expand(len(X), 3)
            torch.testing.assert_close(module.z_encoder.point(X, y), codes)
    assert (codes - base).abs().mean() > 1e-3  # the flow moves the codes: the test has teeth
    torch.testing.assert_close(loc, means)
    torch.testing.assert_close(var, variances, rtol=1e-4, atol=1e-5)


def test_a_flow_guides_variance_comes_from_its_draws(digits_small):
    from pyro_gmvae.models import GMVAEModule
    from pyro_gmvae.pretrain import code_variances

    torch.manual_seed(0)
    module = GMVAEModule(64, 3, 4, (32,), z_guide="flow")
    X = digits_small.X
    with torch.no_grad():
        draws = module.z_encoder.distribution(X, torch.zeros(len(X), 3)).sample((400,))
    estimate = code_variances(module, X)
    assert estimate.shape == (len(X), 4)
    # 16 draws per point: the mean over points is within a few percent of 400 draws'
    torch.testing.assert_close(estimate.mean(0), draws.var(0).mean(0), rtol=0.1, atol=1e-4)


@pytest.mark.parametrize("prior", ["learned-mixture", "learned-full-mixture"])
def test_pretraining_sets_each_cluster_to_the_moments_of_its_codes(digits_small, prior):
    """Diagonal Gaussians get their codes' mean and variance; full ones the moment match of
    z ~ q(z | x) over their points: the codes' covariance plus the points' mean guide
    variance."""
    from pyro_gmvae.components.priors import make_prior
    from pyro_gmvae.models import GMVAEModule
    from pyro_gmvae.pretrain import pretrain

    X = digits_small.X
    torch.manual_seed(0)
    module = GMVAEModule(64, 3, 4, (32,), prior=make_prior(prior, 3, 4, 64))
    resp = pretrain(
        module, X, seed=0, batch_size=64, lr=1e-3, autoencoder_epochs=2, progress_bar=False
    )
    resp_t = torch.as_tensor(resp, dtype=torch.float32)
    with torch.no_grad():
        codes, guide_var = module.z_encoder(X, torch.zeros(len(X), 3))
    full = prior == "learned-full-mixture"
    _, means, spread = component_moments(resp_t, codes, full=full)
    widening = resp_t.T @ guide_var / resp_t.sum(0)[:, None]
    spread_diagonal = spread.diagonal(dim1=-2, dim2=-1) if full else spread
    assert (widening > 0.01 * spread_diagonal).all()  # the widening is not negligible
    p = module.prior(torch.eye(3))
    torch.testing.assert_close(p.mean, means)
    if full:
        expected = spread + torch.diag_embed(widening)
        torch.testing.assert_close(p.covariance_matrix, expected, rtol=1e-3, atol=1e-4)
    else:
        torch.testing.assert_close(p.variance, spread, rtol=1e-4, atol=1e-5)


def test_a_gmvae_with_the_full_mixture_prior_fits_saves_and_loads(digits_small, tmp_path):
    """The named full-covariance prior through the estimator, pre-trained by default, saved and
    loaded by name with the same scores."""
    model = GMVAE(**tiny_kwargs(prior="learned-full-mixture", n_clusters=3, latent_dim=4))
    model.set_params(init="auto", pretrain_epochs=2)
    assert model.resolved_init() == "pretrain"  # "auto" places the named full mixture
    model.fit(digits_small.X)
    assert isinstance(model.module_.prior, LearnedFullMixturePrior)
    assert (model.module_.prior.scale_trils().tril(-1) != 0).any()  # a full covariance was set
    path = model.save(tmp_path / "full.pt")
    loaded = GMVAE.load(path)
    np.testing.assert_array_equal(
        loaded.predict_proba(digits_small.X), model.predict_proba(digits_small.X)
    )
    assert loaded.score(digits_small.X) == pytest.approx(model.score(digits_small.X), abs=1e-4)


class ScaledGuide(DiagonalNormalGuide):
    """A guide written as the README describes: the library's encoder, another distribution
    (a Gaussian twice as wide)."""

    def distribution(self, x, y=None):
        loc, var = self(x, y)
        return dist.Normal(loc, 2 * var.sqrt()).to_event(1)


class BareGuide(torch.nn.Module):
    """A guide with only the protocol's two methods: it cannot start equal for every y."""

    def __init__(self, x_dim, y_dim, hidden_dims, latent_dim):
        super().__init__()
        self.net = torch.nn.Linear(x_dim + y_dim, 2 * latent_dim)

    def _out(self, x, y):
        shape = torch.broadcast_shapes(x.shape[:-1], y.shape[:-1])
        h = torch.cat([x.expand(*shape, x.shape[-1]), y.expand(*shape, y.shape[-1])], -1)
        return self.net(h).chunk(2, -1)

    def distribution(self, x, y=None):
        loc, raw = self._out(x, y)
        return dist.Normal(loc, torch.nn.functional.softplus(raw) + 1e-3).to_event(1)

    def point(self, x, y=None):
        return self._out(x, y)[0]


def test_a_users_guide_works_with_the_default_init(digits_small, tmp_path):
    kw = tiny_kwargs(z_guide=ScaledGuide, init="auto", pretrain_epochs=2)
    model = GMVAE(**kw)
    assert model.resolved_init() == "pretrain"
    model.fit(digits_small.X)
    assert np.isfinite(model.score(digits_small.X))
    path = model.save(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="z_guide=test_pretrain.ScaledGuide"):
        GMVAE.load(path)  # recorded as the user's class, not as the built-in it extends
    loaded = GMVAE.load(path, z_guide=ScaledGuide)
    np.testing.assert_allclose(loaded.transform(digits_small.X), model.transform(digits_small.X))
    with pytest.raises(ValueError, match="z-guide with reset_y_input\\(\\); BareGuide has none"):
        GMVAE(**{**kw, "z_guide": BareGuide}).fit(digits_small.X)
    GMVAE(**{**kw, "z_guide": BareGuide, "init": "random"}).fit(digits_small.X)


SMALL = dict(latent_dim=4, hidden_dims=(32,), progress_bar=False)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda **kw: GMVAE(**tiny_kwargs(init="pretrain", **kw)), "auto"),
        (lambda **kw: VAE(prior="mixture-marginal", n_components=3, **SMALL, **kw), "tsne"),
        (
            lambda **kw: VAEGMM(3, n_rounds=1, gibbs_sweeps=4, gibbs_burn_in=2, **SMALL, **kw),
            "tsne",
        ),
    ],
)
def test_each_model_passes_its_embedding_to_pre_training(make, expected, digits_small, monkeypatch):
    """The default embedding of each model, and one given, reach the clustering of the codes."""
    seen = []

    def record(codes, n_clusters, seed, embedding, **kwargs):
        seen.append(embedding)
        return np.eye(n_clusters)[np.arange(len(codes)) % n_clusters]

    monkeypatch.setattr(pretrain_module, "cluster_codes", record)
    X = digits_small.X[:120]
    make(epochs=1, pretrain_epochs=1).fit(X)
    other = "tsne" if expected != "tsne" else "umap"
    make(epochs=1, pretrain_epochs=1, pretrain_embedding=other).fit(X)
    assert seen == [expected, other]


def test_pre_training_refuses_fewer_than_four_points():
    with pytest.raises(ValueError, match="at least 4 points"):
        cluster_codes(np.zeros((3, 2)), 2, seed=0)
