import os
import warnings
from pathlib import Path

import pytest
import torch

from pyro_gmvae.data import find_mnist_test_dir, load_digits

# Small CPU work: one thread avoids OpenMP spin-waiting on shared 2-core machines.
torch.set_num_threads(1)
warnings.filterwarnings("ignore", message=".*does not have many workers.*")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def digits_small():
    """240 real digits (scikit-learn), enough for fast fits."""
    return load_digits().subset(240, seed=0)


@pytest.fixture(scope="session")
def mnist_dir():
    folder = find_mnist_test_dir()
    if folder is None:
        pytest.skip("MNIST-test not found: set PYRO_GMVAE_MNIST or provide ../shared/data/mnist")
    return folder


@pytest.fixture
def trained_epochs(monkeypatch):
    """The SVI epochs that actually run from now on (a resume must run only the missing ones)."""
    from pyro_gmvae import training

    epochs = []
    original = training.DiscreteScheduleCallback.on_train_epoch_end

    def record(self, trainer, pl_module):
        epochs.append(trainer.current_epoch + 1)
        original(self, trainer, pl_module)

    monkeypatch.setattr(training.DiscreteScheduleCallback, "on_train_epoch_end", record)
    return epochs


def tiny_kwargs(**overrides):
    """A small, fast GMVAE configuration for tests: a random start and the diagonal prior, which
    these tests were written for (the default full-covariance prior has tests of its own)."""
    kw = dict(
        n_clusters=3,
        prior="learned-mixture",
        latent_dim=4,
        hidden_dims=(32,),
        epochs=2,
        batch_size=64,
        seed=0,
        init="random",
        progress_bar=False,
    )
    kw.update(overrides)
    return kw


os.environ.setdefault("PYRO_GMVAE_QUICK", "1")
