"""The VAE half of VAE + GMM mutual learning: a VAE whose prior is a Gaussian mixture fitted to
its own latent codes (:class:`~pyro_gmvae.components.GaussianMixturePrior`)."""

from __future__ import annotations

import pyro
import torch

from ..components import GaussianMixturePrior
from .posterior import kl_or_estimate
from .vae import VAEModule

PRIOR_MODES = ("assigned", "mixture")


class VAEGMMModule(VAEModule):
    r"""VAE with a Gaussian-mixture prior handed over by a GMM.

    Generative process, for data point n::

        "mixture":   z_n ~ sum_k pi_k N(mu_k, Sigma_k)
        "assigned":  z_n ~ N(mu_{c_n}, Sigma_{c_n})   (c_n: the GMM's assignment of point n)
        x_n | z_n ~ p(x | decoder(z_n))

    Guide: q(z | x). The KL term is KL(q(z_n | x_n) || p(z_n)) per point, summed over the latent
    dimensions, in both modes: analytic against one Gaussian ("assigned"), a one-sample estimate
    against the mixture ("mixture"). ``model(x, index)`` takes the data indices of the batch,
    which pick each point's own Gaussian; without them (new data, scoring) the prior is the
    mixture.
    """

    def __init__(self, x_dim: int, n_components: int, prior_mode: str = "mixture", **kwargs):
        if prior_mode not in PRIOR_MODES:
            raise ValueError(f"prior_mode must be 'assigned' or 'mixture', got {prior_mode!r}")
        latent_dim = kwargs.get("latent_dim", 64)
        prior = GaussianMixturePrior.standard_normal(n_components, latent_dim)
        super().__init__(x_dim, prior=prior, **kwargs)
        self.prior_mode = prior_mode

    def _prior(self, index: torch.Tensor | None):
        return self.prior(index if self.prior_mode == "assigned" else None)

    def model(self, x: torch.Tensor, index: torch.Tensor | None = None) -> None:
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self._prior(index))
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

    def guide(self, x: torch.Tensor, index: torch.Tensor | None = None) -> None:
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.q_z(x))

    def elbo_terms(
        self, x: torch.Tensor, index: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-point reconstruction and KL terms; without ``index`` against the mixture (the
        model's bound on log p(x), comparable across rounds)."""
        q_z = self.q_z(x)
        z = q_z.rsample()
        return {
            "reconstruction": -self.likelihood(self.decoder(z)).log_prob(x),
            "kl_z": kl_or_estimate(q_z, self._prior(index), z),
        }
