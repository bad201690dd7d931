r"""The autoregressive mixture of K Gaussians and its Markov-switching variant, as Pyro
model/guide pairs.

Model, for the transition of step t - 1 to step t of a series (d dimensions, K regimes)::

    i.i.d. regimes:   z_t ~ Cat(p)
    Markov regimes:   z_0 ~ Cat(p),  z_t | z_{t-1} ~ Cat(A[z_{t-1}])
    x_t | x_{t-1}, z_t ~ N(Pi_{z_t} x_{t-1}, Sigma),   Sigma = diag(s) C C^T diag(s)

with globals p (simplex), Pi (K, d, d), the noise scales s (d,) and, for a full covariance, the
Cholesky factor C of its correlation matrix. The globals are point estimates (``PyroParam``) or,
with :meth:`ARMixtureModule.set_priors`, random variables (sample sites) whose posterior an
autoguide approximates.

How z_t is treated (``discrete``):

- ``"marginal"``: summed out in the model (``TraceEnum_ELBO``); the guide has no z site, so the
  objective is the exact log-likelihood (plus the log prior of the globals, if any).
- ``"enumerate"``: a neural guide q(z_t | x_{t-1}, x_t), with z_t enumerated in the guide: the
  ELBO's expectation over z_t is exact.
- ``"relaxed"``: the same guide, with a Gumbel-softmax sample z~_t whose temperature is annealed;
  the model uses the mixed matrix sum_k z~_tk Pi_k (the objective of the seed's code: biased
  while the temperature is above 0), with the exact KL(q(z_t) || Cat(p)).

The Markov variant always sums the regimes out exactly, with Pyro's ``DiscreteHMM`` (a parallel
forward algorithm); :meth:`ARMixtureModule.markov_model` writes the same model with
``pyro.markov``, for ``infer_discrete`` and as a cross-check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.infer import ELBO, Trace_ELBO, TraceEnum_ELBO
from pyro.infer.autoguide import AutoDelta, AutoNormal, init_to_value
from pyro.nn import PyroModule, PyroParam, pyro_method
from pyro.ops.indexing import Vindex

from ..components.discrete import Enumerate, Relaxed
from ..nets import mlp
from .simulate import ARParameters

DISCRETE_MODES = ("marginal", "enumerate", "relaxed")
GLOBAL_GUIDES = {"map": AutoDelta, "normal": AutoNormal}


def _local(method: Callable) -> Callable:
    """A method run in the module's Pyro context (sampled globals are drawn once per call) with
    module-local parameters: two fitted models never share Pyro's global parameter store."""
    method = pyro_method(method)

    @functools.wraps(method)
    def run(*args, **kwargs):
        with pyro.settings.context(module_local_params=True):
            return method(*args, **kwargs)

    return run


