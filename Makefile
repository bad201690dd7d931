.PHONY: install lint format test bench bench-priors bench-mutual bench-ar bench-dilok study-dilok strip

install:
	python -m pip install -e ".[dev]"

lint:
	ruff check pyro_gmvae tests benchmarks scripts notebooks
	ruff format --check pyro_gmvae tests benchmarks scripts

format:
	ruff check --fix pyro_gmvae tests benchmarks scripts notebooks
	ruff format pyro_gmvae tests benchmarks scripts

test:
	python -m pytest

# REFERENCE=DIR (a checkout of jariasf/GMVAE) adds the reference's rows and speed comparisons
bench:
	OMP_WAIT_POLICY=PASSIVE python benchmarks/gmvae_mnist_test.py $(REFERENCE:%=--reference %)

# Two one-thread shards (one per core) fill the run cache; the last call publishes the table.
bench-priors:
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/priors_guides.py --shard 0/2 & \
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/priors_guides.py --shard 1/2; wait
	OMP_WAIT_POLICY=PASSIVE python benchmarks/priors_guides.py

# Two one-thread shards share the run cache; the last call adds the Gibbs speed and publishes.
bench-mutual:
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/mutual_learning.py --shard 0/2 --only quality & \
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/mutual_learning.py --shard 1/2 --only quality; wait
	OMP_WAIT_POLICY=PASSIVE python benchmarks/mutual_learning.py

bench-ar:
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/ar_mixture.py

# 30 epochs of MNIST-test per fit (the estimator's default is the paper's 100): the CPU budget
bench-dilok:
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/dilokthanakul.py --epochs 30 --shard 0/2 & \
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/dilokthanakul.py --epochs 30 --shard 1/2; wait
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/dilokthanakul.py --epochs 30

study-dilok:
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/dilokthanakul_study.py

# Notebooks are committed without outputs.
strip:
	python scripts/strip_notebooks.py notebooks/*.ipynb
