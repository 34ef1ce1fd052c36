"""What every rank of a running ``torch.distributed`` group must agree on, made the same.

A loss is local to its rank: one rank's batch can give a NaN (a micro-batch all padding) or a
spike while the others' do not, though DDP has already averaged the gradients. Any decision read
off the loss (skip the step, stop on divergence, roll back) taken per rank would let the ranks
apply different steps, drift apart, and hang at the next collective. Averaging the loss over the
ranks first gives every rank the same number, hence the same decision (a NaN on one rank is a
NaN on all)."""

from __future__ import annotations

import torch

__all__ = ["all_mean", "world_size"]


def world_size() -> int:
    """The running process group's size; 1 without one."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return int(dist.get_world_size())


def all_mean(*values: float) -> tuple[float, ...]:
    """``values`` averaged over the ranks of a running group (unchanged without one), in one
    all-reduce, on the device the backend needs (CUDA for NCCL)."""
    world = world_size()
    if world < 2:
        return values
    dist = torch.distributed
    device = (
        torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    )
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tuple(float(v) / world for v in tensor.cpu())
