"""Wall time of lrpilot's run layer (``train``) and range test (``find_lr``) against bare loops.

    python -m benchmarks.overhead [--tasks mnist1d_conv-long:adamw,fmnist_resnet:sgd,...]
                                  [--steps 200] [--sweep-steps 100] [--reps 9]

**train.** ``lrpilot.train(task, lr, steps=N)`` against the loop a user writes for the same
recipe: seed, build the model and the recipe's optimizer, a ``LambdaLR`` over the recipe's
schedule, then for each step the next batch, ``zero_grad``, forward, loss, ``backward``,
``clip_grad_norm_`` where the recipe clips, ``step``, the scheduler's step and ``loss.item()``
for logging. Neither side evaluates (evaluation costs the same on both). Both do the same
arithmetic: their losses are checked equal bit for bit before anything is timed. Whatever
``train`` does besides (seeding and putting the RNGs back, the gradient norm at every step, the
non-finite checks, the divergence detector, the records) is overhead.

**find_lr.** ``find_lr`` against the bare loop (no schedule, no clipping) of the same steps on
the same model, optimizer and loader; the sweep ends below the divergence point so both take
exactly the same number of steps; its snapshot, restore, bookkeeping and suggestion rules are
overhead.

**History.** ``lrpilot.train`` with recording on (the default) against ``LRPILOT_HISTORY=0``,
on an MLP whose step takes about a millisecond: what one run's record (its fingerprint and one
row in an SQLite store) adds, and, once, what the first record in a new store adds.

Each pair of runs is interleaved (alternating which goes first) after one warm-up pair; the
tables give the median of the per-pair ratios and their range. One thread, as in the rest of
the benchmark.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

import lrpilot
from benchmarks.data import OUT
from benchmarks.results_md import write_section
from benchmarks.tasks import BenchTask, get_task
from lrpilot._rng import generators_of, seed_everything
from lrpilot.history import History

TASKS = (
    "mnist1d_conv-long:adamw",
    "fmnist_resnet:sgd",
    "wordnet_lstm:adamw",
    "diamonds_mlp-long:adamw",
)
"""Four real models: Conv1d (warmup + cosine), ResNet with BatchNorm (constant LR), a word LSTM
(the recipe clips gradients) and an MLP."""
TRAIN_TARGET, FIND_LR_TARGET = 1.03, 1.10
END_LR = {"SGD": 1e-2, "Adam": 1e-3, "AdamW": 1e-3}
"""Sweep ranges that reach the last step without diverging, per optimizer family."""
console = Console()

Clock = tuple[float, float]


def _clock() -> Clock:
    return time.perf_counter(), time.process_time()


def _since(start: Clock) -> Clock:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _forever(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        yield from loader


# --------------------------------------------------------------------------- train
def run_task(task: BenchTask) -> lrpilot.Task:
    """``task``'s ``lrpilot.Task`` without validation data: the loop alone is timed."""
    return replace(task.lrpilot_task(), val_loader=None, metric_fn=None)


def bare_run(task: lrpilot.Task, lr: float, steps: int, seed: int) -> tuple[Clock, list[float]]:
    """(wall, CPU) seconds and the losses of ``steps`` steps of the recipe, written by hand."""
    start = _clock()
    seed_everything(seed, generators_of([task.train_loader]))
    model = task.model_fn()
    optimizer = task.make_optimizer(model, lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, task.schedule_for(steps))
    batches = _forever(task.train_loader)
    losses = []
    model.train()
    for _ in range(steps):
        x, y = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss_fn(model(x), y)
        loss.backward()
        if task.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), task.grad_clip)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return _since(start), losses


def lrpilot_run(task: lrpilot.Task, lr: float, steps: int, seed: int) -> tuple[Clock, list[float]]:
    """(wall, CPU) seconds and the losses of ``lrpilot.train`` for ``steps`` steps."""
    start = _clock()
    result = lrpilot.train(task, lr, steps=steps, seed=seed, progress=False)
    elapsed = _since(start)
    if result.steps_done != steps:
        raise RuntimeError(f"train stopped after {result.steps_done} of {steps} steps")
    return elapsed, result.losses


