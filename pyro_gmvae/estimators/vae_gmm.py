"""``VAEGMM``: a VAE and a Gibbs-sampled Gaussian mixture that learn from each other in turns."""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import files
from ..checks import check_positive_int
from ..gmm import ChainDisagreementWarning, GibbsGMM
from ..metrics import clustering_scores
from ..models import VAEGMMModule
from ..models.vae_gmm import PRIOR_MODES
from ..pretrain import check_embedding, pretrain_mixture_prior
from ..training import (
    EpochMetricsCallback,
    TrainingPlan,
    _csv_text,
    is_global_zero,
    local_seed,
    make_loader,
    monitor_terms,
    svi_loss,
    train,
)
from .base import COMMON_DOC, ClusteringEstimator, base_params, cluster_weights


class VAEGMM(ClusteringEstimator):
    __doc__ = (
        """A VAE and a Bayesian Gaussian mixture fitted in turns ("mutual learning").

    Before the first round, ``init="pretrain"`` (the default) trains the encoder's mean and the
    decoder as an autoencoder, clusters the codes (t-SNE + Gaussian mixture, see
    :func:`~pyro_gmvae.pretrain.pretrain_mixture_prior`; no labels) and starts both halves from
    that clustering: the VAE's prior is the mixture of the clusters' codes, and the Gibbs chains
    start from its assignments. Each round: (1) the VAE trains for ``epochs`` epochs, its weights
    carried over from the last round (never re-initialised); its prior is the pre-training
    mixture (or N(0, I) with ``init="random"``) in round 1 and the mixture fitted in the last
    round afterwards; (2) the encoder means of all training points go to a
    :class:`~pyro_gmvae.gmm.GibbsGMM`, which continues its chains from the last round (warm
    start); (3) the mixture's posterior-mean weights, means and covariances become the VAE's
    prior, each cluster's covariance widened by the mean encoder variance of its points (the
    Gaussian closest in KL to the cluster's codes z ~ q(z | x); the GMM's own covariance only
    describes the spread of their means). The round kept at the end is the one whose VAE and
    mixture give the highest ELBO under the mixture prior on the monitor subset (chosen without
    labels).


    Parameters
    ----------
    n_clusters : K, the number of Gaussians of the mixture (>= 2 and <= the number of
        samples).
    prior_mode : how the VAE uses the mixture. ``"mixture"`` (default): every point's prior is
        the whole mixture sum_k pi_k N(mu_k, Sigma_k), with no hard assignment; the KL term is
        a one-sample estimate. ``"assigned"``: each training point's prior is the Gaussian of
        the cluster the GMM assigns it to, z_n ~ N(mu_{c_n}, Sigma_{c_n}), looked up by the
        point's index in the data; the KL term is analytic. The two tied over five seeds of
        ``benchmarks/mutual_learning.py`` (mean ACC 0.905 and 0.907, paired differences within
        the seeds' noise); the mixture is the default because it trains the bound that scores
        new data and chooses the kept round, with no per-point state. In both, the KL is per
        point, summed over latent dimensions and averaged over the batch, like the other
        estimators'; scoring new data (``score``, ``log_likelihood``) uses the mixture.
    n_rounds : rounds of VAE training and Gibbs sampling (1: the VAE and the GMM are fitted
        once, one after the other: no mutual learning).
    epochs : VAE epochs per round.
    covariance_type : ``"full"`` or ``"diag"`` Gaussians in the GMM (the VAE's prior is full in
        both cases).
    gibbs_sweeps, gibbs_burn_in, gibbs_chains : the GMM's sweeps per round, burn-in and chains.
    z_guide : ``"diagonal"``, ``"low-rank"``, ``"full"``, ``"flow"`` or a guide factory.
    init : ``"pretrain"`` (default) or ``"random"`` (the VAE starts from random weights and a
        N(0, I) prior, the GMM from k-means on the first round's codes).
    pretrain_epochs : epochs of autoencoder pre-training.
    pretrain_embedding : ``"tsne"`` (default: what this model's benchmarks measured),
        ``"umap"`` or ``"auto"`` (t-SNE below 4,096 points, UMAP from there), see
        :func:`pyro_gmvae.pretrain.cluster_codes`.

    Dynamic binarization is the default (over five seeds of ``benchmarks/mutual_learning.py``
    grey levels scored mean ACC 0.900 against 0.905, with paired differences of both signs).
    """
        + COMMON_DOC
        + """
    Also ``gmm_`` (the GibbsGMM of the kept round, fitted on its latents), ``labels_`` (its
    clusters of the training points), ``cluster_weights_``, ``best_round_``, ``rounds_`` (one
    dict per round: the mixture ELBO, the GMM's mean log joint, how many of its chains agreed
    (``chains_used``), ACC/NMI/ARI when labels are given) and ``gibbs_history_`` (one dict per
    sweep, with its round). ``history_`` rows carry their ``round``; their ``train_elbo`` is the
    ELBO under the mixture prior (``loss`` is the training objective).
    """
    )

    _pretrain = staticmethod(pretrain_mixture_prior)

    def __init__(
        self,
        n_clusters: int = 10,
        prior_mode: str = "mixture",
        n_rounds: int = 5,
        latent_dim: int = 10,
        hidden_dims: Sequence[int] = (512, 512),
        likelihood: Any = "bernoulli",
        z_guide: Any = "diagonal",
        covariance_type: str = "full",
        gibbs_sweeps: int = 200,
        gibbs_burn_in: int = 100,
        gibbs_chains: int = 2,
        init: str = "pretrain",
        pretrain_epochs: int = 15,
        pretrain_embedding: str = "tsne",
        epochs: int = 10,
        batch_size: int = 64,
        lr: float = 1e-3,
        binarize: bool = True,
        seed: int = 0,
        accelerator: str = "auto",
        devices: Any = 1,
        strategy: Any = "auto",
        num_nodes: int = 1,
        progress_bar: bool = True,
        monitor_size: int | None = 2000,
    ) -> None:
        self.n_clusters = n_clusters
        self.prior_mode = prior_mode
        self.n_rounds = n_rounds
        self.z_guide = z_guide
        self.covariance_type = covariance_type
        self.gibbs_sweeps = gibbs_sweeps
        self.gibbs_burn_in = gibbs_burn_in
        self.gibbs_chains = gibbs_chains
        self.init = init
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_embedding = pretrain_embedding
        super().__init__(**base_params(locals()))

    def _check_params(self) -> None:
        super()._check_params()
        check_positive_int("n_clusters", self.n_clusters)
        if self.n_clusters < 2:
            raise ValueError(f"n_clusters must be at least 2, got {self.n_clusters}")
        check_positive_int("n_rounds", self.n_rounds)
        if self.monitor_size == 0:
            raise ValueError(
                "VAEGMM keeps the round whose ELBO is highest on the monitored points: "
                "monitor_size must be positive (or None: all points)"
            )
        if self.prior_mode not in PRIOR_MODES:
            raise ValueError(f"prior_mode must be 'assigned' or 'mixture', got {self.prior_mode!r}")
        if self.init not in ("pretrain", "random"):
            raise ValueError(f"init must be 'pretrain' or 'random', got {self.init!r}")
        check_positive_int("pretrain_epochs", self.pretrain_epochs)
        check_embedding(self.pretrain_embedding)
        self._make_gmm(self.seed)  # checks the Gibbs settings

    def _make_gmm(self, seed: int) -> GibbsGMM:
        return GibbsGMM(
            self.n_clusters,
            covariance_type=self.covariance_type,
            n_sweeps=self.gibbs_sweeps,
            burn_in=self.gibbs_burn_in,
            n_chains=self.gibbs_chains,
            warm_start=True,
            seed=seed,
            progress_bar=self.progress_bar,
        )

    def _build(self, x_dim: int) -> VAEGMMModule:
        return VAEGMMModule(
            x_dim,
            self.n_clusters,
            self.prior_mode,
            latent_dim=self.latent_dim,
            hidden_dims=tuple(self.hidden_dims),
            likelihood=self.likelihood,
            z_guide=self.z_guide,
        )

    # ----------------------------------------------------------------------------- fitting
    def fit(self, X, y=None, *, run_dir: str | Path | None = None, ckpt_path=None):
        """Fit the VAE and the mixture in ``n_rounds`` rounds (labels ``y``, if given, are only
        used to log ACC/NMI/ARI per round and per sweep; ``X`` as for the other estimators,
        data on disk included). With ``run_dir``, ``metrics.csv``
        (per epoch), ``rounds.csv`` and ``gibbs.csv`` are written there after every round."""
        if ckpt_path is not None:
            raise ValueError(
                "VAEGMM fits in rounds of VAE training and Gibbs sampling and does not resume "
                "from a checkpoint: fit again"
            )
        self._check_params()
        X = self._data(X, fitting=True)
        labels = self._labels(X, y)
        self._check_run_dir(run_dir, None)
        history: list[dict] = []
        rounds: list[dict] = []
        gibbs: list[dict] = []
        best: dict[str, Any] = {}
        with local_seed(self.seed):
            module = self._build(X.shape[1])
            gmm = self._make_gmm(self.seed)
            start = time.perf_counter()
            if self.init == "pretrain":
                assignments = self._run_pretrain(module, X).argmax(1)
                module.prior.assignments = torch.as_tensor(assignments)
                gmm.set_params(init=assignments)
            self.pretrain_seconds_ = time.perf_counter() - start
            X_monitor, labels_monitor = self._monitor_data(X, labels)
            indices = torch.arange(len(X))
            for r in range(1, self.n_rounds + 1):
                plan = TrainingPlan(
                    module,
                    svi_loss(module, module.elbo()),
                    lr=self.lr,
                    binarize=self.binarize,
                    config=self.configuration(fit_settings=False),
                )
                monitor = EpochMetricsCallback(
                    X_monitor, None, monitor_terms, self.seed, record_start=r == 1
                )
                rows = train(
                    plan,
                    make_loader((X, indices), self.batch_size, self.seed * 1009 + r),
                    self.epochs,
                    callbacks=[monitor],
                    phase=f"round {r}/{self.n_rounds}: VAE",
                    **self._devices(),
                )
                if r == 1:  # before any SVI: what pre-training reached
                    start_metrics = monitor.start
                for row in rows:
                    row.update(round=r, epoch=row["epoch"] + (r - 1) * self.epochs)
                history += rows
                module.cpu()
                means, variances = self._codes(module, X)
                gmm.set_params(seed=(self.seed * 1009 + r) % 2**31)
                gmm._phase = f"round {r}/{self.n_rounds}: Gibbs"
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ChainDisagreementWarning)
                    gmm.fit(means, labels)
                gibbs += [{"round": r, **row} for row in gmm.history_]
                self._hand_over(module, gmm, variances)
                summary = {
                    "round": r,
                    "elbo": self._mixture_elbo(module, X_monitor),
                    "log_joint": float(gmm.draws_["log_joint"].mean()),
                    "chains_used": len(gmm.chains_),
                }
                for warning in caught:  # other warnings pass on; the chains are in the log
                    if not issubclass(warning.category, ChainDisagreementWarning):
                        warnings.showwarning(
                            warning.message, warning.category, warning.filename, warning.lineno
                        )
                if labels is not None:
                    summary.update(clustering_scores(labels, gmm.labels_))
                rounds.append(summary)
                if not best or _better(summary["elbo"], best["elbo"]):
                    best = {
                        "elbo": summary["elbo"],
                        "round": r,
                        "state": copy.deepcopy(module.state_dict()),
                        "gmm": copy.deepcopy(gmm),
                    }
                if run_dir is not None and is_global_zero():
                    self._write_logs(Path(run_dir), history, rounds, gibbs)
        module.load_state_dict(best["state"])  # the prior's mixture too, not its assignments
        self.gmm_ = best["gmm"]
        module.prior.assignments = torch.as_tensor(self.gmm_.labels_)
        self.module_ = module.eval()
        self.history_, self.rounds_, self.gibbs_history_ = history, rounds, gibbs
        self.start_metrics_ = start_metrics
        self.best_round_ = best["round"]
        self.labels_ = self.gmm_.labels_
        self.cluster_weights_ = cluster_weights(self.labels_, self.n_clusters, stacklevel=3)
        return self

    @torch.no_grad()
    def _codes(self, module: VAEGMMModule, X: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The encoder's means (what the GMM clusters) and variances (the diagonal of
        q(z | x)'s covariance; for a flow guide, estimated from 32 draws) of every point."""
        module.eval()

        def variance(x):
            q = module.q_z(x)
            try:
                return q.variance
            except NotImplementedError:
                return q.sample((32,)).var(0)

        means = self._batched(module.latent_mean, X).numpy()
        variances = self._batched(variance, X).numpy()
        module.train()
        return means, variances

    @staticmethod
    def _hand_over(module: VAEGMMModule, gmm: GibbsGMM, variances: np.ndarray) -> None:
        """Give the VAE the GMM's mixture as its prior. Cluster k's covariance is the GMM's
        (the spread of its points' encoder means) plus the mean encoder variance of its points:
        the covariance of the codes z ~ q(z | x) of the cluster, and the Gaussian closest to
        them in KL. The GMM's covariance alone is narrower than the codes it stands for, and the
        latent space would shrink round after round."""
        K = gmm.n_components
        labels = gmm.labels_
        counts = np.bincount(labels, minlength=K)[:, None]
        sums = np.zeros((K, variances.shape[1]))
        np.add.at(sums, labels, variances)
        mean_variance = np.where(counts > 0, sums / np.maximum(counts, 1), variances.mean(0))
        covariances = gmm.covariances_.copy()
        if covariances.ndim == 3:
            covariances += np.stack([np.diag(v) for v in mean_variance])
        else:
            covariances += mean_variance
        module.prior.set_mixture(gmm.means_, covariances, gmm.weights_, assignments=labels)

    def _mixture_elbo(self, module: VAEGMMModule, X_monitor: torch.Tensor) -> float:
        """The mean ELBO under the mixture prior on the monitor subset: a bound on log p(x) of
        the round's VAE and mixture, comparable across rounds."""
        with local_seed(self.seed):
            return monitor_terms(module, X_monitor, terms_size=None)["terms"]["train_elbo"]

    @staticmethod
    def _write_logs(folder: Path, history: list, rounds: list, gibbs: list) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, rows in (("metrics", history), ("rounds", rounds), ("gibbs", gibbs)):
            files.write_text(folder / f"{name}.csv", _csv_text(rows))

    # ----------------------------------------------------------------------------- inference
    def predict_proba(self, X) -> np.ndarray:
        """The GMM's p(c = k | z) at the latent means, averaged over its kept draws: (N, K)."""
        self._check_fitted()
        return self.gmm_.predict_proba(self.transform(X))

    @torch.no_grad()
    def sample(
        self, n_samples: int = 1, cluster: int | None = None, seed: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw z from the mixture (or from the Gaussian of ``cluster``) and decode it: the mean
        of p(x | z). Returns ``(X, clusters)``; ``seed`` gives the draws a generator of their
        own (the caller's random state is left alone)."""
        self._check_fitted()
        prior = self.module_.prior

        def generate(clusters: torch.Tensor) -> torch.Tensor:
            z = torch.distributions.MultivariateNormal(
                prior.means[clusters], scale_tril=prior.scale_tril[clusters]
            ).sample()
            return self.module_.likelihood.mean(self.module_.decoder(z))

        return self._sample(n_samples, cluster, seed, prior.log_weights, generate)

    # ----------------------------------------------------------------------------- persistence
    def _fitted_state(self) -> dict[str, Any]:
        state = {k: v for k, v in super()._fitted_state().items() if k != "gmm_"}
        state["gmm_"] = self.gmm_.to_state()
        return state

    def _restore_fitted(self, fitted: dict[str, Any]) -> None:
        fitted = dict(fitted)
        self.gmm_ = GibbsGMM.from_state(fitted.pop("gmm_"))
        if self.init == "pretrain" and isinstance(self.gmm_.init, str):
            # a file from before init existed (pre-training hands the GMM its assignments)
            self.init = "random"
        super()._restore_fitted(fitted)
        # the weights carry the prior's mixture; its per-point assignments are the GMM's labels
        self.module_.prior.assignments = torch.as_tensor(self.gmm_.labels_)


def _better(elbo: float, best: float) -> bool:
    """Whether a round's ELBO beats the best so far; a NaN never beats a number."""
    return not math.isnan(elbo) and (math.isnan(best) or elbo > best)
