"""``GibbsGMM``: a Bayesian Gaussian mixture fitted by blocked Gibbs sampling, in scikit-learn's
shape. It works on any array of points (e.g. a VAE's latent codes)."""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from ..checks import NotFittedError, check_int
from ..metrics import clustering_scores
from ..training import local_seed, progress
from . import conjugate as cj
from .sampler import gibbs_sweeps, match_labels


class ChainDisagreementWarning(UserWarning):
    """Chains of a Gibbs fit settled in different clusterings."""


class GibbsGMM(ClusterMixin, DensityMixin, BaseEstimator):
    r"""Bayesian Gaussian mixture fitted by blocked Gibbs sampling.

    Model::

        pi ~ Dirichlet(alpha0),  c_n ~ Categorical(pi),  z_n | c_n ~ N(mu_{c_n}, Sigma_{c_n})
        "full":  Sigma_k ~ InvWishart(nu0, Psi0),  mu_k | Sigma_k ~ N(m0, Sigma_k / beta0)
        "diag":  sigma_kd^2 ~ InvGamma(nu0 / 2, psi0_d / 2),  mu_kd ~ N(m0_d, sigma_kd^2 / beta0)

    Each sweep draws all assignments given the parameters, then all parameters from their
    conjugate posterior given the assignments (vectorized over chains, clusters and points, in
    float64, except the assignment step's densities: float32 where a bound keeps their rounding
    error under 0.01 nats, see :func:`~pyro_gmvae.gmm.sampler.assignment_log_probs`; the log
    joint is exact). A cluster left empty is redrawn from its prior. Draws after ``burn_in``, one in
    ``thin``, are kept; label switching is undone by matching each kept draw's assignments to a
    reference draw (each chain's own first kept draw) with the Hungarian algorithm, and each
    chain's labels are then lined up with those of the most probable chain.

    Parameters
    ----------
    n_components : K, the number of clusters.
    covariance_type : ``"full"`` (Normal-Wishart prior) or ``"diag"`` (Normal-Gamma).
    n_sweeps : sweeps per chain, burn-in included.
    burn_in : first sweeps of each chain that are discarded.
    thin : keep one sweep in ``thin`` after the burn-in.
    n_chains : independent chains (at least 2 for ArviZ's r_hat).
    init : ``"kmeans"`` (each chain starts from k-means with its own seed, then a parameter
        draw), ``"random"`` (from random assignments), or an array of one cluster index in
        [0, K) per training point (every chain starts from its own parameter draw given these
        assignments: a clustering found by other means; since the chains start from one
        clustering, their agreement says less about other modes than k-means starts would).
    warm_start : start each chain from where the previous ``fit`` ended (its last parameters;
        the data may change, the numbers of chains, components and features may not).
    weight_concentration_prior : alpha0 (default 1: a uniform prior on the weights).
    mean_prior : m0 (default: the data's mean).
    mean_precision_prior : beta0 (default 1: the prior on a mean is as wide as a cluster).
    degrees_of_freedom_prior : nu0 (default D + 2 for "full", 3 for "diag": the smallest whole
        number for which the prior mean of a covariance exists).
    covariance_prior : Psi0, (D, D) for "full" or (D,) for "diag" (default: the data's
        covariance, or variances, times nu0 - D - 1, or nu0 - 2, so that the prior mean of every
        covariance is the data's; plus 1e-6 of the mean variance on the diagonal, which keeps a
        degenerate direction from making the covariances singular).
    seed : seeds every draw; the same seed and data give the same draws. The caller's random
        state is left alone.
    precision : ``"auto"`` (default): the assignment step's densities in float32 where a bound
        keeps their rounding error under 0.01 nats, in float64 otherwise; ``"float64"``: always
        float64 (an exact sampler, slower).
    progress_bar : a bar on a terminal or in Jupyter, otherwise a line when the sweeps end.

    Fitted attributes: ``weights_``, ``means_``, ``covariances_`` (posterior means over the
    kept, relabelled draws of the chains in ``chains_``: those that settled in the same
    clustering as the most probable chain; a ``ChainDisagreementWarning`` names the others),
    ``labels_`` and ``responsibilities_`` of the training points, ``draws_`` (dict of arrays
    with leading (chain, draw) axes: ``weights``, ``means``, ``covariances``, ``log_joint``),
    ``history_`` (one dict per sweep: the mean log joint over chains, ``float32`` (1 where the
    densities were float32), and ACC/NMI/ARI of chain 0 when labels were given), ``prior_``
    (the hyperparameters used), ``state_`` (each chain's last parameters),
    ``sweeps_per_second_``.
    """

    _phase = "Gibbs sweeps"  # the progress bar's name (a mutual-learning fit names its round)

    def __init__(
        self,
        n_components: int = 10,
        covariance_type: str = "full",
        n_sweeps: int = 300,
        burn_in: int = 100,
        thin: int = 1,
        n_chains: int = 4,
        init: Any = "kmeans",
        warm_start: bool = False,
        weight_concentration_prior: float | None = None,
        mean_prior: Any = None,
        mean_precision_prior: float | None = None,
        degrees_of_freedom_prior: float | None = None,
        covariance_prior: Any = None,
        seed: int = 0,
        precision: str = "auto",
        progress_bar: bool = True,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.n_sweeps = n_sweeps
        self.burn_in = burn_in
        self.thin = thin
        self.n_chains = n_chains
        self.init = init
        self.warm_start = warm_start
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_prior = mean_prior
        self.mean_precision_prior = mean_precision_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.seed = seed
        self.precision = precision
        self.progress_bar = progress_bar
        self._check_params()

    # ----------------------------------------------------------------------------- checks
    def _check_params(self) -> None:
        for name in ("n_components", "n_sweeps", "thin", "n_chains"):
            check_int(name, getattr(self, name), 1)
        check_int("burn_in", self.burn_in, 0)
        check_int("seed", self.seed, 0)
        if self.burn_in >= self.n_sweeps:
            raise ValueError(
                f"burn_in ({self.burn_in}) must be smaller than n_sweeps ({self.n_sweeps}): "
                "no draw would be kept"
            )
        if self.covariance_type not in cj.COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be 'full' or 'diag', got {self.covariance_type!r}"
            )
        if self.precision not in ("auto", "float64"):
            raise ValueError(f"precision must be 'auto' or 'float64', got {self.precision!r}")
        if isinstance(self.init, str):
            if self.init not in ("kmeans", "random"):
                raise ValueError(
                    f"init must be 'kmeans', 'random' or assignments, got {self.init!r}"
                )
        else:
            self._initial_assignments(None)
        for name in (
            "weight_concentration_prior",
            "mean_precision_prior",
            "degrees_of_freedom_prior",
        ):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")

    def _points(self, Z, fitting: bool = False) -> torch.Tensor:
        """``Z`` as a float64 (N, D) tensor (a copy), checked."""
        try:
            if isinstance(Z, torch.Tensor):
                Z = Z.detach().cpu().numpy()
            Z = torch.from_numpy(np.array(Z, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"expected a numeric (N, D) array, got {type(Z).__name__}") from err
        if Z.ndim != 2 or Z.shape[0] == 0 or Z.shape[1] == 0:
            raise ValueError(
                f"expected a non-empty (N, D) array of points, got shape {tuple(Z.shape)}"
            )
        if not torch.isfinite(Z).all():
            bad = int((~torch.isfinite(Z)).any(1).sum())
            raise ValueError(f"{bad} of the {len(Z)} points contain NaN or inf")
        if fitting and len(Z) < self.n_components:
            raise ValueError(
                f"n_components={self.n_components} is more than the number of points ({len(Z)})"
            )
        if not fitting and Z.shape[1] != self.n_features_in_:
            raise ValueError(
                f"the model was fitted on {self.n_features_in_} features, got {Z.shape[1]}"
            )
        return Z

    def _prior(self, Z: torch.Tensor) -> cj.MixturePrior:
        """The hyperparameters, defaults scaled to the data (see the class docstring)."""
        N, D = Z.shape
        full = self.covariance_type == "full"
        nu0 = self.degrees_of_freedom_prior
        nu0 = float(D + 2 if full else 3) if nu0 is None else float(nu0)
        if full and nu0 <= D - 1:
            raise ValueError(
                f"degrees_of_freedom_prior must be more than D - 1 = {D - 1} for a Wishart prior"
            )
        mean = Z.mean(0)
        if self.mean_prior is not None:
            mean = torch.as_tensor(np.array(self.mean_prior, dtype=np.float64))
            if mean.shape != (D,) or not torch.isfinite(mean).all():
                raise ValueError(f"mean_prior must be {D} finite numbers")
        if self.covariance_prior is None:
            centred = Z - Z.mean(0)
            cov = (
                centred.T @ centred / max(N - 1, 1)
                if full
                else centred.square().sum(0) / max(N - 1, 1)
            )
            variances = cov.diagonal() if full else cov
            # a floor per dimension (scale-equivariant), absolute where a feature is constant
            floor = torch.where(variances > 0, 1e-6 * variances, 1e-6)
            factor = max(nu0 - D - 1, 1.0) if full else max(nu0 - 2, 1.0)
            scale = factor * cov + (torch.diag(floor) if full else floor)
        else:
            scale = torch.as_tensor(np.array(self.covariance_prior, dtype=np.float64))
            shape = (D, D) if full else (D,)
            if scale.shape != shape:
                raise ValueError(
                    f"covariance_prior must have shape {shape}, got {tuple(scale.shape)}"
                )
            ok = torch.linalg.cholesky_ex(scale)[1] == 0 if full else bool((scale > 0).all())
            if not ok or not torch.isfinite(scale).all():
                raise ValueError("covariance_prior must be positive definite")
        return cj.MixturePrior(
            self.covariance_type,
            float(self.weight_concentration_prior or 1.0),
            mean,
            float(self.mean_precision_prior or 1.0),
            nu0,
            scale,
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "draws_"):
            raise NotFittedError("this GibbsGMM is not fitted yet: call fit")

    # ----------------------------------------------------------------------------- fitting
    def _start(self, Z: torch.Tensor, shift: torch.Tensor, prior: cj.MixturePrior) -> cj.Parameters:
        """Each chain's first parameters, for the points ``Z`` centred by ``shift``: the previous
        fit's last (warm start; where they were in the data's space), or a draw given k-means
        (or random) assignments."""
        K, C = self.n_components, self.n_chains
        if self.warm_start and hasattr(self, "state_"):
            state = self.state_
            if state.means.shape != (C, K, Z.shape[1]) or state.full != (
                self.covariance_type == "full"
            ):
                raise ValueError(
                    "warm_start: the previous fit had other numbers of chains, components or "
                    "features, or another covariance type; fit with warm_start=False"
                )
            return cj.Parameters(
                state.log_weights, state.means - shift, state.precisions, state.log_det
            )
        if not isinstance(self.init, str):
            assignments = self._initial_assignments(len(Z)).expand(C, -1)
        elif self.init == "kmeans":
            assignments = torch.stack(
                [
                    torch.from_numpy(
                        KMeans(K, n_init=3, random_state=self.seed + chain).fit_predict(Z.numpy())
                    )
                    for chain in range(C)
                ]
            ).long()
        else:
            assignments = torch.randint(K, (C, len(Z)))
        stats = cj.statistics(Z, assignments, K, self.covariance_type == "full")
        return cj.draw(cj.posterior(prior, *stats))

    def _initial_assignments(self, n_points: int | None) -> torch.Tensor:
        """``init`` given as assignments, checked (against ``n_points`` when given)."""
        init = np.asarray(self.init)
        K = self.n_components
        if init.ndim != 1 or not np.issubdtype(init.dtype, np.integer):
            raise TypeError("init given as assignments must be a 1-D array of integers")
        if ((init < 0) | (init >= K)).any():
            raise ValueError(f"init: assignments must be cluster indices in [0, {K})")
        if n_points is not None and len(init) != n_points:
            raise ValueError(f"init: {len(init)} assignments for {n_points} points")
        return torch.as_tensor(init, dtype=torch.long)

    def fit(self, Z, y=None) -> GibbsGMM:
        """Sample the posterior of the mixture given the points ``Z`` (N, D). Labels ``y``, if
        given, are only used to log ACC/NMI/ARI per sweep."""
        self._check_params()
        Z = self._points(Z, fitting=True)
        labels = None if y is None else np.asarray(y).ravel()
        if labels is not None and len(labels) != len(Z):
            raise ValueError(f"{len(labels)} labels for {len(Z)} points")
        prior = self._prior(Z)
        # The sampler works on centred points: the expanded quadratic form loses less precision.
        shift = Z.mean(0)
        centred = replace(prior, mean=prior.mean - shift)
        centred_points = Z - shift
        history, kept, reference = [], [], None
        with local_seed(self.seed), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)  # KMeans' notices
            params = self._start(centred_points, shift, centred)
            start = time.perf_counter()
            sweeps = gibbs_sweeps(
                centred_points, centred, params, self.n_sweeps, float32=self.precision == "auto"
            )
            for t, sweep in enumerate(
                progress(sweeps, self.n_sweeps, self._phase, self.progress_bar)
            ):
                row = {
                    "sweep": t + 1,
                    "log_joint": float(sweep.log_joint.mean()),
                    "float32": int(sweep.log_probs.dtype == torch.float32),
                }
                if labels is not None:
                    row.update(clustering_scores(labels, sweep.assignments[0].numpy()))
                history.append(row)
                if t < self.burn_in or (t - self.burn_in) % self.thin:
                    continue
                if reference is None:  # each chain's own first kept draw
                    reference = sweep.assignments.clone()
                order = match_labels(sweep.assignments, reference, self.n_components)
                kept.append((_shifted(sweep.params.permute(order), shift), sweep.log_joint))
            self.sweeps_per_second_ = self.n_sweeps / (time.perf_counter() - start)
        # a warm start continues from the parameters the last assignments were drawn from
        self.state_ = _shifted(sweep.params, shift)
        self.chains_, best = self._agreeing_chains(kept, sweep.log_probs.argmax(-2))
        # line every chain's labels up with the most probable chain's
        across = match_labels(reference, reference[best], self.n_components)
        kept = [(params.permute(across), log_joint) for params, log_joint in kept]
        self.shift_ = shift
        self.n_features_in_ = Z.shape[1]
        self.prior_ = prior
        self.history_ = history
        self._store_draws(kept)
        self.responsibilities_ = self.predict_proba(Z)
        self.labels_ = self.responsibilities_.argmax(1)
        return self

    def _agreeing_chains(self, kept: list, last: torch.Tensor) -> tuple[np.ndarray, int]:
        """The chains that settled in the same clustering as the chain with the highest mean log
        joint (adjusted Rand index >= 0.9 between the most probable clusters of the points under
        each chain's last parameters, ``last``): the point estimates pool only these, since
        relabelling cannot line up clusters that differ. A warning names the others. Returns
        them and the most probable chain."""
        log_joint = torch.stack([lj for _, lj in kept]).mean(0)
        best = int(log_joint.argmax())
        agree = np.array(
            [adjusted_rand_score(last[best], last[c]) >= 0.9 for c in range(len(last))]
        )
        if not agree.all():
            others, used = (", ".join(map(str, np.flatnonzero(a))) for a in (~agree, agree))
            warnings.warn(
                f"chains {others} settled in other clusterings than chain {best} (the most "
                f"probable); weights_, means_, covariances_ and predictions use chains {used} "
                "(draws_ and to_inference_data keep all)",
                ChainDisagreementWarning,
                stacklevel=3,
            )
        return np.flatnonzero(agree), best

    def _store_draws(self, kept: list[tuple[cj.Parameters, torch.Tensor]]) -> None:
        def stack(values):  # (S, C, ...) -> (C, S, ...)
            return torch.stack(values, 1).numpy()

        self._store_draws_from(
            {
                "weights": stack([p.log_weights.exp() for p, _ in kept]),
                "means": stack([p.means for p, _ in kept]),
                "covariances": stack([p.covariances() for p, _ in kept]),
                "log_joint": stack([lj for _, lj in kept]),
            }
        )

    def _store_draws_from(self, draws: dict[str, np.ndarray]) -> None:
        """Keep the draws and their posterior means over the agreeing chains (``chains_``)."""
        self.draws_ = draws
        used = {k: v[self.chains_] for k, v in draws.items()}
        self.weights_ = used["weights"].mean((0, 1))
        self.means_ = used["means"].mean((0, 1))
        self.covariances_ = used["covariances"].mean((0, 1))

    # ----------------------------------------------------------------------------- inference
    def _draws(self, chains: np.ndarray | None = None) -> list[cj.Parameters]:
        """The kept draws of the agreeing chains (or of ``chains``) as parameters, one
        (C, K, ...) set per draw index."""
        self._check_fitted()
        chains = self.chains_ if chains is None else chains
        d = {k: v[chains] for k, v in self.draws_.items()}
        covariances = torch.from_numpy(d["covariances"])
        if self._full:
            precisions = torch.cholesky_inverse(torch.linalg.cholesky(covariances))
        else:
            precisions = 1.0 / covariances
        log_weights = torch.from_numpy(d["weights"]).clamp_min(1e-300).log()
        means = torch.from_numpy(d["means"])
        return [
            cj.Parameters(log_weights[:, s], means[:, s], precisions[:, s])
            for s in range(log_weights.shape[1])
        ]

    def _log_probs(self, Z, chains: np.ndarray | None = None) -> Iterator[torch.Tensor]:
        """log pi_k + log N(z | mu_k, Sigma_k), (C, K, N), for each kept draw of the agreeing
        chains (or of ``chains``), computed on the points centred as in ``fit``."""
        self._check_fitted()
        centred = self._points(Z) - self.shift_
        feats_t = cj.features(centred, "full" if self._full else "diag").T.contiguous()
        for params in self._draws(chains):
            yield cj.log_joint_terms(feats_t, _shifted(params, -self.shift_))

    def predict_proba(self, Z) -> np.ndarray:
        """p(c = k | z) averaged over the kept draws of every chain: (N, K)."""
        total = sum(lp.softmax(-2).sum(0) for lp in self._log_probs(Z))
        chains, draws = self.draws_["log_joint"][self.chains_].shape
        return (total / (chains * draws)).T.numpy()

    def predict(self, Z) -> np.ndarray:
        """The most probable cluster of each point under :meth:`predict_proba`."""
        return self.predict_proba(Z).argmax(1)

    def score_samples(self, Z) -> np.ndarray:
        """log p(z) under the posterior predictive mixture, estimated by averaging the mixture
        density over the kept draws: log (1/S) sum_s sum_k pi_k^s N(z | mu_k^s, Sigma_k^s)."""
        per_draw = torch.stack([lp.logsumexp(-2) for lp in self._log_probs(Z)])  # (S, C, N)
        n_draws = per_draw.shape[0] * per_draw.shape[1]
        return (per_draw.flatten(0, 1).logsumexp(0) - math.log(n_draws)).numpy()

    def score(self, Z, y=None) -> float:
        """Mean log predictive density per point (higher is better)."""
        return float(self.score_samples(Z).mean())

    @property
    def _full(self) -> bool:
        """Whether the fitted covariances are full (read from the fit, not the parameters)."""
        return self.draws_["covariances"].ndim == 5

    def sample(self, n_samples: int = 1, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n_samples`` points from the posterior-mean mixture, and their clusters; with
        ``seed`` from a generator of their own, otherwise from torch's global one."""
        self._check_fitted()
        check_int("n_samples", n_samples, 1)
        weights = torch.from_numpy(self.weights_)
        means = torch.from_numpy(self.means_)
        cov = torch.from_numpy(self.covariances_)
        with local_seed(seed) if seed is not None else contextlib.nullcontext():
            clusters = torch.multinomial(weights, n_samples, replacement=True)
            if self._full:
                noise = torch.distributions.MultivariateNormal(means, cov).sample((n_samples,))
                points = noise[torch.arange(n_samples), clusters]
            else:
                points = means[clusters] + cov[clusters].sqrt() * torch.randn(
                    n_samples, means.shape[1], dtype=means.dtype
                )
        return points.numpy(), clusters.numpy()

    def to_inference_data(self, Z=None, seed: int = 0, predictive: bool = True):
        """The kept, relabelled draws of every chain as an ``arviz.InferenceData`` with
        ``chain`` and ``draw`` dimensions.

        ``posterior``: ``weights`` (component), ``means`` and ``variances`` (the covariances'
        diagonals; component, dim) and ``log_joint``, ready for ``az.summary`` (r_hat, ESS) and
        ``az.plot_trace``. Chains that settled in different clusterings give a high r_hat:
        that is the sampler's multimodality, not a bug.

        With the data ``Z`` (the points fitted, for LOO and WAIC), also ``observed_data``
        (``z``: point, dim), ``log_likelihood`` (``z``: log sum_k pi_k N(z_n | mu_k, Sigma_k)
        per draw and point, for ``az.loo``, ``az.waic`` and ``az.compare``) and
        ``posterior_predictive`` (``z``: one replicate data set of N points per draw, for
        ``az.plot_ppc``; chains x draws x N x dim numbers, drawn with ``seed``; left out with
        ``predictive=False``).
        """
        self._check_fitted()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)  # ArviZ's refactor notice
            import arviz as az
        cov = self.draws_["covariances"]
        variances = np.diagonal(cov, axis1=-2, axis2=-1) if cov.ndim == 5 else cov
        groups: dict[str, Any] = {
            "posterior": {
                "weights": self.draws_["weights"],
                "means": self.draws_["means"],
                "variances": variances,
                "log_joint": self.draws_["log_joint"],
            }
        }
        if Z is not None:
            points = self._points(Z)
            every = np.arange(self.draws_["weights"].shape[0])
            per_draw = [lp.logsumexp(-2) for lp in self._log_probs(points, every)]  # (C, N)
            groups["log_likelihood"] = {"z": torch.stack(per_draw, 1).numpy()}
            groups["observed_data"] = {"z": points.numpy()}
            if predictive:
                groups["posterior_predictive"] = {"z": self._replicates(len(points), seed)}
        return az.from_dict(
            **groups,
            coords={
                "component": np.arange(self.draws_["weights"].shape[-1]),
                "dim": np.arange(self.n_features_in_),
            },
            dims={
                "weights": ["component"],
                "means": ["component", "dim"],
                "variances": ["component", "dim"],
                "z": ["point", "dim"],
            },
        )

    def _replicates(self, n: int, seed: int) -> np.ndarray:
        """One data set of ``n`` points from every kept draw of every chain: (C, S, n, dim)."""
        weights = torch.from_numpy(self.draws_["weights"])  # (C, S, K)
        means = torch.from_numpy(self.draws_["means"])  # (C, S, K, D)
        cov = torch.from_numpy(self.draws_["covariances"])
        scale = torch.linalg.cholesky(cov) if self._full else cov.sqrt()
        with local_seed(seed):
            clusters = torch.distributions.Categorical(weights).sample((n,))  # (n, C, S)
            clusters = clusters.permute(1, 2, 0)  # (C, S, n)
            noise = torch.randn(*clusters.shape, means.shape[-1], dtype=means.dtype)
        pick = clusters.unsqueeze(-1)
        loc = means.gather(2, pick.expand(*pick.shape[:-1], means.shape[-1]))
        if self._full:
            index = pick.unsqueeze(-1).expand(*pick.shape[:-1], *scale.shape[-2:])
            tril = scale.gather(2, index)  # (C, S, n, D, D)
            return (loc + (tril @ noise.unsqueeze(-1)).squeeze(-1)).numpy()
        return (loc + scale.gather(2, pick.expand_as(loc)) * noise).numpy()

    # ----------------------------------------------------------------------------- state
    def to_state(self) -> dict[str, Any]:
        """The parameters and fitted state as plain data and tensors (what
        ``torch.load(weights_only=True)`` reads); :meth:`from_state` rebuilds the estimator."""
        self._check_fitted()
        prior = self.prior_
        return {
            "params": {
                k: v.tolist() if isinstance(v, np.ndarray) else v
                for k, v in self.get_params().items()
            },
            "draws": {k: torch.from_numpy(v) for k, v in self.draws_.items()},
            "state": [getattr(self.state_, f) for f in ("log_weights", "means", "precisions")],
            "prior": [
                prior.weight_concentration,
                prior.mean,
                prior.mean_precision,
                prior.degrees_of_freedom,
                prior.covariance,
            ],
            "shift": self.shift_,
            "chains": torch.from_numpy(self.chains_),
            "history": self.history_,
            "responsibilities": torch.from_numpy(self.responsibilities_),
            "sweeps_per_second": self.sweeps_per_second_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GibbsGMM:
        """The estimator saved by :meth:`to_state`."""
        gmm = cls(**state["params"])
        gmm.chains_ = state["chains"].numpy()
        gmm._store_draws_from({k: v.numpy() for k, v in state["draws"].items()})
        gmm.state_ = cj.Parameters(*state["state"])
        full = state["draws"]["covariances"].ndim == 5
        gmm.prior_ = cj.MixturePrior("full" if full else "diag", *state["prior"])
        gmm.shift_ = state["shift"]
        gmm.n_features_in_ = int(gmm.shift_.shape[0])
        gmm.history_ = state["history"]
        gmm.sweeps_per_second_ = state["sweeps_per_second"]
        gmm.responsibilities_ = state["responsibilities"].numpy()
        gmm.labels_ = gmm.responsibilities_.argmax(1)
        return gmm


def _shifted(params: cj.Parameters, shift: torch.Tensor) -> cj.Parameters:
    """``params`` with every mean moved by ``shift``."""
    return replace(params, means=params.means + shift)