def measure_train(task: BenchTask, steps: int, reps: int) -> dict:
    """Interleaved timings of ``train`` and the bare loop on one task, at its default LR."""
    recipe = run_task(task)
    lr = task.default_lr
    _, bare_losses = bare_run(recipe, lr, steps, seed=0)
    _, train_losses = lrpilot_run(recipe, lr, steps, seed=0)
    if bare_losses != train_losses:
        raise RuntimeError(f"{task.name}: train and the bare loop differ; nothing to compare")
    runners = {"bare": bare_run, "train": lrpilot_run}
    times = _interleave(
        {k: (lambda f=f: f(recipe, lr, steps, 0)[0]) for k, f in runners.items()}, reps
    )
    return _summary(task, steps, reps, "train", times)


# --------------------------------------------------------------------------- find_lr
def bare_sweep_loop(
    loss_fn: Callable,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable,
    steps: int,
) -> Clock:
    """(wall, CPU) seconds for ``steps`` plain training steps."""
    batches = _forever(loader)
    start = _clock()
    for _ in range(steps):
        x, y = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()
    return _since(start)


def sweep(
    loss_fn: Callable,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable,
    steps: int,
    run_steps: int,
) -> Clock:
    """(wall, CPU) seconds for ``find_lr`` with ``num_steps=steps``; checks it ran them all."""
    end_lr = END_LR[type(optimizer).__name__]
    with warnings.catch_warnings():  # "the divergence edge was not seen": by design here
        warnings.simplefilter("ignore", RuntimeWarning)
        start = _clock()
        res = lrpilot.find_lr(
            model,
            optimizer,
            loader,
            loss_fn,
            steps=run_steps,
            schedule="constant",
            num_steps=steps,
            end_lr=end_lr,
            progress=False,
        )
        elapsed = _since(start)
    if res.num_steps_run != steps:
        raise RuntimeError(f"find_lr stopped after {res.num_steps_run} of {steps} steps")
    return elapsed


def measure_find_lr(task: BenchTask, steps: int, reps: int) -> dict:
    """Interleaved timings of ``find_lr`` and the bare loop on one model and optimizer."""
    recipe = task.lrpilot_task()
    seed_everything(0, generators_of([recipe.train_loader]))
    model, optimizer = recipe.build(task.default_lr)
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())

    def fresh() -> tuple:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_state)
        return task.loss_fn, model, optimizer, recipe.train_loader, steps

    sides = {
        "bare": lambda: bare_sweep_loop(*fresh()),
        "find_lr": lambda: sweep(*fresh(), run_steps=task.steps),
    }
    return _summary(task, steps, reps, "find_lr", _interleave(sides, reps))


FIXED_COST_STEPS = (20, 100)
FIXED_COST_TARGET_S = 0.010


FIXED_COST_WIDTHS = (128, 256, 384, 512, 768, 1024)


def _mlp(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    )


def _width_for_a_millisecond() -> int:
    """The hidden width whose bare SGD step (batch 64) takes closest to 1 ms of CPU on this
    machine: the issue's target is stated for a model of that speed, and machines differ."""
    loader = [(torch.randn(64, 64), torch.randint(0, 10, (64,))) for _ in range(4)]

    def step_time(width: int) -> float:
        model = _mlp(width)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        times = [
            bare_sweep_loop(nn.functional.cross_entropy, model, optimizer, loader, 40)[1]
            for _ in range(4)
        ]
        return min(times[1:]) / 40  # the first is a warm-up

    return min(FIXED_COST_WIDTHS, key=lambda w: abs(math.log(step_time(w) / 1e-3)))


