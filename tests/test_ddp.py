"""find_lr under DistributedDataParallel: two CPU processes on gloo, each with its own shard,
must record the same curve (the all-reduced mean loss), stop at the same step and agree on
the suggestion."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import lrpilot
from _gloo import WORLD, init, join

LOCAL_BATCH = 8
SWEEP = dict(start_lr=1e-4, end_lr=30.0, num_steps=30, progress=False)
CE = nn.functional.cross_entropy

# The workers import this module, so it stays light: no conftest (pytest, matplotlib).


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 8, generator=g)
    return x, (x @ torch.randn(8, 3, generator=g)).argmax(1)


def batches_of(x: torch.Tensor, y: torch.Tensor, size: int) -> list:
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))


def _unlucky_loss(rank: int):
    """cross_entropy with one bad batch on rank 1 (a NaN loss at call 10) and one on rank 0
    (a finite loss with a NaN gradient at call 20): every rank must skip both steps."""
    calls = []

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        loss = CE(out, y)
        if rank == 1 and len(calls) == 10:
            return loss * float("nan")
        if rank == 0 and len(calls) == 20:
            return loss + 0.0 * torch.sqrt(out.sum() * 0.0)
        return loss

    return loss_fn


def _worker(rank: int, port: int, out_dir: str, unlucky: bool = False) -> None:
    init(rank, port)
    try:
        x, y = _data()
        shard = batches_of(x[rank::WORLD], y[rank::WORLD], LOCAL_BATCH)  # a different half
        model = DistributedDataParallel(mlp(seed=0))
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        with torch.no_grad():
            first_local = CE(model(shard[0][0]), shard[0][1]).item()
        before = [p.detach().clone() for p in model.parameters()]
        loss_fn = _unlucky_loss(rank) if unlucky else CE
        res = lrpilot.find_lr(model, opt, shard, loss_fn, steps=1_000, **SWEEP)
        restored = all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
        payload = {"first_local": first_local, "restored": restored, **res.to_dict()}
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(payload, f)
    finally:
        dist.destroy_process_group()


def _spawn(out_dir: str, timeout: float = 60.0, unlucky: bool = False) -> None:
    join(_worker, out_dir, unlucky, timeout=timeout)


def test_ranks_agree_and_record_the_all_reduced_loss(tmp_path):
    _spawn(str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    r0, r1 = ranks

    assert r0["restored"] and r1["restored"]
    assert r0["first_local"] != r1["first_local"]  # the shards differ...
    for key in (
        "lrs",
        "losses",
        "ema_losses",
        "num_steps_run",
        "diverged",
        "lr",
        "candidates",
        "band",
        "bounds",
    ):
        assert r0[key] == r1[key], key  # ...but the ranks record one curve
    assert r0["diverged"] and 8 <= r0["num_steps_run"] < 30
    assert r0["effective_batch_size"] == WORLD * LOCAL_BATCH
    # the first point is the mean of what each rank would record alone
    assert r0["losses"][0] == pytest.approx((r0["first_local"] + r1["first_local"]) / 2, rel=1e-6)

    # DDP averages gradients, so the curve is that of one process on the two shards together
    x, y = _data()
    halves = [batches_of(x[r::WORLD], y[r::WORLD], LOCAL_BATCH) for r in range(WORLD)]
    joined = [
        (torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])) for a, b in zip(*halves, strict=True)
    ]
    model = mlp(seed=0)
    single = lrpilot.find_lr(
        model,
        torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9),
        joined,
        CE,
        steps=1_000,
        **SWEEP,
    )
    calm = [i for i, lr in enumerate(single.lrs) if lr < 1.0]
    np.testing.assert_allclose(
        [r0["losses"][i] for i in calm], [single.losses[i] for i in calm], rtol=1e-4
    )


def test_ranks_skip_a_bad_batch_on_any_rank_together(tmp_path):
    _spawn(str(tmp_path), unlucky=True)
    r0, r1 = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert r0["restored"] and r1["restored"]
    for key in ("lrs", "losses", "skipped_lrs", "num_steps_run", "diverged", "lr", "warnings"):
        assert r0[key] == r1[key], key
    assert len(r0["skipped_lrs"]) == 2
    assert any("non-finite gradient norm or loss values skipped" in n for n in r0["warnings"])
