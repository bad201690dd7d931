"""``ARMixture``: the autoregressive mixture of Gaussians as a scikit-learn-style estimator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from sklearn.base import BaseEstimator

from ..checks import NotFittedError, check_int, check_positive_int
from ..training import (
    DiscreteScheduleCallback,
    TrainingPlan,
    check_strategy,
    is_global_zero,
    local_seed,
    make_loader,
    train,
)
from .em import fit_em
from .evaluate import regime_posteriors
from .model import DISCRETE_MODES, GLOBAL_GUIDES, ARMixtureModule
from .regimes import log_posteriors, series_log_emission, viterbi
from .series import Series, as_series
from .simulate import ARParameters

COVARIANCE_TYPES = ("full", "diag")


@dataclass
class Forecast:
    """Simulated continuations of each series: ``samples`` (S, n_samples, steps, d), their
    ``mean`` (S, steps, d) and the ``lower`` / ``upper`` bounds of the central ``level``
    predictive interval (S, steps, d), pointwise per step and dimension."""

    samples: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float


class ARMixture(BaseEstimator):
    """Autoregressive mixture of K Gaussians for time series, fitted by SVI.

    Model (see :mod:`pyro_gmvae.timeseries.model`)::

        z_t ~ Cat(p)   (markov=True: z_t | z_{t-1} ~ Cat(A[z_{t-1}]), z_0 ~ Cat(p))
        x_t | x_{t-1}, z_t ~ N(Pi_{z_t} x_{t-1}, Sigma)

    Parameters
    ----------
    n_components : K, the number of regimes (at most the number of transitions).
    covariance_type : ``"full"`` or ``"diag"`` Sigma.
    discrete : how z_t is fitted. ``"marginal"`` (default): summed out in the model, so the
        objective is the exact log-likelihood; ``"enumerate"``: a neural guide
        q(z_t | x_{t-1}, x_t) with z_t enumerated in the guide; ``"relaxed"``: the same guide
        with an annealed Gumbel-softmax sample (the seed's objective, biased while the
        temperature is above 0). ``markov=True`` needs ``"marginal"``.
    markov : Markov-switching regimes (an HMM on z_t, summed out exactly).
    global_guide : ``None`` (default): the globals p, Pi, Sigma (and A) are point estimates
        (maximum likelihood with ``"marginal"``). ``"map"`` or ``"normal"``: they get weakly
        informative priors and ``AutoDelta`` (the posterior mode) or ``AutoNormal`` (a
        mean-field Gaussian posterior) fits them; or a factory ``f(model) -> AutoGuide``.
    hidden_dims : hidden layers of the neural guide q(z_t | x_{t-1}, x_t).
    epochs, batch_size, lr : optimisation (Adam); batches are transitions (series for the
        Markov variant). ``batch_size=None``: the whole data set in each step.
        ``epochs=None``: 100 for i.i.d. regimes, 400 for Markov ones (measured: with one step
        per epoch, the switching matrix's rarely visited rows need the longer run).
    temperature, min_temperature, temperature_decay : the Gumbel-softmax schedule
        (``"relaxed"``): after epoch e, max(temperature * exp(-temperature_decay * e),
        min_temperature).
    init : ``"em"`` (default): start the globals at the best of ``n_init`` EM restarts for the
        i.i.d. model (:func:`~pyro_gmvae.timeseries.fit_em`; for Markov regimes A starts at the
        frequencies with which EM's regimes follow each other). ``"random"``: ``n_init``
        random starts around the least-squares AR(1) fit, each trained ``init_epochs`` epochs;
        the one with the highest log-likelihood is trained on.
    n_init, init_epochs : restarts for the start (see ``init``).
    seed : seeds every random draw of ``fit`` (and ``sample``/``forecast`` unless given one).
    progress_bar : a bar per phase on a terminal, one line per epoch elsewhere.
    accelerator, devices, strategy : passed to ``lightning.Trainer`` (default: one CPU);
        ``strategy="ddp"`` trains data-parallel on ``devices`` processes, each taking
        ``batch_size`` transitions (series, Markov) of every global batch, the subsampling plate
        scaling each process's terms to the whole data set (see
        :func:`~pyro_gmvae.training.check_strategy`); only the first process writes files.
    num_nodes : machines of a data-parallel run (Lightning's ``num_nodes``), each with
        ``devices`` devices (see the README).

    Fitted attributes: ``weights_`` (p), ``transition_matrices_`` (Pi), ``covariance_``
    (Sigma), ``switching_matrix_`` (A, Markov only), ``parameters_`` (all of them as
    :class:`~pyro_gmvae.timeseries.ARParameters`), ``module_`` (the Pyro model/guide),
    ``history_`` (per epoch: the loss and the exact log-likelihood per transition),
    ``n_features_in_`` (d), ``log_likelihood_`` (per transition, on the training series).
    """

    def __init__(
        self,
        n_components: int = 3,
        covariance_type: str = "full",
        discrete: str = "marginal",
        markov: bool = False,
        global_guide: str | Callable | None = None,
        hidden_dims: Sequence[int] = (64, 64),
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float = 0.02,
        temperature: float = 1.0,
        min_temperature: float = 0.1,
        temperature_decay: float = 0.03,
        init: str = "em",
        n_init: int = 10,
        init_epochs: int = 10,
        seed: int = 0,
        progress_bar: bool = True,
        accelerator: str = "cpu",
        devices: Any = 1,
        strategy: Any = "auto",
        num_nodes: int = 1,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.discrete = discrete
        self.markov = markov
        self.global_guide = global_guide
        self.hidden_dims = hidden_dims
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.temperature = temperature
        self.min_temperature = min_temperature
        self.temperature_decay = temperature_decay
        self.init = init
        self.n_init = n_init
        self.init_epochs = init_epochs
        self.seed = seed
        self.progress_bar = progress_bar
        self.accelerator = accelerator
        self.devices = devices
        self.strategy = strategy
        self.num_nodes = num_nodes
        self._check_params()

    # --------------------------------------------------------------------------- parameters
    def _check_params(self) -> None:
        check_positive_int("n_components", self.n_components)
        check_positive_int("n_init", self.n_init)
        if self.epochs is not None:
            check_positive_int("epochs", self.epochs)
        check_int("init_epochs", self.init_epochs, 0)
        check_int("seed", self.seed, 0)
        check_strategy(self.devices, self.strategy, self.num_nodes)
        if self.batch_size is not None:
            check_positive_int("batch_size", self.batch_size)
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be 'full' or 'diag', got {self.covariance_type!r}"
            )
        if self.discrete not in DISCRETE_MODES:
            raise ValueError(
                f"discrete must be one of {', '.join(map(repr, DISCRETE_MODES))}, got "
                f"{self.discrete!r}"
            )
        if self.init not in ("em", "random"):
            raise ValueError(f"init must be 'em' or 'random', got {self.init!r}")
        if self.markov and self.discrete != "marginal":
            raise ValueError("markov=True sums the regimes out exactly: use discrete='marginal'")
        guide = self.global_guide
        if guide is not None and not callable(guide) and guide not in GLOBAL_GUIDES:
            raise ValueError(
                f"global_guide must be None, 'map', 'normal' or an autoguide factory, got {guide!r}"
            )
        if not isinstance(self.lr, int | float) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not isinstance(self.temperature_decay, int | float) or self.temperature_decay < 0:
            raise ValueError(f"temperature_decay must be >= 0, got {self.temperature_decay!r}")
        if not 0 < self.min_temperature <= self.temperature:
            raise ValueError(
                "need 0 < min_temperature <= temperature, got "
                f"min_temperature={self.min_temperature}, temperature={self.temperature}"
            )

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError("this ARMixture is not fitted yet: call fit or load")

    # --------------------------------------------------------------------------- building
    def _build(self, dim: int, init: ARParameters | None = None) -> ARMixtureModule:
        """The model/guide pair, started at ``init`` (or at a placeholder to load weights)."""
        K = self.n_components
        if init is None:
            init = ARParameters(
                np.full(K, 1 / K), np.zeros((K, dim, dim)), np.eye(dim), np.full((K, K), 1 / K)
            )
        relaxed = dict(
            temperature=self.temperature,
            min_temperature=self.min_temperature,
            decay_rate=self.temperature_decay,
        )
        module = ARMixtureModule(
            dim, K, init, self.covariance_type, self.discrete, self.markov,
            self.hidden_dims, relaxed,
        )  # fmt: skip
        if self.global_guide is not None:  # a tiny batch to create the autoguide's parameters
            example = Series(torch.zeros(1, 3, dim, dtype=torch.float64), torch.tensor([3]))
            module.set_priors(self.global_guide, *self._arguments(example))
        return module

    def _arguments(self, series: Series) -> tuple[torch.Tensor, ...]:
        """The tensors the model is fitted on: the transitions and their indices (i.i.d.
        regimes) or the padded series, their lengths and indices (Markov)."""
        if self.markov:
            return series.values, series.lengths, torch.arange(len(series.lengths))
        prev, nxt = series.transitions()
        return prev, nxt, torch.arange(len(prev))

    def _starts(self, series: Series, rng: np.random.Generator) -> list[ARParameters]:
        """The starting points. ``init="em"``: one, EM's best of ``n_init`` restarts (the
        i.i.d. model's maximum-likelihood fit), with, for Markov regimes, A from the counts of
        EM's regime probabilities at consecutive steps. ``init="random"``: ``n_init`` points
        around the least-squares AR(1) fit, Pi_k = Pi_LS + noise of the size of Pi_LS's own
        entries, p uniform, Sigma the residual covariance. For Markov regimes A starts with 0.5
        on its diagonal."""
        prev, nxt = series.transitions()
        d, K = prev.shape[1], self.n_components
        A = np.full((K, K), 0.5 / max(K - 1, 1)) if K > 1 else np.ones((1, 1))
        np.fill_diagonal(A, 0.5 if K > 1 else 1.0)
        A = A if self.markov else None
        if self.init == "em":
            em = fit_em(  # a looser tolerance than EM alone: SVI takes it from there
                prev, nxt, K, self.covariance_type, n_init=self.n_init, tol=1e-6, seed=self.seed
            )
            start = em.parameters
            if self.markov:  # A from how often EM's regimes follow each other
                posteriors = regime_posteriors(start, series)
                counts = sum(r[:-1].T @ r[1:] for r in posteriors) + 1.0
                A = counts / counts.sum(1, keepdims=True)
            return [ARParameters(start.weights, start.transition_matrices, start.covariance, A)]
        prev, nxt = prev.numpy(), nxt.numpy()
        Pi_ls = np.linalg.lstsq(prev, nxt, rcond=None)[0].T
        residuals = nxt - prev @ Pi_ls.T
        covariance = np.cov(residuals.T).reshape(d, d) + 1e-6 * np.eye(d)
        if self.covariance_type == "diag":
            covariance = np.diag(np.diag(covariance))
        spread = max(float(np.abs(Pi_ls).mean()), 0.1)
        return [
            ARParameters(
                np.full(K, 1 / K), Pi_ls + spread * rng.standard_normal((K, d, d)), covariance, A
            )
            for _ in range(self.n_init)
        ]

    # --------------------------------------------------------------------------- fitting
    def fit(self, X, y=None) -> ARMixture:
        """Fit to one series (T, d) (or (T,) when d = 1), several (S, T, d), or a list of
        (T_i, d) series of any lengths >= 2. ``y`` is ignored."""
        self._check_params()
        series = as_series(X)
        constant = (series.transitions()[1].var(0) == 0).nonzero().flatten().tolist()
        if constant:
            raise ValueError(f"dimension(s) {constant} of the series are constant: drop them")
        if self.n_components > series.n_transitions:
            raise ValueError(
                f"n_components={self.n_components} is more than the {series.n_transitions} "
                "transitions in the data"
            )
        arguments = self._arguments(series)
        n_data = len(arguments[0])
        batch = self.batch_size or n_data
        with local_seed(self.seed):
            rng = np.random.default_rng(self.seed)
            best = None
            starts = self._starts(series, rng)
            for start in starts:
                module = self._build(series.dim, start)
                module.n_data = n_data
                if len(starts) == 1:
                    best = (None, module, [])
                    break
                history = self._train(module, arguments, batch, series, self.init_epochs, "init")
                score = self._log_likelihood(module, series)
                if best is None or score > best[0]:
                    best = (score, module, history)
            _, module, history = best
            history += self._train(module, arguments, batch, series, self.n_epochs, "ARMixture")
        self.module_ = module.eval()
        self.history_ = history
        self.n_features_in_ = series.dim
        self._set_parameters()
        self.log_likelihood_ = self._log_likelihood(module, series)
        return self

    @property
    def n_epochs(self) -> int:
        """``epochs`` with ``None`` resolved (see the class's docstring)."""
        if self.epochs is not None:
            return self.epochs
        return 400 if self.markov else 100

    def _train(self, module, arguments, batch, series, epochs, phase) -> list[dict]:
        if epochs == 0:
            return []
        elbo = module.elbo()
        n_transitions = series.n_transitions

        def loss(*tensors):  # negative ELBO per transition of the whole data set
            return elbo.differentiable_loss(module.model, module.guide, *tensors) / n_transitions

        plan = TrainingPlan(module, loss, lr=self.lr)
        callbacks = [DiscreteScheduleCallback(), _LogLikelihood(series, self)]
        return train(
            plan,
            make_loader(arguments, batch, self.seed),
            epochs,
            callbacks=callbacks,
            phase=phase,
            progress_bar=self.progress_bar and phase != "init",  # one report: the main phase
            accelerator=self.accelerator,
            devices=self.devices,
            strategy=self.strategy,
            num_nodes=self.num_nodes,
        )

    def _set_parameters(self) -> None:
        g = self.module_.point_globals()
        scale_tril = g["scale_tril"]
        self.weights_ = g["weights"].numpy()
        self.transition_matrices_ = g["transition_matrices"].numpy()
        self.covariance_ = (scale_tril @ scale_tril.T).numpy()
        switching = g.get("switching")
        self.switching_matrix_ = None if switching is None else switching.numpy()
        self.parameters_ = ARParameters(
            self.weights_, self.transition_matrices_, self.covariance_, self.switching_matrix_
        )

    # --------------------------------------------------------------------------- exact
    @torch.no_grad()
    def _series_log_likelihood(self, module, series: Series) -> torch.Tensor:
        """Exact log p(x_1..T | x_0) of each series (S,) at the module's point estimates."""
        g = module.point_globals()
        if self.markov:  # the parallel forward algorithm
            return module.hmm(g, series.values, series.lengths).log_prob(series.values[:, 1:])
        log_e = series_log_emission(
            series.values, series.lengths, g["transition_matrices"], g["scale_tril"]
        )
        mixture = (g["weights"].log() + log_e).logsumexp(-1)
        return (mixture * series.mask()).sum(-1)

    def _log_likelihood(self, module, series: Series) -> float:
        return float(self._series_log_likelihood(module, series).sum()) / series.n_transitions

    @torch.no_grad()
    def _posteriors(self, series: Series, path: bool = False) -> torch.Tensor:
        """log p(z_t | data) per transition (S, T-1, K); with ``path``, the Viterbi path."""
        g = self.module_.point_globals()
        log_A = g["switching"].log() if self.markov else None
        if path:
            log_e = series_log_emission(
                series.values, series.lengths, g["transition_matrices"], g["scale_tril"]
            )
            return viterbi(g["weights"].log(), log_A, log_e, series.mask())
        return log_posteriors(
            series.values, series.lengths, g["weights"].log(), g["transition_matrices"],
            g["scale_tril"], log_A,
        )  # fmt: skip

    # --------------------------------------------------------------------------- outputs
    def predict_proba(self, X) -> np.ndarray | list[np.ndarray]:
        """p(z_t = k | data) for every transition t of every series, given the fitted
        parameters: Bayes' rule for i.i.d. regimes, the smoothed posterior (forward-backward)
        for Markov ones. Shaped like the input: (T-1, K) for one series, (S, T-1, K) for an
        array of series, a list for a list."""
        self._check_fitted()
        series = as_series(X, self.n_features_in_)
        return _shaped(X, series.unpad(self._posteriors(series).exp()))

    def predict(self, X) -> np.ndarray | list[np.ndarray]:
        """The most probable regime of each transition (maximises the expected number of
        regimes right). Shaped like :meth:`predict_proba` without its last axis."""
        self._check_fitted()
        series = as_series(X, self.n_features_in_)
        return _shaped(X, series.unpad(self._posteriors(series).argmax(-1)))

    def most_probable_path(self, X) -> np.ndarray | list[np.ndarray]:
        """The jointly most probable regime sequence of each series (Viterbi; the same as
        :meth:`predict` for i.i.d. regimes)."""
        self._check_fitted()
        series = as_series(X, self.n_features_in_)
        if not self.markov:
            return self.predict(X)
        return _shaped(X, series.unpad(self._posteriors(series, path=True)))

    def score_samples(self, X) -> np.ndarray:
        """Exact log-likelihood per transition of each series, log p(x_1..T | x_0) / (T - 1)
        (the first step is conditioned on), shape (S,)."""
        self._check_fitted()
        series = as_series(X, self.n_features_in_)
        total = self._series_log_likelihood(self.module_, series)
        return (total / (series.lengths - 1)).numpy()

    def score(self, X, y=None) -> float:
        """Exact log-likelihood per transition over all the series (higher is better)."""
        self._check_fitted()
        series = as_series(X, self.n_features_in_)
        return self._log_likelihood(self.module_, series)

    def sample(self, n_steps: int, n_series: int = 1, seed: int | None = None):
        """Simulate ``n_series`` new series of ``n_steps`` steps from the fitted parameters:
        an :class:`~pyro_gmvae.timeseries.ARSimulation` (series, regimes, parameters)."""
        from .simulate import simulate_ar_mixture

        self._check_fitted()
        return simulate_ar_mixture(
            n_steps, self.n_features_in_, self.n_components,
            seed=self.seed if seed is None else seed, markov=self.markov,
            n_series=n_series, parameters=self.parameters_,
        )  # fmt: skip

    def forecast(
        self, X, steps: int, n_samples: int = 1000, level: float = 0.9, seed: int | None = None
    ) -> Forecast:
        """Continue each series ``steps`` steps past its end by simulating ``n_samples``
        futures from the fitted model (the next regime drawn from its predictive distribution:
        p for i.i.d. regimes, the filtered last regime times A for Markov ones), with the
        central ``level`` predictive interval per step."""
        self._check_fitted()
        check_positive_int("steps", steps)
        check_positive_int("n_samples", n_samples)
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        series = as_series(X, self.n_features_in_)
        p = self.parameters_
        rng = np.random.default_rng(self.seed if seed is None else seed)
        S, d, K = len(series.lengths), self.n_features_in_, self.n_components
        last = series.values[torch.arange(S), series.lengths - 1].numpy()  # (S, d)
        x = np.repeat(last[:, None], n_samples, 1)  # (S, n, d)
        if self.markov:
            filtered = self._posteriors(series).exp().numpy()
            state = filtered[np.arange(S), series.lengths.numpy() - 2]  # p(z_T | all data)
            regime = _draw(np.repeat(state[:, None], n_samples, 1), rng)
        chol = np.linalg.cholesky(p.covariance)
        out = np.empty((S, n_samples, steps, d))
        for h in range(steps):
            if self.markov:
                regime = _draw(p.switching_matrix[regime], rng)
            else:
                regime = rng.choice(K, size=(S, n_samples), p=p.weights)
            noise = rng.standard_normal((S, n_samples, d)) @ chol.T
            x = np.einsum("snij,snj->sni", p.transition_matrices[regime], x) + noise
            out[:, :, h] = x
        tail = (1 - level) / 2
        return Forecast(
            out, out.mean(1), np.quantile(out, tail, 1), np.quantile(out, 1 - tail, 1), level
        )

    @classmethod
    def from_parameters(cls, parameters: ARParameters, **options: Any) -> ARMixture:
        """An estimator that holds ``parameters`` as its fitted ones, without training (e.g. the
        true parameters of a simulation, to score, predict or forecast with them). Markov when
        they have a switching matrix; ``options`` are other constructor parameters."""
        K, d, _ = np.shape(parameters.transition_matrices)
        est = cls(K, markov=parameters.switching_matrix is not None, **options)
        est.module_ = est._build(d, parameters).eval()
        est.n_features_in_ = d
        est.history_ = []
        est._set_parameters()
        est.log_likelihood_ = float("nan")
        return est

    # --------------------------------------------------------------------------- persistence
    def _fitted_state(self) -> dict[str, Any]:
        return {
            "history_": self.history_,
            "n_features_in_": self.n_features_in_,
            "log_likelihood_": self.log_likelihood_,
        }

    def _restore_fitted(self, fitted: dict[str, Any]) -> None:
        self.history_ = fitted["history_"]
        self.n_features_in_ = fitted["n_features_in_"]
        self.log_likelihood_ = fitted["log_likelihood_"]
        self._set_parameters()

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Save the fitted model to ``path`` (an existing file is replaced only with
        ``overwrite=True``, and only once the new one is completely written). In data-parallel
        training only the first process writes."""
        from ..estimators.persistence import save

        if not is_global_zero():
            return Path(path)
        return save(self, path, overwrite)

    @classmethod
    def load(cls, path: str | Path, **components: Any) -> ARMixture:
        """Load a model written by :meth:`save` (a ``global_guide`` factory passed as an
        object must be passed again by name)."""
        from ..estimators.persistence import load

        return load(cls, path, components)


class _LogLikelihood(L.Callback):
    """After each epoch, log the exact log-likelihood per transition of the training series
    at the current point estimates."""

    def __init__(self, series: Series, estimator: ARMixture) -> None:
        self.series, self.estimator = series, estimator

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: TrainingPlan) -> None:
        log_likelihood = self.estimator._log_likelihood(pl_module.module, self.series)
        pl_module.log("log_likelihood", log_likelihood, prog_bar=True, sync_dist=True)


def _draw(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of ``probs`` (..., K) by inverting the cumulative sum."""
    u = rng.random(probs.shape[:-1] + (1,))
    return np.minimum((np.cumsum(probs, -1) < u).sum(-1), probs.shape[-1] - 1)


def _shaped(X, per_series: list[np.ndarray]):
    """Per-series results in the shape of the input: one array for one series, a stacked
    array for an (S, T, d) array, a list for a list."""
    if isinstance(X, list | tuple):
        return per_series
    ndim = np.ndim(X) if not isinstance(X, torch.Tensor) else X.dim()
    return np.stack(per_series) if ndim == 3 else per_series[0]
