"""User-facing estimators in the style of scikit-learn's ``GaussianMixture``: ``GMVAE``, and the
``VAE`` and ``AE`` baselines, all sharing fitting, persistence and scoring."""

from __future__ import annotations

import copy
import inspect
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pyro
import torch

from .components import make_discrete, make_likelihood
from .components.guides import guide_name
from .data import as_data_tensor
from .models import AEModule, GMVAEModule, VAEModule, importance_log_likelihood
from .pretrain import pretrain, pretrain_mixture_prior
from .training import (
    DiscreteScheduleCallback,
    EpochMetricsCallback,
    HistoryCallback,
    TrainingPlan,
    make_loader,
    svi_loss,
    train,
)

FORMAT_VERSION = 1
# Constructor arguments that change how a fit runs, not what it computes.
RUNTIME_ARGS = ("epochs", "accelerator", "devices", "strategy", "progress_bar", "monitor_size")
COMMON_DOC = """
    latent_dim : size of z.
    hidden_dims : hidden layer sizes of every encoder and (reversed) of the decoder.
    likelihood : ``"bernoulli"``, ``"continuous-bernoulli"``, ``"gaussian"`` or a
        ``Likelihood`` instance.
    epochs, batch_size, lr : optimisation (Adam).
    binarize : draw x ~ Bernoulli(pixels) afresh for every batch (dynamic binarization).
    seed : seeds torch, Pyro, NumPy and the data shuffling; same seed, same numbers.
    accelerator, devices, strategy : passed to ``lightning.Trainer`` (e.g. ``"gpu"``, ``4``,
        ``"ddp"`` for data-parallel training on several GPUs).
    progress_bar : show Lightning's progress bar while fitting.
    monitor_size : the per-epoch log (ELBO terms, and ACC/NMI/ARI when labels are given) is
        computed on a fixed random subset of this many training points (all when None).

    Fitted attributes end in ``_``: ``module_`` (the Pyro model/guide), ``history_`` (one dict
    of logged metrics per epoch), ``n_features_in_``, ``image_shape_``.
"""


class ClusterCollapseWarning(UserWarning):
    """A fit left a cluster almost empty or put almost all the data in one cluster."""


class NotFittedError(RuntimeError):
    """A method that needs a fitted model was called before ``fit`` or ``load``."""


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be positive, got {value}")


def _check_init(init: str, pretrain_epochs: Any, prior: Any, placeable: bool, needs: str) -> None:
    """Validate ``init`` and ``pretrain_epochs``; pre-training must be able to place ``prior``."""
    if init not in ("pretrain", "random"):
        raise ValueError(f"init must be 'pretrain' or 'random', got {init!r}")
    _check_positive_int("pretrain_epochs", pretrain_epochs)
    if init == "pretrain" and not placeable:
        name = type(prior).__name__ if prior is not None else "the standard normal"
        raise ValueError(
            f"init='pretrain' places {needs} at clusters of pre-trained codes; {name} has none: "
            "pass init='random'"
        )


