"""Every supported prior/guide combination fits; the unsupported ones say why they are not."""

import warnings

import numpy as np
import pytest
import torch

from pyro_gmvae import AE, GMVAE
from pyro_gmvae.catalogue import Combination, combinations, model_for
from pyro_gmvae.components import MixturePrior
from pyro_gmvae.components.priors import make_prior

TINY = dict(
    latent_dim=3,
    hidden_dims=(24,),
    epochs=4,
    batch_size=60,
    seed=0,
    progress_bar=False,
    monitor_size=None,
)


@pytest.mark.parametrize("combo", list(combinations()), ids=lambda c: c.name)
def test_every_supported_combination_fits(combo, digits_small):
    X = digits_small.X
    model = combo.build(n_clusters=4, init="random", **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # collapse warnings are expected after 4 tiny epochs
        model.fit(X)
    losses = [h["loss"] for h in model.history_]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    assert np.isfinite(model.score(X))
    binary = (X[:8] > 0.5).float()
    assert np.isfinite(model.log_likelihood(binary, n_samples=16)).all()


@pytest.mark.parametrize(
    "combo",
    [c for c in combinations(include_unsupported=True) if not c.supported],
    ids=lambda c: c.name,
)
def test_unsupported_combinations_raise_a_clear_error(combo, digits_small):
    with pytest.raises(ValueError, match="not supported: .*Gaussian z-guide"):
        combo.build(n_clusters=4, **TINY)
    # the same combination assembled by hand is refused by the model itself
    prior = make_prior(combo.prior, 4, TINY["latent_dim"], digits_small.X.shape[1])
    by_hand = model_for(combo.prior)(prior=prior, z_guide=combo.z_guide, **TINY)
    with pytest.raises(ValueError, match="Gaussian z-guide"):
        by_hand.fit(digits_small.X)


def test_the_treatment_of_y_must_match_the_prior(digits_small):
    with pytest.raises(ValueError, match="has no y"):
        Combination("vamp", "enumerate", "diagonal").build(n_clusters=4, **TINY)
    with pytest.raises(ValueError, match="has a y"):
        Combination("learned-mixture", None, "diagonal").build(n_clusters=4, **TINY)
    with pytest.raises(ValueError, match="unknown prior"):
        make_prior("student-t", 4, 3, 64)
    with pytest.raises(ValueError, match="'vamp' prior has no y: use VAE"):
        GMVAE(prior="vamp")


def test_combination_names_are_unique():
    names = [c.name for c in combinations(include_unsupported=True)]
    assert len(names) == len(set(names)) == 3 * 4 * 4 + 3 * 4


def test_mismatched_prior_and_model_are_refused(digits_small):
    with pytest.raises(ValueError, match="use VAE for priors without y"):
        GMVAE(n_clusters=4, prior=MixturePrior(4, 3), **TINY).fit(digits_small.X)
    with pytest.raises(TypeError, match="prior"):
        AE(prior=MixturePrior(4, 3), **TINY)


@pytest.mark.parametrize("prior", ["mixture-marginal", "vamp", "fixed-mixture"])
def test_a_named_prior_starts_from_the_seed_alone(prior, digits_small):
    """A named prior's random start (means, pseudo-inputs) comes from the fit's seed, whatever
    the global random state before the fit."""
    model = model_for(prior)
    options = dict(TINY, epochs=1, init="random", prior=prior)
    if model is GMVAE:
        options["n_clusters"] = 4

    def start(seed, global_seed):
        torch.manual_seed(global_seed)
        fitted = model(**{**options, "seed": seed}).fit(digits_small.X[:60])
        return {k: v.clone() for k, v in fitted.module_.prior.state_dict().items()}

    first = start(0, 1)
    assert first.keys() and all(torch.equal(first[k], v) for k, v in start(0, 2).items())
    assert not all(torch.equal(first[k], v) for k, v in start(1, 1).items())
