"""ArviZ ``InferenceData`` for every model, and NUTS for the AR mixture's global parameters.

* ``GibbsGMM``: the sampler's own draws (:meth:`~pyro_gmvae.GibbsGMM.to_inference_data`).
* ``ARMixture``: draws of its globals, from NUTS (:func:`ar_nuts`, z_t summed out) or from a
  fitted ``global_guide="normal"`` (the variational posterior); with ``log_likelihood`` per
  transition, one-step ``posterior_predictive`` replicates and the ``observed_data``. With
  Markov-switching regimes (``switching`` joins the posterior) a transition's log-likelihood
  is the one-step log p(x_t | x_1..t-1), which sums to the series' log-likelihood, and its
  replicate draws z_t from p(z_t | x_1..t-1). Caveat: PSIS-LOO and WAIC treat these terms as
  exchangeable points, which the steps of one series are not (leaving one out does not remove
  its influence on the regimes around it): use them to compare fits on the same series, and a
  held-out stretch (``choose_k`` with ``X_test``) to judge forecasts.
* The amortized models (GMVAE, VAE, AE, VAEGMM, DilokthanakulGMVAE): ``posterior`` holds draws
  of each point's z from the guide, and ``posterior_predictive`` one replicate of x decoded
  from each of them (replicate i from draw i). The networks are point estimates (the
  posterior over the global parameters is a point mass), so log p(x_i | theta) is the same in
  every draw: the ``log_likelihood`` group holds the importance-weighted estimate of
  log p(x_i) for each point, repeated over the draws. Pass held-out data (on the training
  data it is optimistic). Then ``az.loo`` and ``az.waic`` both return exactly the sum of
  these, with p_loo = p_waic = 0: the held-out expected log predictive density, and
  ``az.compare`` ranks models fitted on the same data by it, with paired standard errors.
  Caveats: ArviZ warns that the Pareto shape is high (it reports k = inf): with equal draws
  the importance ratios are constant and k is not defined, so the warning says nothing here;
  the IW estimate is a lower bound whose gap depends on the guide and on ``n_samples``, so
  compare models with the same, large ``n_samples`` on the same held-out points; with a
  Bernoulli likelihood on grey levels it is a cross-entropy (a warning says so).
* ``ARMixture`` draws from ``global_guide="normal"`` are independent draws of the variational
  posterior q, shown as two chains: r_hat is near 1 by construction, and PSIS-LOO on them is
  LOO under q, not under the exact posterior (``ar_nuts`` samples that).
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch
from pyro.infer import MCMC, NUTS, Predictive
from pyro.infer.autoguide.initialization import init_to_value

from ..checks import check_int, check_positive_int
from ..estimators.base import LatentEstimator
from ..gmm import GibbsGMM
from ..gmm.sampler import match_labels
from ..timeseries import ARMixture
from ..timeseries.series import Series, as_series
from ..training import local_seed
from .likelihood import ar_transition_terms
from .posterior import (
    ar_replicates,
    fitted_module,
    globals_of_draws,
    guide_draws_and_replicates,
    module_local_params,
)


def _arviz():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # ArviZ's refactor notice
        import arviz as az
    return az


def to_inference_data(estimator, X, n_draws: int = 100, n_samples: int = 100, seed: int = 0):
    """An ``arviz.InferenceData`` of the fitted ``estimator`` on data ``X`` (see the module's
    docstring for what each model's groups hold). ``n_draws``: draws per chain of an
    ``ARMixture``'s ``AutoNormal`` posterior (two chains), or draws of z and
    posterior-predictive replicates of the amortized models (n_draws x N x n_features
    numbers); ``n_samples``: importance samples per point for the amortized models'
    log-likelihood (the more, the tighter the bound: use the same, large number for every
    model compared). A ``GibbsGMM`` gives its own kept draws and uses neither. Seeded by
    ``seed``."""
    check_positive_int("n_draws", n_draws)
    if isinstance(estimator, GibbsGMM):
        return estimator.to_inference_data(X, seed=seed)
    if isinstance(estimator, ARMixture):
        return _ar_variational(estimator, X, n_draws, seed)
    if isinstance(estimator, LatentEstimator):
        return _amortized(estimator, X, n_draws, n_samples, seed)
    raise TypeError(f"no InferenceData for {type(estimator).__name__}")


def _amortized(estimator, X, n_draws: int, n_samples: int, seed: int):
    az = _arviz()
    log_lik = estimator.log_likelihood(X, n_samples=n_samples, seed=seed).astype(np.float64)
    module, data = fitted_module(estimator, X)
    with local_seed(seed), torch.no_grad():  # replicate i is decoded from draw i of z
        latent, replicates = guide_draws_and_replicates(module, data, n_draws)
    z, replicates = latent["z"].numpy(), replicates.numpy()
    return az.from_dict(
        posterior={"z": z[None]},  # the local latents, q(z | x)
        # the networks are point estimates: every draw has the same likelihood
        log_likelihood={"x": np.broadcast_to(log_lik, (1, n_draws, len(log_lik)))},
        posterior_predictive={"x": replicates[None]},
        observed_data={"x": data.numpy()},
        dims={"x": ["point", "feature"], "z": ["point", "latent"]},
    )


# ------------------------------------------------------------------------------ AR mixture
def _ar_groups(draws: dict[str, torch.Tensor], module, series: Series, seed: int):
    """The InferenceData of an AR mixture from draws of its globals, each (C, S, ...). Label
    switching is undone: each draw's regimes are renamed to agree best (Hungarian matching of
    the transitions' most probable regimes) with those of the fit's point estimates."""
    az = _arviz()
    C, S = draws["weights"].shape[:2]
    K = draws["weights"].shape[-1]
    flat = {k: v.reshape(C * S, *v.shape[2:]) for k, v in draws.items()}
    every = globals_of_draws(module, flat)
    prev, nxt = series.transitions()
    names = ["weights", "transition_matrices", "covariance", "log_lik", "x"]
    out: dict[str, list] = {name: [] for name in names + ["switching"]}
    with local_seed(seed), torch.no_grad():
        _, reference, _ = ar_transition_terms(module.point_globals(), series, module.markov)
        for i in range(C * S):
            g = {name: value[i] for name, value in every.items()}
            tril = g["scale_tril"]
            log_lik, labels, before = ar_transition_terms(g, series, module.markov)
            order = match_labels(labels[None], reference, K)[0]  # draw's regime order[j] -> j
            Pi = g["transition_matrices"]
            z = torch.distributions.Categorical(probs=before).sample()  # one-step replicates
            out["x"].append(ar_replicates(Pi, tril, z, prev))
            out["log_lik"].append(log_lik)
            out["weights"].append(g["weights"][order])
            out["transition_matrices"].append(Pi[order])
            out["covariance"].append(tril @ tril.T)
            if module.markov:
                out["switching"].append(g["switching"][order][:, order])

    def shaped(values):
        return torch.stack(values).reshape(C, S, *values[0].shape).numpy()

    posterior = {name: shaped(out[name]) for name in names[:3]}
    dims = {
        "weights": ["regime"],
        "transition_matrices": ["regime", "row", "column"],
        "covariance": ["row", "column"],
        "x": ["transition", "dim"],
    }
    if module.markov:
        posterior["switching"] = shaped(out["switching"])
        dims["switching"] = ["regime", "next_regime"]
    return az.from_dict(
        posterior=posterior,
        log_likelihood={"x": shaped(out["log_lik"])},
        posterior_predictive={"x": shaped(out["x"])},
        observed_data={"x": nxt.numpy()},
        dims=dims,
    )


def _ar_variational(estimator: ARMixture, X, n_draws: int, seed: int):
    """Draws of the globals from the fitted mean-field Gaussian posterior (``"normal"``): two
    chains of ``n_draws`` independent draws."""
    estimator._check_fitted()
    if estimator.global_guide != "normal":
        raise ValueError(
            f"ARMixture(global_guide={estimator.global_guide!r}) has point estimates of its "
            "globals, no posterior draws: fit it with global_guide='normal', or sample the "
            "posterior with analysis.ar_nuts"
        )
    series = as_series(X, estimator.n_features_in_)
    module = estimator.module_
    args = _model_args(module, series)
    with local_seed(seed), torch.no_grad(), module_local_params():
        draws = Predictive(module.global_guide, num_samples=2 * n_draws)(*args)
    # independent draws, shown as two chains of n_draws (ArviZ's diagnostics want two or more)
    draws = {k: draws[k].reshape(2, n_draws, *draws[k].shape[1:]) for k in module._global_names()}
    return _ar_groups(draws, module, series, seed)


def _model_args(module, series: Series) -> tuple:
    """The AR module's model arguments for all of ``series`` (see ``ARMixtureModule``)."""
    if module.markov:
        return series.values, series.lengths, None
    return (*series.transitions(), None)


def ar_nuts(
    estimator: ARMixture,
    X,
    num_samples: int = 500,
    warmup_steps: int = 500,
    num_chains: int = 2,
    seed: int = 0,
    progress_bar: bool = False,
):
    """Sample the posterior of a fitted ``ARMixture``'s globals (p, Pi, Sigma) by NUTS, with
    z_t summed out of the likelihood, and return it as an ``arviz.InferenceData``.

    The priors are the estimator's (see ``ARMixtureModule.set_priors``: Dirichlet(1) on p,
    N(0, 1) on Pi, half-normal noise scales scaled to the data, LKJ(2) correlations); an
    estimator fitted without priors gets them here, on a copy (the noise scales' prior then
    has 5 times the fitted scales). Each chain starts at the fit's point estimates and runs
    ``warmup_steps`` then ``num_samples`` steps with its own seed (from
    ``numpy.random.SeedSequence(seed)``); chains started at one point cannot show that the
    posterior has other modes, so read r_hat as a check of mixing around this one. Label
    switching is undone as in :func:`to_inference_data`; divergent transitions are in
    ``sample_stats.diverging``. The fitted estimator is left as it was. Needs z_t summed out
    (``discrete="marginal"``, always so for Markov regimes); meant for small data (each step
    evaluates every transition: about 6 minutes for 2 chains of 500 steps on 300
    transitions, one thread).
    """
    estimator._check_fitted()
    if estimator.discrete != "marginal":
        raise ValueError("NUTS needs z_t summed out of the model: discrete='marginal'")
    for name, value in (("num_samples", num_samples), ("num_chains", num_chains)):
        check_positive_int(name, value)
    check_int("warmup_steps", warmup_steps, 0)
    chain_seeds = np.random.SeedSequence(seed).generate_state(num_chains)  # no overlaps
    series = as_series(X, estimator.n_features_in_)
    module = copy.deepcopy(estimator.module_)  # the user's fit keeps its parameters
    module.n_data = len(series.lengths) if module.markov else series.n_transitions
    args = _model_args(module, series)
    with local_seed(seed):
        if module.global_guide is None:
            module.set_priors("map", *args)  # priors; the guide starts at the fit
        with torch.no_grad(), module_local_params():
            start = {k: v.detach() for k, v in module.global_guide.median().items()}
    chains, diverging = [], []
    for chain in range(num_chains):
        with local_seed(int(chain_seeds[chain])):
            kernel = NUTS(
                module.model,
                max_plate_nesting=1,
                init_strategy=init_to_value(values=start),
                jit_compile=True,  # about 3 times faster (measured: 48 s against 135 s)
                ignore_jit_warnings=True,
            )
            mcmc = MCMC(
                kernel, num_samples, warmup_steps=warmup_steps, disable_progbar=not progress_bar
            )
            with warnings.catch_warnings(), module_local_params():
                warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit's notice
                mcmc.run(*args)
            chains.append(mcmc.get_samples())
            flags = np.zeros(num_samples, dtype=bool)
            flags[mcmc.diagnostics()["divergences"]["chain 0"]] = True
            diverging.append(flags)
    draws = {k: torch.stack([c[k] for c in chains]) for k in chains[0]}
    idata = _ar_groups(draws, module, series, seed)
    idata.add_groups(sample_stats={"diverging": np.stack(diverging)})
    return idata