def measure_fixed_cost(reps: int) -> dict:
    """``find_lr``'s fixed cost (snapshot, restore, rules, band, progress bookkeeping) and its
    cost per step, on a model whose step takes about a millisecond: the time ``find_lr`` adds
    over a bare loop of the same steps, measured at two sweep lengths ``k``; the line through
    the two medians, ``extra(k) = fixed + per_step * k``, gives both."""
    width = _width_for_a_millisecond()
    torch.manual_seed(0)
    model = _mlp(width)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loader = [(torch.randn(64, 64), torch.randint(0, 10, (64,))) for _ in range(16)]
    loss_fn = nn.functional.cross_entropy
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())

    def fresh(steps: int) -> tuple:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_state)
        return loss_fn, model, optimizer, loader, steps

    out: dict[str, Any] = {"side": "fixed", "reps": reps, "width": width, "by_steps": {}}
    for k in FIXED_COST_STEPS:
        times = _interleave(
            {
                "bare": lambda k=k: bare_sweep_loop(*fresh(k)),
                "find_lr": lambda k=k: sweep(*fresh(k), run_steps=10 * k),
            },
            reps,
        )
        out["by_steps"][k] = _pair_medians(times["find_lr"], times["bare"])
    for clock in ("wall", "cpu"):
        (k1, a), (k2, b) = ((k, out["by_steps"][k][f"{clock}_extra_s"]) for k in FIXED_COST_STEPS)
        out[f"{clock}_per_step_s"] = (b - a) / (k2 - k1)
        out[f"{clock}_fixed_s"] = a - out[f"{clock}_per_step_s"] * k1
    out["step_s"] = out["by_steps"][FIXED_COST_STEPS[-1]]["cpu_bare_s"] / FIXED_COST_STEPS[-1]
    return out


HISTORY_STEPS = 100


def _history_task(width: int) -> lrpilot.Task:
    """The 1 ms-a-step MLP as an ``lrpilot.Task`` without validation: a run of
    :data:`HISTORY_STEPS` steps whose only difference between the two sides is recording."""
    torch.manual_seed(0)
    loader = [(torch.randn(64, 64), torch.randint(0, 10, (64,))) for _ in range(16)]
    return lrpilot.Task(
        model_fn=lambda: _mlp(width),
        optimizer_fn=lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
        train_loader=loader,
        loss_fn=nn.functional.cross_entropy,
        steps=HISTORY_STEPS,
        name="overhead-history",
    )


def measure_history(reps: int) -> dict:
    """What recording a run in the history (on by default) adds to ``lrpilot.train``: the same
    run with ``LRPILOT_HISTORY=1`` (an SQLite store in a temporary ``LRPILOT_HOME``) against
    ``LRPILOT_HISTORY=0``, interleaved; and, once, the first record, which creates the store."""
    width = _width_for_a_millisecond()
    task = _history_task(width)
    saved = {k: os.environ.get(k) for k in ("LRPILOT_HISTORY", "LRPILOT_HOME")}

    def run(recording: bool) -> Clock:
        os.environ["LRPILOT_HISTORY"] = "1" if recording else "0"
        start = _clock()
        lrpilot.train(task, 1e-3, seed=0, progress=False)
        return _since(start)

    try:
        with tempfile.TemporaryDirectory(prefix="lrpilot-overhead-") as home:
            os.environ["LRPILOT_HOME"] = home
            run(False)  # warm the run layer's caches before the first record is timed
            first, plain = run(True), run(False)
            times = _interleave({"off": lambda: run(False), "on": lambda: run(True)}, reps)
            records = len(History().records())
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    out = {"side": "history", "reps": reps, "width": width, "records": records}
    out.update(_pair_medians(times["on"], times["off"]))
    out["first_extra_s"] = first[0] - plain[0]
    return out


def _history_lines(row: dict | None) -> list[str]:
    if row is None:
        return []
    return [
        "### Recording the run in the history",
        "",
        f"`lrpilot.train` on the same MLP ({HISTORY_STEPS} steps, no validation) with the "
        f"history on (the default: an SQLite file under `LRPILOT_HOME`) against "
        f"`LRPILOT_HISTORY=0`, {row['reps']} interleaved pairs ({row['records']} records "
        "written in all, so every timed run did write one).",
        "",
        "| clock | added per run | ratio (median of pairs) |",
        "| --- | ---: | ---: |",
        *(
            f"| {label} | {1e3 * row[f'{clock}_extra_s']:.1f} ms | {row[f'{clock}_ratio']:.3f}× |"
            for label, clock in (("CPU", "cpu"), ("wall", "wall"))
        ),
        "",
        f"The first record in a new store (creating the file and its tables) adds "
        f"{1e3 * row['first_extra_s']:.0f} ms of wall time once. `LRPILOT_HISTORY=0` switches "
        "recording off; the other tables here are measured with it off.",
        "",
    ]


