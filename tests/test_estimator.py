"""The scikit-learn-style API: shapes, persistence, reproducibility, resume and bad input."""

import numpy as np
import pytest
import torch
from conftest import tiny_kwargs

from pyro_gmvae import GMVAE, ClusterCollapseWarning, NotFittedError, load_digits
from pyro_gmvae.components import FixedMixturePrior


@pytest.fixture(scope="module")
def fitted(digits_small):
    return GMVAE(**tiny_kwargs()).fit(digits_small.X, digits_small.y)


def test_outputs_have_the_documented_shapes(fitted, digits_small):
    X = digits_small.X
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert (fitted.predict(X) == proba.argmax(1)).all()
    assert fitted.transform(X).shape == (len(X), 4)
    rec = fitted.reconstruct(X[:5])
    assert rec.shape == (5, 64) and rec.min() >= 0 and rec.max() <= 1
    samples, clusters = fitted.sample(7, seed=0)
    assert samples.shape == (7, 64) and clusters.shape == (7,)
    only_two, clusters = fitted.sample(4, cluster=2)
    assert (clusters == 2).all()
    assert np.isfinite(fitted.score(X)) and fitted.score(X) < 0


def test_history_logs_every_term_and_score(fitted):
    assert [h["epoch"] for h in fitted.history_] == [1, 2]
    for key in ("loss", "train_reconstruction", "train_kl_z", "train_kl_y", "acc", "nmi", "ari"):
        assert np.isfinite(fitted.history_[-1][key]), key


def test_fit_reduces_the_loss(digits_small):
    model = GMVAE(**tiny_kwargs(epochs=5)).fit(digits_small.X)
    losses = [h["loss"] for h in model.history_]
    assert losses[-1] < losses[0]


def test_same_seed_same_numbers(digits_small):
    a = GMVAE(**tiny_kwargs(discrete="relaxed")).fit(digits_small.X)
    b = GMVAE(**tiny_kwargs(discrete="relaxed")).fit(digits_small.X)
    c = GMVAE(**tiny_kwargs(discrete="relaxed", seed=1)).fit(digits_small.X)
    np.testing.assert_array_equal(a.predict_proba(digits_small.X), b.predict_proba(digits_small.X))
    assert a.history_ == b.history_
    assert not np.allclose(a.predict_proba(digits_small.X), c.predict_proba(digits_small.X))


def test_relaxed_fit_anneals_the_temperature(digits_small):
    model = GMVAE(**tiny_kwargs(discrete="straight-through", epochs=3, decay_rate=0.1))
    model.fit(digits_small.X)
    assert float(model.module_.discrete.temperature) == pytest.approx(np.exp(-0.3))
    assert model.history_[-1]["temperature"] == pytest.approx(np.exp(-0.3))


def test_save_load_predicts_identically(fitted, digits_small, tmp_path):
    path = fitted.save(tmp_path / "model.pt")
    loaded = GMVAE.load(path)
    np.testing.assert_array_equal(loaded.predict(digits_small.X), fitted.predict(digits_small.X))
    np.testing.assert_allclose(loaded.transform(digits_small.X), fitted.transform(digits_small.X))
    assert loaded.get_params() == fitted.get_params()
    with pytest.raises(FileExistsError, match="overwrite"):
        fitted.save(path)
    fitted.save(path, overwrite=True)


def test_load_rejects_foreign_and_mismatched_files(fitted, tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="not a pyro-gmvae model file"):
        GMVAE.load(other)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a pyro-gmvae model file"):
        GMVAE.load(text)
    path = fitted.save(tmp_path / "model.pt")
    with pytest.raises(TypeError, match="not n_clusters; change other settings with set_params"):
        GMVAE.load(path, n_clusters=4)
    saved = torch.load(path, weights_only=True)
    saved["model"] = "ARMixture"
    torch.save(saved, tmp_path / "ar.pt")
    with pytest.raises(ValueError, match="holds a ARMixture"):
        GMVAE.load(tmp_path / "ar.pt")
    saved["model"], saved["version"] = "GMVAE", 1
    torch.save(saved, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="format 1; this version of pyro-gmvae reads format 2"):
        GMVAE.load(tmp_path / "old.pt")


