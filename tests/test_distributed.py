"""Both training loops under DDP on two CPU processes (gloo), against one-process runs of the same global batch.

Each process costs 10–30 s of imports on 2 busy cores, so one spawn of two processes runs every
distributed part (the `ddp` fixture) and leaves each rank's saved states on disk; the tests compare
them with each other and with one-process runs made here. The SLURM script is parsed by bash, and
run on a real single-node SLURM (tests/slurm_node.py) as one node with two processes.
"""

import dataclasses
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import slurm_node
import torch
from torch import distributed as dist
from torch import multiprocessing as mp

from maskgit_lab import train as train_module
from maskgit_lab.checkpoint import load_model
from maskgit_lab.distributed import free_port
from maskgit_lab.mvtm import training_mask
from maskgit_lab.train import MVTMTrainConfig, VQTrainConfig, accumulate_gradients, export, train_mvtm, train_vq
from maskgit_lab.transformer import BidirectionalTransformer
from tests.conftest import TINY_TF, TINY_VQ

SBATCH = Path(__file__).resolve().parent.parent / "maskgit_lab" / "slurm" / "train.sbatch"
# the GAN and dead-code restarts from the first steps: the adaptive weight and the codebook must agree across ranks
VQ_RUN = VQTrainConfig(steps=3, batch_size=4, gan_start=1, restart_after=1, log_every=1, save_every=3, max_images=8)
# two micro-batches: one process accumulates 2 × 2 rows, each of two processes 2 × 1 row (DDP's no_sync)
MVTM_RUN = MVTMTrainConfig(steps=4, batch_size=4, accumulate=2, warmup=2, log_every=1, save_every=2, max_images=8)
TF = dataclasses.replace(TINY_TF, dropout=0.0, attn_drop=0.0)  # dropout masks depend on the per-rank batch
TIMEOUT_S = 600


def every_rank_saves(dumps: Path):
    """A stand-in for the loops' save: every rank also writes its state as dumps/<run>-rank<r>-step<s>.pt."""
    save = train_module._save_on_rank_0

    def save_and_dump(world, run_dir, state):
        dumps.mkdir(parents=True, exist_ok=True)
        torch.save(state, dumps / f"{Path(run_dir).name}-rank{world.rank}-step{state['step']}.pt")
        save(world, run_dir, state)

    return save_and_dump


def two_process_worker(rank: int, port: int, root: Path):
    """One of the two ranks, with the variables torchrun would set."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    train_module._save_on_rank_0 = every_rank_saves(root / "dumps")  # a spawned process of its own
    train_vq(TINY_VQ, VQ_RUN, root / "vq-two", progress=False)
    train_mvtm(TF, MVTM_RUN, root / "vq.pt", root / "mvtm-two", progress=False)
    train_mvtm(TF, MVTM_RUN, root / "vq.pt", root / "one-then-two", resume=True, progress=False)
    try:
        train_mvtm(TF, dataclasses.replace(MVTM_RUN, batch_size=5), root / "vq.pt", root / "odd", progress=False)
    except ValueError as err:
        (root / f"odd-rank{rank}.txt").write_text(str(err))
    dist.destroy_process_group()


def run_two_processes(root: Path):
    context = mp.start_processes(two_process_worker, args=(free_port(), root), nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"two gloo processes did not finish in {TIMEOUT_S} s")


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("two processes cannot start: this torch has no torch.distributed with gloo")
    try:
        free_port()
    except OSError as err:
        pytest.skip(f"two processes cannot start: no loopback socket for their rendezvous ({err})")
    root = tmp_path_factory.mktemp("ddp")
    train_vq(TINY_VQ, dataclasses.replace(VQ_RUN, steps=2, gan_weight=0.0), root / "vq", progress=False)
    export(root / "vq", "vq", root / "vq.pt", half=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "_save_on_rank_0", every_rank_saves(root / "dumps"))
        train_vq(TINY_VQ, VQ_RUN, root / "vq-one", progress=False)
        train_mvtm(TF, MVTM_RUN, root / "vq.pt", root / "mvtm-one", progress=False)
    (root / "one-then-two").mkdir()
    (root / "dumps" / "mvtm-one-rank0-step2.pt").rename(root / "one-then-two" / "state.pt")
    run_two_processes(root)
    return root


def state(root: Path, run: str, rank: int = 0, step: int = None) -> dict:
    if step is None:
        return torch.load(root / run / "state.pt", weights_only=False)
    return torch.load(root / "dumps" / f"{run}-rank{rank}-step{step}.pt", weights_only=False)


def tensors(tree, prefix=""):
    """Every tensor in a nested state (model, optimizer, RNG states), by its path."""
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from tensors(value, f"{prefix}/{key}")
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from tensors(value, f"{prefix}/{i}")


def assert_same_weights(a: dict, b: dict, **tolerance):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], **tolerance, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("run, step, parts", [("vq-two", 3, ("model", "disc", "opt", "opt_d")),
                                              ("mvtm-two", 4, ("model", "ema", "opt"))])
def test_every_rank_ends_with_bit_identical_weights(ddp, run, step, parts):
    rank0, rank1 = state(ddp, run, 0, step), state(ddp, run, 1, step)
    for part in parts + ("generator", "torch_rng"):
        first, second = dict(tensors(rank0[part])), dict(tensors(rank1[part]))
        assert first.keys() == second.keys() and first
        assert all(torch.equal(first[k], second[k]) for k in first), f"{run}: {part} differs between the ranks"


def assert_same_log(single: dict, double: dict, *columns):
    assert [r["step"] for r in single["log"]] == [r["step"] for r in double["log"]]
    for a, b in zip(single["log"], double["log"]):
        assert [b[k] for k in columns] == pytest.approx([a[k] for k in columns], rel=1e-4, abs=1e-6)


def test_two_processes_train_the_transformer_as_one_with_the_global_batch(ddp):
    single, double = state(ddp, "mvtm-one"), state(ddp, "mvtm-two")
    assert_same_log(single, double, "loss", "train_masked_acc")
    for part in ("model", "ema"):
        assert_same_weights(single[part], double[part], rtol=1e-4, atol=1e-5)


def assert_same_moments(single: dict, double: dict):
    """Adam's moments hold the gradients; float noise is measured against the largest moment."""
    for key in ("exp_avg", "exp_avg_sq"):
        largest = max(moments[key].abs().max() for moments in single["state"].values())
        assert largest > 0
        for name, moments in single["state"].items():
            torch.testing.assert_close(double["state"][name][key], moments[key], rtol=1e-3, atol=1e-4 * largest)