def _pair_medians(timed: list[Clock], bare: list[Clock]) -> dict[str, float]:
    """Per clock, the medians over the pairs of the added time, the bare time and the ratio."""
    out = {}
    for i, clock in enumerate(("wall", "cpu")):
        pairs = [(t[i], b[i]) for t, b in zip(timed, bare, strict=True)]
        out[f"{clock}_extra_s"] = statistics.median(t - b for t, b in pairs)
        out[f"{clock}_bare_s"] = statistics.median(b for _, b in pairs)
        out[f"{clock}_ratio"] = statistics.median(t / b for t, b in pairs)
    return out


def _fixed_cost_lines(row: dict | None) -> list[str]:
    if row is None:
        return []
    k = FIXED_COST_STEPS[-1]
    at = row["by_steps"][k]
    met = (
        "met"
        if row["cpu_fixed_s"] <= FIXED_COST_TARGET_S and at["cpu_ratio"] <= FIND_LR_TARGET
        else "**not met**"
    )
    rows = [
        f"| {label} | {1e3 * row[f'{clock}_fixed_s']:.1f} ms | "
        f"{1e6 * row[f'{clock}_per_step_s']:.0f} µs | {at[f'{clock}_ratio']:.3f}× |"
        for label, clock in (("CPU", "cpu"), ("wall", "wall"))
    ]
    return [
        "### `lrpilot.find_lr`'s fixed cost",
        "",
        f"An MLP 64-{row['width']}-{row['width']}-10 (the width whose step takes closest to "
        f"1 ms here) with SGD, batch 64, {1e3 * row['step_s']:.2f} ms of CPU a step; "
        f"`find_lr` against a bare loop of {FIXED_COST_STEPS[0]} and {k} steps "
        f"({row['reps']} interleaved pairs each); the line through the two median "
        "differences splits what `find_lr` adds into a fixed part and a part per step (most "
        "of it the gradient norm the sweep records). Judged on CPU time, the steadier clock on "
        "a shared machine; wall time beside it.",
        "",
        f"| clock | fixed cost | added per step | ratio at {k} steps (median of pairs) |",
        "| --- | ---: | ---: | ---: |",
        *rows,
        "",
        f"Targets, fixed cost < {1e3 * FIXED_COST_TARGET_S:.0f} ms and ≤ {FIND_LR_TARGET:.2f}× "
        f"at {k} steps, on CPU time: {met}.",
        "",
    ]


# --------------------------------------------------------------------------- timing
def _interleave(sides: dict[str, Callable[[], Clock]], reps: int) -> dict[str, list[Clock]]:
    """``reps`` timed pairs of the two sides, alternating which goes first, after one warm-up
    pair that is dropped."""
    names = list(sides)
    times: dict[str, list[Clock]] = {name: [] for name in names}
    for rep in range(reps + 1):
        for name in names if rep % 2 == 0 else names[::-1]:
            elapsed = sides[name]()
            if rep:
                times[name].append(elapsed)
    return times


def _summary(task: BenchTask, steps: int, reps: int, side: str, times: dict) -> dict:
    out = {
        "task": task.name,
        "side": side,
        "steps": steps,
        "reps": reps,
        "times": times,
        "grad_clip": task.grad_clip,
    }
    for i, clock in enumerate(("wall", "cpu")):
        ratios = [t[i] / b[i] for t, b in zip(times[side], times["bare"], strict=True)]
        out |= {
            f"bare_{clock}_s": statistics.median(b[i] for b in times["bare"]),
            f"lrpilot_{clock}_s": statistics.median(t[i] for t in times[side]),
            f"{clock}_ratio": statistics.median(ratios),
            f"{clock}_ratio_min": min(ratios),
            f"{clock}_ratio_max": max(ratios),
            f"{clock}_fastest_ratio": min(t[i] for t in times[side])
            / min(b[i] for b in times["bare"]),
        }
    return out


# --------------------------------------------------------------------------- report
def _method() -> str:
    """The module docstring's method paragraphs, as Markdown."""
    paragraphs = __doc__.split("\n\n")[2:]
    text = "\n\n".join(" ".join(p.split()).replace("``", "`") for p in paragraphs)
    return text + (
        " CPU time (`time.process_time`) is shown beside wall time: on a shared "
        "machine it is the steadier of the two."
    )


