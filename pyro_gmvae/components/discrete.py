"""Ways to treat the discrete latent y: exact enumeration or a relaxed (Gumbel-softmax) sample."""

from __future__ import annotations

import copy
import math

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import ELBO, TraceEnum_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO
from torch import nn
from torch.distributions import constraints

_EMPTY = torch.Size()


class GumbelSoftmaxCategorical(dist.OneHotCategorical):
    """q(y | x) whose reparameterized sample is a Gumbel-softmax (relaxed one-hot) vector.

    It keeps the categorical's probabilities, so its KL to a categorical prior is the exact
    categorical KL (registered through the parent class): the relaxed sample is only what the
    networks downstream of y see. ``hard=True`` gives the straight-through variant: the forward
    value is one-hot, the gradient is the relaxed sample's.
    """

    has_rsample = True
    arg_constraints = {"logits": constraints.real_vector}
    support = constraints.simplex  # relaxed samples are simplex points, one-hot only when hard

    def __init__(
        self,
        logits: torch.Tensor,
        temperature: torch.Tensor,
        hard: bool = False,
        validate_args: bool | None = None,
    ) -> None:
        self.temperature = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
        self.hard = hard
        super().__init__(logits=logits, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        logits = self.logits.expand(batch_shape + self.event_shape)
        return type(self)(logits, self.temperature, self.hard, validate_args=False)

    def rsample(self, sample_shape: torch.Size = _EMPTY) -> torch.Tensor:
        relaxed = dist.RelaxedOneHotCategorical(self.temperature, logits=self.logits)
        soft = relaxed.rsample(sample_shape)
        if not self.hard:
            return soft
        index = soft.argmax(-1, keepdim=True)
        onehot = torch.zeros_like(soft).scatter_(-1, index, 1.0)
        return onehot - soft.detach() + soft

    def sample(self, sample_shape: torch.Size = _EMPTY) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


class DiscreteStrategy(nn.Module):
    """How a model's discrete latent y is sampled and which ELBO fits it."""

    name = "discrete"

    def elbo(self) -> ELBO:
        raise NotImplementedError

    def model_sample(self, name: str, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def guide_sample(self, name: str, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def on_epoch_end(self, epoch: int) -> None:
        """Hook for schedules (called with the number of finished epochs)."""


class Enumerate(DiscreteStrategy):
    """Sum y out exactly: y is enumerated in parallel in model and guide (``TraceEnum_ELBO``).

    The ELBO is exact in y: sum_y q(y|x) [log p(x|z_y) + log p(z_y|y) - log q(z_y|x,y)
    + log p(y) - log q(y|x)], with one reparameterized z_y per value of y.
    """

    name = "enumerate"

    def elbo(self) -> ELBO:
        return TraceEnum_ELBO(max_plate_nesting=1)

    def model_sample(self, name: str, logits: torch.Tensor) -> torch.Tensor:
        return pyro.sample(
            name, dist.OneHotCategorical(logits=logits), infer={"enumerate": "parallel"}
        )

    def guide_sample(self, name: str, logits: torch.Tensor) -> torch.Tensor:
        return pyro.sample(
            name, dist.OneHotCategorical(logits=logits), infer={"enumerate": "parallel"}
        )


class Relaxed(DiscreteStrategy):
    """A Gumbel-softmax sample of y with an annealed temperature (``TraceMeanField_ELBO``).

    Objective (the Gumbel-softmax GMVAE's): with y~ a relaxed sample of q(y|x),
    E[log p(x|z)] - KL(q(z|x,y~) || p(z|y~)) - KL(q(y|x) || p(y)), the last KL exact.
    Using relaxed densities for y itself clusters poorly, so the relaxed sample is only fed to
    the networks. Temperature after epoch e: max(initial * exp(-decay_rate * e), minimum).
    """

    name = "relaxed"

    def __init__(
        self,
        temperature: float = 1.0,
        min_temperature: float = 0.5,
        decay_rate: float = 0.013862944,
        hard: bool = False,
    ) -> None:
        super().__init__()
        if not 0 < min_temperature <= temperature:
            raise ValueError(
                "need 0 < min_temperature <= temperature, got "
                f"min_temperature={min_temperature}, temperature={temperature}"
            )
        if decay_rate < 0:
            raise ValueError(f"decay_rate must be >= 0, got {decay_rate}")
        self.initial_temperature = float(temperature)
        self.min_temperature = float(min_temperature)
        self.decay_rate = float(decay_rate)
        self.hard = bool(hard)
        # A buffer, so checkpoints carry the current temperature.
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def temperature_at(self, epoch: int) -> float:
        """The annealed temperature after ``epoch`` finished epochs."""
        return max(
            self.initial_temperature * math.exp(-self.decay_rate * epoch), self.min_temperature
        )

    def on_epoch_end(self, epoch: int) -> None:
        self.temperature.fill_(self.temperature_at(epoch))

    def elbo(self) -> ELBO:
        return TraceMeanField_ELBO()

    def model_sample(self, name: str, logits: torch.Tensor) -> torch.Tensor:
        # validate_args=False: the value replayed from the guide is a relaxed vector.
        return pyro.sample(name, dist.OneHotCategorical(logits=logits, validate_args=False))

    def guide_sample(self, name: str, logits: torch.Tensor) -> torch.Tensor:
        return pyro.sample(name, GumbelSoftmaxCategorical(logits, self.temperature, self.hard))


class ScoreFunctionELBO(TraceGraph_ELBO):
    """``TraceGraph_ELBO`` with a ``differentiable_loss``, so any torch optimiser can use it: its
    value is the negative ELBO and its gradient that of Pyro's score-function surrogate. After
    each call it moves ``strategy``'s baseline toward the batch's mean ELBO per point."""

    def __init__(self, strategy: ScoreFunction) -> None:
        super().__init__()
        self.strategy = strategy

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        # Pyro exposes the surrogate only through loss_and_grads, which calls backward itself.
        elbo, surrogate_loss = self._loss_and_surrogate_loss(model, guide, args, kwargs)
        # y sits upstream of every other site, so its downstream cost is the whole ELBO per point
        self.strategy.update_baseline(torch.as_tensor(elbo).detach() / args[0].shape[0])
        return surrogate_loss + (-elbo - surrogate_loss).detach()


class ScoreFunction(DiscreteStrategy):
    """Sample y from q(y|x) and learn q(y|x) with the score-function (REINFORCE) estimator
    (``TraceGraph_ELBO``, which uses the downstream cost as the learning signal). Unbiased for
    the ELBO, but with a far noisier gradient than enumeration: here for comparison.

    The learning signal is centred by a baseline: an exponential moving average (weight
    ``baseline_beta`` on the old value) of the mean ELBO per point, one scalar kept as a buffer
    of this module, so it lives in the model's ``state_dict`` and checkpoints (a resumed fit
    continues with it) and batches may differ in size.
    """

    name = "score-function"

    def __init__(self, baseline_beta: float = 0.9) -> None:
        super().__init__()
        if not 0 <= baseline_beta < 1:
            raise ValueError(f"baseline_beta must be in [0, 1), got {baseline_beta}")
        self.baseline_beta = float(baseline_beta)
        self.register_buffer("baseline", torch.zeros(()))
        self.register_buffer("baseline_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update_baseline(self, mean_elbo: torch.Tensor) -> None:
        """Fold one batch's mean ELBO per point into the moving average (the first batch sets
        it)."""
        beta = self.baseline_beta if int(self.baseline_updates) > 0 else 0.0
        self.baseline.mul_(beta).add_((1 - beta) * mean_elbo.to(self.baseline))
        self.baseline_updates.add_(1)

    def elbo(self) -> ELBO:
        return ScoreFunctionELBO(self)

    def model_sample(self, name: str, logits: torch.Tensor) -> torch.Tensor:
        return pyro.sample(name, dist.OneHotCategorical(logits=logits))

    def guide_sample(self, name: str, logits: torch.Tensor) -> torch.Tensor:
        baseline = {"baseline_value": self.baseline.to(logits).expand(logits.shape[:-1])}
        return pyro.sample(
            name, dist.OneHotCategorical(logits=logits), infer={"baseline": baseline}
        )


def make_discrete(spec: str | DiscreteStrategy, **kwargs) -> DiscreteStrategy:
    """A discrete-latent strategy by name: ``"enumerate"``, ``"relaxed"``, ``"straight-through"``
    or ``"score-function"`` (relaxed ones take the temperature schedule's keyword arguments), or
    a fresh copy of an instance (so fits never share its state)."""
    if isinstance(spec, DiscreteStrategy):
        return copy.deepcopy(spec)
    if spec == "enumerate":
        return Enumerate()
    if spec == "relaxed":
        return Relaxed(**kwargs)
    if spec == "straight-through":
        return Relaxed(hard=True, **kwargs)
    if spec == "score-function":
        return ScoreFunction()
    raise ValueError(
        f"unknown discrete mode {spec!r}; choose 'enumerate', 'relaxed', 'straight-through' "
        "or 'score-function'"
    )
