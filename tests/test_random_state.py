"""No hidden global state: a fit depends on its configuration and seed alone, scoring leaves the
caller's random state alone, and a resumed fit (every mode) continues exactly."""

import numpy as np
import pyro
import pytest
import torch
from conftest import tiny_kwargs

from pyro_gmvae import GMVAE


@pytest.fixture(scope="module")
def fitted(digits_small):
    return GMVAE(**tiny_kwargs()).fit(digits_small.X)


def test_the_monitor_does_not_change_the_fitted_model(digits_small):
    """Whatever it watches, or without it (monitor_size=0: the log keeps the loss alone)."""
    X = digits_small.X
    small = GMVAE(**tiny_kwargs(monitor_size=20)).fit(X)
    every = GMVAE(**tiny_kwargs(monitor_size=None)).fit(X)
    none = GMVAE(**tiny_kwargs(monitor_size=0)).fit(X, digits_small.y)
    for a, b, c in zip(*(m.module_.parameters() for m in (small, every, none)), strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert "train_elbo" in every.history_[-1] and "acc" not in none.history_[-1]
    assert none.history_[-1]["loss"] == every.history_[-1]["loss"]
    with pytest.raises(ValueError, match="monitor_size must be at least 0"):
        GMVAE(monitor_size=-1).fit(X)


def test_fitting_scoring_and_sampling_leave_the_callers_random_state_alone(fitted, digits_small):
    X = digits_small.X[:10]
    calls = [
        lambda: fitted.log_likelihood(X, n_samples=5, seed=3),
        lambda: fitted.score(X),
        lambda: fitted.sample(3, seed=1),
        lambda: GMVAE(**tiny_kwargs(epochs=1)).fit(X.repeat(10, 1)),
    ]
    for call in calls:
        torch.manual_seed(123)
        np.random.seed(123)
        expected = torch.rand(3), np.random.rand(3)
        torch.manual_seed(123)
        np.random.seed(123)
        call()
        assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(
            np.random.rand(3), expected[1]
        )


def test_seeded_scores_and_samples_repeat(fitted, digits_small):
    X = digits_small.X[:10]
    np.testing.assert_array_equal(fitted.score_samples(X), fitted.score_samples(X))
    np.testing.assert_array_equal(
        fitted.log_likelihood(X, 5, seed=3), fitted.log_likelihood(X, 5, seed=3)
    )
    assert not np.array_equal(fitted.log_likelihood(X, 5, seed=3), fitted.log_likelihood(X, 5, 4))
    np.testing.assert_array_equal(fitted.sample(4, seed=2)[0], fitted.sample(4, seed=2)[0])


def test_fit_leaves_pyros_param_store_alone(digits_small):
    pyro.clear_param_store()
    pyro.param("users_own", torch.tensor(1.5))
    GMVAE(**tiny_kwargs(discrete="score-function", epochs=1)).fit(digits_small.X)
    assert list(pyro.get_param_store().keys()) == ["users_own"]
    assert pyro.param("users_own").item() == 1.5


@pytest.mark.parametrize("discrete", ["score-function", "relaxed", "enumerate"])
def test_a_resumed_fit_equals_an_uninterrupted_one(
    discrete, digits_small, tmp_path, trained_epochs
):
    X = digits_small.X[:230]  # the last batch is smaller: batch sizes may differ
    kw = dict(discrete=discrete)
    straight = GMVAE(**tiny_kwargs(epochs=3, **kw)).fit(X)
    GMVAE(**tiny_kwargs(epochs=2, **kw)).fit(X, run_dir=tmp_path)
    resumed = GMVAE(**tiny_kwargs(epochs=3, **kw))
    trained_epochs.clear()
    resumed.fit(X, run_dir=tmp_path, ckpt_path=tmp_path / "checkpoints/last.ckpt")
    assert trained_epochs == [3]  # only the missing epoch ran: a resume, not a restart
    for (name, a), b in zip(
        straight.module_.state_dict().items(), resumed.module_.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)
    if discrete == "score-function":  # the baseline is model state, checkpointed with it
        baseline = resumed.module_.discrete.baseline
        assert int(resumed.module_.discrete.baseline_updates) == 3 * 4 and baseline < 0


def test_checkpoints_keep_every_random_state(digits_small, tmp_path):
    GMVAE(**tiny_kwargs(epochs=1)).fit(digits_small.X, run_dir=tmp_path)
    rng = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["pyro_gmvae"]["rng"]
    assert {"torch", "numpy", "random"} <= set(rng)
    assert ("cuda" in rng) == torch.cuda.is_available()