def test_resume_continues_the_same_run(digits_small, tmp_path, trained_epochs):
    X = digits_small.X
    straight = GMVAE(**tiny_kwargs(epochs=4, discrete="relaxed")).fit(X, run_dir=tmp_path / "a")
    GMVAE(**tiny_kwargs(epochs=2, discrete="relaxed")).fit(X, run_dir=tmp_path / "b")
    # as if interrupted after epoch 3's metrics were written but before its checkpoint was
    metrics = tmp_path / "b/metrics.csv"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([*lines, "3" + lines[-1][lines[-1].index(",") :], ""]))
    resumed = GMVAE(**tiny_kwargs(epochs=4, discrete="relaxed"))
    trained_epochs.clear()
    resumed.fit(X, run_dir=tmp_path / "b", ckpt_path=tmp_path / "b/checkpoints/last.ckpt")
    assert trained_epochs == [3, 4]
    np.testing.assert_allclose(resumed.predict_proba(X), straight.predict_proba(X), atol=1e-6)
    assert float(resumed.module_.discrete.temperature) == pytest.approx(
        float(straight.module_.discrete.temperature)
    )
    epochs = [line.split(",") for line in (tmp_path / "b/metrics.csv").read_text().splitlines()]
    column = epochs[0].index("epoch")
    assert [int(row[column]) for row in epochs[1:]] == [1, 2, 3, 4]
    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3, 4]
    assert resumed.history_[-1]["loss"] == pytest.approx(straight.history_[-1]["loss"])


def test_resume_from_another_configuration_is_refused(digits_small, tmp_path):
    GMVAE(**tiny_kwargs(epochs=1)).fit(digits_small.X, run_dir=tmp_path)
    other = GMVAE(**tiny_kwargs(epochs=2, n_clusters=4))
    with pytest.raises(ValueError, match=r"other settings: n_clusters: 3 -> 4$"):
        other.fit(digits_small.X, ckpt_path=tmp_path / "checkpoints/last.ckpt")


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.full((10, 64), np.nan), ValueError, "NaN"),
        (np.ones((10, 64)) * np.inf, ValueError, "NaN or infinite"),
        (np.ones(64), ValueError, "shape"),
        (np.ones((2, 3, 4, 5, 6)), ValueError, "shape"),
        (np.ones((10, 64)) * 2.0, ValueError, r"\[0, 1\]"),
        (-np.ones((10, 64)), ValueError, r"\[0, 1\]"),
        (np.array([["a"] * 64] * 10), TypeError, "numeric"),
        (np.zeros((0, 64)), ValueError, "no samples"),
    ],
)
def test_bad_data_raises_a_clear_error(bad, error, match):
    with pytest.raises(error, match=match):
        GMVAE(**tiny_kwargs()).fit(bad)


def test_bad_arguments_raise_clear_errors(fitted, digits_small):
    with pytest.raises(ValueError, match="at least 2"):
        GMVAE(n_clusters=1)
    with pytest.raises(ValueError, match="larger than the number of samples"):
        GMVAE(**tiny_kwargs(n_clusters=20)).fit(digits_small.X[:10])
    with pytest.raises(TypeError, match="integer"):
        GMVAE(n_clusters=2.5)
    with pytest.raises(ValueError, match="unknown discrete mode"):
        GMVAE(discrete="gibbs")
    with pytest.raises(ValueError, match="unknown likelihood"):
        GMVAE(likelihood="poisson")
    with pytest.raises(ValueError, match="fitted on 64 features"):
        fitted.predict(np.zeros((3, 10)))
    with pytest.raises(ValueError, match="cluster must be in"):
        fitted.sample(2, cluster=5)
    with pytest.raises(ValueError, match="labels for"):
        GMVAE(**tiny_kwargs()).fit(digits_small.X, digits_small.y[:5])
    with pytest.raises(NotFittedError):
        GMVAE().predict(digits_small.X)
    fixed = FixedMixturePrior(torch.zeros(3, 4), torch.ones(3, 4))
    with pytest.raises(ValueError, match="set_components.*init='random'"):
        GMVAE(**tiny_kwargs(prior=fixed, init="pretrain"))
    with pytest.raises(ValueError, match="init must be 'auto', 'pretrain' or 'random'"):
        GMVAE(init="kmeans")
    with pytest.raises(ValueError, match="hidden_dims"):
        GMVAE(hidden_dims=(0,))
    for devices in (2, "auto", [0, 1]):  # several devices need strategy='ddp'
        with pytest.raises(ValueError, match="data-parallel with strategy='ddp'"):
            GMVAE(devices=devices)
    with pytest.raises(ValueError, match="'ddp_spawn'.* not supported"):
        GMVAE(devices=2, strategy="ddp_spawn")
    unchecked = GMVAE(**tiny_kwargs()).set_params(n_clusters=1)  # set_params checks at fit
    with pytest.raises(ValueError, match="at least 2"):
        unchecked.fit(digits_small.X)


