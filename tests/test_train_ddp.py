"""``lrpilot.train`` under DistributedDataParallel: two CPU processes on gloo skip and stop on
the same steps when only one rank's loss goes wrong.

Rank 1 alone sees a bad loss (NaN, or a constant added: its gradients, hence the averaged ones,
stay finite and untouched), as a micro-batch of padding only gives. The loop's own decisions
(skip a non-finite step, stop on divergence) must be the same on every rank, or the ranks
apply different steps and drift apart, or one stops and the other dies at the next all-reduce.
The workers import this module, so it stays light (no conftest)."""

from __future__ import annotations

import json
import math
import os

import torch
import torch.distributed as dist
from torch import nn

import lrpilot
from _gloo import WORLD, ddp_task, init, join

CE = nn.functional.cross_entropy


def _loss_for(rank: int, mode: str):
    calls = []

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        loss = CE(out, y)
        if rank != 1:
            return loss
        if mode == "nan" and len(calls) in (30, 31):
            return loss + math.nan  # a NaN loss, finite gradients
        if mode == "blowup" and len(calls) >= 40:
            return loss + 40.0  # far above its start from step 40 on, on rank 1 only
        return loss

    return loss_fn


def _worker(rank: int, port: int, out_dir: str, mode: str) -> None:
    init(rank, port)
    try:
        task = ddp_task(rank, _loss_for(rank, mode), steps=60)
        captured = []

        class Keep(lrpilot.Callback):
            def on_run_start(self, info):
                captured.append(info.model)

        run = lrpilot.train(task, 0.1, progress=False, callbacks=[Keep()])
        weights = [p.detach().flatten().tolist() for p in captured[0].parameters()]
        payload = {
            "losses": [None if math.isnan(v) else v for v in run.losses],
            "skipped": run.skipped,
            "diverged": run.diverged,
            "steps_done": run.steps_done,
            "weights": weights,
        }
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(payload, f)
    finally:
        dist.destroy_process_group()


def _run_ranks(tmp_path, mode: str) -> list[dict]:
    join(_worker, str(tmp_path), mode)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]


def test_a_nan_loss_on_one_rank_is_skipped_on_every_rank(tmp_path):
    r0, r1 = _run_ranks(tmp_path, "nan")
    assert r0["skipped"] == r1["skipped"] == 2  # both ranks skipped rank 1's two NaN steps
    assert r0["losses"] == r1["losses"]  # the loss recorded is the ranks' mean
    assert r0["losses"][29] is None and r0["losses"][30] is None
    assert r0["weights"] == r1["weights"]  # the ranks never drifted apart
    assert not r0["diverged"] and r0["steps_done"] == r1["steps_done"] == 60


def test_a_loss_that_blows_up_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    r0, r1 = _run_ranks(tmp_path, "blowup")  # before: rank 1 stopped, rank 0 died in gloo
    assert r0["diverged"] and r1["diverged"]
    assert r0["steps_done"] == r1["steps_done"] < 60
    assert r0["weights"] == r1["weights"]