class ARMixtureModule(PyroModule):
    """The model/guide pair (see the module's docstring).

    Arguments of ``model``/``guide``: i.i.d. regimes: ``(prev, nxt, index)``, the transitions'
    x_{t-1} and x_t (B, d) and their indices among all ``n_data`` transitions (for the
    subsampling plate); Markov regimes: ``(values, lengths, index)``, padded series
    (B, T, d), their lengths (B,) and indices among all ``n_data`` series."""

    def __init__(
        self,
        dim: int,
        n_components: int,
        init: ARParameters,
        covariance_type: str = "full",
        discrete: str = "marginal",
        markov: bool = False,
        hidden_dims: Sequence[int] = (64, 64),
        relaxed_options: dict | None = None,
    ) -> None:
        with pyro.settings.context(module_local_params=True):  # see _local
            super().__init__()
        if markov and discrete != "marginal":
            raise ValueError("the Markov-switching model sums its regimes out: discrete='marginal'")
        self.dim, self.n_components = dim, n_components
        # one dimension has no correlation matrix (and LKJ none to put a prior on)
        self.covariance_type = covariance_type if dim > 1 else "diag"
        self.markov, self.mode = markov, discrete
        # buffers, so that a saved model carries them: the data set's size (transitions, or
        # series for the Markov variant: the subsampling plate's size) and the scale of the
        # noise scales' prior (see set_priors)
        self.register_buffer("data_size", torch.tensor(1))
        self.register_buffer("noise_scale_prior", torch.ones(dim, dtype=torch.float64))
        if discrete == "enumerate":
            self.discrete = Enumerate()
        elif discrete == "relaxed":
            self.discrete = Relaxed(**(relaxed_options or {}))
        else:
            self.discrete = None
        f64 = torch.float64
        self.weights = PyroParam(torch.as_tensor(init.weights, dtype=f64), constraints.simplex)
        self.transition_matrices = PyroParam(torch.as_tensor(init.transition_matrices, dtype=f64))
        covariance = torch.as_tensor(init.covariance, dtype=f64)
        scale = covariance.diagonal().sqrt()
        self.noise_scale = PyroParam(scale, constraints.positive)
        if self.covariance_type == "full":
            correlation = covariance / scale.outer(scale)
            self.noise_correlation = PyroParam(
                torch.linalg.cholesky(correlation), constraints.corr_cholesky
            )
        if markov:
            self.switching = PyroParam(
                torch.as_tensor(init.switching_matrix, dtype=f64), constraints.simplex
            )
        self.encoder = None
        if self.discrete is not None:  # q(z_t | x_{t-1}, x_t)
            self.encoder = mlp([2 * dim, *hidden_dims, n_components]).double()
        self.global_guide: PyroModule | None = None

    @property
    def n_data(self) -> int:
        return int(self.data_size)

    @n_data.setter
    def n_data(self, value: int) -> None:
        self.data_size.fill_(value)

    # ------------------------------------------------------------------------------- globals
    @_local
    def set_priors(self, global_guide: str | Callable, *example: torch.Tensor) -> None:
        """Make the globals random variables with weakly informative priors and fit them with an
        autoguide: ``"map"`` (``AutoDelta``: the posterior mode), ``"normal"`` (``AutoNormal``:
        a mean-field Gaussian in the unconstrained space) or a factory ``f(model) ->
        AutoGuide``. Priors: p ~ Dirichlet(1), Pi_kij ~ N(0, 1), s_i ~ HalfNormal(5 x the
        current scale, i.e. the start's: a prior scaled to the data), C ~ LKJ(2),
        A[i] ~ Dirichlet(1). The guide starts at the current values. ``example``: a batch of
        model arguments, to create the guide's parameters."""
        start = {name: getattr(self, name).detach().clone() for name in self._global_names()}
        self.noise_scale_prior.copy_(5 * start["noise_scale"])
        for name in self._global_names():  # from now on drawn in globals(), from _priors()
            delattr(self, name)
        factory = GLOBAL_GUIDES[global_guide] if isinstance(global_guide, str) else global_guide
        exposed = poutine.block(self.model, expose=list(self._global_names()))
        self.global_guide = factory(exposed, init_loc_fn=init_to_value(values=start))
        self.global_guide(*example)  # autoguides create their parameters on the first call

    def _priors(self) -> dict[str, dist.Distribution]:
        """The globals' priors (see :meth:`set_priors`)."""
        K, d, f64 = self.n_components, self.dim, torch.float64
        ones = torch.ones(K, dtype=f64)
        priors = {
            "weights": dist.Dirichlet(ones),
            "transition_matrices": dist.Normal(torch.zeros(K, d, d, dtype=f64), 1.0).to_event(3),
            "noise_scale": dist.HalfNormal(self.noise_scale_prior).to_event(1),
        }
        if self.covariance_type == "full":
            priors["noise_correlation"] = dist.LKJCholesky(d, torch.tensor(2.0, dtype=f64))
        if self.markov:
            priors["switching"] = dist.Dirichlet(ones.expand(K, K)).to_event(1)
        return priors

    def _global_names(self) -> tuple[str, ...]:
        names = ["weights", "transition_matrices", "noise_scale"]
        if self.covariance_type == "full":
            names.append("noise_correlation")
        if self.markov:
            names.append("switching")
        return tuple(names)

    def scale_tril(self, noise_scale: torch.Tensor, correlation: torch.Tensor | None):
        """The Cholesky factor of Sigma from its scales and correlation factor."""
        if correlation is None:
            return torch.diag_embed(noise_scale)
        return noise_scale.unsqueeze(-1) * correlation

    def globals(self) -> dict[str, torch.Tensor]:
        """The globals: the point estimates, or (with priors) one draw of each: weights,
        transition matrices, scale_tril of Sigma and, for the Markov variant, the switching
        matrix."""
        if self.global_guide is None:
            g = {name: getattr(self, name) for name in self._global_names()}
        else:
            g = {name: pyro.sample(name, prior) for name, prior in self._priors().items()}
        out = {"weights": g["weights"], "transition_matrices": g["transition_matrices"]}
        out["scale_tril"] = self.scale_tril(g["noise_scale"], g.get("noise_correlation"))
        if self.markov:
            out["switching"] = g["switching"]
        return out

    # ------------------------------------------------------------------------------- model
    @_local
    def model(self, a: torch.Tensor, b: torch.Tensor, index: torch.Tensor | None = None):
        g = self.globals()
        if self.markov:
            return self._markov_forward(g, a, b, index)
        prev, nxt = a, b
        means = torch.einsum("kij,bj->bki", g["transition_matrices"], prev)  # (B, K, d)
        with pyro.plate("transitions", self.n_data, subsample=_subsample(index, prev)):
            logits = g["weights"].log().expand(len(prev), -1)
            if self.discrete is None:
                z = pyro.sample(
                    "z", dist.Categorical(logits=logits), infer={"enumerate": "parallel"}
                )
                loc = Vindex(means)[torch.arange(len(prev)), z]  # (B, d) or (K, B, d)
            else:
                z = self.discrete.model_sample("z", logits)  # one-hot, enumerated or relaxed
                loc = (z.unsqueeze(-1) * means).sum(-2)
            pyro.sample("x", dist.MultivariateNormal(loc, scale_tril=g["scale_tril"]), obs=nxt)

    def _markov_forward(self, g, values, lengths, index) -> None:
        with pyro.plate("series", self.n_data, subsample=_subsample(index, values)):
            pyro.sample("x", self.hmm(g, values, lengths), obs=values[:, 1:])

    def hmm(self, g: dict, values: torch.Tensor, lengths: torch.Tensor) -> dist.DiscreteHMM:
        """The Markov variant's distribution of x_1..T given x_0, one ``DiscreteHMM`` per
        series (batch (B,)), for globals ``g``. Padded steps get observation log-density 0;
        since the rows of A sum to 1, the steps after a series' end leave its marginal
        unchanged."""
        prev = values[:, :-1]
        means = torch.einsum("kij,btj->btki", g["transition_matrices"], prev)  # (B, T-1, K, d)
        steps = torch.arange(1, values.shape[1], device=values.device)
        inside = steps < lengths.unsqueeze(1)  # (B, T-1)
        observation = dist.MultivariateNormal(means, scale_tril=g["scale_tril"]).mask(
            inside.unsqueeze(-1)
        )
        return dist.DiscreteHMM(g["weights"].log(), g["switching"].log(), observation)

    @_local
    def markov_model(self, values: torch.Tensor, lengths: torch.Tensor) -> None:
        """The Markov variant written step by step with ``pyro.markov`` (as in Pyro's HMM
        example), for ``infer_discrete`` and as a cross-check: the same distribution as
        :meth:`model`, with the regimes of the transitions as enumerated sites ``z_1``,
        ``z_2``, ... (the unobserved z_0 summed out: z_1 ~ Cat(p A))."""
        g = self.globals()
        Pi, A = g["transition_matrices"], g["switching"]
        probs = g["weights"] @ A
        with pyro.plate("series", len(values), dim=-1):
            z = None
            for t in pyro.markov(range(1, values.shape[1])):
                probs_t = probs if z is None else A[z]
                enumerated = {"enumerate": "parallel"}
                z = pyro.sample(f"z_{t}", dist.Categorical(probs_t), infer=enumerated)
                loc = (Pi[z] @ values[:, t - 1].unsqueeze(-1)).squeeze(-1)
                with poutine.mask(mask=t < lengths):
                    pyro.sample(
                        f"x_{t}",
                        dist.MultivariateNormal(loc, scale_tril=g["scale_tril"]),
                        obs=values[:, t],
                    )

    # ------------------------------------------------------------------------------- guide
    @_local
    def guide(self, a: torch.Tensor, b: torch.Tensor, index: torch.Tensor | None = None):
        if self.global_guide is not None:
            self.global_guide(a, b, index)
        if self.discrete is None:
            return
        prev, nxt = a, b
        with pyro.plate("transitions", self.n_data, subsample=_subsample(index, prev)):
            self.discrete.guide_sample("z", self.encoder(torch.cat([prev, nxt], -1)))

    def elbo(self) -> ELBO:
        if self.markov:  # DiscreteHMM sums the regimes out itself: nothing left to enumerate
            return Trace_ELBO()
        if self.discrete is not None:
            return self.discrete.elbo()
        return TraceEnum_ELBO(max_plate_nesting=1)

    # ------------------------------------------------------------------------------- exact
    @_local
    def point_globals(self) -> dict[str, torch.Tensor]:
        """The globals' point estimates: the parameters themselves, or the autoguide's median."""
        if self.global_guide is None:
            with torch.no_grad():
                return {k: v.detach() for k, v in self.globals().items()}
        with torch.no_grad():
            median = self.global_guide.median()
            with poutine.condition(data=median):
                return {k: v.detach() for k, v in self.globals().items()}


def _subsample(index: torch.Tensor | None, data: torch.Tensor) -> torch.Tensor:
    """The batch's indices in the subsampling plate (all of it when not given)."""
    return torch.arange(len(data), device=data.device) if index is None else index