def test_images_are_flattened_and_shape_remembered(digits_small):
    images = digits_small.X.reshape(-1, 1, 8, 8)
    model = GMVAE(**tiny_kwargs(epochs=1)).fit(images)
    assert model.image_shape_ == (8, 8) and model.n_features_in_ == 64
    assert model.predict(images.numpy()).shape == (len(images),)


def test_collapse_is_warned():
    """Identical images give q(y|x) nothing to tell apart: every point lands in one cluster."""
    same = np.tile(load_digits().X[:1].numpy(), (100, 1))
    with pytest.warns(ClusterCollapseWarning, match="cluster collapse: .* to 100.0%"):
        GMVAE(**tiny_kwargs()).fit(same)


def test_two_clear_clusters_are_not_warned_about():
    import warnings

    digits = load_digits()
    zeros_and_ones = digits.X[np.isin(digits.y, [0, 1])][:200]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClusterCollapseWarning)
        kw = tiny_kwargs(n_clusters=2, epochs=1, init="pretrain", pretrain_epochs=15)
        model = GMVAE(**kw).fit(zeros_and_ones)
    assert model.cluster_weights_.min() > 0.3


def test_sample_draws_clusters_from_the_prior_weights(digits_small):
    prior = FixedMixturePrior(torch.zeros(2, 4), torch.ones(2, 4), weights=[0.9, 0.1])
    model = GMVAE(**tiny_kwargs(n_clusters=2, prior=prior, epochs=1))
    with pytest.warns(ClusterCollapseWarning):
        model.fit(digits_small.X)
    _, clusters = model.sample(4000, seed=0)
    assert abs((clusters == 0).mean() - 0.9) < 0.02


def test_transform_and_reconstruct_compute_what_they_say(fitted, digits_small):
    """By hand: transform = sum_y q(y|x) point(x, y); reconstruct decodes point(x, y*) with
    y* the most probable cluster."""
    X = digits_small.X[:30]
    m = fitted.module_
    with torch.no_grad():
        q = torch.softmax(m.y_encoder(X), -1)
        points = torch.stack(
            [m.z_encoder.point(X, torch.eye(3)[k].expand(30, 3)) for k in range(3)], 1
        )
        expected_z = (q[..., None] * points).sum(1)
        best = points[torch.arange(30), q.argmax(-1)]
        expected_x = torch.sigmoid(m.decoder(best))
    # the check has teeth: q(y|x) is far from uniform and the clusters' points differ
    assert (q.max(1).values - q.min(1).values).mean() > 0.2
    assert (points[:, 0] - points[:, 1]).abs().mean() > 0.05
    np.testing.assert_allclose(fitted.transform(X), expected_z.numpy(), atol=1e-5)
    np.testing.assert_allclose(fitted.reconstruct(X), expected_x.numpy(), atol=1e-5)


