"""Pre-training: the mixture prior takes the given components, q(y|x) learns the clustering."""

import numpy as np
import torch
from conftest import tiny_kwargs

from pyro_gmvae import GMVAE, clustering_scores, load_digits
from pyro_gmvae.components import LearnedMixturePrior
from pyro_gmvae.pretrain import cluster_codes


def test_set_components_gives_back_the_means_and_variances():
    prior = LearnedMixturePrior(3, 2)
    means = torch.tensor([[0.0, 1.0], [2.0, -1.0], [5.0, 5.0]])
    variances = torch.tensor([[0.5, 1.0], [2.0, 0.1], [1e-3, 4.0]])
    prior.set_components(means, variances)
    loc, var = prior.params(torch.eye(3))
    torch.testing.assert_close(loc, means)
    torch.testing.assert_close(var, variances, rtol=1e-4, atol=1e-6)


def test_cluster_codes_recovers_well_separated_groups():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, 5))
    labels = np.repeat(np.arange(3), 60)
    codes = centres[labels] + rng.normal(0, 0.5, (180, 5))
    resp = cluster_codes(codes, 3, seed=0)
    np.testing.assert_allclose(resp.sum(1), 1.0, atol=1e-6)
    assert clustering_scores(labels, resp.argmax(1))["acc"] == 1.0
    # above max_points, the rest take their nearest embedded neighbour's assignment
    resp_sub = cluster_codes(codes, 3, seed=0, max_points=90)
    assert clustering_scores(labels, resp_sub.argmax(1))["acc"] == 1.0


def test_pretrained_fit_beats_a_random_start_on_digits():
    data = load_digits()
    kw = tiny_kwargs(n_clusters=10, latent_dim=10, hidden_dims=(128,), epochs=1)
    random = GMVAE(**kw).fit(data.X)
    pretrained = GMVAE(**{**kw, "init": "pretrain", "pretrain_epochs": 20}).fit(data.X)
    acc_random = clustering_scores(data.y, random.predict(data.X))["acc"]
    acc_pretrained = clustering_scores(data.y, pretrained.predict(data.X))["acc"]
    assert acc_pretrained > acc_random + 0.1
    assert acc_pretrained > 0.75
