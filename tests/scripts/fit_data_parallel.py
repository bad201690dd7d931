"""Fit an estimator from a script, as data-parallel training needs (Lightning's "ddp" runs the
script once per device); the first process saves the model and its history.

    python fit_data_parallel.py OUT MODEL DEVICES BATCH_SIZE

MODEL: "ae" (256 digits, BATCH_SIZE per process) or "ar" (a simulated series of 401
steps, the whole series per step: each process takes half of it). (Several machines are
tested through the command line: test_data_parallel.py.)
"""

import json
import sys
from pathlib import Path

from pyro_gmvae import AE, ARMixture, load_digits, simulate_ar_mixture
from pyro_gmvae.training import is_global_zero

out, model, devices, batch_size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
where = dict(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto")
if model == "ar":
    data = simulate_ar_mixture(401, 2, 2, seed=0).series  # 400 transitions: equal halves
    estimator = ARMixture(n_components=2, epochs=20, seed=0, progress_bar=False, **where)
else:
    data = load_digits().subset(256, seed=0).X
    estimator = AE(binarize=False, latent_dim=4, hidden_dims=(32,), epochs=3,
                   batch_size=batch_size, seed=0, progress_bar=False, **where)  # fmt: skip
estimator.fit(data)
estimator.save(out / "model.pt")  # written by the first process only
if is_global_zero():
    (out / "history.json").write_text(json.dumps(estimator.history_))
