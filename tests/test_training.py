"""The training engine: Pyro's checks on the first step only, a diverged loss stops the fit
with a clear error, Adam's fused kernel."""

import pytest
import torch
from conftest import tiny_kwargs
from pyro.infer.util import is_validation_enabled

from pyro_gmvae import GMVAE
from pyro_gmvae.training import TrainingPlan, make_loader, train


def fit(loss_fn, module, epochs=2):
    plan = TrainingPlan(module, loss_fn)
    X = torch.linspace(0, 1, 40).unsqueeze(1)
    loader = make_loader(X, batch_size=10, seed=0)
    return plan, train(plan, loader, epochs, callbacks=[], progress_bar=False)


def test_pyro_validation_runs_on_the_first_step_only():
    module, seen = torch.nn.Linear(1, 1), []

    def loss_fn(x):
        seen.append(is_validation_enabled())
        return module(x).pow(2).mean()

    fit(loss_fn, module)
    assert seen == [True] + [False] * 7
    assert is_validation_enabled()  # the user's setting is back after the fit


def test_a_diverged_loss_stops_the_fit_with_a_clear_error():
    module = torch.nn.Linear(1, 1)
    with pytest.raises(FloatingPointError, match="training loss is nan after epoch 1"):
        fit(lambda x: module(x).mean() * float("nan"), module)


def test_an_estimator_whose_fit_diverges_says_so_before_its_monitor_runs(digits_small):
    """The check runs before the per-epoch monitor, which would otherwise meet the NaN
    parameters first (with Pyro's checks on) and fail with an unrelated message."""
    model = GMVAE(**tiny_kwargs(init="random", lr=1e12, epochs=3))
    with pytest.raises(FloatingPointError, match="diverged"):
        model.fit(digits_small.X[:200], digits_small.y[:200])


def test_adam_uses_the_fused_kernel_on_the_cpu():
    plan = TrainingPlan(torch.nn.Linear(1, 1), lambda x: x)
    assert plan.configure_optimizers().defaults["fused"] is True


def test_the_monitor_takes_the_elbo_terms_on_its_first_points_and_clusters_on_all():
    from pyro_gmvae.models import GMVAEModule
    from pyro_gmvae.training import local_seed, monitor_terms

    torch.manual_seed(0)
    module, X = GMVAEModule(6, n_clusters=3, latent_dim=2, hidden_dims=(8,)), torch.rand(30, 6)
    with local_seed(1):
        part = monitor_terms(module, X, batch_size=7, terms_size=12)
    with local_seed(1):
        first = monitor_terms(module, X[:12], batch_size=7, terms_size=None)
    assert part["terms"] == pytest.approx(first["terms"])
    assert part["terms"]["train_elbo"] == pytest.approx(
        -sum(v for k, v in part["terms"].items() if k != "train_elbo")
    )
    expected = module.cluster_probs(X).argmax(-1).numpy()
    assert part["labels"].shape == (30,) and (part["labels"] == expected).all()


def test_the_start_figures_are_the_monitor_at_the_first_epochs_weights():
    """A loss without gradient leaves Adam's weights where they were: the monitor's figures
    before the first epoch (``start``) then equal those after it, on the same points, with the
    same noise."""
    from pyro_gmvae.models import GMVAEModule
    from pyro_gmvae.training import EpochMetricsCallback, monitor_terms

    torch.manual_seed(0)
    module, X = GMVAEModule(6, n_clusters=3, latent_dim=2, hidden_dims=(8,)), torch.rand(40, 6)
    labels = torch.arange(40).numpy() % 3
    monitor = EpochMetricsCallback(X, labels, monitor_terms, seed=3)
    plan = TrainingPlan(module, lambda x: 0.0 * sum(p.sum() for p in module.parameters()))
    history = train(plan, make_loader(X, 10, 0), 1, callbacks=[monitor], progress_bar=False)
    assert set(monitor.start) == {"train_elbo", "train_reconstruction", "train_kl_z", "train_kl_y",
                                  "acc", "nmi", "ari"}  # fmt: skip
    assert monitor.start == pytest.approx({k: history[0][k] for k in monitor.start}, rel=1e-6)


def test_an_estimator_keeps_its_start_figures_apart_from_its_history(digits_small, tmp_path):
    """``start_metrics_``: the figures before the first epoch, the same whatever number of
    epochs follows (so not taken at an epoch's end), not the first epoch's; the history still
    one row per epoch; None without a monitor and for a resumed fit, whose start is not the
    model's; read back from a saved model, and None from a file saved before it existed."""
    X, y = digits_small.X, digits_small.y
    settings = dict(init="pretrain", pretrain_epochs=2)
    model = GMVAE(**tiny_kwargs(**settings, epochs=2))
    model.fit(X, y, run_dir=tmp_path)
    assert [row["epoch"] for row in model.history_] == [1, 2]
    assert set(model.start_metrics_) == set(model.history_[0]) - {"epoch", "loss", "temperature"}
    assert model.start_metrics_ != pytest.approx(
        {k: model.history_[0][k] for k in model.start_metrics_}
    )
    shorter = GMVAE(**tiny_kwargs(**settings, epochs=1)).fit(X, y)
    assert shorter.start_metrics_ == model.start_metrics_
    resumed = GMVAE(**tiny_kwargs(**settings, epochs=3))
    resumed.fit(X, y, run_dir=tmp_path, ckpt_path=tmp_path / "checkpoints" / "last.ckpt")
    assert resumed.start_metrics_ is None
    assert GMVAE(**tiny_kwargs(monitor_size=0)).fit(X).start_metrics_ is None

    model.save(tmp_path / "model.pt")
    assert GMVAE.load(tmp_path / "model.pt").start_metrics_ == model.start_metrics_
    payload = torch.load(tmp_path / "model.pt", weights_only=False)
    del payload["fitted"]["start_metrics_"]
    torch.save(payload, tmp_path / "older.pt")
    assert GMVAE.load(tmp_path / "older.pt").start_metrics_ is None
