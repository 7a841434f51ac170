"""Training on several processes or machines: `torchrun` and PyTorch's DistributedDataParallel (DDP).

torchrun starts one process per GPU (or per CPU share) and tells each its place through the
environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, plus where to meet). ``setup`` reads it and
joins the process group (``nccl`` on CUDA, ``gloo`` on a CPU); without torchrun it returns a
world of one process and the training loops run exactly as before.

How the loops stay equivalent to one process with the same global batch B:
- every rank draws the same global batch (same seed, same generator), keeps rows
  ``[rank·B/W, (rank+1)·B/W)`` and DDP averages the gradients, so the step is the whole batch's step;
- the RNG states are therefore the same on every rank, so a run saved by rank 0 resumes in any
  world size (dropout draws the same masks on every rank, over different rows);
- whatever is computed outside the gradient (the VQ's dead-code restarts, the discriminator's
  adaptive weight, logged losses) is gathered or averaged across ranks, so every rank agrees.
"""

import os
import socket
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel

from maskgit_lab.utils import default_device


@dataclass
class World:
    """This process's place among ``size`` training processes (rank 0 logs, saves and exports)."""

    device: torch.device
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, batch_size: int) -> slice:
        """This rank's rows of a global batch; the size must divide by the world size."""
        if batch_size % self.size:
            raise ValueError(f"--batch-size {batch_size} is the global batch and must divide by the {self.size} "
                             f"processes (WORLD_SIZE={self.size}); pick a multiple of {self.size}")
        per_rank = batch_size // self.size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)


def launched() -> bool:
    """True inside a process started by torchrun (or anything that sets its variables)."""
    return "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def active() -> bool:
    """True when this process trains together with others (a process group of two or more)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def free_port() -> int:
    """A TCP port free on the loopback interface now: where processes on one machine can meet."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup() -> World:
    """Join torchrun's process group once (later calls return the same world); one process otherwise."""
    if not launched() or int(os.environ["WORLD_SIZE"]) == 1:
        return World(device=default_device())
    local_rank = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size(), device=device)


def finish():
    """Leave the process group (after rank 0 has exported): every rank waits for the others first."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier():
    if active():
        dist.barrier()


class DataParallelModel(DistributedDataParallel):
    """DDP that also reads the wrapped model's own attributes (``model.mask_id``), so callers need not unwrap it."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """The model DDP trains across ranks (rank 0's weights broadcast first); in one process, the model itself."""
    if world.size == 1:
        return model
    return DataParallelModel(model, device_ids=[world.device.index] if world.device.type == "cuda" else None)


def sync_unless_last(model: torch.nn.Module, last: bool):
    """Context for one micro-batch's backward: DDP all-reduces only on the last one (``no_sync`` before)."""
    no_sync = getattr(model, "no_sync", None)  # a DDP model, or torch.compile's wrapper around one
    return no_sync() if no_sync is not None and not last else nullcontext()


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over all ranks (``x`` itself in one process)."""
    if not active():
        return x
    total = x.detach().to(_collective_device(), copy=True)
    dist.all_reduce(total)
    return (total / dist.get_world_size()).to(x.device)


def mean_stats(stats: dict) -> dict:
    """Logged numbers averaged over ranks, so rank 0 logs the whole batch's (unchanged in one process)."""
    if not active():
        return stats
    means = mean_over_ranks(torch.tensor(list(stats.values()), dtype=torch.float64))
    return dict(zip(stats, means.tolist()))


def average_gradients(module: torch.nn.Module):
    """Replace each gradient by its mean over ranks: what DDP does, for a module trained beside it."""
    if not active():
        return
    for p in module.parameters():
        if p.grad is not None:
            p.grad.copy_(mean_over_ranks(p.grad))


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` (same shape on each), concatenated in rank order: the global batch's rows."""
    if not active():
        return x
    parts = [torch.empty_like(x, device=_collective_device()) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.to(_collective_device()))
    return torch.cat(parts).to(x.device)
