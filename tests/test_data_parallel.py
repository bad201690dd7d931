"""Data-parallel training (Lightning's DDP, two CPU processes on gloo): each process its own
share of every global batch, each phase only its own parameters, one writer; and the pieces
of it that need no second process."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pyro_gmvae import AE, GMVAE, VAEGMM, ARMixture, load_digits
from pyro_gmvae.training import (
    EpochBatches,
    EpochShuffleSampler,
    TrainingPlan,
    _frozen_unused,
    check_strategy,
    make_loader,
)

SCRIPT = Path(__file__).parent / "scripts" / "fit_data_parallel.py"


def run(command, cwd):
    """Run ``command`` in a fresh process with one torch thread per process (two processes on
    this machine's two cores), failing the test with its output if it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                 "PYRO_GMVAE_RUN_DIR"):  # fmt: skip
        env.pop(name, None)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.parametrize("n", [1, 5, 63, 64, 65, 66, 127, 130, 1797])
@pytest.mark.parametrize("batch_size", [1, 2, 16])
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_each_process_takes_its_share_of_the_global_batch(n, batch_size, world_size):
    """Process r takes points r, r + W, ... of each global batch of W x batch_size: every
    process takes as many batches, none takes a point twice, together they take the single
    process's batches of the global size, and no process gets fewer than two points (one
    where batch_size is 1) where the data allow it."""
    if n < world_size:
        pytest.skip("fewer points than processes")
    single = list(EpochBatches(EpochShuffleSampler(n, 7), batch_size * world_size))
    shares = [
        EpochBatches(EpochShuffleSampler(n, 7), batch_size, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    batches = [list(share) for share in shares]
    assert [len(b) for b in batches] == [len(s) for s in shares] == [len(batches[0])] * world_size
    if len(batches[0]) == len(single) - 1:  # a last global batch too small to share joined
        assert len(single[-1]) < min(2, batch_size) * world_size  # the one before
        single = [*single[:-2], single[-2] + single[-1]]
    assert len(batches[0]) == len(single)
    for step, whole in enumerate(single):
        assert [batches[r][step] for r in range(world_size)] == [
            whole[r::world_size] for r in range(world_size)
        ]
    seen = sorted(i for b in batches for batch in b for i in batch)
    assert seen == list(range(n))
    smallest = min(len(batch) for b in batches for batch in b)
    assert smallest >= min(2, batch_size, n // world_size)


def test_fewer_samples_than_processes_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one sample .* per process"):
        list(EpochBatches(EpochShuffleSampler(1, 0), 4, rank=0, world_size=2))


def test_the_shares_change_every_epoch():
    shares = EpochBatches(EpochShuffleSampler(100, 0), 10, rank=1, world_size=2)
    first = list(shares)
    shares.set_epoch(1)
    assert list(shares) != first


def test_a_data_parallel_phase_trains_only_the_parameters_its_loss_reaches():
    """Inside a data-parallel phase the parameters that the loss does not use require no
    gradient (DDP would wait for theirs); afterwards they are as the caller left them, frozen
    ones too, and the probe moved no random state and no buffer."""
    used, unused, frozen = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    frozen.requires_grad_(False)
    module = torch.nn.ModuleList([used, unused, frozen])
    module.register_buffer("calls", torch.zeros(()))

    def loss(x):
        module.calls += 1
        return (used(x) + torch.randn_like(x)).pow(2).mean()

    plan = TrainingPlan(module, loss)
    loader = make_loader(torch.linspace(0, 1, 20).unsqueeze(1), 10, 0)
    torch.manual_seed(0)
    with _frozen_unused(plan, loader):
        assert [p.requires_grad for p in module.parameters()] == [True] * 2 + [False] * 4
        draw = torch.rand(1)
    assert [p.requires_grad for p in module.parameters()] == [True] * 4 + [False] * 2
    assert float(module.calls) == 0
    torch.manual_seed(0)
    assert torch.equal(draw, torch.rand(1))


@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_each_process_draws_its_own_noise(seed):
    """At the start of each phase the processes other than the first move to a stream of
    their own (same seed and rank, same stream), whatever the seed."""

    def draws(rank):
        plan = TrainingPlan(torch.nn.Linear(1, 1), lambda x: x.sum())
        plan._trainer = SimpleNamespace(global_rank=rank)
        torch.manual_seed(seed)
        plan.on_fit_start()
        return torch.rand(4)

    first, second = draws(0), draws(1)
    torch.manual_seed(seed)
    assert torch.equal(first, torch.rand(4))  # the first process keeps the stream
    assert not torch.equal(first, second) and torch.equal(second, draws(1))


def test_strategies_that_keep_the_fit_in_other_processes_are_refused():
    check_strategy(1, "auto")
    check_strategy([0], "auto")
    check_strategy(2, "ddp")
    for devices, strategy in [(2, "auto"), (2, "ddp_spawn"), (2, "ddp_fork"), (1, "ddp_notebook")]:
        with pytest.raises(ValueError, match="strategy='ddp'"):
            check_strategy(devices, strategy)
    with pytest.raises(ValueError, match="ddp_spawn"):
        GMVAE(devices=2, strategy="ddp_spawn").fit(torch.rand(20, 4))
    check_strategy(1, "ddp", num_nodes=3)
    with pytest.raises(ValueError, match="num_nodes=2"):
        check_strategy(1, "auto", num_nodes=2)  # several machines: data-parallel only
    with pytest.raises(ValueError, match="num_nodes must be positive"):
        ARMixture(num_nodes=0)
    for bad in (1.5, True):
        with pytest.raises(TypeError, match="num_nodes must be an integer"):
            GMVAE(num_nodes=bad)


def test_only_the_first_machines_first_process_writes(monkeypatch):
    """A process a user starts on another machine is rank 0 of its own until its fit starts:
    its machine's place (NODE_RANK, or GROUP_RANK) keeps it from writing."""
    from pyro_gmvae.training import is_global_zero, node_rank

    for name in ("NODE_RANK", "GROUP_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert node_rank() == 0 and is_global_zero()
    monkeypatch.setenv("GROUP_RANK", "2")
    assert node_rank() == 2 and not is_global_zero()
    monkeypatch.setenv("NODE_RANK", "0")
    assert node_rank() == 0 and is_global_zero()


def test_another_machines_process_trains_in_a_folder_that_holds_a_run(tmp_path, monkeypatch):
    """Only the writer refuses a run folder that holds a run: another machine's process trains
    in the folder the first writes (e.g. while the first replaces that run with --overwrite)."""
    (tmp_path / "metrics.csv").write_text("epoch\n")
    monkeypatch.delenv("NODE_RANK", raising=False)
    with pytest.raises(FileExistsError, match="already holds a run"):
        GMVAE()._check_run_dir(tmp_path, None)
    monkeypatch.setenv("NODE_RANK", "1")
    GMVAE()._check_run_dir(tmp_path, None)


def test_the_autoregressive_mixture_on_two_processes_fits_what_one_does(tmp_path):
    """ARMixture (exact marginal, point-estimated globals: no noise) on two processes, each
    with half of the transitions and the plate scaling its terms to the whole series, ends
    where one process with all of them does."""
    for name, devices in (("two", 2), ("one", 1)):
        (tmp_path / name).mkdir()
        run([sys.executable, str(SCRIPT), str(tmp_path / name), "ar", str(devices), "0"],
            tmp_path)  # fmt: skip
    two, one = (ARMixture.load(tmp_path / name / "model.pt") for name in ("two", "one"))
    for attribute in ("weights_", "transition_matrices_", "covariance_"):
        np.testing.assert_allclose(getattr(two, attribute), getattr(one, attribute), atol=1e-4)
    assert two.log_likelihood_ == pytest.approx(one.log_likelihood_, abs=1e-4)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["history.json", "model.pt"]


def test_two_processes_train_what_one_does_with_the_global_batch(tmp_path):
    """An autoencoder (no noise) on two processes of 16 points per batch ends where one
    process with batches of 32 does: the shares and the averaged gradients are right, the
    first process holds the trained weights and writes the only model file."""
    for name, devices, batch_size in (("two", 2, 16), ("one", 1, 32)):
        (tmp_path / name).mkdir()
        run([sys.executable, str(SCRIPT), str(tmp_path / name), "ae", str(devices),
             str(batch_size)], tmp_path)  # fmt: skip
    two, one = (AE.load(tmp_path / name / "model.pt") for name in ("two", "one"))
    for (name, a), (_, b) in zip(
        two.module_.state_dict().items(), one.module_.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4, msg=name)
    losses = [json.loads((tmp_path / n / "history.json").read_text()) for n in ("two", "one")]
    assert [row["epoch"] for row in losses[0]] == [1, 2, 3]
    assert losses[0][-1]["loss"] < losses[0][0]["loss"]
    for a, b in zip(*losses, strict=True):  # the logged loss: the processes' mean
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["history.json", "model.pt"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_on_nodes(command_for, cwd, nodes=2):
    """Run ``command_for(node)`` once per simulated machine, side by side, as a user starts a
    multi-machine run: each with its NODE_RANK, all with the first's address and port."""
    port = str(_free_port())
    processes = []
    for node in range(nodes):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "NODE_RANK": str(node),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}  # fmt: skip
        for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "PYRO_GMVAE_RUN_DIR"):
            env.pop(name, None)
        processes.append(
            subprocess.Popen(
                command_for(node),
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
        )
    for process in processes:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output[-3000:]


COMMAND_LINE = {
    "gmvae": ([], ["checkpoints", "checkpoints/last.ckpt"]),
    "vae-gmm": (
        "--model vae-gmm --rounds 2 --gibbs-sweeps 20 --gibbs-burn-in 10".split(),
        ["gibbs.csv", "rounds.csv"],
    ),
}


@pytest.mark.parametrize("model", list(COMMAND_LINE))
def test_the_command_line_trains_on_two_processes(model, tmp_path):
    """pyro-gmvae train --devices 2 --strategy ddp, a GMVAE and the mutual-learning VAE + GMM,
    both with pre-training: one run folder with one of each file, a falling loss, a model
    that loads in one process; the VAE + GMM run replaced with --overwrite leaves no staging
    folder behind; the GMVAE run stopped after two epochs and resumed (every process's random
    state kept in the checkpoint) ends where the uninterrupted one does; the GMVAE on two
    simulated machines of one device each trains what one machine of two does."""
    options, own_files = COMMAND_LINE[model]
    out = tmp_path / "run"
    command = [sys.executable, "-m", "pyro_gmvae.cli", "train", "--dataset", "digits", "--n",
               "300", "--epochs", "3", "--clusters", "3", "--latent-dim", "4", "--hidden", "32",
               "--pretrain-epochs", "2", "--no-progress", "--no-figures", "--accelerator", "cpu",
               "--devices", "2", "--strategy", "ddp", "--out", str(out), *options]  # fmt: skip
    run(command, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert names == sorted(["data.json", "metrics.csv", "model.pt", "summary.json", *own_files])
    rows = (out / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    losses = [float(row.split(",")[header.index("loss")]) for row in rows[1:]]
    assert len(losses) == 3 * (2 if model == "vae-gmm" else 1)  # each epoch once, per round
    assert losses[2] < losses[0]
    if model == "vae-gmm":  # a replaced run: staged beside it, written by the first alone
        run([*command, "--overwrite"], tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
        assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == names
    estimator = (VAEGMM if model == "vae-gmm" else GMVAE).load(out / "model.pt")
    if model == "gmvae":  # stopped after 2 epochs and resumed: the uninterrupted run's model
        again = tmp_path / "again"
        first = [str(again) if part == str(out) else part for part in command]
        run([*first, "--epochs", "2"], tmp_path)
        run([*first, "--epochs", "3", "--resume"], tmp_path)
        resumed = GMVAE.load(again / "model.pt").module_.state_dict()
        for name, value in estimator.module_.state_dict().items():
            torch.testing.assert_close(resumed[name], value, atol=1e-6, rtol=1e-5, msg=name)
        # two machines of one device each (the same command on both, NODE_RANK 0 and 1): the
        # two devices' run, in one run folder that the first machine alone writes
        # (the second machine is given a folder of its own here, to show it writes nothing)
        nodes, second = tmp_path / "nodes", tmp_path / "second"
        on_nodes = [str(nodes) if part == str(out) else part for part in command]
        on_nodes[on_nodes.index("--devices") + 1] = "1"
        per_node = [on_nodes, [str(second) if p == str(nodes) else p for p in on_nodes]]
        run_on_nodes(lambda node: [*per_node[node], "--num-nodes", "2"], tmp_path)
        assert sorted(str(p.relative_to(nodes)) for p in nodes.rglob("*")) == names
        assert not second.exists() or list(second.iterdir()) == []
        on_two_nodes = GMVAE.load(nodes / "model.pt")
        assert on_two_nodes.get_params()["num_nodes"] == 2
        across = on_two_nodes.module_.state_dict()
        for name, value in estimator.module_.state_dict().items():
            torch.testing.assert_close(across[name], value, atol=1e-6, rtol=1e-5, msg=name)
    assert json.loads((out / "summary.json").read_text())["n"] == 300
    assert estimator.predict(load_digits().subset(300, seed=0).X[:5]).shape == (5,)
