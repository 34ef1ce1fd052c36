"""The monitor under DistributedDataParallel: two CPU processes on gloo take the same decisions.

Rank 1 alone sees a loss spike (a constant added to its loss at two steps: its gradient, and
so the weights, are untouched). Every rank must still roll back at that step, or the ranks would
drift apart and hang. The workers import this module, so it stays light (no conftest)."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import lrpilot

WORLD = 2
CE = nn.functional.cross_entropy


def _shard(rank: int) -> list:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(256, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g)).argmax(1)
    x, y = x[rank::WORLD], y[rank::WORLD]
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, len(x), 16)]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return DistributedDataParallel(nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)))


def _loss_for(rank: int):
    calls = []

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        loss = CE(out, y)
        return loss + 50.0 if rank == 1 and len(calls) in (60, 61) else loss

    return loss_fn


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        task = lrpilot.Task(
            model_fn=_model,
            optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
            train_loader=_shard(rank),
            loss_fn=_loss_for(rank),
            steps=100,
        )
        monitor = lrpilot.Monitor(quiet=True)
        captured = []

        class Keep(lrpilot.Callback):
            def on_run_start(self, info):
                captured.append(info.model)

        run = lrpilot.train(task, 0.1, progress=False, callbacks=[Keep(), monitor])
        weights = [p.detach().flatten().tolist() for p in captured[0].parameters()]
        payload = {"events": monitor.events, "losses": run.losses, "weights": weights}
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(payload, f)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ranks_roll_back_together_when_one_rank_spikes(tmp_path):
    context = mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 90
    while not context.join(timeout=0.5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the DDP workers did not finish within 90 s")
    r0, r1 = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert r0["events"] == r1["events"]
    spikes = [e for e in r0["events"] if e["kind"] == "spike"]
    assert len(spikes) == 1 and spikes[0]["step"] == 61  # the second bad step in a row
    assert "rolled back to step 50" in spikes[0]["message"]
    assert r0["weights"] == r1["weights"]  # the ranks never drifted apart
    assert len(r0["losses"]) == len(r1["losses"]) == 100
