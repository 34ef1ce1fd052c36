"""Wall time of ``lrpilot.find_lr`` against a bare training loop of the same steps.

    python -m benchmarks.overhead [--tasks fmnist_resnet:sgd,mnist1d_conv-long:adamw]
                                  [--steps 100] [--reps 7]

Both sides use the same model, optimizer and loader. The bare loop is what a user writes:
``zero_grad``, forward, loss, ``backward``, ``step`` and ``loss.item()`` for logging. The sweep
ends below the divergence point so both take exactly the same number of steps; everything
``find_lr`` does besides (snapshot, restore, bookkeeping, the suggestion rules) is overhead.
Repetitions are interleaved (alternating which goes first) after one warm-up each; the ratio
is of the medians. One thread, as in the rest of the benchmark.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.data import OUT
from benchmarks.results_md import write_section
from benchmarks.tasks import BenchTask, get_task
from benchmarks.train import build, cycle

# Sweep ranges that reach the last step without diverging, per optimizer family.
END_LR = {"SGD": 1e-2, "Adam": 1e-3, "AdamW": 1e-3}
console = Console()


Clock = tuple[float, float]


def _clock() -> Clock:
    return time.perf_counter(), time.process_time()


def _since(start: Clock) -> Clock:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def bare_loop(task: BenchTask, model, optimizer, loader, steps: int) -> Clock:  # noqa: ANN001
    """(wall, CPU) seconds for ``steps`` plain training steps."""
    batches = cycle(loader)
    start = _clock()
    for _ in range(steps):
        x, y = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()
    return _since(start)


def sweep(task: BenchTask, model, optimizer, loader, steps: int) -> Clock:  # noqa: ANN001
    """(wall, CPU) seconds for ``find_lr`` with ``num_steps=steps``; checks it ran them all."""
    import lrpilot

    end_lr = END_LR[type(optimizer).__name__]
    start = _clock()
    res = lrpilot.find_lr(model, optimizer, loader, task.loss_fn, steps=task.steps,
                          num_steps=steps, end_lr=end_lr, progress=False)  # fmt: skip
    elapsed = _since(start)
    if res.num_steps_run != steps:
        raise RuntimeError(f"find_lr stopped after {res.num_steps_run} of {steps} steps")
    return elapsed


def measure(task: BenchTask, steps: int, reps: int) -> dict:
    """Interleaved timings of both sides on one task."""
    model, optimizer, loader = build(task, task.default_lr, seed=0)
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    times: dict[str, list[Clock]] = {"bare": [], "find_lr": []}
    runners = {"bare": bare_loop, "find_lr": sweep}
    for rep in range(reps + 1):  # the first repetition warms up and is dropped
        order = ("bare", "find_lr") if rep % 2 == 0 else ("find_lr", "bare")
        for name in order:
            model.load_state_dict(model_state)
            optimizer.load_state_dict(opt_state)
            elapsed = runners[name](task, model, optimizer, loader, steps)
            if rep:
                times[name].append(elapsed)
    out = {"task": task.name, "steps": steps, "reps": reps, "times": times}
    for i, clock in enumerate(("wall", "cpu")):
        bare = statistics.median(t[i] for t in times["bare"])
        find = statistics.median(t[i] for t in times["find_lr"])
        out |= {f"bare_{clock}_s": bare, f"find_lr_{clock}_s": find, f"{clock}_ratio": find / bare}
    return out


def _method() -> str:
    """The module docstring's method paragraphs, as Markdown."""
    text = " ".join(__doc__.split("\n\n", 2)[2].split()).replace("``", "`")
    return text + (" CPU time (`time.process_time`) is shown beside wall time: on a shared "
                   "machine it is the steadier of the two.")  # fmt: skip


def report(rows: list[dict], command: str) -> None:
    """Print a table, save JSON and write RESULTS.md's overhead section."""
    cols = ("task", "steps", "repetitions", "bare loop wall s", "find_lr wall s", "wall ratio",
            "bare loop CPU s", "find_lr CPU s", "CPU ratio")  # fmt: skip
    table = Table(title="find_lr time / bare loop of the same steps (medians)")
    for col in cols:
        table.add_column(col, justify="right")
    md = ["## Overhead of the range test", "",
          f"Command: `{command}`.", "", _method(), "",
          "| " + " | ".join(cols) + " |", "| --- |" + " ---: |" * (len(cols) - 1)]  # fmt: skip
    for r in rows:
        cells = (r["task"], str(r["steps"]), str(r["reps"]), f"{r['bare_wall_s']:.3f}",
                 f"{r['find_lr_wall_s']:.3f}", f"{r['wall_ratio']:.3f}×", f"{r['bare_cpu_s']:.3f}",
                 f"{r['find_lr_cpu_s']:.3f}", f"{r['cpu_ratio']:.3f}×")  # fmt: skip
        table.add_row(*cells)
        md.append("| " + " | ".join(f"`{c}`" if i == 0 else c for i, c in enumerate(cells)) + " |")
    console.print(table)
    worst = max(r["wall_ratio"] for r in rows)
    md += ["", f"Target, wall time ≤ 1.10×: {'met' if worst <= 1.10 else '**not met**'} "
           f"(worst {worst:.3f}×)."]  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "overhead.json").write_text(json.dumps(rows, indent=1))
    write_section("overhead", "\n".join(md))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="fmnist_resnet:sgd,mnist1d_conv-long:adamw")
    parser.add_argument("--steps", type=int, default=100, help="steps on each side")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions of each side")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [measure(get_task(name), args.steps, args.reps) for name in args.tasks.split(",")]
    command = "MPLCONFIGDIR=/tmp/mplcfg .venv/bin/python -m benchmarks.overhead"
    report(rows, command)


if __name__ == "__main__":
    main()