class LatentEstimator:
    """Shared machinery: input checks, fitting through the training engine, scoring, save/load.

    Subclasses define ``_build(x_dim)`` (the Pyro module), may set ``_pretrain`` (run before SVI
    when ``init="pretrain"``) and may extend ``_after_fit``.
    """

    _pretrain: Any = None  # a pyro_gmvae.pretrain function, in models that pre-train

    def __init__(
        self,
        latent_dim: int = 64,
        hidden_dims: Sequence[int] = (512, 512),
        likelihood: Any = "bernoulli",
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        binarize: bool = False,
        seed: int = 0,
        accelerator: str = "auto",
        devices: Any = "auto",
        strategy: Any = "auto",
        progress_bar: bool = True,
        monitor_size: int | None = 2000,
    ) -> None:
        for name, value in (
            ("latent_dim", latent_dim),
            ("epochs", epochs),
            ("batch_size", batch_size),
        ):
            _check_positive_int(name, value)
        if not hidden_dims or any(int(h) < 1 for h in hidden_dims):
            raise ValueError(f"hidden_dims must be positive sizes, got {hidden_dims!r}")
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.latent_dim, self.hidden_dims = int(latent_dim), tuple(int(h) for h in hidden_dims)
        self.likelihood = likelihood
        self.epochs, self.batch_size, self.lr = int(epochs), int(batch_size), float(lr)
        self.binarize, self.seed = bool(binarize), int(seed)
        self.accelerator, self.devices, self.strategy = accelerator, devices, strategy
        self.progress_bar, self.monitor_size = progress_bar, monitor_size
        make_likelihood(likelihood)  # fail now, not after loading data

    # --------------------------------------------------------------------------- building
    def _build(self, x_dim: int) -> torch.nn.Module:
        raise NotImplementedError

    def _init_names(self) -> list[str]:
        return [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]

    def config(self) -> dict[str, Any]:
        """What defines the fitted model and its training (the constructor arguments, with
        components by name, less those that only change how the fit runs)."""
        out: dict[str, Any] = {"model": type(self).__name__}
        for name in self._init_names():
            if name in RUNTIME_ARGS:
                continue
            value = getattr(self, name)
            if isinstance(value, torch.nn.Module):  # a component: record what it is
                describe = getattr(value, "describe", None)
                value = describe() if describe else type(value).__name__
            elif callable(value):  # a component factory, such as a z-guide class
                value = guide_name(value)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit or load")

    def _data(self, X, fitting: bool = False) -> torch.Tensor:
        X, image_shape = as_data_tensor(X, None if fitting else self.n_features_in_)
        if fitting:
            self.n_features_in_, self.image_shape_ = X.shape[1], image_shape
        make_likelihood(self.likelihood).validate(X)
        return X

    # --------------------------------------------------------------------------- fitting
    def fit(
        self, X, y=None, *, run_dir: str | Path | None = None, ckpt_path: str | Path | None = None
    ):
        """Fit the model to ``X`` (labels ``y``, if given, are only used to log ACC/NMI/ARI).

        With ``run_dir`` the metrics of every epoch go to ``run_dir/metrics.csv`` and a
        checkpoint to ``run_dir/checkpoints/last.ckpt``; ``ckpt_path`` resumes from such a
        checkpoint (it must come from the same configuration).
        """
        X = self._data(X, fitting=True)
        labels = None
        if y is not None:
            labels = np.asarray(y).ravel()
            if len(labels) != len(X):
                raise ValueError(f"{len(labels)} labels for {len(X)} samples")
        if ckpt_path is not None and not Path(ckpt_path).exists():
            raise FileNotFoundError(f"no checkpoint at {ckpt_path}")
        L.seed_everything(self.seed, verbose=False)
        pyro.set_rng_seed(self.seed)
        pyro.clear_param_store()
        module = self._build(X.shape[1])
        devices = {
            "accelerator": self.accelerator,
            "devices": self.devices,
            "strategy": self.strategy,
        }
        start = time.perf_counter()
        if ckpt_path is None:
            self._before_training(module, X, devices)
        self.pretrain_seconds_ = time.perf_counter() - start
        plan = TrainingPlan(
            module,
            svi_loss(module, module.elbo()),
            lr=self.lr,
            binarize=self.binarize,
            config=self.config(),
        )
        monitor = torch.randperm(len(X), generator=torch.Generator().manual_seed(self.seed))
        monitor = monitor[: self.monitor_size].sort().values
        history = HistoryCallback()
        callbacks = [
            DiscreteScheduleCallback(),
            EpochMetricsCallback(
                X[monitor], None if labels is None else labels[monitor], _evaluate_for_log
            ),
            history,  # last, so it records what the others logged
        ]
        train(
            plan,
            make_loader(X, self.batch_size, self.seed, drop_last=_needs_fixed_batch(module)),
            self.epochs,
            callbacks=callbacks,
            run_dir=run_dir,
            ckpt_path=ckpt_path,
            progress_bar=self.progress_bar,
            **devices,
        )
        self.module_ = module.cpu().eval()
        self.history_ = history.history
        self._after_fit(X)
        return self

    def _before_training(self, module: torch.nn.Module, X: torch.Tensor, devices: dict) -> None:
        """Pre-training before SVI when ``init="pretrain"`` (not when resuming a checkpoint)."""
        if self.init == "pretrain":
            self._pretrain(
                module,
                X,
                seed=self.seed,
                batch_size=self.batch_size,
                lr=1e-3,
                autoencoder_epochs=self.pretrain_epochs,
                progress_bar=self.progress_bar,
                **devices,
            )

    def _after_fit(self, X: torch.Tensor) -> None:
        """Hook for fitted attributes computed from the data."""

    # --------------------------------------------------------------------------- inference
    @torch.no_grad()
    def _batched(self, fn, X: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        return torch.cat([fn(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])

    def transform(self, X) -> np.ndarray:
        """Latent means E_q[z | x], shape (N, latent_dim)."""
        self._check_fitted()
        return self._batched(self.module_.latent_mean, self._data(X)).numpy()

    def reconstruct(self, X) -> np.ndarray:
        """Reconstructions: the mean of p(x | z) at the posterior mean of z."""
        self._check_fitted()
        return self._batched(self.module_.reconstruct, self._data(X)).numpy()

    def score_samples(self, X) -> np.ndarray:
        """The ELBO of each sample in nats (discrete y summed out exactly, KL(z) analytic where
        torch has it)."""
        self._check_fitted()

        def elbo(x):
            return -sum(self.module_.elbo_terms(x).values())

        return self._batched(elbo, self._data(X)).numpy()

    def score(self, X, y=None) -> float:
        """The mean ELBO per sample (higher is better)."""
        return float(self.score_samples(X).mean())

    def log_likelihood(self, X, n_samples: int = 1000, seed: int | None = 0) -> np.ndarray:
        """Importance-weighted estimate of log p(x) per sample with ``n_samples`` draws from the
        guide (y summed out where the model has one): the common yardstick across priors."""
        self._check_fitted()
        _check_positive_int("n_samples", n_samples)
        if seed is not None:
            pyro.set_rng_seed(seed)
        X = self._data(X)
        return self._batched(
            lambda x: importance_log_likelihood(self.module_, x, n_samples),
            X,
            batch_size=max(1, 20000 // n_samples),
        ).numpy()

    def _prior_draws(self, n_samples: int, seed: int | None) -> None:
        self._check_fitted()
        if not isinstance(n_samples, int | np.integer) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        if seed is not None:
            pyro.set_rng_seed(seed)

    # --------------------------------------------------------------------------- persistence
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Save the fitted model (configuration, weights, fitted attributes) to ``path``."""
        self._check_fitted()
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        fitted = {
            k: v.tolist() if isinstance(v, np.ndarray) else v
            for k, v in vars(self).items()
            if k.endswith("_") and not k.startswith("_") and k != "module_"
        }
        torch.save(
            {
                "format": "pyro-gmvae",
                "version": FORMAT_VERSION,
                "config": self.config(),
                "init": self._init_args(),
                "state_dict": self.module_.state_dict(),
                "fitted": fitted,
            },
            path,
        )
        return path

    def _init_args(self) -> dict[str, Any]:
        """The constructor arguments a file can hold as plain values; components given as
        objects (a prior module, a guide factory) are left out and passed again to load()."""
        plain = (str, int, float, bool, tuple, list, type(None))
        args = {n: getattr(self, n) for n in self._init_names() if n not in RUNTIME_ARGS}
        return {n: v for n, v in args.items() if isinstance(v, plain)}

    @classmethod
    def load(cls, path: str | Path, **overrides: Any):
        """Load a model written by :meth:`save`; ``overrides`` change constructor arguments
        (such as ``progress_bar``, or custom components) and must not change the
        configuration."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no saved model at {path}")
        try:
            saved = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # torch raises many kinds for a file that is not its own
            raise ValueError(f"{path} is not a pyro-gmvae model file ({err})") from err
        if not isinstance(saved, dict) or saved.get("format") != "pyro-gmvae":
            raise ValueError(f"{path} is not a pyro-gmvae model file")
        if saved["config"]["model"] != cls.__name__:
            raise ValueError(f"{path} holds a {saved['config']['model']}, not a {cls.__name__}")
        components = set(saved["config"]) - set(saved["init"]) - {"model"} - set(overrides)
        if components:
            described = ", ".join(f"{n}={saved['config'][n]!r}" for n in sorted(components))
            raise ValueError(
                f"{path} was saved with components given as objects ({described}); pass them "
                f"again: {cls.__name__}.load(path, {', '.join(sorted(components))}=...)"
            )
        est = cls(**{**saved["init"], **overrides})
        if est.config() != saved["config"]:
            raise ValueError(
                f"{path} was saved with another configuration: {saved['config']} != {est.config()}"
            )
        fitted = saved["fitted"]
        module = est._build(fitted["n_features_in_"])
        module.load_state_dict(saved["state_dict"])
        est.module_ = module.eval()
        for k, v in fitted.items():
            setattr(est, k, np.asarray(v) if isinstance(v, list) and k != "history_" else v)
        est.image_shape_ = tuple(fitted["image_shape_"])
        return est


class GMVAE(LatentEstimator):
    (
        """Gaussian-mixture VAE for clustering, fit by stochastic variational inference.

    Parameters
    ----------
    n_clusters : K, the number of mixture components (>= 2 and <= the number of samples).
    discrete : ``"enumerate"`` (exact sum over y), ``"relaxed"`` (Gumbel-softmax),
        ``"straight-through"`` (hard Gumbel-softmax), ``"score-function"`` (REINFORCE), or a
        ``DiscreteStrategy`` instance.
    prior : a prior on z conditioned on y (``LearnedMixturePrior`` when None; e.g.
        ``FixedMixturePrior(means, variances, weights)``).
    z_guide : ``"diagonal"``, ``"low-rank"``, ``"full"``, ``"flow"`` or a guide factory.
    temperature, min_temperature, decay_rate : Gumbel-softmax annealing for relaxed modes,
        ``max(temperature * exp(-decay_rate * epoch), min_temperature)``.
    init : ``"pretrain"`` (default) starts from an autoencoder + t-SNE + Gaussian-mixture
        clustering of the codes (see :mod:`pyro_gmvae.pretrain`); ``"random"`` starts from
        random weights, as the reference implementations do.
    pretrain_epochs : epochs of autoencoder pre-training when ``init="pretrain"`` (q(y|x) is
        then fitted to the mixture's responsibilities for a third as many epochs, at least 1).
    """
        + COMMON_DOC
        + """
    Also ``cluster_weights_`` (share of the data in each cluster) and ``pretrain_seconds_``.
    """
    )

    _pretrain = staticmethod(pretrain)
    has_clusters = True  # predict / predict_proba assign samples to the K clusters

    def __init__(
        self,
        n_clusters: int = 10,
        latent_dim: int = 64,
        hidden_dims: Sequence[int] = (512, 512),
        discrete: Any = "enumerate",
        prior: torch.nn.Module | None = None,
        z_guide: Any = "diagonal",
        temperature: float = 1.0,
        min_temperature: float = 0.5,
        decay_rate: float = 0.013862944,
        likelihood: Any = "bernoulli",
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        binarize: bool = False,
        init: str = "pretrain",
        pretrain_epochs: int = 15,
        seed: int = 0,
        accelerator: str = "auto",
        devices: Any = "auto",
        strategy: Any = "auto",
        progress_bar: bool = True,
        monitor_size: int | None = 2000,
    ) -> None:
        _check_positive_int("n_clusters", n_clusters)
        if n_clusters < 2:
            raise ValueError(f"n_clusters must be at least 2, got {n_clusters}")
        # a prior with y must be settable; one without y is refused when the model is built
        fixed = hasattr(prior, "y_logits") and not hasattr(prior, "set_components")
        needs = "each cluster's prior (set_components(means, variances))"
        _check_init(init, pretrain_epochs, prior, not fixed, needs)
        super().__init__(
            latent_dim,
            hidden_dims,
            likelihood,
            epochs,
            batch_size,
            lr,
            binarize,
            seed,
            accelerator,
            devices,
            strategy,
            progress_bar,
            monitor_size,
        )
        self.n_clusters, self.discrete = int(n_clusters), discrete
        self.prior, self.z_guide = prior, z_guide
        self.temperature, self.min_temperature = temperature, min_temperature
        self.decay_rate = decay_rate
        self.init, self.pretrain_epochs = init, pretrain_epochs
        self._make_discrete()  # fail now on a bad discrete mode

    def _make_discrete(self):
        if self.discrete in ("relaxed", "straight-through"):
            return make_discrete(
                self.discrete,
                temperature=self.temperature,
                min_temperature=self.min_temperature,
                decay_rate=self.decay_rate,
            )
        return make_discrete(self.discrete)

    def config(self) -> dict[str, Any]:
        out = super().config()
        out["discrete"] = self._make_discrete().describe()
        for name in ("temperature", "min_temperature", "decay_rate"):
            out.pop(name)  # part of the discrete strategy's description
        out["likelihood"] = make_likelihood(self.likelihood).name
        if self.init == "random":
            out["pretrain_epochs"] = 0
        return out

    def _build(self, x_dim: int) -> GMVAEModule:
        return GMVAEModule(
            x_dim,
            self.n_clusters,
            self.latent_dim,
            self.hidden_dims,
            likelihood=make_likelihood(self.likelihood),
            discrete=self._make_discrete(),
            prior=copy.deepcopy(self.prior),  # fits never share a prior's parameters
            z_guide=self.z_guide,
        )

    def _data(self, X, fitting: bool = False) -> torch.Tensor:
        X = super()._data(X, fitting)
        if fitting and self.n_clusters > X.shape[0]:
            raise ValueError(
                f"n_clusters={self.n_clusters} is larger than the number of samples ({X.shape[0]})"
            )
        return X

    def _after_fit(self, X: torch.Tensor) -> None:
        self.cluster_weights_ = np.bincount(self.predict(X), minlength=self.n_clusters) / len(X)
        self._warn_on_collapse()

    def _warn_on_collapse(self) -> None:
        w = self.cluster_weights_
        if w.max() > 0.9 or w.min() < 0.1 / self.n_clusters:
            warnings.warn(
                f"cluster collapse: cluster sizes range from {w.min():.1%} to {w.max():.1%} of "
                "the data; try another seed, more epochs or fewer clusters",
                ClusterCollapseWarning,
                stacklevel=3,
            )

    def predict_proba(self, X) -> np.ndarray:
        """q(y | x): the posterior probability of each cluster, shape (N, K), rows sum to 1."""
        self._check_fitted()
        return self._batched(self.module_.cluster_probs, self._data(X)).numpy()

    def predict(self, X) -> np.ndarray:
        """The most probable cluster of each sample under q(y | x)."""
        return self.predict_proba(X).argmax(1)

    @torch.no_grad()
    def sample(
        self, n_samples: int = 1, cluster: int | None = None, seed: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` from the model: y from p(y) (or fixed to ``cluster``),
        z ~ p(z | y), and the mean of p(x | z). Returns ``(X, clusters)`` like scikit-learn."""
        self._prior_draws(n_samples, seed)
        if cluster is not None and not 0 <= cluster < self.n_clusters:
            raise ValueError(f"cluster must be in [0, {self.n_clusters - 1}], got {cluster}")
        if cluster is None:
            clusters = torch.randint(self.n_clusters, (n_samples,))
        else:
            clusters = torch.full((n_samples,), int(cluster))
        return self.module_.generate(clusters).numpy(), clusters.numpy()


class VAE(LatentEstimator):
    (
        """Variational autoencoder: z ~ p(z) (standard normal unless ``prior`` is given),
    x | z ~ p(x | decoder(z)), guide q(z | x) diagonal normal.

    Parameters
    ----------
    prior : a prior module without a discrete y (``StandardNormalPrior(latent_dim)`` when None;
        e.g. ``MixturePrior(K, latent_dim)`` (VaDE) or ``VampPrior(P, x_dim, latent_dim)``).
        Fitting starts from the prior's values as given, drawn when it was made: seed torch
        before making it, or use ``catalogue.make_prior(..., seed=...)``.
    z_guide : ``"diagonal"``, ``"low-rank"``, ``"full"``, ``"flow"`` or a guide factory.
    init : ``"random"`` (default) or, for a mixture prior, ``"pretrain"``: VaDE's start, an
        autoencoder whose codes are clustered (t-SNE + Gaussian mixture) to place the prior's
        components (see :func:`pyro_gmvae.pretrain.pretrain_mixture_prior`).
    pretrain_epochs : epochs of autoencoder pre-training when ``init="pretrain"``.
    """
        + COMMON_DOC
    )

    module_class = VAEModule
    _pretrain = staticmethod(pretrain_mixture_prior)

    def __init__(
        self,
        latent_dim: int = 64,
        hidden_dims: Sequence[int] = (512, 512),
        likelihood: Any = "bernoulli",
        prior: torch.nn.Module | None = None,
        z_guide: Any = "diagonal",
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        binarize: bool = False,
        init: str = "random",
        pretrain_epochs: int = 15,
        seed: int = 0,
        accelerator: str = "auto",
        devices: Any = "auto",
        strategy: Any = "auto",
        progress_bar: bool = True,
        monitor_size: int | None = 2000,
    ) -> None:
        placeable = hasattr(prior, "n_components") and hasattr(prior, "set_components")
        needs = "a mixture prior's components (n_components, set_components; e.g. MixturePrior)"
        _check_init(init, pretrain_epochs, prior, placeable, needs)
        super().__init__(
            latent_dim,
            hidden_dims,
            likelihood,
            epochs,
            batch_size,
            lr,
            binarize,
            seed,
            accelerator,
            devices,
            strategy,
            progress_bar,
            monitor_size,
        )
        self.prior, self.z_guide = prior, z_guide
        self.init, self.pretrain_epochs = init, pretrain_epochs

    def config(self) -> dict[str, Any]:
        out = super().config()
        out["likelihood"] = make_likelihood(self.likelihood).name
        if self.init == "random":
            out["pretrain_epochs"] = 0
        return out

    def _data(self, X, fitting: bool = False) -> torch.Tensor:
        X = super()._data(X, fitting)
        n_components = getattr(self.prior, "n_components", None)
        if fitting and n_components is not None and n_components > X.shape[0]:
            raise ValueError(
                f"the prior's {n_components} components are more than the number of samples "
                f"({X.shape[0]})"
            )
        return X

    def _build(self, x_dim: int) -> VAEModule:
        return self.module_class(
            x_dim,
            self.latent_dim,
            self.hidden_dims,
            likelihood=make_likelihood(self.likelihood),
            prior=copy.deepcopy(self.prior),  # fits never share a prior's parameters
            z_guide=self.z_guide,
        )

    @property
    def has_clusters(self) -> bool:
        """Whether ``predict`` / ``predict_proba`` apply: the fitted prior is a mixture."""
        self._check_fitted()
        return hasattr(self.module_.prior, "responsibilities")

    def predict_proba(self, X) -> np.ndarray:
        """p(y | z) at the latent mean, for mixture priors (``MixturePrior``)."""
        self._check_fitted()
        prior = self.module_.prior
        if not hasattr(prior, "responsibilities"):
            raise TypeError(f"{type(prior).__name__} has no clusters: use a MixturePrior")
        return self._batched(
            lambda x: prior.responsibilities(self.module_.latent_mean(x)), self._data(X)
        ).numpy()

    def predict(self, X) -> np.ndarray:
        """The most probable mixture component of each sample (mixture priors only)."""
        return self.predict_proba(X).argmax(1)

    @torch.no_grad()
    def sample(self, n_samples: int = 1, seed: int | None = None) -> np.ndarray:
        """Draw ``n_samples`` from the model: z ~ p(z) and the mean of p(x | z)."""
        self._prior_draws(n_samples, seed)
        return self.module_.generate(n_samples).numpy()


class AE(VAE):
    """Deterministic autoencoder (the baseline without a latent distribution): maximises
    log p(x | decoder(encoder(x))). ``score`` is the mean reconstruction log-likelihood and
    ``log_likelihood`` is undefined (an AE has no density of x)."""

    module_class = AEModule

    def _build(self, x_dim: int) -> AEModule:
        if self.prior is not None:
            raise ValueError("an autoencoder has no prior on z; use VAE to choose one")
        return super()._build(x_dim)


def _needs_fixed_batch(module: torch.nn.Module) -> bool:
    return getattr(getattr(module, "discrete", None), "needs_fixed_batch", False)


@torch.no_grad()
def _evaluate_for_log(module: torch.nn.Module, X: torch.Tensor, batch_size: int = 1000) -> dict:
    """Mean ELBO terms over ``X`` and, for models with clusters, predicted clusters."""
    was_training = module.training
    module.eval()
    sums: dict[str, float] = {}
    labels = []
    for i in range(0, len(X), batch_size):
        x = X[i : i + batch_size]
        for name, value in module.elbo_terms(x).items():
            sums[name] = sums.get(name, 0.0) + float(value.sum())
        if hasattr(module, "cluster_probs"):
            labels.append(module.cluster_probs(x).argmax(-1).cpu())
    module.train(was_training)
    terms = {f"train_{k}": v / len(X) for k, v in sums.items()}
    terms["train_elbo"] = -sum(terms.values())
    return {"terms": terms, "labels": torch.cat(labels).numpy() if labels else None}


__all__ = ["AE", "GMVAE", "VAE", "ClusterCollapseWarning", "LatentEstimator", "NotFittedError"]
