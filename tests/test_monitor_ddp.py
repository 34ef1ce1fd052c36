"""The monitor under DistributedDataParallel: two CPU processes on gloo take the same decisions.

Rank 1 alone sees a loss spike (a constant added to its loss at two steps: its gradient, and
so the weights, are untouched). Every rank must still roll back at that step, or the ranks would
drift apart and hang. The workers import this module, so it stays light (no conftest)."""

from __future__ import annotations

import json
import os

import torch
import torch.distributed as dist
from torch import nn

import lrpilot
from _gloo import WORLD, ddp_task, init, join

CE = nn.functional.cross_entropy


def _loss_for(rank: int):
    calls = []

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        loss = CE(out, y)
        return loss + 50.0 if rank == 1 and len(calls) in (60, 61) else loss

    return loss_fn


def _worker(rank: int, port: int, out_dir: str) -> None:
    init(rank, port)
    try:
        task = ddp_task(rank, _loss_for(rank), steps=100)
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


def test_ranks_roll_back_together_when_one_rank_spikes(tmp_path):
    join(_worker, str(tmp_path))
    r0, r1 = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert r0["events"] == r1["events"]
    spikes = [e for e in r0["events"] if e["kind"] == "spike"]
    assert len(spikes) == 1 and spikes[0]["step"] == 61  # the second bad step in a row
    assert "rolled back to step 50" in spikes[0]["message"]
    assert r0["weights"] == r1["weights"]  # the ranks never drifted apart
    assert len(r0["losses"]) == len(r1["losses"]) == 100
