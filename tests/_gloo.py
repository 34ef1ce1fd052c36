"""Two CPU processes on gloo, for the tests of lrpilot under DistributedDataParallel.

The spawned workers import their test module and this one, so both stay light (no conftest)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

WORLD = 2


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def join(worker: Callable[..., None], *args: Any, timeout: float = 90.0) -> None:
    """Run ``worker(rank, port, *args)`` on :data:`WORLD` processes and wait for them; the
    test fails (the workers killed) past ``timeout`` seconds."""
    context = mp.spawn(worker, args=(free_port(), *args), nprocs=WORLD, join=False)
    deadline = time.monotonic() + timeout
    while not context.join(timeout=0.5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the DDP workers did not finish within {timeout} s")


def init(rank: int, port: int) -> None:
    """Join the gloo group of :data:`WORLD` ranks on loopback, one thread per process."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)


def shard(rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's half of a small 3-class problem, in batches of 16."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(256, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g)).argmax(1)
    x, y = x[rank::WORLD], y[rank::WORLD]
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, len(x), 16)]


def ddp_task(rank: int, loss_fn: Callable[..., torch.Tensor], steps: int) -> Any:
    """A task training :func:`ddp_model` on this rank's :func:`shard` with SGD + momentum."""
    import lrpilot

    return lrpilot.Task(
        model_fn=ddp_model,
        optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
        train_loader=shard(rank),
        loss_fn=loss_fn,
        steps=steps,
    )


def ddp_model() -> nn.Module:
    """The same small MLP on every rank, wrapped in DDP."""
    torch.manual_seed(0)
    return DistributedDataParallel(nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)))
