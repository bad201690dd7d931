"""Components and arrays passed in are the user's: models start from them as given, never
re-initialise or train them in place; scikit-learn's parameter protocol holds."""

import numpy as np
import pytest
import torch
from conftest import tiny_kwargs
from sklearn.base import clone
from torch import nn

from pyro_gmvae import GMVAE, VAE
from pyro_gmvae.components import (
    DiagonalNormalGuide,
    LearnedMixturePrior,
    MixturePrior,
    ScoreFunction,
)
from pyro_gmvae.models import GMVAEModule, VAEModule


def placed_prior():
    prior = LearnedMixturePrior(2, 2)
    prior.set_components(torch.tensor([[5.0, 5.0], [-5.0, -5.0]]), torch.ones(2, 2))
    return prior


def test_a_prior_passed_to_a_model_keeps_its_parameters():
    prior = placed_prior()
    module = GMVAEModule(4, n_clusters=2, latent_dim=2, hidden_dims=(8,), prior=prior)
    loc, var = module.prior.params(torch.eye(2))
    torch.testing.assert_close(loc, torch.tensor([[5.0, 5.0], [-5.0, -5.0]]))
    torch.testing.assert_close(var, torch.ones(2, 2), rtol=1e-4, atol=1e-6)
    vade = MixturePrior(2, 2)
    vade.set_components(torch.tensor([[3.0, 0.0], [0.0, 3.0]]), torch.ones(2, 2))
    module = VAEModule(4, latent_dim=2, hidden_dims=(8,), prior=vade)
    torch.testing.assert_close(module.prior.means, torch.tensor([[3.0, 0.0], [0.0, 3.0]]))


class ConstantStartGuide(DiagonalNormalGuide):
    """A user's guide whose own start is known: every weight 0.01."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        for p in self.parameters():
            nn.init.constant_(p, 0.01)


def test_a_guide_made_by_a_users_factory_keeps_its_start():
    for module in (
        GMVAEModule(4, n_clusters=2, latent_dim=2, hidden_dims=(8,), z_guide=ConstantStartGuide),
        VAEModule(4, latent_dim=2, hidden_dims=(8,), z_guide=ConstantStartGuide),
    ):
        for p in module.z_encoder.parameters():
            assert torch.all(p == 0.01)


def test_fitting_starts_from_the_users_prior_and_leaves_it_untouched(digits_small):
    prior = placed_prior()
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    model = GMVAE(**tiny_kwargs(n_clusters=2, latent_dim=2, prior=prior, init="auto"))
    assert model.resolved_init() == "random"  # pre-training would overwrite its placement
    X = digits_small.X
    start = model._build(X.shape[1], **model._choose_from_data(X)).prior
    placed = torch.tensor([[5.0, 5.0], [-5.0, -5.0]])
    torch.testing.assert_close(start.params(torch.eye(2))[0], placed)
    model.fit(digits_small.X)
    for k, v in prior.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.module_.prior is not prior  # the fitted one is module_.prior
    assert not torch.equal(model.module_.prior.loc.weight, prior.loc.weight)


def test_a_strategy_instance_passed_in_is_not_mutated(digits_small):
    strategy = ScoreFunction()
    GMVAE(**tiny_kwargs(discrete=strategy)).fit(digits_small.X)
    assert int(strategy.baseline_updates) == 0 and float(strategy.baseline) == 0.0


def test_the_users_array_is_not_changed(digits_small):
    X = digits_small.X.numpy().copy()
    kept = X.copy()
    GMVAE(**tiny_kwargs(epochs=1, binarize=True)).fit(X)
    np.testing.assert_array_equal(X, kept)


def test_clone_get_params_and_set_params_follow_scikit_learn():
    model = GMVAE(n_clusters=4, latent_dim=3, hidden_dims=[16], prior=placed_prior())
    copy = clone(model)
    params, copied = model.get_params(), copy.get_params()
    assert params.keys() == copied.keys()
    assert all(copied[k] == v for k, v in params.items() if k != "prior")
    assert copied["prior"] is not params["prior"]  # components are copied, never shared
    assert copy.set_params(n_clusters=5).n_clusters == 5 and model.n_clusters == 4
    assert clone(VAE(prior="vamp", n_components=7)).get_params()["n_components"] == 7
    assert "GMVAE(hidden_dims=[16], latent_dim=3, n_clusters=4" in repr(model)


def test_fit_predict_and_fit_transform_follow_scikit_learn(digits_small):
    model = GMVAE(**tiny_kwargs(epochs=1))
    labels = model.fit_predict(digits_small.X)
    np.testing.assert_array_equal(labels, model.predict(digits_small.X))
    np.testing.assert_array_equal(labels, model.labels_)
    Z = VAE(latent_dim=3, hidden_dims=(16,), epochs=1, progress_bar=False).fit_transform(
        digits_small.X
    )
    assert Z.shape == (len(digits_small.X), 3)


def test_a_pandas_frame_is_accepted_quietly(digits_small):
    import warnings

    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(digits_small.X.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = GMVAE(**tiny_kwargs(epochs=1)).fit(frame)
        model.predict(frame)


def test_numpy_numbers_are_plain_parameters(digits_small, tmp_path):
    model = GMVAE(**tiny_kwargs(n_clusters=np.int64(3), lr=np.float32(1e-3), epochs=1))
    assert model.configuration()["n_clusters"] == 3
    model.fit(digits_small.X).save(tmp_path / "model.pt")
    assert GMVAE.load(tmp_path / "model.pt").n_clusters == 3


def test_a_run_folder_is_not_written_over_by_a_new_fit(digits_small, tmp_path):
    GMVAE(**tiny_kwargs(epochs=1)).fit(digits_small.X, run_dir=tmp_path)
    before = (tmp_path / "metrics.csv").read_bytes()
    with pytest.raises(FileExistsError, match="already holds a run .*ckpt_path"):
        GMVAE(**tiny_kwargs(epochs=1, seed=1)).fit(digits_small.X, run_dir=tmp_path)
    assert (tmp_path / "metrics.csv").read_bytes() == before


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    from pyro_gmvae import files

    files.write_text(tmp_path / "a.txt", "x")
    plain = tmp_path / "b.txt"
    plain.write_text("x")
    assert os.stat(tmp_path / "a.txt").st_mode == os.stat(plain).st_mode


def test_a_strategy_instance_brings_its_own_temperature():
    from pyro_gmvae.components import Relaxed

    with pytest.raises(ValueError, match="set the schedule on the strategy"):
        GMVAE(discrete=Relaxed(temperature=2.0), temperature=0.7)
