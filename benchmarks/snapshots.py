"""What a rollback snapshot costs in each place the monitor can keep it.

    python -m benchmarks.snapshots              # print, write RESULTS.md's "snapshots" section
    python -m benchmarks.snapshots --width 1024 --no-write

``lrpilot.Monitor(snapshots=...)`` keeps the state a rollback returns to beside the tensors
(``"memory"``), in host memory (``"cpu"``) or in a file (``"disk"``). On a model trained with
Adam, a snapshot holds the weights and both moment buffers: three times the model. This times,
side by side and interleaved, taking a snapshot and restoring it in each place on one MLP
trained with Adam, in units of one training step of the same model (the monitor takes one
every ``snapshot_every=25`` healthy steps, and restores only at a rollback), and counts the
bytes each keeps in memory between snapshots. On a CPU machine ``"memory"`` and ``"cpu"`` are
the same copy; on a GPU, ``"cpu"`` adds the transfer and frees the GPU memory.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from benchmarks.results_md import write_section
from lrpilot._state import SpilledSnapshot, TrainingSnapshot, take_snapshot
from lrpilot.control.monitor import SNAPSHOT_PLACES

SNAPSHOT_EVERY = 25  # the monitor's default
LAYERS = 4


def _model(width: int) -> nn.Sequential:
    blocks: list[nn.Module] = []
    for _ in range(LAYERS):
        blocks += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*blocks)


def _step_fn(model: nn.Module, opt: torch.optim.Optimizer, batch: int) -> Callable[[], None]:
    x = torch.randn(batch, model[0].in_features)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        model(x).pow(2).mean().backward()
        opt.step()

    return step


def _kept_bytes(state: TrainingSnapshot | SpilledSnapshot) -> int:
    """Bytes of tensor copies the snapshot holds in memory (a file's are on disk)."""
    if isinstance(state, SpilledSnapshot):
        return 0
    tensors = [*state.model_state.values(), *(g for g in state.grads if g is not None)]
    for _, saved in state.optimizer_state.values():
        tensors += [c for k, (_, c) in saved.items() if isinstance(c, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors)


def _take(place: str, model: nn.Module, opt: torch.optim.Optimizer, path: Path):
    """What ``Monitor(snapshots=place)`` takes (its :attr:`Action.snapshot_to`)."""
    return take_snapshot(model, opt, {"memory": None, "cpu": "cpu", "disk": path}[place])


def measure(width: int, batch: int, reps: int) -> dict:
    """Median seconds of a step, and of each place's snapshot and restore, interleaved."""
    torch.manual_seed(0)
    model = _model(width)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    step = _step_fn(model, opt, batch)
    for _ in range(3):
        step()  # Adam's moments exist, caches are warm
    times: dict[str, list[float]] = {"step": []}
    kept: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "snapshot.pt"
        for rep in range(reps):
            start = time.perf_counter()
            step()
            times["step"].append(time.perf_counter() - start)
            shift = rep % len(SNAPSHOT_PLACES)  # each place goes first as often as the others
            for place in SNAPSHOT_PLACES[shift:] + SNAPSHOT_PLACES[:shift]:
                start = time.perf_counter()
                state = _take(place, model, opt, path)
                taken = time.perf_counter() - start
                start = time.perf_counter()
                state.restore(model, opt)
                restored = time.perf_counter() - start
                times.setdefault(f"{place} take", []).append(taken)
                times.setdefault(f"{place} restore", []).append(restored)
                kept[place] = _kept_bytes(state)
                del state
    params = sum(p.numel() for p in model.parameters())
    return {
        "width": width,
        "params": params,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "kept_bytes": kept,
        "reps": reps,
    }


def report(row: dict, command: str) -> str:
    step = row["median_s"]["step"]
    mb = row["params"] * 4 / 2**20
    lines = [
        "## Monitor snapshots: memory, host memory or disk",
        "",
        f"`{command}` ({time.strftime('%Y-%m-%d')}, {torch.get_num_threads()} threads). An MLP "
        f"of {LAYERS} layers of width {row['width']} ({row['params'] / 1e6:.1f} M parameters, "
        f"{mb:.0f} MB of weights) trained with Adam: a snapshot holds the weights, the "
        "gradients and both moments. Medians of "
        f"{row['reps']} interleaved repetitions (the places in turn first); one training "
        "step (batch 64) takes "
        f"{1e3 * step:.1f} ms. The monitor takes a snapshot every {SNAPSHOT_EVERY} healthy "
        "steps and restores one only at a rollback.",
        "",
        "| kept in | take: ms | take: steps | per step at 1 snapshot / 25 steps | restore: ms "
        "| held in memory between snapshots |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for place in SNAPSHOT_PLACES:
        take = row["median_s"][f"{place} take"]
        restore = row["median_s"][f"{place} restore"]
        held = row["kept_bytes"][place] / 2**20
        lines.append(
            f"| `{place}` | {1e3 * take:.1f} | {take / step:.2f} | "
            f"{1 + take / step / SNAPSHOT_EVERY:.3f}x | {1e3 * restore:.1f} | {held:.0f} MB |"
        )
    lines += [
        "",
        "`memory` and `cpu` are the same copy on this CPU machine; `disk` writes the copy and "
        "frees it, and reads it back (memory-mapped) only to restore.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.snapshots")
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)
    row = measure(args.width, args.batch, args.reps)
    command = "python -m benchmarks.snapshots" + (
        f" --width {args.width}" if args.width != 2048 else ""
    )
    body = report(row, command)
    print(body)
    if not args.no_write:
        write_section("snapshots", body)


if __name__ == "__main__":
    main()