COLUMNS = (
    "task",
    "steps",
    "pairs",
    "bare wall s",
    "lrpilot wall s",
    "wall ratio (range)",
    "bare CPU s",
    "lrpilot CPU s",
    "CPU ratio (range)",
    "fastest runs: CPU ratio",
)


def _cells(r: dict) -> tuple[str, ...]:
    clip = f" (clip {r['grad_clip']:g})" if r["side"] == "train" and r["grad_clip"] else ""
    return (
        f"`{r['task']}`{clip}",
        str(r["steps"]),
        str(r["reps"]),
        f"{r['bare_wall_s']:.3f}",
        f"{r['lrpilot_wall_s']:.3f}",
        _ratio(r, "wall"),
        f"{r['bare_cpu_s']:.3f}",
        f"{r['lrpilot_cpu_s']:.3f}",
        _ratio(r, "cpu"),
        f"{r['cpu_fastest_ratio']:.3f}×",
    )


def _ratio(r: dict, clock: str) -> str:
    low, high = r[f"{clock}_ratio_min"], r[f"{clock}_ratio_max"]
    return f"{r[f'{clock}_ratio']:.3f}× ({low:.3f}–{high:.3f})"


def _table(rows: list[dict], side: str, target: float) -> list[str]:
    mine = [r for r in rows if r["side"] == side]
    if not mine:
        return []
    title = "`lrpilot.train`" if side == "train" else "`lrpilot.find_lr`"
    table = Table(title=f"{side} time / bare loop of the same steps (median of pairs)")
    for col in COLUMNS:
        table.add_column(col, justify="right")
    md = [
        f"### {title} against a bare loop",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "| --- |" + " ---: |" * (len(COLUMNS) - 1),
    ]
    for r in mine:
        table.add_row(*_cells(r))
        md.append("| " + " | ".join(_cells(r)) + " |")
    console.print(table)
    worst = max(r["cpu_fastest_ratio"] for r in mine)
    met = "met" if worst <= target else "**not met**"
    verdict = (
        f"Target, the CPU-time ratio of the fastest runs ≤ {target:.2f}×: {met} (worst "
        f"{worst:.3f}×). Interference from the rest of a shared machine only ever adds time, "
        f"so the fastest of {mine[0]['reps']} runs is the closest to each loop's own cost; "
        "the median of the pairs and its range show how noisy the machine was."
    )
    return [*md, "", verdict, ""]


def report(rows: list[dict], command: str) -> None:
    """Print the tables, save JSON and write RESULTS.md's overhead section."""
    md = [
        "## Overhead of the run layer and the range test",
        "",
        f"Command: `{command}`, run on {dt.date.today()} on {platform.platform()} "
        f"(torch {torch.__version__}, 1 thread).",
        "",
        _method(),
        "",
        *_table(rows, "train", TRAIN_TARGET),
        *_table(rows, "find_lr", FIND_LR_TARGET),
        *_fixed_cost_lines(next((r for r in rows if r["side"] == "fixed"), None)),
        *_history_lines(next((r for r in rows if r["side"] == "history"), None)),
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "overhead.json").write_text(json.dumps(rows, indent=1))
    write_section("overhead", "\n".join(md))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--steps", type=int, default=200, help="train: steps on each side")
    parser.add_argument(
        "--sweep-steps",
        type=int,
        default=100,
        help="find_lr: steps on each side (0: skip find_lr)",
    )
    parser.add_argument("--reps", type=int, default=9, help="timed pairs of each comparison")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name in args.tasks.split(","):
        task = get_task(name)
        rows.append(measure_train(task, args.steps, args.reps))
        if args.sweep_steps:
            rows.append(measure_find_lr(task, args.sweep_steps, args.reps))
    if args.sweep_steps:
        rows.append(measure_fixed_cost(max(args.reps, 15)))
    rows.append(measure_history(max(args.reps, 15)))
    command = "MPLCONFIGDIR=/tmp/mplcfg .venv/bin/python -m benchmarks.overhead"
    if argv:
        command += " " + " ".join(argv)
    report(rows, command)


if __name__ == "__main__":
    main()