def test_auto_discrete_enumerates_small_data_and_relaxes_large_data(digits_small, tmp_path,
                                                                     monkeypatch):  # fmt: skip
    """discrete="auto" (the default) enumerates y below RELAXED_FROM training samples and relaxes
    it from there; the mode chosen is saved, and loading rebuilds it."""
    from pyro_gmvae.components import Enumerate, Relaxed
    from pyro_gmvae.estimators import gmvae

    assert GMVAE().discrete == "auto"
    assert gmvae.resolve_discrete("auto", gmvae.RELAXED_FROM - 1) == "enumerate"
    assert gmvae.resolve_discrete("auto", gmvae.RELAXED_FROM) == "relaxed"
    assert gmvae.resolve_discrete("straight-through", 10) == "straight-through"
    small = GMVAE(**tiny_kwargs(discrete="auto", epochs=1)).fit(digits_small.X)
    assert small.discrete_ == "enumerate" and isinstance(small.module_.discrete, Enumerate)
    monkeypatch.setattr(gmvae, "RELAXED_FROM", len(digits_small.X))
    large = GMVAE(**tiny_kwargs(discrete="auto", epochs=1, decay_rate=0.5)).fit(digits_small.X)
    assert large.discrete_ == "relaxed" and isinstance(large.module_.discrete, Relaxed)
    assert large.module_.discrete.temperature == pytest.approx(np.exp(-0.5))  # its schedule
    relaxed = GMVAE(**tiny_kwargs(discrete="relaxed", epochs=1, decay_rate=0.5))
    np.testing.assert_array_equal(relaxed.fit(digits_small.X).predict_proba(digits_small.X),
                                  large.predict_proba(digits_small.X))  # the same fit  # fmt: skip
    monkeypatch.setattr(gmvae, "RELAXED_FROM", 10**9)  # loading does not choose again
    loaded = GMVAE.load(large.save(tmp_path / "large.pt"))
    assert loaded.discrete_ == "relaxed" and isinstance(loaded.module_.discrete, Relaxed)
    np.testing.assert_allclose(loaded.predict_proba(digits_small.X),
                               large.predict_proba(digits_small.X), atol=1e-6)  # fmt: skip
    # a refit that fails keeps the mode of the module it keeps: the model still saves and loads
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text("not ours")
    with pytest.raises(FileExistsError):
        large.fit(digits_small.X, run_dir=tmp_path / "run")
    assert large.discrete_ == "relaxed"
    GMVAE.load(large.save(tmp_path / "large.pt", overwrite=True))


def test_auto_discrete_is_recorded_in_checkpoints_and_read_from_older_files(
    digits_small, tmp_path, monkeypatch
):
    """The checkpoint's configuration holds the mode "auto" chose, so a resume on data that would
    choose another is refused by name (a named mode adds nothing: older checkpoints resume);
    a file saved before discrete_ existed loads with the mode its parameter names."""
    import torch as th

    from pyro_gmvae.estimators import gmvae

    def config(run):
        return th.load(tmp_path / run / "checkpoints" / "last.ckpt")["pyro_gmvae"]["config"]

    model = GMVAE(**tiny_kwargs(epochs=1)).fit(digits_small.X, run_dir=tmp_path / "run")
    assert config("run")["discrete_"] == "enumerate"
    named = GMVAE(**tiny_kwargs(epochs=1, discrete="enumerate"))
    named.fit(digits_small.X, run_dir=tmp_path / "named")
    assert "discrete_" not in config("named")
    with monkeypatch.context() as patch:
        patch.setattr(gmvae, "RELAXED_FROM", len(digits_small.X))
        resumed = GMVAE(**tiny_kwargs(epochs=2))
        with pytest.raises(ValueError, match="discrete_"):
            resumed.fit(digits_small.X, run_dir=tmp_path / "run",
                        ckpt_path=tmp_path / "run" / "checkpoints" / "last.ckpt")  # fmt: skip
    path = model.save(tmp_path / "model.pt")
    payload = th.load(path, weights_only=True)
    del payload["fitted"]["discrete_"]  # as written before "auto"
    payload["params"]["discrete"] = "enumerate"
    th.save(payload, tmp_path / "old.pt")
    old = GMVAE.load(tmp_path / "old.pt")
    assert old.discrete_ == "enumerate" and old.discrete == "enumerate"
    assert gmvae.resolve_discrete("auto", 10) == "enumerate"