def test_two_processes_train_the_tokenizer_as_one_with_the_global_batch(ddp):
    single, double = state(ddp, "vq-one"), state(ddp, "vq-two")
    assert_same_log(single, double, "rec_loss", "vq_loss", "gan_term", "d_loss")
    assert single["log"][-1]["gan_term"] != 0
    # Neither network's weights are compared: Adam's first steps move a weight by about ±lr whatever
    # its gradient's size, so a gradient at float-noise level may step either way (two of the
    # discriminator's 524 288 conv weights ended 1.6e-5 apart on CI). Their optimizers' moments are.
    for opt in ("opt", "opt_d"):
        assert_same_moments(single[opt], double[opt])


def test_a_one_process_run_resumes_in_two(ddp):
    resumed, uninterrupted = state(ddp, "one-then-two"), state(ddp, "mvtm-one")
    assert [r["step"] for r in resumed["log"]] == [1, 2, 3, 4]
    assert_same_weights(resumed["model"], uninterrupted["model"], rtol=1e-4, atol=1e-5)


def test_a_two_process_run_resumes_in_one(ddp, tmp_path):
    (tmp_path / "two-then-one").mkdir()
    torch.save(state(ddp, "mvtm-two", 0, 2), tmp_path / "two-then-one" / "state.pt")
    train_mvtm(TF, MVTM_RUN, ddp / "vq.pt", tmp_path / "two-then-one", resume=True, progress=False)
    resumed = torch.load(tmp_path / "two-then-one" / "state.pt", weights_only=False)
    assert resumed["step"] == 4
    assert_same_weights(resumed["model"], state(ddp, "mvtm-two")["model"], rtol=1e-4, atol=1e-5)


def test_a_global_batch_that_does_not_divide_is_refused_on_every_rank(ddp):
    for rank in (0, 1):
        assert (ddp / f"odd-rank{rank}.txt").read_text() == (
            "--batch-size 5 is the global batch and must divide by the 2 processes (WORLD_SIZE=2); pick a multiple of 2")
    assert not (ddp / "odd").exists()


def test_the_multi_node_sbatch_script_parses():
    checked = subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.slurm
def test_the_sbatch_script_trains_in_two_processes_on_a_real_slurm_node(tmp_path):
    why = slurm_node.unavailable()
    if why:
        pytest.skip(f"no SLURM: {why}")
    port = free_port()
    with slurm_node.SlurmNode(tmp_path / "node") as node:
        # no --cpus-per-task: the script takes the whole node, whatever its size (a fixed 8 stayed PENDING here)
        job = node.run("sbatch", "--parsable", "--nodes=1",
                       f"--export=ALL,NPROC_PER_NODE=2,MASTER_PORT={port}", f"--output={tmp_path}/job.out", str(SBATCH),
                       sys.executable, "--threads", "1", "train-mvtm", "--steps", "2", "--batch-size", "8", "--max-images", "16",
                       "--log-every", "1", "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "mvtm.pt")).stdout.strip()
        assert node.wait_jobs([job], TIMEOUT_S)[job] == {job: "COMPLETED"}, (tmp_path / "job.out").read_text()
    out = (tmp_path / "job.out").read_text()
    assert (f"torchrun on 1 node(s), 2 process(es) each, {os.cpu_count()} CPU(s) on this node, "
            f"rendezvous at {slurm_node.NODE}:{port}") in out
    assert out.count("exported") == 1  # rank 0 alone
    assert load_model(tmp_path / "mvtm.pt", "mvtm").meta["steps"] == 2


class CountingSyncs(torch.nn.Module):
    """A model with DDP's ``no_sync``: records, for each forward, whether gradients would be all-reduced."""

    def __init__(self, model):
        super().__init__()
        self.model, self.mask_id, self.syncs, self.syncing = model, model.mask_id, [], True

    @contextmanager
    def no_sync(self):
        self.syncing = False
        yield
        self.syncing = True

    def forward(self, tokens):
        self.syncs.append(self.syncing)
        return self.model(tokens)


def test_accumulation_all_reduces_only_after_the_last_micro_batch():
    model = CountingSyncs(BidirectionalTransformer(TF))
    tokens = torch.randint(TF.num_codes, (8, TF.num_tokens), generator=torch.Generator().manual_seed(0))
    accumulate_gradients(model, tokens, training_mask(8, TF.num_tokens, "cosine"), dataclasses.replace(MVTM_RUN, accumulate=4))
    assert model.syncs == [False, False, False, True]
