"""Plain torch building blocks. Nothing here knows about Pyro."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A fully connected network ``sizes[0] -> ... -> sizes[-1]`` with no activation at the end."""
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least an input and an output size, got {list(sizes)}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class ZeroLinear(nn.Linear):
    """A linear layer that starts as the zero map, so that a guide extending a simpler one (extra
    covariance terms on a diagonal Gaussian) starts as that simpler guide. ``xavier_init_``
    leaves it at zero."""

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


def xavier_init_(module: nn.Module) -> None:
    """Xavier-normal weights and zero biases for every linear layer (the reference GMVAE's init),
    except ``ZeroLinear`` layers, which keep their zero start."""
    for m in module.modules():
        if isinstance(m, nn.Linear) and not isinstance(m, ZeroLinear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class GaussianHead(nn.Module):
    """Maps features to the mean and variance of a diagonal Gaussian (variance via softplus)."""

    def __init__(self, in_features: int, out_features: int, min_var: float = 1e-6) -> None:
        super().__init__()
        self.loc = nn.Linear(in_features, out_features)
        self.var = nn.Linear(in_features, out_features)
        self.min_var = min_var

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loc(h), F.softplus(self.var(h)) + self.min_var


class ConditionalGaussianEncoder(nn.Module):
    """q(z | x, y) as an MLP on the concatenation [x, onehot(y)] (on x alone when ``y_dim=0``).

    The first layer is split into ``W_x x + W_y y``, which is the same affine map as a linear
    layer on the concatenation, but lets ``W_x x`` be computed once and broadcast against all K
    values of an enumerated y instead of K times.
    """

    def __init__(self, x_dim: int, y_dim: int, hidden_dims: Sequence[int], z_dim: int) -> None:
        super().__init__()
        if not hidden_dims:
            raise ValueError("hidden_dims must name at least one hidden layer")
        self.from_x = nn.Linear(x_dim, hidden_dims[0])
        self.from_y = nn.Linear(y_dim, hidden_dims[0], bias=False) if y_dim else None
        rest = mlp(hidden_dims) if len(hidden_dims) > 1 else nn.Sequential()
        self.trunk = nn.Sequential(nn.ReLU(), *rest, nn.ReLU())
        self.head = GaussianHead(hidden_dims[-1], z_dim)
        xavier_init_(self)  # layers that subclasses add keep their own start

    @torch.no_grad()
    def reset_y_input(self) -> None:
        """Zero the weights on y, so that the encoder's output no longer depends on y and equals
        its output at y = 0 (pre-training starts every cluster's q(z | x, y) there)."""
        if self.from_y is not None:
            self.from_y.weight.zero_()

    def features(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden layer's activations."""
        h = self.from_x(x)
        if self.from_y is not None:
            h = h + self.from_y(y)  # broadcasts x (N, H) against y (K, 1, H)
        return self.trunk(h)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.features(x, y))
